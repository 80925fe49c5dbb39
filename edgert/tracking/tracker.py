"""`Tracker`: ByteTrack-style multi-object tracking of one stream's detections.

Each frame: every track's Kalman filter predicts its box; high-score detections are matched to the
confirmed and lost tracks by IoU (optimal assignment); low-score detections then keep the still
unmatched confirmed tracks alive (the ByteTrack idea: an occluded object scores low before it
vanishes); tentative tracks take what high-score detections remain; the rest start tentative tracks.
Detections only match tracks of their class group. All tracks live in stacked arrays, so a frame
costs a fixed number of NumPy calls whatever the number of objects.
"""
from __future__ import annotations

import numpy as np

from edgert.core.errors import TrackingError
from edgert.postprocess.detections import Detections
from edgert.tracking import kalman
from edgert.tracking.association import assign_margin, track_similarity
from edgert.tracking.config import TrackerConfig
from edgert.tracking.results import BestFrame, TrackRecord, Tracks, TrackUpdate

TENTATIVE, TRACKED, LOST = 0, 1, 2
_INTP = np.zeros(0, np.intp)

# Tracks live in a few arrays, one row each (not one array per field: a frame that starts or ends
# a track then copies four arrays, not fourteen): Kalman means (T, 8) and covariances (T, 12), as
# `kalman` lays them out, and these float columns:
BEST_BOX, BEST_QUALITY, BEST_SCORE = slice(0, 4), 4, 5
_FLOATS = 6
# Integer columns (RING: the track's row in the history rings):
ID, STATUS, HITS, MISSED, CLASS, GROUP, FIRST_NS, LAST_NS, BEST_NS, RING = range(10)
_INTS = 10


class Tracker:
    """Tracks of one stream; call `update` once per frame, in capture order.

    Args:
        config: Its `TrackerConfig` (defaults: ByteTrack's).

    Example:
        tracker = Tracker()
        result = tracker.update(detections, frame.timestamp_ns)
        for track_id, box in zip(result.tracks.ids, result.tracks.boxes): ...
    """

    def __init__(self, config: TrackerConfig | None = None):
        self.config = config if config is not None else TrackerConfig()
        lut = np.arange(1 + max((c for g in self.config.class_groups for c in g), default=-1), dtype=np.int64)
        for group in self.config.class_groups:
            lut[list(group)] = min(group)
        self._group_lut = lut
        self.reset()

    def reset(self) -> None:
        """Forget every track (ids start again at 1)."""
        self._means, self._covs = np.zeros((0, 8)), np.zeros((0, 12))
        self._f = np.zeros((0, _FLOATS))
        self._i = np.zeros((0, _INTS), np.int64)
        # Each track's newest `history` boxes and times: a ring per track, rows reused once a track
        # ends, so a frame writes all of them in one scatter and nothing is copied when tracks come and go.
        self._ring_boxes = np.zeros((0, self.config.history, 4), np.float32)
        self._ring_ns = np.zeros((0, self.config.history), np.int64)
        self._free_rings: list[int] = []
        self._next_id = 1
        self._last_ns: int | None = None

    def __len__(self) -> int:  # live tracks, tentative and lost included
        return self._i.shape[0]

    def update(self, detections: Detections, timestamp_ns: int, quality=None) -> TrackUpdate:
        """Advance by one frame.

        Args:
            detections: The frame's `Detections` (boxes xyxy in frame pixels). Boxes of zero width or
                height are ignored.
            timestamp_ns: The frame's capture time; never earlier than the previous frame's.
            quality: Optional ``(N,)`` per-detection quality for the best-frame choice (sharpness,
                frontalness, ...); the box area by default.

        Returns:
            `TrackUpdate`: the confirmed tracks in this frame, the ones confirmed and the ones ended.

        Raises:
            TrackingError: malformed detections (shape, NaN or inf, inverted boxes, negative
                classes), a bad `quality`, or a timestamp earlier than the previous one.
        """
        first = self._last_ns is None
        boxes, scores, classes, quality, ts = self._checked(detections, timestamp_ns, quality)
        cfg, i = self.config, self._i
        status = i[:, STATUS]
        self._means[status != TRACKED, 7] = 0.0  # a track not seen last frame keeps its height
        kalman.predict(self._means, self._covs)
        det_groups = self._groups_of(classes)
        similarity = track_similarity(self._means, boxes, i[:, GROUP], det_groups)
        sized = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        high = np.flatnonzero(sized & (scores >= cfg.high_score))
        low = np.flatnonzero(sized & (scores > cfg.low_score) & (scores < cfg.high_score))

        pool = np.flatnonzero(status != TENTATIVE)
        r1, c1 = _match(similarity, scores, pool, high, cfg.match_iou, cfg.fuse_score)
        rest = _without(pool, r1)
        rest = rest[status[rest] == TRACKED]
        r2, c2 = _match(similarity, scores, rest, low, cfg.low_match_iou, False)
        high_left = _without(high, c1)
        tentative = np.flatnonzero(status == TENTATIVE)
        r3, c3 = _match(similarity, scores, tentative, high_left, cfg.tentative_match_iou, cfg.fuse_score)
        unmatched = _without(high_left, c3)
        births = unmatched[scores[unmatched] >= cfg.birth_score]

        slots = np.concatenate([pool[r1], rest[r2], tentative[r3]])
        dets = np.concatenate([high[c1], low[c2], high_left[c3]])
        self._absorb(slots, dets, boxes, scores, quality, ts)
        self._append(births, boxes, scores, classes, det_groups, quality, ts)

        total = self._i.shape[0]
        hit = np.zeros(total, bool)
        hit[slots] = True
        hit[total - births.size:] = True
        det_of = np.full(total, -1, np.intp)
        det_of[slots] = dets
        det_of[total - births.size:] = births
        started = self._confirm(hit, first and cfg.confirm_first_frame)
        ended, survivors = self._expire(hit)
        if survivors is not None:
            det_of = det_of[survivors]

        i = self._i
        shown = np.flatnonzero((i[:, STATUS] == TRACKED) & (i[:, MISSED] == 0))
        det_index = det_of[shown]
        tracks = Tracks(i[shown, ID], boxes[det_index], scores[det_index], i[shown, CLASS].astype(np.int32),
                        det_index)
        return TrackUpdate(tracks, started, ended)

    def end_all(self) -> tuple[TrackRecord, ...]:
        """End every live track now (the stream stopped): the records of the confirmed ones.

        Tentative tracks end unannounced, as they would by expiring. Ids go on from where they were.
        """
        i = self._i
        ended = tuple(self._record(int(s)) for s in np.flatnonzero(i[:, ID] > 0))
        self._free_rings.extend(i[:, RING].tolist())
        self._means, self._covs, self._f, self._i = self._means[:0], self._covs[:0], self._f[:0], i[:0]
        return ended

    def record(self, track_id: int) -> TrackRecord | None:
        """The `TrackRecord` so far of live track `track_id`, or None if no live track has that id."""
        slot = np.flatnonzero(self._i[:, ID] == track_id)
        return self._record(int(slot[0])) if track_id > 0 and slot.size else None

    # -- one frame, in steps ----------------------------------------------------------------------

    def _checked(self, detections, timestamp_ns, quality):
        if not isinstance(detections, Detections):
            raise TrackingError(f"tracker: expected edgert.postprocess.Detections, got {type(detections).__name__}")
        if isinstance(timestamp_ns, bool) or not isinstance(timestamp_ns, (int, np.integer)):
            raise TrackingError(f"tracker: timestamp_ns must be an integer, got {timestamp_ns!r}")
        ts = int(timestamp_ns)
        if self._last_ns is not None and ts < self._last_ns:
            raise TrackingError(f"tracker: timestamp went backwards: {ts} ns after {self._last_ns} ns")
        boxes, scores, classes = (np.asarray(a) for a in detections[:3])
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise TrackingError(f"tracker: boxes must be (N, 4) xyxy, got shape {boxes.shape}")
        n = boxes.shape[0]
        if scores.shape != (n,) or classes.shape != (n,):
            raise TrackingError(f"tracker: {n} boxes but scores of shape {scores.shape} and classes of shape "
                                f"{classes.shape}")
        boxes, scores = boxes.astype(np.float32, copy=False), scores.astype(np.float32, copy=False)
        finite = np.isfinite(boxes.sum() + scores.sum())  # NaN and inf survive a sum: a finite sum is proof
        if not finite and not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
            raise TrackingError("tracker: boxes or scores hold NaN or inf")
        if (boxes[:, 2:] < boxes[:, :2]).any():
            raise TrackingError("tracker: a box has x_max < x_min or y_max < y_min (expected xyxy)")
        if n and classes.dtype.kind not in "iu":
            raise TrackingError(f"tracker: classes must be integers, got {classes.dtype}")
        if n and classes.min() < 0:
            raise TrackingError(f"tracker: classes must be >= 0, got {int(classes.min())}")
        if quality is None:
            wh = boxes[:, 2:] - boxes[:, :2]
            quality = wh[:, 0].astype(np.float64) * wh[:, 1]
        else:
            quality = np.asarray(quality, np.float64)
            if quality.shape != (n,) or not np.isfinite(quality).all():
                raise TrackingError(f"tracker: quality must be ({n},) finite values, got shape {quality.shape}")
        self._last_ns = ts
        return boxes, scores, classes.astype(np.int64, copy=False), quality, ts

    def _groups_of(self, classes: np.ndarray) -> np.ndarray:
        lut = self._group_lut
        if lut.size == 0:
            return classes
        return np.where(classes < lut.size, lut[np.minimum(classes, lut.size - 1)], classes)

    def _absorb(self, slots, dets, boxes, scores, quality, ts) -> None:
        """Matched tracks take their detections: filter update, counters, best frame, history."""
        f, i = self._f, self._i
        i[:, MISSED] += 1
        if slots.size == 0:
            return
        kalman.update(self._means, self._covs, slots, boxes, dets)
        i[slots, MISSED] = 0
        i[slots, HITS] += 1
        i[slots, LAST_NS] = ts
        q = quality[dets]
        better = q > f[slots, BEST_QUALITY]
        if better.any():
            s, d = slots[better], dets[better]
            f[s, BEST_QUALITY] = q[better]
            f[s, BEST_BOX] = boxes[d]
            f[s, BEST_SCORE] = scores[d]
            i[s, BEST_NS] = ts
        rings, at = i[slots, RING], (i[slots, HITS] - 1) % self.config.history
        self._ring_boxes[rings, at] = boxes[dets]
        self._ring_ns[rings, at] = ts

    def _append(self, births, boxes, scores, classes, det_groups, quality, ts) -> None:
        """New tentative tracks, one per detection in `births`."""
        k = births.size
        if k == 0:
            return
        b = boxes[births]
        means, covs = kalman.initiate(boxes, births)
        f = np.empty((k, _FLOATS))
        f[:, BEST_BOX] = b
        f[:, BEST_QUALITY], f[:, BEST_SCORE] = quality[births], scores[births]
        i = np.zeros((k, _INTS), np.int64)
        i[:, STATUS], i[:, HITS], i[:, CLASS], i[:, GROUP] = TENTATIVE, 1, classes[births], det_groups[births]
        i[:, FIRST_NS] = i[:, LAST_NS] = i[:, BEST_NS] = ts
        i[:, RING] = rings = self._take_rings(k)
        self._ring_boxes[rings, 0] = b
        self._ring_ns[rings, 0] = ts
        self._means = np.concatenate([self._means, means])
        self._covs = np.concatenate([self._covs, covs])
        self._f = np.concatenate([self._f, f])
        self._i = np.concatenate([self._i, i])

    def _take_rings(self, k: int) -> list[int]:
        free = self._free_rings
        if len(free) < k:
            have = self._ring_ns.shape[0]
            grow = max(k - len(free), have, 16)
            self._ring_boxes = np.concatenate([self._ring_boxes, np.zeros((grow, *self._ring_boxes.shape[1:]),
                                                                          np.float32)])
            self._ring_ns = np.concatenate([self._ring_ns, np.zeros((grow, self._ring_ns.shape[1]), np.int64)])
            free.extend(range(have + grow - 1, have - 1, -1))
        taken = free[-k:][::-1]
        del free[-k:]
        return taken

    def _confirm(self, hit, all_hits: bool) -> tuple[int, ...]:
        """Tentative tracks with enough hits (or any, if `all_hits`) get ids; lost tracks matched again
        are tracked."""
        i = self._i
        status = i[:, STATUS]
        newly = (status == TENTATIVE) & hit
        if not all_hits:
            newly &= i[:, HITS] >= self.config.min_hits
        newly = np.flatnonzero(newly)
        status[(status == LOST) & hit] = TRACKED
        if newly.size == 0:
            return ()
        ids = np.arange(self._next_id, self._next_id + newly.size, dtype=np.int64)
        self._next_id += newly.size
        i[newly, ID] = ids
        status[newly] = TRACKED
        return tuple(ids.tolist())

    def _expire(self, hit):
        """Unmatched tentative tracks die; unmatched confirmed ones are lost, and end when lost too long.

        Returns:
            ``(records of the confirmed tracks that ended, mask of the surviving rows or None)``.
        """
        i = self._i
        status = i[:, STATUS]
        dead = ~hit & (status == TENTATIVE)
        status[~hit & (status == TRACKED)] = LOST
        dead |= (status == LOST) & (i[:, MISSED] > self.config.max_missed)
        if not dead.any():
            return (), None
        ended = tuple(self._record(int(s)) for s in np.flatnonzero(dead & (i[:, ID] > 0)))
        self._free_rings.extend(i[dead, RING].tolist())
        keep = ~dead
        self._means, self._covs, self._f, self._i = self._means[keep], self._covs[keep], self._f[keep], i[keep]
        return ended, keep

    def _record(self, slot: int) -> TrackRecord:
        f, i = self._f[slot], self._i[slot].tolist()
        hits, size = i[HITS], self.config.history
        at = np.arange(max(0, hits - size), hits) % size  # oldest first
        best = BestFrame(i[BEST_NS], f[BEST_BOX].astype(np.float32), float(f[BEST_SCORE]), float(f[BEST_QUALITY]))
        return TrackRecord(i[ID], i[CLASS], i[FIRST_NS], i[LAST_NS], hits, self._ring_ns[i[RING], at],
                           self._ring_boxes[i[RING], at], best)


def _without(indices: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """`indices` minus the entries at `positions`."""
    keep = np.ones(indices.size, bool)
    keep[positions] = False
    return indices[keep]


def _match(similarity, scores, tracks, dets, min_iou, fuse):
    """Optimal IoU matching of track rows to detection indices; returns positions into each."""
    if tracks.size == 0 or dets.size == 0:
        return _INTP, _INTP
    sub = similarity.take(tracks, 0).take(dets, 1)
    if fuse:
        sub *= scores[dets]
    # cost 1 - similarity below 1 - min_iou: margin = (1 - sub) - (1 - min_iou)
    return assign_margin(np.minimum(min_iou - sub, 0.0, out=sub))
