"""What the app builds from its config: one `CameraPlan` per enabled camera, one `DetectorPlan` per detector.

The config (`edgert.apps.surveillance.config`) says it in the user's terms (class names, polygons
in the camera's pixels or normalised); a plan holds it in the terms the stages use (class indices of
the detector's labels, polygons in frame pixels for the frame size at hand).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from edgert.apps.surveillance.detection import ClassFilter, scaled_polygon
from edgert.apps.surveillance.tracks import TrackGroup
from edgert.core.errors import ConfigError
from edgert.tracking import TrackerConfig


@dataclass
class CameraPlan:
    """One camera as the app runs it.

    Attributes:
        id: Camera id (the stream id of its frames).
        source: Its source config section.
        fps: Target fps (its weight in the detectors' fair share).
        detectors: Names of the detectors that serve it.
        filters: The config's per-class filters (class name -> filter section).
        update_iou: Overlap below which a track's move is announced (`track_update`).
        analytics: The camera's analytics engine, or None when it has no zones or lines.
        size: The frame size its zones, lines and masks are given in (None: normalised or unknown).
    """

    id: str
    source: object
    fps: float
    detectors: tuple = ()
    filters: dict = field(default_factory=dict)
    update_iou: float = 0.5
    analytics: object = None
    size: tuple | None = None
    _rules: dict = field(default_factory=dict)

    def filters_for(self, detector: str, labels, frame_size) -> dict:
        """``{class_index: ClassFilter}`` for a detector's labels at this frame size (cached)."""
        key = (detector, tuple(labels), tuple(frame_size))
        rules = self._rules.get(key)
        if rules is None:
            rules = {}
            for name, rule in self.filters.items():
                if name not in labels:
                    continue
                mask = getattr(rule, "mask", None)
                if mask is not None:
                    mask = scaled_polygon(mask, frame_size, _normalised(mask), self.size)
                rules[list(labels).index(name)] = ClassFilter(getattr(rule, "min_score", 0.0) or 0.0,
                                                              getattr(rule, "min_area", 0.0) or 0.0,
                                                              getattr(rule, "max_area", None), mask)
            if len(self._rules) > 16:
                self._rules.clear()
            self._rules[key] = rules
        return rules


@dataclass
class DetectorPlan:
    """One detector as the app runs it.

    Attributes:
        name: Its model slot's name.
        model: Its `ModelConfig` (with ``backend``).
        cameras: Ids of the cameras it serves.
        conf: Minimum score the decoder keeps.
        iou: NMS IoU.
        decoder: Decoder kind (`edgert.apps.surveillance.detection.DECODER_KINDS`).
        decoder_options: Further decoder arguments.
        classes: Class names kept (None: all).
        track_groups: ``[(group name, class names, TrackerConfig)]``.
    """

    name: str
    model: object
    cameras: tuple
    conf: float = 0.25
    iou: float = 0.45
    decoder: str = "auto"
    decoder_options: dict = field(default_factory=dict)
    classes: tuple | None = None
    track_groups: tuple = ()

    def class_ids(self, labels):
        """Indices of the kept classes in `labels` (None: keep all)."""
        if self.classes is None:
            return None
        return [i for i, name in enumerate(labels) if name in self.classes]

    def groups(self, labels) -> list[TrackGroup]:
        """The `TrackGroup`s of this detector for a model with these labels."""
        labels = list(labels)
        return [TrackGroup(name, tuple(labels.index(c) for c in classes if c in labels), config)
                for name, classes, config in self.track_groups]

    def same_except_model(self, other: DetectorPlan) -> bool:
        """True when only the model differs (a swap can apply the change)."""
        mine = {k: v for k, v in self.__dict__.items() if k != "model"}
        theirs = {k: v for k, v in other.__dict__.items() if k != "model"}
        return mine == theirs


def _normalised(points) -> bool:
    flat = [float(v) for p in points for v in p]
    return bool(flat) and max(flat) <= 1.0 and min(flat) >= 0.0


def camera_plans(config) -> dict[str, CameraPlan]:
    """``{camera id: CameraPlan}`` of the enabled cameras of a surveillance config."""
    plans = {}
    for cam in config.cameras:
        if not getattr(cam, "enabled", True):
            continue
        plans[cam.id] = CameraPlan(cam.id, cam.source, float(cam.fps), filters=dict(getattr(cam, "filters", {}) or {}))
    if not plans:
        raise ConfigError("cameras: no enabled camera")
    return plans


def detector_plans(config, cameras: dict) -> dict[str, DetectorPlan]:
    """``{detector name: DetectorPlan}``; also sets each camera's `CameraPlan.detectors`."""
    plans = {}
    groups = _track_groups(config)
    for name, det in config.detectors.items():
        served = tuple(c for c in (getattr(det, "cameras", None) or cameras) if c in cameras)
        plans[name] = DetectorPlan(name, det.model, served, getattr(det, "conf", 0.25), getattr(det, "iou", 0.45),
                                   getattr(det, "decoder", "auto"), dict(getattr(det, "decoder_options", {}) or {}),
                                   tuple(det.classes) if getattr(det, "classes", None) else None, groups)
    for cam in cameras.values():
        cam.detectors = tuple(n for n, d in plans.items() if cam.id in d.cameras)
    return plans


def _track_groups(config) -> tuple:
    tracking = getattr(config, "tracking", None)
    groups = getattr(tracking, "groups", None) or {}
    return tuple((name, tuple(g.classes), TrackerConfig(**g.tracker.model_dump()) if hasattr(g, "tracker")
                  else TrackerConfig()) for name, g in groups.items())
