"""`Tracker`: ByteTrack-style multi-object tracking of one stream's detections.

Each frame: every track's Kalman filter predicts its box; high-score detections are matched to the
confirmed and lost tracks by IoU (optimal assignment); low-score detections then keep the still
unmatched confirmed tracks alive (the ByteTrack idea: an occluded object scores low before it
vanishes); tentative tracks take what high-score detections remain; the rest start tentative tracks.
Detections only match tracks of their class group. All tracks live in stacked arrays, so a frame
costs a fixed number of NumPy calls whatever the number of objects.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from edgert.core.errors import TrackingError
from edgert.postprocess.detections import Detections
from edgert.tracking import kalman
from edgert.tracking.association import assign, iou_matrix
from edgert.tracking.config import TrackerConfig
from edgert.tracking.results import BestFrame, TrackRecord, Tracks, TrackUpdate

TENTATIVE, TRACKED, LOST = 0, 1, 2
_INTP = np.zeros(0, np.intp)

# Per-track arrays, kept in step: (dtype, shape of one row).
_COLUMNS = {
    "ids": (np.int64, ()), "status": (np.int8, ()), "hits": (np.int64, ()), "missed": (np.int64, ()),
    "classes": (np.int32, ()), "groups": (np.int64, ()), "first_ns": (np.int64, ()), "last_ns": (np.int64, ()),
    "best_quality": (np.float64, ()), "best_box": (np.float32, (4,)), "best_ns": (np.int64, ()),
    "best_score": (np.float32, ()), "means": (np.float64, (8,)), "covs": (np.float64, (8, 8)),
}


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
        self._t = {k: np.zeros((0, *shape), dtype) for k, (dtype, shape) in _COLUMNS.items()}
        self._history: list[deque] = []
        self._next_id = 1
        self._last_ns: int | None = None

    def __len__(self) -> int:  # live tracks, tentative and lost included
        return len(self._history)

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
        boxes, scores, classes, quality, ts = self._checked(detections, timestamp_ns, quality)
        cfg, t = self.config, self._t
        status = t["status"]
        if status.size:
            means = t["means"]
            means[status != TRACKED, 7] = 0.0  # a track not seen last frame keeps its height
            t["means"], t["covs"] = kalman.predict(means, t["covs"])
        predicted = kalman.xyah_to_xyxy(t["means"])
        det_groups = self._groups_of(classes)
        sized = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        high = np.flatnonzero(sized & (scores >= cfg.high_score))
        low = np.flatnonzero(sized & (scores > cfg.low_score) & (scores < cfg.high_score))

        pool = np.flatnonzero(status != TENTATIVE)
        match = (predicted, boxes, scores, t["groups"], det_groups)
        r1, c1 = _match(pool, high, *match, 1.0 - cfg.match_iou, cfg.fuse_score)
        rest = np.delete(pool, r1)
        rest = rest[status[rest] == TRACKED]
        r2, c2 = _match(rest, low, *match, 1.0 - cfg.low_match_iou, False)
        high_left = np.delete(high, c1)
        tentative = np.flatnonzero(status == TENTATIVE)
        r3, c3 = _match(tentative, high_left, *match, 1.0 - cfg.tentative_match_iou, cfg.fuse_score)
        unmatched = np.delete(high_left, c3)
        births = unmatched[scores[unmatched] >= cfg.birth_score]

        slots = np.concatenate([pool[r1], rest[r2], tentative[r3]])
        dets = np.concatenate([high[c1], low[c2], high_left[c3]])
        self._absorb(slots, dets, boxes, scores, quality, ts)
        self._append(births, boxes, scores, classes, det_groups, quality, ts)

        status = t["status"]
        hit = np.zeros(status.size, bool)
        hit[slots] = True
        hit[status.size - births.size:] = True
        det_of = np.full(status.size, -1, np.intp)
        det_of[slots] = dets
        det_of[status.size - births.size:] = births
        started = self._confirm(hit)
        ended = self._expire(hit)

        shown = np.flatnonzero((self._t["status"] == TRACKED) & (self._t["missed"] == 0))
        det_index = self._det_of_survivors(det_of, shown)
        tracks = Tracks(self._t["ids"][shown], boxes[det_index], scores[det_index], self._t["classes"][shown],
                        det_index)
        return TrackUpdate(tracks, started, ended)

    def record(self, track_id: int) -> TrackRecord | None:
        """The `TrackRecord` so far of live track `track_id`, or None if no live track has that id."""
        slot = np.flatnonzero(self._t["ids"] == track_id)
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
        if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
            raise TrackingError("tracker: boxes or scores hold NaN or inf")
        if np.any(boxes[:, 2] < boxes[:, 0]) or np.any(boxes[:, 3] < boxes[:, 1]):
            raise TrackingError("tracker: a box has x_max < x_min or y_max < y_min (expected xyxy)")
        if n and not np.issubdtype(classes.dtype, np.integer):
            raise TrackingError(f"tracker: classes must be integers, got {classes.dtype}")
        classes = classes.astype(np.int32, copy=False)
        if n and classes.min() < 0:
            raise TrackingError(f"tracker: classes must be >= 0, got {int(classes.min())}")
        if quality is None:
            quality = (boxes[:, 2] - boxes[:, 0]).astype(np.float64) * (boxes[:, 3] - boxes[:, 1])
        else:
            quality = np.asarray(quality, np.float64)
            if quality.shape != (n,) or not np.isfinite(quality).all():
                raise TrackingError(f"tracker: quality must be ({n},) finite values, got shape {quality.shape}")
        self._last_ns = ts
        return boxes, scores, classes, quality, ts

    def _groups_of(self, classes: np.ndarray) -> np.ndarray:
        lut = self._group_lut
        c = classes.astype(np.int64)
        if lut.size == 0:
            return c
        return np.where(c < lut.size, lut[np.minimum(c, lut.size - 1)], c)

    def _absorb(self, slots, dets, boxes, scores, quality, ts) -> None:
        """Matched tracks take their detections: filter update, counters, best frame, history."""
        t = self._t
        t["missed"] += 1
        if slots.size == 0:
            return
        t["means"][slots], t["covs"][slots] = kalman.update(
            t["means"][slots], t["covs"][slots], kalman.xyxy_to_xyah(boxes[dets]))
        t["missed"][slots] = 0
        t["hits"][slots] += 1
        t["last_ns"][slots] = ts
        q = quality[dets]
        better = q > t["best_quality"][slots]
        s, d = slots[better], dets[better]
        t["best_quality"][s] = q[better]
        t["best_box"][s] = boxes[d]
        t["best_ns"][s] = ts
        t["best_score"][s] = scores[d]
        history = self._history
        for slot, box in zip(slots.tolist(), boxes[dets].tolist()):
            history[slot].append((ts, box))

    def _append(self, births, boxes, scores, classes, det_groups, quality, ts) -> None:
        """New tentative tracks, one per detection in `births`."""
        k = births.size
        if k == 0:
            return
        means, covs = kalman.initiate(kalman.xyxy_to_xyah(boxes[births]))
        b = boxes[births]
        new = {"ids": np.zeros(k), "status": np.full(k, TENTATIVE), "hits": np.ones(k), "missed": np.zeros(k),
               "classes": classes[births], "groups": det_groups[births], "first_ns": np.full(k, ts),
               "last_ns": np.full(k, ts), "best_quality": quality[births], "best_box": b, "best_ns": np.full(k, ts),
               "best_score": scores[births], "means": means, "covs": covs}
        t = self._t
        for key, (dtype, _) in _COLUMNS.items():
            t[key] = np.concatenate([t[key], new[key].astype(dtype, copy=False)])
        self._history.extend(deque([(ts, box)], maxlen=self.config.history) for box in b.tolist())

    def _confirm(self, hit) -> tuple[int, ...]:
        """Tentative tracks with enough hits get ids; lost tracks matched again are tracked."""
        t = self._t
        status = t["status"]
        newly = np.flatnonzero((status == TENTATIVE) & hit & (t["hits"] >= self.config.min_hits))
        status[(status == LOST) & hit] = TRACKED
        if newly.size == 0:
            return ()
        ids = np.arange(self._next_id, self._next_id + newly.size, dtype=np.int64)
        self._next_id += newly.size
        t["ids"][newly] = ids
        status[newly] = TRACKED
        return tuple(ids.tolist())

    def _expire(self, hit) -> tuple[TrackRecord, ...]:
        """Unmatched tentative tracks die; unmatched confirmed ones are lost, and end when lost too long."""
        t = self._t
        status = t["status"]
        dead = ~hit & (status == TENTATIVE)
        status[~hit & (status == TRACKED)] = LOST
        dead |= (status == LOST) & (t["missed"] > self.config.max_missed)
        if not dead.any():
            self._survivors = None
            return ()
        ended = tuple(self._record(int(s)) for s in np.flatnonzero(dead & (t["ids"] > 0)))
        keep = ~dead
        for key in _COLUMNS:
            t[key] = t[key][keep]
        self._history = [h for h, k in zip(self._history, keep.tolist()) if k]
        self._survivors = keep
        return ended

    def _det_of_survivors(self, det_of, shown) -> np.ndarray:
        if self._survivors is not None:
            det_of = det_of[self._survivors]
        return det_of[shown] if shown.size else _INTP

    def _record(self, slot: int) -> TrackRecord:
        t = self._t
        entries = self._history[slot]
        best = BestFrame(int(t["best_ns"][slot]), t["best_box"][slot].copy(), float(t["best_score"][slot]),
                         float(t["best_quality"][slot]))
        return TrackRecord(int(t["ids"][slot]), int(t["classes"][slot]), int(t["first_ns"][slot]),
                           int(t["last_ns"][slot]), int(t["hits"][slot]),
                           np.array([e[0] for e in entries], np.int64),
                           np.array([e[1] for e in entries], np.float32).reshape(-1, 4), best)


def _match(tracks, dets, predicted, boxes, scores, track_groups, det_groups, max_cost, fuse):
    """Optimal IoU matching of track slots to detection indices; returns positions into each."""
    if tracks.size == 0 or dets.size == 0:
        return _INTP, _INTP
    similarity = iou_matrix(predicted[tracks], boxes[dets])
    if fuse:
        similarity *= scores[dets]
    similarity[track_groups[tracks][:, None] != det_groups[dets][None, :]] = 0.0
    return assign(1.0 - similarity, max_cost)
