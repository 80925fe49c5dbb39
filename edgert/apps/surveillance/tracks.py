"""Tracks of one camera: a `Tracker` per detector and class group, camera-wide track ids, lifecycle events.

A camera's detections come from one or more detectors; each detector's classes are split into the
tracker groups the config names (people, vehicles, ...), and every (detector, group) has a tracker of
its own. Their ids are mapped to ids unique within the camera (1, 2, ...), which the events and the
analytics use. A track is announced when confirmed (`track_start`), again only when its box changed
meaningfully (`track_update`: its overlap with the box last announced fell below ``update_iou``),
and when it ends (`track_end`, with its first and last times and best box; when the camera stops, every
track still followed ends with ``reason="stopped"``, so each track_start has its track_end).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgert.postprocess.detections import Detections
from edgert.tracking import Tracker, TrackerConfig


@dataclass(frozen=True)
class TrackGroup:
    """Classes tracked together, with their tracker settings.

    Attributes:
        name: The group's name ("people", "vehicles").
        classes: Class indices (of the detector's labels) in the group.
        config: Its `TrackerConfig`.
    """

    name: str
    classes: tuple[int, ...]
    config: TrackerConfig


@dataclass(frozen=True)
class Lifecycle:
    """A track lifecycle event to publish: ``kind`` is track_start, track_update or track_end."""

    kind: str
    track_id: int
    cls: str
    t_ns: int
    box: tuple
    t_start_ns: int = 0
    hits: int = 0
    reason: str = ""


@dataclass(frozen=True)
class FrameTracks:
    """The camera's confirmed tracks in one frame of one detector (camera-wide ids).

    Attributes:
        ids: int64 ``(K,)``.
        boxes: float32 ``(K, 4)`` frame pixels.
        classes: Class names, one per track.
        ended: Camera ids of the tracks that ended in this frame.
        events: `Lifecycle` events of this frame.
    """

    ids: np.ndarray
    boxes: np.ndarray
    classes: tuple
    ended: tuple
    events: tuple


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class CameraTracks:
    """Every tracker of one camera, and the lifecycle of its tracks.

    Args:
        camera: The camera id.
        groups: ``{detector: ([TrackGroup, ...], TrackerConfig)}``: a detector's groups, and the
            settings of the tracker of its classes no group names.
        labels: ``{detector: class names}`` (index -> name; a missing name is the index as text).
        update_iou: A track is announced again once the overlap of its box with the one last
            announced falls below this.
    """

    def __init__(self, camera: str, groups: dict, labels: dict, update_iou: float = 0.5):
        self.camera = camera
        self.update_iou = float(update_iou)
        self._labels = {k: tuple(v) for k, v in labels.items()}
        self._groups: dict[str, list] = {}
        self._trackers: dict[tuple, Tracker] = {}
        for detector, (detector_groups, rest) in groups.items():
            self.set_groups(detector, detector_groups, labels.get(detector, ()), rest)
        self._ids: dict[tuple, int] = {}
        self._announced: dict[int, tuple] = {}
        self._next_id = 1
        self.started = self.ended = 0

    def set_groups(self, detector: str, groups, labels, rest_config: TrackerConfig | None = None) -> None:
        """(Re)build a detector's trackers (its tracks end silently: used at start and when its model changes)."""
        self._labels[detector] = tuple(labels)
        listed = {c for g in groups for c in g.classes}
        rest = TrackGroup("", (), rest_config if rest_config is not None else TrackerConfig())
        self._groups[detector] = [(g, np.asarray(g.classes, np.int64)) for g in groups] + [(rest, listed)]
        for key in [k for k in self._trackers if k[0] == detector]:
            del self._trackers[key]
        for g, _ in self._groups[detector]:
            self._trackers[(detector, g.name)] = Tracker(g.config)

    def labels_of(self, detector: str) -> tuple:
        """The class names a detector's trackers were built for."""
        return self._labels.get(detector, ())

    def label(self, detector: str, cls: int) -> str:
        names = self._labels.get(detector, ())
        return names[cls] if 0 <= cls < len(names) else str(cls)

    @property
    def live_tracks(self) -> int:
        return len(self._announced)

    def update(self, detector: str, detections: Detections, timestamp_ns: int) -> FrameTracks:
        """One frame of one detector: track, map ids, and say what changed."""
        ids, boxes, classes, ended, events = [], [], [], [], []
        for group, classes_of in self._groups[detector]:
            if group.name:
                pick = np.isin(detections.classes, classes_of)
            else:  # the classes no group names
                pick = ~np.isin(detections.classes, np.asarray(sorted(classes_of), np.int64))
            subset = detections if pick.all() else Detections(detections.boxes[pick], detections.scores[pick],
                                                              detections.classes[pick])
            tracker = self._trackers[(detector, group.name)]
            if not len(tracker) and not len(subset):
                continue
            result = tracker.update(subset, timestamp_ns)
            self._collect(detector, group.name, result, timestamp_ns, ids, boxes, classes, ended, events)
        boxes_arr = np.asarray(boxes, np.float32).reshape(-1, 4)
        return FrameTracks(np.asarray(ids, np.int64), boxes_arr, tuple(classes), tuple(ended), tuple(events))

    def _collect(self, detector, group, result, ts, ids, boxes, classes, ended, events) -> None:
        started = set(result.started)
        for local, box, cls in zip(result.tracks.ids.tolist(), result.tracks.boxes, result.tracks.classes.tolist()):
            key = (detector, group, local)
            cam_id = self._ids.get(key)
            if cam_id is None:
                cam_id = self._ids[key] = self._next_id
                self._next_id += 1
            name = self.label(detector, cls)
            box_t = tuple(round(float(v), 1) for v in box)
            ids.append(cam_id)
            boxes.append(box)
            classes.append(name)
            if local in started or cam_id not in self._announced:
                self._announced[cam_id] = box_t
                self.started += 1
                events.append(Lifecycle("track_start", cam_id, name, ts, box_t, ts))
            elif _iou(self._announced[cam_id], box_t) < self.update_iou:
                self._announced[cam_id] = box_t
                events.append(Lifecycle("track_update", cam_id, name, ts, box_t))
        self._end(detector, group, result.ended, ended, events)

    def close(self) -> tuple:
        """End every live track (the camera stopped): their `track_end` events, at their last sighting.

        Each carries ``reason="stopped"``: the object was still followed, not seen to leave.
        """
        ended, events = [], []
        for (detector, group), tracker in self._trackers.items():
            self._end(detector, group, tracker.end_all(), ended, events, reason="stopped")
        return tuple(events)

    def _end(self, detector, group, records, ended, events, reason: str = "") -> None:
        for record in records:
            cam_id = self._ids.pop((detector, group, record.track_id), None)
            if cam_id is None:
                continue
            self._announced.pop(cam_id, None)
            self.ended += 1
            ended.append(cam_id)
            best = tuple(round(float(v), 1) for v in record.best.box)
            events.append(Lifecycle("track_end", cam_id, self.label(detector, record.class_id), record.last_ns,
                                    best, record.first_ns, record.hits, reason))
