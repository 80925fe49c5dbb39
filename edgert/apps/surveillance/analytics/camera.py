"""`CameraAnalytics`: every zone and line rule of one camera, run over its tracks frame by frame.

A track stands where its box's bottom centre is. Zones raise zone_enter / zone_exit (with the dwell),
intrusion (on entering, for the zone's intrusion classes), loiter (once per visit, past ``loiter_s``)
and crowd (once per episode: ``min_count`` tracks inside for ``for_s`` seconds). Lines raise
line_cross (per class and direction, with the ground speed when the camera has a homography) and
line_count (per ``interval_s``, aligned to the clock). Edges and lines have a dead band of
``analytics.hysteresis_px`` so a track wobbling on one is not counted again and again.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from edgert.apps.surveillance.analytics.events import DIRECTIONS, AnalyticsEvent
from edgert.apps.surveillance.analytics.geometry import homography_from_points
from edgert.apps.surveillance.analytics.lines import step_polyline
from edgert.apps.surveillance.analytics.speed import GroundSpeed
from edgert.apps.surveillance.analytics.zones import ZoneEvent, bottom_centres, step_zone
from edgert.apps.surveillance.config import CameraConfig, LineConfig, ZoneConfig
from edgert.core.errors import ConfigError, TrackingError

_NS = 1_000_000_000


class _Track:
    """What the rules remember of a track between frames."""

    __slots__ = ("cls", "box", "last_s")

    def __init__(self, cls: str, box: tuple, last_s: float):
        self.cls, self.box, self.last_s = cls, box, last_s


class _Frame:
    """One update's tracks, and what the rules share about them."""

    def __init__(self, camera: str, t: float, ids: np.ndarray, anchors: np.ndarray, names: list,
                 tracks: dict, gone: list, speed: GroundSpeed | None):
        self.camera, self.t, self.t_ns = camera, t, int(round(t * _NS))
        self.ids, self.anchors, self.names = ids, anchors, names
        self.tracks, self.gone, self.speed = tracks, gone, speed

    def select(self, classes) -> tuple[np.ndarray, np.ndarray]:
        """Ids and anchors of the tracks of `classes` (None: all)."""
        if classes is None:
            return self.ids, self.anchors
        keep = np.array([name in classes for name in self.names], bool)
        return self.ids[keep], self.anchors[keep]

    def event(self, kind: str, message: str, track_id: int | None = None, **fields) -> AnalyticsEvent:
        if track_id is not None:
            track = self.tracks[track_id]
            fields.setdefault("cls", track.cls)
            fields.setdefault("box", track.box)
        return AnalyticsEvent(kind, message, self.camera, self.t, track_id, **fields)


class _ZoneRule:
    """One zone's state: who is inside since when, who has loitered, the crowd episode."""

    def __init__(self, config: ZoneConfig):
        self.config = config
        self.polygon = np.asarray(config.polygon, np.float64)
        self.inside: dict[int, int] = {}  # track id -> entered (ns)
        self.loitered: set[int] = set()
        self.crowd_since: float | None = None
        self.crowd_raised = False

    def update(self, frame: _Frame, band: float) -> list[AnalyticsEvent]:
        zone = self.config
        ids, anchors = frame.select(zone.classes)
        self.inside, changes = step_zone(self.inside, ids, anchors, self.polygon, frame.t_ns, band=band)
        for track_id in frame.gone:  # an ended track left when it was last seen
            if track_id in self.inside:
                last_ns = int(round(frame.tracks[track_id].last_s * _NS))
                entered = self.inside.pop(track_id)
                changes.append(ZoneEvent("exit", track_id, last_ns, max(0, last_ns - entered)))
        changes.sort(key=lambda c: c.track_id)
        events, count = [], len(self.inside)
        for change in changes:
            cls = frame.tracks[change.track_id].cls
            if change.kind == "enter":
                events.append(frame.event("zone_enter", f"{cls} {change.track_id} entered {zone.id} on "
                                          f"{frame.camera}", change.track_id, zone=zone.id, count=count))
                if cls in zone.intrusion:
                    events.append(frame.event("intrusion", f"intrusion: {cls} {change.track_id} entered "
                                              f"{zone.id} on {frame.camera}", change.track_id, zone=zone.id))
            else:
                dwell = change.dwell_ns / _NS
                self.loitered.discard(change.track_id)
                t_end = change.timestamp_ns / _NS
                events.append(frame.event("zone_exit", f"{cls} {change.track_id} left {zone.id} on "
                                          f"{frame.camera} after {dwell:.1f} s", change.track_id, zone=zone.id,
                                          count=count, dwell_s=dwell, t_start=t_end - dwell, t_end=t_end))
        events += self._loiter(frame)
        events += self._crowd(frame)
        return events

    def _loiter(self, frame: _Frame) -> list[AnalyticsEvent]:
        limit = self.config.loiter_s
        if limit is None:
            return []
        events = []
        for track_id, entered in sorted(self.inside.items()):
            dwell = (frame.t_ns - entered) / _NS
            if dwell >= limit and track_id not in self.loitered:
                self.loitered.add(track_id)
                cls = frame.tracks[track_id].cls
                events.append(frame.event("loiter", f"{cls} {track_id} has been in {self.config.id} on "
                                          f"{frame.camera} for {dwell:.0f} s", track_id, zone=self.config.id,
                                          dwell_s=dwell, t_start=frame.t - dwell))
        return events

    def _crowd(self, frame: _Frame) -> list[AnalyticsEvent]:
        crowd = self.config.crowd
        if crowd is None:
            return []
        classes = crowd.classes
        count = sum(1 for track_id in self.inside if classes is None or frame.tracks[track_id].cls in classes)
        if count < crowd.min_count:
            self.crowd_since, self.crowd_raised = None, False
            return []
        if self.crowd_since is None:
            self.crowd_since = frame.t
        if self.crowd_raised or frame.t - self.crowd_since < crowd.for_s:
            return []
        self.crowd_raised = True
        return [frame.event("crowd", f"crowd of {count} in {self.config.id} on {frame.camera} for "
                            f"{frame.t - self.crowd_since:.0f} s", zone=self.config.id, count=count,
                            t_start=self.crowd_since)]

    def occupancy(self, tracks: dict) -> dict[str, int]:
        counts: dict[str, int] = {}
        for track_id in self.inside:
            cls = tracks[track_id].cls
            counts[cls] = counts.get(cls, 0) + 1
        return counts


class _LineRule:
    """One line's state: each track's last position off the line, and the interval's counts."""

    def __init__(self, config: LineConfig):
        self.config = config
        self.vertices = np.asarray(config.points, np.float64)
        self.last: dict[int, tuple[float, float]] = {}
        self.counts: dict[str, dict[str, int]] = {}
        self.totals: dict[str, dict[str, int]] = {}
        self.start: float | None = None
        self.end: float | None = None
        self.latest: float | None = None

    def update(self, frame: _Frame, band: float) -> list[AnalyticsEvent]:
        events = self._interval(frame.camera, frame.t)
        ids, anchors = frame.select(self.config.classes)
        self.last, crossings = step_polyline(self.last, ids, anchors, self.vertices, band, frame.t_ns)
        for crossing in crossings:
            track_id, direction = crossing.track_id, DIRECTIONS[crossing.direction]
            cls = frame.tracks[track_id].cls
            for table in (self.counts, self.totals):
                per_class = table.setdefault(cls, {"a_to_b": 0, "b_to_a": 0})
                per_class[direction] += 1
            speed = frame.speed.speed_kmh(track_id) if frame.speed is not None else None
            said = f" at {speed:.0f} km/h" if speed is not None else ""
            events.append(frame.event("line_cross", f"{cls} {track_id} crossed {self.config.id} on "
                                      f"{frame.camera} {direction}{said}", track_id, line=self.config.id,
                                      direction=direction, speed_kmh=speed))
        for track_id in frame.gone:
            self.last.pop(track_id, None)
        self.latest = frame.t if self.latest is None else max(self.latest, frame.t)
        return events

    def _interval(self, camera: str, t: float) -> list[AnalyticsEvent]:
        """Close the counting interval when `t` is past it (or went back before it); start the next."""
        interval = self.config.interval_s
        if interval is None:
            return []
        if self.start is None:  # the first frame: a partial interval up to the next clock boundary
            self.start, self.end = t, (math.floor(t / interval) + 1) * interval
            return []
        if self.start <= t < self.end:
            return []
        event = self._count_event(camera, self.end if t >= self.end else self.latest)  # else the clock went back
        self.start = math.floor(t / interval) * interval
        self.end = self.start + interval
        return [event]

    def _count_event(self, camera: str, t_end: float) -> AnalyticsEvent:
        counts, self.counts = self.counts, {}
        total = sum(sum(d.values()) for d in counts.values())
        line = self.config.id
        return AnalyticsEvent("line_count", f"{total} crossings of {line} on {camera} in "
                              f"{t_end - self.start:.0f} s", camera, t_end, line=line, count=total,
                              t_start=self.start, t_end=t_end, counts=counts)

    def close(self, camera: str, t: float) -> list[AnalyticsEvent]:
        """The partial interval's count, ending at `t`."""
        if self.config.interval_s is None or self.start is None:
            return []
        event = self._count_event(camera, max(t, self.start))
        self.start = self.end = None
        return [event]


class CameraAnalytics:
    """The analytics rules of one camera over its tracks.

    Args:
        camera: The camera's config (zones, lines, homography, tuning).
        frame_size: ``(width, height)`` of the frames the track boxes are in.
        labels: Class names by index, for tracks whose classes are indices (names pass through).

    Raises:
        ConfigError: the frame size is not positive.
    """

    def __init__(self, camera: CameraConfig, frame_size: tuple[int, int], *, labels: Sequence[str] | None = None):
        self.config = camera
        self.labels = tuple(labels) if labels is not None else None
        self.frame_size: tuple[int, int] | None = None
        self._drawn_for = camera.known_frame_size() or _checked_size(frame_size)
        self._zones = [_ZoneRule(z) for z in camera.zones]
        self._lines = [_LineRule(line) for line in camera.lines]
        self._tracks: dict[int, _Track] = {}
        self._speed: GroundSpeed | None = None
        if camera.homography is not None:
            self._speed = GroundSpeed(np.eye(3), camera.analytics.speed_window_s)
        self.resize(frame_size)

    def resize(self, frame_size: tuple[int, int]) -> None:
        """Frames are now `frame_size`: zones, lines and the homography are rescaled to it (what the rules
        remember of each track is kept; positions are scaled with the frame)."""
        w, h = _checked_size(frame_size)
        old = self.frame_size
        self.frame_size = (w, h)
        scale = np.array([w, h], np.float64) if self.config.normalized else \
            np.array([w / self._drawn_for[0], h / self._drawn_for[1]], np.float64)
        for rule, config in zip(self._zones, self.config.zones):
            rule.polygon = np.asarray(config.polygon, np.float64) * scale
        for rule, config in zip(self._lines, self.config.lines):
            rule.vertices = np.asarray(config.points, np.float64) * scale
            if old is not None and old != (w, h):
                ratio = (w / old[0], h / old[1])
                rule.last = {k: (x * ratio[0], y * ratio[1]) for k, (x, y) in rule.last.items()}
        if self._speed is not None:
            homography = self.config.homography
            self._speed.matrix = homography_from_points(np.asarray(homography.image, np.float64) * scale,
                                                        homography.ground)

    def update(self, tracks, timestamp_s: float, ended=None) -> list[AnalyticsEvent]:
        """Run every rule over one frame's tracks.

        Args:
            tracks: The frame's tracks: ``ids`` ``(K,)``, ``boxes`` ``(K, 4)`` xyxy frame pixels and
                ``classes`` (indices into `labels`, or names) — `edgert.tracking.Tracks` or the app's
                camera-wide tracks. Tracks not in it stay where they were last seen.
            timestamp_s: The frame's capture time (seconds since the epoch).
            ended: Ids (or `TrackRecord`s) of tracks that ended now (default: ``tracks.ended`` if it has
                one). A track unseen for ``analytics.forget_after_s`` ends too.

        Returns:
            The events, zones first (in config order), then lines.
        """
        t = float(timestamp_s)
        if not math.isfinite(t):
            raise TrackingError(f"camera {self.config.id}: timestamp {timestamp_s!r} is not a finite number")
        ids, boxes, names = self._read(tracks)
        for track_id, box, name in zip(ids.tolist(), boxes.tolist(), names):
            self._tracks[track_id] = _Track(name, tuple(round(v, 1) for v in box), t)
        gone = self._gone(ids, t, getattr(tracks, "ended", ()) if ended is None else ended)
        anchors = bottom_centres(boxes)
        if self._speed is not None:
            self._speed.add(ids, anchors, t)
        frame = _Frame(self.config.id, t, ids, anchors, names, self._tracks, gone, self._speed)
        band = self.config.analytics.hysteresis_px
        events = [e for rule in self._zones for e in rule.update(frame, band)]
        events += [e for rule in self._lines for e in rule.update(frame, band)]
        for track_id in gone:
            self._tracks.pop(track_id, None)
            if self._speed is not None:
                self._speed.forget(track_id)
        return events

    def close(self, timestamp_s: float) -> list[AnalyticsEvent]:
        """The counts of every line's unfinished interval, up to `timestamp_s` (when the stream stops)."""
        return [e for rule in self._lines for e in rule.close(self.config.id, float(timestamp_s))]

    def occupancy(self) -> dict[str, dict[str, int]]:
        """``{zone id: {class: tracks inside}}`` now."""
        return {rule.config.id: rule.occupancy(self._tracks) for rule in self._zones}

    def line_totals(self) -> dict[str, dict[str, dict[str, int]]]:
        """``{line id: {class: {"a_to_b": n, "b_to_a": m}}}`` since the start."""
        return {rule.config.id: {c: dict(d) for c, d in rule.totals.items()} for rule in self._lines}

    def speed_kmh(self, track_id: int) -> float | None:
        """A track's ground speed now (None without a homography or with too short a history)."""
        return None if self._speed is None else self._speed.speed_kmh(track_id)

    def _read(self, tracks) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Ids, float64 boxes and class names of a frame's tracks, checked."""
        ids = np.asarray(tracks.ids).reshape(-1)
        boxes = np.asarray(tracks.boxes, np.float64)
        classes = list(tracks.classes)
        if ids.size and ids.dtype.kind not in "iu":
            raise TrackingError(f"camera {self.config.id}: track ids must be integers, got {ids.dtype}")
        if boxes.shape != (ids.size, 4) or len(classes) != ids.size:
            raise TrackingError(f"camera {self.config.id}: {ids.size} track ids with boxes of shape "
                                f"{boxes.shape} and {len(classes)} classes (expected ({ids.size}, 4) and {ids.size})")
        if not np.isfinite(boxes).all():
            raise TrackingError(f"camera {self.config.id}: a track box holds NaN or inf")
        return ids.astype(np.int64), boxes, [self._name(c) for c in classes]

    def _name(self, cls) -> str:
        if isinstance(cls, str):
            return cls
        index = int(cls)
        if self.labels is not None and 0 <= index < len(self.labels):
            return self.labels[index]
        return str(index)

    def _gone(self, ids: np.ndarray, t: float, ended) -> list[int]:
        seen = set(ids.tolist())
        gone = [int(getattr(e, "track_id", e)) for e in ended]
        limit = self.config.analytics.forget_after_s
        gone += [k for k, track in self._tracks.items() if k not in seen and t - track.last_s > limit]
        return sorted(k for k in set(gone) if k in self._tracks)


def _checked_size(frame_size) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in frame_size)
    except (TypeError, ValueError):
        raise ConfigError(f"frame size: expected (width, height), got {frame_size!r}") from None
    if w <= 0 or h <= 0:
        raise ConfigError(f"frame size: expected positive (width, height), got {(w, h)}")
    return w, h
