"""What the app builds from its config: one `CameraPlan` per enabled camera, one `DetectorPlan` per detector.

The config (`edgert.apps.surveillance.config`) says it in the user's terms (class names, polygons
in the camera's pixels or normalised); a plan holds it in the terms the stages use (class indices of
the detector's labels, polygons in frame pixels for the frame size at hand).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from edgert.apps.surveillance.config import CropScheduleConfig
from edgert.apps.surveillance.detection import ClassFilter, scaled_polygon
from edgert.apps.surveillance.tracks import TrackGroup
from edgert.core.errors import ConfigError
from edgert.models import config as models_config
from edgert.tracking import TrackerConfig

log = logging.getLogger(__name__)


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
        config: Its `CameraConfig` (zones, lines, homography: what its analytics are built from).
        normalized: Its polygons are in 0..1 of the frame (else frame pixels).
        size: The frame size its pixel polygons were drawn on (None: unknown; taken as the frame's).
    """

    id: str
    source: object
    fps: float
    detectors: tuple = ()
    filters: dict = field(default_factory=dict)
    update_iou: float = 0.5
    config: object = None
    normalized: bool = False
    size: tuple | None = None
    _rules: dict = field(default_factory=dict)

    @property
    def has_rules(self) -> bool:
        """The camera has zones or lines (analytics to run)."""
        return self.config is not None and bool(self.config.zones or self.config.lines)

    def filters_for(self, detector: str, labels, frame_size) -> dict:
        """``{class_index: ClassFilter}`` for a detector's labels at this frame size (cached)."""
        key = (detector, tuple(labels), tuple(frame_size))
        rules = self._rules.get(key)
        if rules is None:
            rules = {}
            for name, rule in self.filters.items():
                if name not in labels:
                    continue
                mask = None
                if rule.mask is not None:
                    mask = scaled_polygon(rule.mask, frame_size, self.normalized, self.size)
                area = frame_size[0] * frame_size[1] if self.normalized else self._area_scale(frame_size)
                max_area = None if rule.max_area is None else rule.max_area * area
                rules[list(labels).index(name)] = ClassFilter(rule.min_score, rule.min_area * area, max_area, mask)
            if len(self._rules) > 16:
                self._rules.clear()
            self._rules[key] = rules
        return rules

    def _area_scale(self, frame_size) -> float:
        """Pixel areas drawn on `size` -> areas in frames of `frame_size`."""
        if self.size is None or tuple(self.size) == tuple(frame_size):
            return 1.0
        return (frame_size[0] / self.size[0]) * (frame_size[1] / self.size[1])


@dataclass
class DetectorPlan:
    """One detector as the app runs it.

    Attributes:
        name: Its model slot's name.
        model: Its `ModelConfig` (with ``backend``).
        cameras: Ids of the cameras it serves.
        conf: Minimum score the decoder keeps.
        iou: NMS IoU.
        decoder: Decoder kind (`edgert.apps.surveillance.config.DECODER_KINDS`).
        decoder_options: Further decoder arguments.
        classes: Class names kept (None: all).
        tracking: The config's `TrackingConfig` (groups and their tracker settings).
    """

    name: str
    model: object
    cameras: tuple
    conf: float = 0.25
    iou: float = 0.45
    decoder: str = "auto"
    decoder_options: dict = field(default_factory=dict)
    classes: tuple | None = None
    tracking: object = None

    def class_ids(self, labels):
        """Indices of the kept classes in `labels` (None: keep all)."""
        if self.classes is None:
            return None
        return [i for i, name in enumerate(labels) if name in self.classes]

    def groups(self, labels) -> list[TrackGroup]:
        """The `TrackGroup`s of this detector for a model with these labels."""
        labels = list(labels)
        groups = []
        for name, group in self.tracking.groups.items():
            ids = tuple(labels.index(c) for c in group.classes if c in labels)
            if ids:
                groups.append(TrackGroup(name, ids, self.tracking.group_tracker(name, ids)))
        return groups

    def default_tracker(self) -> TrackerConfig:
        """The tracker settings of the classes no group names."""
        return self.tracking.tracker

    def same_except_model(self, other: DetectorPlan) -> bool:
        """True when only the model differs (a swap can apply the change)."""
        mine = {k: v for k, v in self.__dict__.items() if k != "model"}
        theirs = {k: v for k, v in other.__dict__.items() if k != "model"}
        return mine == theirs


def camera_plans(config) -> dict[str, CameraPlan]:
    """``{camera id: CameraPlan}`` of the enabled cameras of a `SurveillanceConfig`."""
    plans = {}
    for cam in config.cameras:
        if cam.enabled:
            plans[cam.id] = CameraPlan(cam.id, cam.source, float(cam.fps), filters=dict(cam.filters),
                                       normalized=cam.normalized, size=cam.known_frame_size(), config=cam)
    if not plans:
        raise ConfigError("cameras: every camera is disabled")
    return plans


def detector_plans(config, cameras: dict) -> dict[str, DetectorPlan]:
    """``{detector name: DetectorPlan}``; also sets each camera's `CameraPlan.detectors`.

    A detector that serves no enabled camera is left out, and so is a camera no detector serves
    (removed from `cameras`), each with a warning.

    Detectors that run inside tracked boxes (``regions``) are not whole-frame detectors: `secondary_plans`
    plans them.
    """
    plans = {}
    for name, det in config.detectors.items():
        if det.regions is not None:
            continue
        served = tuple(c for c in (det.cameras if det.cameras is not None else cameras) if c in cameras)
        model = models_config.ModelConfig(**det.model_dump(include=set(models_config.ModelConfig.model_fields)))
        plans[name] = DetectorPlan(name, model, served, det.conf, det.iou, det.decoder, dict(det.decoder_options),
                                   tuple(det.classes) if det.classes is not None else None, config.tracking)
    for name in [n for n, d in plans.items() if not d.cameras]:
        log.warning("detector %s serves no enabled camera; it is not loaded", name)
        del plans[name]
    for cam_id, cam in list(cameras.items()):
        cam.detectors = tuple(n for n, d in plans.items() if cam.id in d.cameras)
        if not cam.detectors:
            log.warning("camera %s has no detector; it is not opened", cam_id)
            del cameras[cam_id]
    if not plans:
        raise ConfigError("detectors: none serves an enabled camera")
    return plans


@dataclass
class SecondaryPlan:
    """A model on crops of tracked objects (a region detector or a secondary), as the app runs it.

    Attributes:
        name: Its model slot's name (the config's key).
        model: Its `ModelConfig` (with ``backend``).
        kind: ``detect`` (a region detector) or one of `edgert.apps.surveillance.config.SECONDARY_KINDS`.
        regions: Class names of the tracks it sees.
        cameras: Ids of the cameras it serves.
        schedule: Its `CropScheduleConfig`.
        conf, iou, decoder, decoder_options: The detector's decoding (``detect`` only).
    """

    name: str
    model: object
    kind: str
    regions: tuple
    cameras: tuple
    schedule: object
    conf: float = 0.25
    iou: float = 0.45
    decoder: str = "auto"
    decoder_options: dict = field(default_factory=dict)


def secondary_plans(config, cameras: dict) -> dict[str, SecondaryPlan]:
    """``{name: SecondaryPlan}`` of the region detectors and the secondaries that serve an enabled camera."""
    fields = set(models_config.ModelConfig.model_fields)
    plans = {}
    specs = [(n, d, "detect") for n, d in config.detectors.items() if d.regions is not None]
    specs += [(n, s, s.kind) for n, s in getattr(config, "secondaries", {}).items()]
    for name, spec, kind in specs:
        served = tuple(c for c in (spec.cameras if spec.cameras is not None else cameras) if c in cameras)
        if not served:
            log.warning("%s serves no enabled camera; it is not loaded", name)
            continue
        model = models_config.ModelConfig(**spec.model_dump(include=fields))
        extra = {}
        if kind == "detect":
            extra = dict(conf=spec.conf, iou=spec.iou, decoder=spec.decoder, decoder_options=dict(spec.decoder_options))
        schedule = spec.schedule if spec.schedule is not None else CropScheduleConfig(max_runs=3)
        plans[name] = SecondaryPlan(name, model, kind, tuple(spec.regions), served, schedule, **extra)
    return plans
