"""Detector outputs -> frame-pixel `Detections`: the decoder a detect model needs, and the per-class filters.

A detector's outputs are checked once against the detect task when the model is installed (a model
whose outputs no detection decoder reads is refused in one line), and per frame for NaN or inf
(that frame is counted and skipped, as the kiosk does for its classifier).
"""
from __future__ import annotations

import numpy as np

from edgert.apps.surveillance.analytics.zones import bottom_centres, points_in_polygon
from edgert.apps.surveillance.config import DECODER_KINDS
from edgert.core.errors import ConfigError, DecodeError, EdgertError, one_line
from edgert.pipeline.streams import row_outputs
from edgert.postprocess import SsdDecoder, YoloDecoder
from edgert.postprocess.detections import Detections



def input_size(model) -> tuple[int, int] | None:
    """``(width, height)`` of a model's image input (NHWC or NCHW), or None."""
    shape = model.inputs[0].shape
    if len(shape) != 4:
        return None
    return (shape[2], shape[1]) if shape[-1] in (1, 3, 4) else (shape[3], shape[2])


def make_detect_decoder(entry, kind: str = "auto", conf: float = 0.25, iou: float = 0.45, options=None):
    """The decoder of a detect model's outputs (one frame's batch row).

    Args:
        entry: The `LoadedModel`.
        kind: One of `DECODER_KINDS`.
        conf: Minimum score.
        iou: NMS IoU.
        options: Further decoder keyword arguments (layout, class_activation, anchors...).

    Raises:
        ConfigError: the model's outputs do not fit a detection decoder (not a detect model).
    """
    model, options = entry.model, dict(options or {})
    specs = row_outputs(model.outputs)
    labels = list(entry.labels) if entry.labels else None
    size = input_size(model)
    if kind == "auto":
        kind = "ssd" if len(specs) == 4 else "yolo"
    try:
        if kind == "ssd":
            return SsdDecoder(specs, conf=conf, iou=iou, input_size=size, labels=labels, **options)
        if kind == "hailo_nms":
            options.setdefault("layout", "hailo-nms")
        if kind in ("yolo", "hailo_nms"):
            return YoloDecoder(specs, conf=conf, iou=iou, input_size=size, labels=labels, **options)
    except EdgertError as exc:
        shapes = ", ".join(str(tuple(s.shape)) for s in model.outputs)
        raise ConfigError(f"model {entry.name}: outputs {shapes} do not fit the detect task ({kind} decoder): "
                          f"{one_line(exc)}") from exc
    raise ConfigError(f"decoder: expected one of {', '.join(DECODER_KINDS)}, got {kind!r}")


def check_finite(outputs, specs) -> None:
    """Raise `DecodeError` when a float output holds NaN or inf."""
    for out, spec in zip(outputs, specs):
        if out.dtype.kind == "f" and not np.all(np.isfinite(out)):
            raise DecodeError(f"detector output {spec.name!r} holds NaN or inf")


class ClassFilter:
    """What one camera keeps of one class: score, box area in frame pixels, and a mask.

    Args:
        min_score: Detections scoring less are dropped.
        min_area: Boxes smaller (pixels) are dropped.
        max_area: Boxes larger (pixels) are dropped (None: no limit).
        mask: Polygon ``(P, 2)`` in frame pixels where the class is ignored (its box's bottom centre
            inside), or None.
    """

    def __init__(self, min_score: float = 0.0, min_area: float = 0.0, max_area: float | None = None, mask=None):
        self.min_score, self.min_area, self.max_area = float(min_score), float(min_area), max_area
        self.mask = None if mask is None else np.asarray(mask, np.float64).reshape(-1, 2)

    def keep(self, boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Boolean ``(N,)``: which of these boxes (frame pixels) pass."""
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        ok = (scores >= self.min_score) & (area >= self.min_area)
        if self.max_area is not None:
            ok &= area <= self.max_area
        if self.mask is not None and ok.any():
            ok &= ~points_in_polygon(bottom_centres(boxes), self.mask)
        return ok


def filtered(detections: Detections, filters: dict, classes=None) -> Detections:
    """The detections that pass their class's `ClassFilter` (classes without one pass; `classes` keeps only those)."""
    n = len(detections)
    if n == 0 or (not filters and classes is None):
        return detections
    keep = np.ones(n, bool)
    if classes is not None:
        keep &= np.isin(detections.classes, np.asarray(list(classes), np.int64))
    for cls, rule in filters.items():
        of_class = detections.classes == cls
        if of_class.any():
            keep[of_class] &= rule.keep(detections.boxes[of_class], detections.scores[of_class])
    if keep.all():
        return detections
    kp = detections.keypoints
    return Detections(detections.boxes[keep], detections.scores[keep], detections.classes[keep],
                      None if kp is None else kp[keep])


def scaled_polygon(points, size, normalised: bool, ref_size=None) -> np.ndarray:
    """A polygon in frame pixels: from 0..1 coordinates, or rescaled from the size it was drawn for."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    w, h = size
    if normalised:
        return pts * np.array([w, h], np.float64)
    if ref_size is not None and tuple(ref_size) != tuple(size):
        return pts * np.array([w / ref_size[0], h / ref_size[1]], np.float64)
    return pts

