"""The surveillance app's sections of the config file: cameras, detectors, tracking, snapshots.

The service adds its own sections (`edgert.service.config`). Coordinates of zones, lines, masks and
homography image points are the camera's frame pixels (x right, y down), or 0..1 of the frame's
width and height with ``normalized: true`` on the camera.

```yaml
app: surveillance
cameras:
  - id: gate
    source: {kind: opencv, device: "rtsp://cam-1/stream"}   # any source kind (`edgert.sources.SOURCES`)
    fps: 15                      # processed frames per second
    frame_size: [1920, 1080]     # the frame the coordinates were drawn on (checked; rescaled if the stream differs)
    zones:
      - {id: door, polygon: [[100, 900], [700, 900], [700, 1070], [100, 1070]], classes: [person],
         loiter_s: 30, intrusion: [person], crowd: {min_count: 5, for_s: 10}}
    lines:
      - {id: kerb, points: [[0, 700], [1919, 760]], classes: [car, truck], interval_s: 60}
    filters: {person: {min_score: 0.4, min_area: 900, mask: [[0, 0], [300, 0], [300, 200], [0, 200]]}}
    homography: {image: [[..], [..], [..], [..]], ground: [[0, 0], [3.5, 0], [3.5, 20], [0, 20]]}
detectors:
  street: {path: /var/lib/edgert/models/street.hef, backend: hailo, cameras: [gate], classes: [person, car]}
  faces:  {path: builtin:face_detection_short_range, backend: cpu, regions: [person],   # inside person tracks
           schedule: {max_crops: 4, better_by: 1.5, max_runs: 3}}                    # face_detected events
secondaries:                     # models on crops of tracked objects (`edgert.pipeline.secondary`)
  vehicle: {path: builtin:street_vehicle_type, backend: cpu, kind: attributes, regions: [car, bus, motorbike],
            schedule: {max_crops: 2, time_share: 0.2}}                              # vehicle_attributes events
tracking:
  tracker: {max_missed: 30}                                   # classes no group names
  groups: {vehicles: {classes: [car, bus, truck], tracker: {max_missed: 60}}}
snapshots: {dir: snapshots/events, quota_mb: 500, jpeg_quality: 85}
face_recognition: {model: {path: /var/lib/edgert/models/face_embedder.tflite}}   # optional (faces/config.py)
plates: {countries: [VN], known: [{plate: 51F-123.45, name: Nguyen}]}   # reads the ocr secondaries' plates
```
An ``ocr`` secondary runs a text detector (plate localisation: PP-OCR's DB detector,
``builtin:ch_PP-OCRv4_det``) on vehicle crops; the ``plates:`` section's recogniser reads the text regions it
finds (``plate_read`` / ``watched_plate_seen`` events, `edgert.apps.surveillance.readers`).
Class names are the model cards'; they are checked against the loaded models by `check_class_names`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import isfinite
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationError, model_validator

from edgert.apps.surveillance.analytics.geometry import collinear_triple, polygon_self_intersection
from edgert.apps.surveillance.faces.config import FaceRecognitionConfig
from edgert.apps.surveillance.plates.voting import PlatesConfig
from edgert.core.config_file import format_path
from edgert.core.errors import ConfigError
from edgert.core.settings import Section
from edgert.models import config as models_config
from edgert.sources import SOURCES
from edgert.tracking.config import TrackerConfig

SourceConfig = SOURCES.config_union()

#: Detection decoders a detector may name (``auto``: SSD post-processed for four outputs, else YOLO).
DECODER_KINDS = ("auto", "yolo", "ssd", "hailo_nms")
#: What a secondary model's outputs are (`SecondaryConfig.kind`).
SECONDARY_KINDS = ("attributes", "embedding", "ocr")
#: Event kinds a snapshot may be taken for.
SNAPSHOT_KINDS = ("track_start", "track_end", "zone_enter", "zone_exit", "loiter", "crowd", "intrusion", "line_cross")


def _finite(value: float) -> float:
    if not isfinite(value):
        raise ValueError(f"expected a finite number, got {value}")
    return value


Coordinate = Annotated[float, AfterValidator(_finite)]
Point = tuple[Coordinate, Coordinate]
Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                          description="Letters, digits, '_', '.', '-' (used in topics and file names).")]
Size = tuple[Annotated[int, Field(gt=0, le=16384)], Annotated[int, Field(gt=0, le=16384)]]


def _check_polygon(points: Sequence, what: str) -> None:
    if len(points) < 3:
        raise ValueError(f"{what}: a polygon needs at least 3 points, got {len(points)}")
    crossing = polygon_self_intersection(points)
    if crossing is not None:
        i, j = crossing
        if i == j:
            raise ValueError(f"{what}: point {i} repeats the next one (a zero-length edge)")
        raise ValueError(f"{what}: self-intersecting (edge {i}-{(i + 1) % len(points)} meets edge "
                         f"{j}-{(j + 1) % len(points)})")


class ClassFilterConfig(Section):
    """What a camera keeps of one class's detections (before tracking)."""

    min_score: float = Field(0.0, ge=0, le=1, description="Detections scoring less are dropped.")
    min_area: float = Field(0.0, ge=0, description="Boxes smaller than this are dropped (pixels squared; with "
                            "normalized: true, a fraction of the frame's area).")
    max_area: float | None = Field(None, gt=0, description="Boxes larger than this are dropped (same unit; "
                                   "None: no limit).")
    mask: list[Point] | None = Field(None, description="Polygon where the class is ignored (a box whose "
                                     "bottom centre falls inside is dropped).")

    @model_validator(mode="after")
    def _consistent(self):
        if self.max_area is not None and self.max_area <= self.min_area:
            raise ValueError(f"max_area {self.max_area} must be more than min_area {self.min_area}")
        if self.mask is not None:
            _check_polygon(self.mask, "mask")
        return self


class CrowdConfig(Section):
    """A crowd: at least `min_count` objects in the zone for `for_s` seconds (one event per episode)."""

    min_count: int = Field(..., ge=1, le=100000, description="Objects in the zone that make a crowd.")
    for_s: float = Field(0.0, ge=0, le=86400, description="How long the count must hold before the event.")
    classes: list[str] | None = Field(None, description="Classes counted (None: the zone's classes).")


class ZoneConfig(Section):
    """A polygon of the frame and the rules over the tracks standing in it (by their box's bottom centre)."""

    id: Id
    polygon: list[Point] = Field(..., description="Vertices in order (at least 3, not self-intersecting).")
    classes: list[str] | None = Field(None, description="Classes the zone follows (None: every class).")
    loiter_s: float | None = Field(None, gt=0, le=86400, description="A track inside longer than this "
                                   "raises one loiter event per visit (None: no loitering rule).")
    intrusion: list[str] = Field(default_factory=list, description="Classes whose entering is an intrusion.")
    crowd: CrowdConfig | None = Field(None, description="Crowd rule (None: none).")

    @model_validator(mode="after")
    def _simple(self):
        _check_polygon(self.polygon, "polygon")
        if self.classes is not None:
            crowd = self.crowd.classes if self.crowd is not None and self.crowd.classes else []
            for key, names in (("intrusion", self.intrusion), ("crowd.classes", crowd)):
                for k, cls in enumerate(names):
                    if cls not in self.classes:
                        raise ValueError(f"{key}[{k}]: {cls!r} is not one of the zone's classes "
                                         f"({', '.join(map(repr, self.classes))}), so it is never seen there")
        return self


class LineConfig(Section):
    """A counting line: a polyline; side A is on the left walking from its first point to its last
    (as seen on the screen: above a line drawn left to right), side B on the right."""

    id: Id
    points: list[Point] = Field(..., min_length=2, description="Vertices in order (at least 2).")
    classes: list[str] | None = Field(None, description="Classes counted (None: every class).")
    interval_s: float | None = Field(60.0, gt=0, le=86400, description="A line_count event per this many "
                                     "seconds, aligned to the clock (None: no interval counts).")

    @model_validator(mode="after")
    def _no_zero_length(self):
        for i, (p, q) in enumerate(zip(self.points, self.points[1:])):
            if p == q:
                raise ValueError(f"points: segment {i}-{i + 1} has zero length (both ends at {list(p)})")
        return self


class HomographyConfig(Section):
    """Four image points and where they lie on the ground (metres), for speeds and distances."""

    image: list[Point] = Field(..., min_length=4, max_length=4, description="Four image points (frame "
                               "pixels, or normalized like the zones).")
    ground: list[Point] = Field(..., min_length=4, max_length=4, description="The same four points on the "
                                "ground plane, in metres.")

    @model_validator(mode="after")
    def _general_position(self):
        for name, points in (("image", self.image), ("ground", self.ground)):
            triple = collinear_triple(points)
            if triple is not None:
                raise ValueError(f"{name}: points {', '.join(map(str, triple))} lie on one line "
                                 "(a homography needs four points, no three in a line)")
        return self


class AnalyticsTuning(Section):
    """How the rules of a camera treat jitter, speed and tracks that vanish."""

    hysteresis_px: float = Field(4.0, ge=0, le=1000, description="A track's anchor must be this far (frame "
                                 "pixels) past a zone edge or a line before it counts as in, out or across.")
    speed_window_s: float = Field(1.0, gt=0, le=60, description="Speed is fitted over this much of a track's "
                                  "latest positions.")
    forget_after_s: float = Field(30.0, gt=0, le=86400, description="A track unseen this long is treated as "
                                  "ended (when the tracker's end was not passed on).")


class CameraConfig(Section):
    """One camera: its source, pace, and the analytics rules over its tracks."""

    id: Id
    enabled: bool = Field(True, description="A disabled camera is not opened.")
    source: SourceConfig = Field(description="Where frames come from (any source kind).")
    fps: float = Field(15.0, gt=0, le=240, description="Frames per second to process (the fair share "
                       "of the detectors it is given).")
    frame_size: Size | None = Field(None, description="(width, height) of the frame the pixel coordinates "
                                    "were drawn on: they are checked against it and rescaled when the "
                                    "stream's frames differ (None: the source's size when it fixes one).")
    normalized: bool = Field(False, description="Zones, lines, masks and homography image points are 0..1 "
                             "of the frame's width and height instead of pixels.")
    zones: list[ZoneConfig] = Field(default_factory=list, description="Zones (polygons).")
    lines: list[LineConfig] = Field(default_factory=list, description="Counting lines (polylines).")
    filters: dict[str, ClassFilterConfig] = Field(default_factory=dict, description="Per-class detection "
                                                  "filters, by class name.")
    homography: HomographyConfig | None = Field(None, description="Image <-> ground points (None: no speeds).")
    analytics: AnalyticsTuning = Field(default_factory=AnalyticsTuning, description="Rule tuning.")

    def known_frame_size(self) -> tuple[int, int] | None:
        """The frame size the coordinates refer to: `frame_size`, else the size the source fixes, else None."""
        if self.frame_size is not None:
            return tuple(self.frame_size)
        size = getattr(self.source, "size", None)  # synthetic sources render at a set size
        if size is not None:
            return tuple(size)
        width, height = getattr(self.source, "width", None), getattr(self.source, "height", None)
        return (width, height) if width and height else None

    @model_validator(mode="after")
    def _ids_unique(self):
        for what, items in (("zones", self.zones), ("lines", self.lines)):
            seen: dict[str, int] = {}
            for i, item in enumerate(items):
                if item.id in seen:
                    raise ValueError(f"{what}[{i}].id: {item.id!r} is also {what}[{seen[item.id]}]")
                seen[item.id] = i
        return self

    @model_validator(mode="after")
    def _inside_the_frame(self):
        size = (1.0, 1.0) if self.normalized else self.known_frame_size()
        if size is None:
            return self
        w, h = size
        unit = "normalized to 0..1" if self.normalized else f"in the {w}x{h} frame"
        for path, points in self._image_points():
            for k, (x, y) in enumerate(points):
                if not (0 <= x <= w and 0 <= y <= h):
                    raise ValueError(f"{path}[{k}]: point {[x, y]} is outside the frame (coordinates {unit})")
        return self

    def _image_points(self):
        for i, zone in enumerate(self.zones):
            yield f"zones[{i}].polygon", zone.polygon
        for i, line in enumerate(self.lines):
            yield f"lines[{i}].points", line.points
        for name, rule in self.filters.items():
            if rule.mask is not None:
                yield f"filters.{name}.mask", rule.mask
        if self.homography is not None:
            yield "homography.image", self.homography.image


class CropScheduleConfig(Section):
    """Which tracks a secondary model crops (`edgert.pipeline.secondary`) and how many crops a frame may take."""

    max_crops: int | None = Field(4, ge=1, le=256, description="Crops per frame at most (None: no count limit).")
    time_share: float | None = Field(None, gt=0, le=1, description="Share of wall time the model's device "
                                     "calls may take (None: no time limit).")
    better_by: float = Field(1.5, gt=1, le=1000, description="A track is cropped again when its box area grew "
                             "by this factor over the crop last used.")
    max_runs: int | None = Field(None, ge=1, le=10000, description="Crops of one track at most (None: no limit).")

    @model_validator(mode="after")
    def _some_limit(self):
        if self.max_crops is None and self.time_share is None:
            raise ValueError("max_crops and time_share are both None: a secondary model needs a per-frame budget")
        return self


class DetectorConfig(models_config.ModelConfig):
    """A detection model: which cameras it serves, which classes it keeps, on which backend."""

    path: str = Field(..., description="Model file (.tflite, .hef, .rknn, .onnx), builtin:<name> or store:<name>.")
    cameras: list[str] | None = Field(None, description="Camera ids it serves (None: every camera).")
    classes: list[str] | None = Field(None, description="Class names it keeps, from its model card (None: all).")
    decoder: Literal[DECODER_KINDS] = Field("auto", description="How its outputs are decoded.")
    decoder_options: dict = Field(default_factory=dict, description="Further decoder arguments (layout, anchors...).")
    conf: float = Field(0.25, gt=0, le=1, description="Minimum detection score.")
    iou: float = Field(0.45, gt=0, le=1, description="Non-maximum suppression IoU.")
    regions: list[str] | None = Field(None, min_length=1, description="Run inside the tracked boxes of these "
                                      "classes (crops of the full frame, e.g. faces inside persons; see "
                                      "`schedule`); None: on whole frames.")
    schedule: CropScheduleConfig | None = Field(None, description="With regions: which tracks get a crop, and "
                                                "how many per frame (None: the defaults, with max_runs 3).")

    @model_validator(mode="after")
    def _schedule_needs_regions(self):
        if self.regions is None and self.schedule is not None:
            raise ValueError("schedule: only for a detector that runs inside tracked boxes (set regions)")
        return self


class SecondaryConfig(models_config.ModelConfig):
    """A secondary (non-detector) model on crops of tracked objects: embeddings, OCR, attributes.

    ``kind`` says what reads its outputs: ``attributes`` (a classifier over the crop whose labels are its
    classes, plus the colour rule of `edgert.apps.surveillance.attributes`: the ``vehicle_attributes``
    event), ``embedding`` and ``ocr`` (raw outputs handed to the listeners plugged in with
    `Surveillance.on_crop_result`). An ``ocr`` model is a text detector (task ``text_detect``, a DB
    probability map: the plate localiser); with a ``plates:`` section its text regions are read.
    """

    path: str = Field(..., description="Model file (.tflite, .hef, .rknn, .onnx), builtin:<name> or store:<name>.")
    kind: Literal[SECONDARY_KINDS] = Field(..., description="What its outputs are.")
    regions: list[str] = Field(..., min_length=1, description="Classes whose tracked boxes it sees.")
    cameras: list[str] | None = Field(None, description="Camera ids (None: every camera).")
    schedule: CropScheduleConfig = Field(default_factory=CropScheduleConfig, description="Which tracks get "
                                         "a crop, and how many per frame.")


class PlateReadingConfig(PlatesConfig):
    """Plate reading on the text regions the ``ocr`` secondaries find in vehicle crops: recogniser and voting."""

    recogniser: str = Field("builtin:ch_PP-OCRv4_rec", description="CTC text recogniser (file or builtin:).")
    backend: str = Field("auto", description="Backend of the recogniser (.onnx: onnx).")
    width: int = Field(256, ge=48, le=2048, multiple_of=8, description="Recogniser input width (pixels).")
    two_row_aspect: float = Field(1.8, gt=0, le=20, description="Plates narrower than this (width / height) "
                                  "are read as two rows.")
    max_regions: int = Field(4, ge=1, le=64, description="Text regions of a crop read at most (best first).")


class TrackGroupConfig(Section):
    """Classes tracked by one tracker, with settings over the default tracker's."""

    classes: list[str] = Field(..., min_length=1, description="Class names of the group.")
    merge_classes: bool = Field(True, description="A track may match detections of any class of the group "
                                "(a car seen as a truck keeps its track).")
    tracker: dict = Field(default_factory=dict, description="Tracker settings that differ from tracking.tracker.")


class TrackingConfig(Section):
    """A tracker per camera and class group."""

    tracker: TrackerConfig = Field(default_factory=TrackerConfig, description="Settings of every group, and "
                                   "the tracker of the classes no group names.")
    groups: dict[Id, TrackGroupConfig] = Field(default_factory=dict, description="Named class groups.")

    @model_validator(mode="after")
    def _groups_valid(self):
        owner: dict[str, str] = {}
        for name, group in self.groups.items():
            for cls in group.classes:
                if cls in owner:
                    raise ValueError(f"groups.{name}.classes: {cls!r} is also in group {owner[cls]!r}")
                owner[cls] = name
            if "class_groups" in group.tracker:
                raise ValueError(f"groups.{name}.tracker.class_groups: set by the group's classes and merge_classes")
            self.group_tracker(name)
        return self

    def group_tracker(self, name: str, class_ids: Sequence[int] = ()) -> TrackerConfig:
        """The `TrackerConfig` of group `name` (`class_ids`: the group's classes in its detector's numbering).

        Raises:
            ValueError: the group's settings do not validate (naming the key path under ``groups``).
        """
        group = self.groups[name]
        merged = {**self.tracker.model_dump(), **group.tracker}
        merged["class_groups"] = (tuple(class_ids),) if group.merge_classes and len(class_ids) > 1 else ()
        try:
            return TrackerConfig.model_validate(merged)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = format_path(("groups", name, "tracker", *first["loc"]))
            raise ValueError(f"{where}: {first['msg'].removeprefix('Value error, ')}") from None


class SnapshotConfig(Section):
    """JPEG snapshots of events (the box drawn), bounded on disk."""

    enabled: bool = Field(True, description="Take snapshots.")
    dir: Path = Field(Path("snapshots/events"), description="Directory; relative to the state directory.")
    quota_mb: float = Field(200.0, gt=0, le=10**7, description="Bound on their total size (MB); oldest go first.")
    jpeg_quality: int = Field(85, ge=1, le=100, description="JPEG quality (1-100).")
    events: list[Literal[SNAPSHOT_KINDS]] = Field(
        ["zone_enter", "loiter", "intrusion", "crowd", "line_cross", "track_end"],
        description="Event kinds that get a snapshot.")


class SurveillanceConfig(Section):
    """The surveillance app's sections of the config file (the service adds its own)."""

    cameras: list[CameraConfig] = Field(..., min_length=1, description="The cameras.")
    detectors: dict[Id, DetectorConfig] = Field(..., min_length=1, description="Detection models by name.")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="Trackers.")
    snapshots: SnapshotConfig = Field(default_factory=SnapshotConfig, description="Event snapshots.")
    secondaries: dict[Id, SecondaryConfig] = Field(default_factory=dict, description="Models on crops of "
                                                   "tracked objects (embeddings, OCR, attributes), by name.")
    face_recognition: FaceRecognitionConfig | None = Field(None, description="Face recognition on face tracks "
                                                           "(None: off).")
    plates: PlateReadingConfig | None = Field(None, description="Plate reading on the ocr secondaries' text "
                                              "regions (None: off).")

    @model_validator(mode="after")
    def _camera_ids_unique(self):
        seen: dict[str, int] = {}
        for i, camera in enumerate(self.cameras):
            if camera.id in seen:
                raise ValueError(f"cameras[{i}].id: {camera.id!r} is also cameras[{seen[camera.id]}]")
            seen[camera.id] = i
        return self

    @model_validator(mode="after")
    def _detectors_name_cameras(self):
        known = [c.id for c in self.cameras]
        for name, detector in self.detectors.items():
            for k, camera in enumerate(detector.cameras or ()):
                if camera not in known:
                    raise ValueError(f"detectors.{name}.cameras[{k}]: unknown camera {camera!r} (cameras are "
                                     f"{', '.join(map(repr, known))})")
        for name, secondary in self.secondaries.items():
            if name in self.detectors:
                raise ValueError(f"secondaries.{name}: the name is also a detector's (model slots need one name each)")
            for k, camera in enumerate(secondary.cameras or ()):
                if camera not in known:
                    raise ValueError(f"secondaries.{name}.cameras[{k}]: unknown camera {camera!r} (cameras are "
                                     f"{', '.join(map(repr, known))})")
        if self.plates is not None and not any(s.kind == "ocr" for s in self.secondaries.values()):
            raise ValueError("plates: no secondary of kind ocr (a text detector on vehicle crops) to read plates from")
        whole = [n for n, d in self.detectors.items() if d.regions is None]
        if not whole:
            raise ValueError("detectors: every detector runs inside tracked boxes (regions); one must see whole frames")
        return self

    def camera(self, camera_id: str) -> CameraConfig:
        """The camera of that id (KeyError if none)."""
        for camera in self.cameras:
            if camera.id == camera_id:
                return camera
        raise KeyError(camera_id)

    def detectors_of(self, camera_id: str) -> list[str]:
        """Names of the detectors that serve a camera, in config order."""
        return [name for name, d in self.detectors.items() if d.cameras is None or camera_id in d.cameras]


def check_class_names(config: SurveillanceConfig, labels: Mapping[str, Sequence[str]]) -> None:
    """Check every class name of the config against the loaded detectors' labels (their model cards).

    Args:
        config: The validated config.
        labels: ``{detector name: class names}``.

    Raises:
        ConfigError: one line naming the key path of a class no detector that could see it has.
    """
    for name, detector in config.detectors.items():
        have = list(labels.get(name, ()))
        for k, cls in enumerate(detector.classes or ()):
            if cls not in have:
                raise ConfigError(f"detectors.{name}.classes[{k}]: {cls!r} is not a class of its model "
                                  f"(it has {', '.join(map(repr, have)) or 'no labels'})")
    every = _kept_classes(config, labels, [c.id for c in config.cameras])
    tracked = _kept_classes(config, labels, [c.id for c in config.cameras], whole_frame_only=True)
    crops = [(f"detectors.{n}", d) for n, d in config.detectors.items() if d.regions is not None]
    for path, spec in crops + [(f"secondaries.{n}", s) for n, s in config.secondaries.items()]:
        for k, cls in enumerate(spec.regions):
            if cls not in tracked:
                raise ConfigError(f"{path}.regions[{k}]: no detector reports {cls!r}, so no track of it is seen")
    for group, spec in config.tracking.groups.items():
        for k, cls in enumerate(spec.classes):
            if cls not in every:
                raise ConfigError(f"tracking.groups.{group}.classes[{k}]: no detector reports {cls!r}")
    for i, camera in enumerate(config.cameras):
        seen = _kept_classes(config, labels, [camera.id])
        for path, cls in _camera_class_names(camera):
            if cls not in seen:
                raise ConfigError(f"cameras[{i}].{path}: no detector of camera {camera.id!r} reports {cls!r} "
                                  f"(they report {', '.join(map(repr, sorted(seen))) or 'nothing'})")


def _kept_classes(config, labels, camera_ids, whole_frame_only: bool = False) -> set[str]:
    kept: set[str] = set()
    for camera_id in camera_ids:
        for name in config.detectors_of(camera_id):
            if whole_frame_only and config.detectors[name].regions is not None:
                continue
            chosen = config.detectors[name].classes
            kept.update(chosen if chosen is not None else labels.get(name, ()))
    return kept


def _camera_class_names(camera: CameraConfig):
    for name in camera.filters:
        yield f"filters.{name}", name
    for i, zone in enumerate(camera.zones):
        for key in ("classes", "intrusion"):
            for k, cls in enumerate(getattr(zone, key) or ()):
                yield f"zones[{i}].{key}[{k}]", cls
        if zone.crowd is not None:
            for k, cls in enumerate(zone.crowd.classes or ()):
                yield f"zones[{i}].crowd.classes[{k}]", cls
    for i, line in enumerate(camera.lines):
        for k, cls in enumerate(line.classes or ()):
            yield f"lines[{i}].classes[{k}]", cls
