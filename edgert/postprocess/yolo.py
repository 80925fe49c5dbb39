"""`YoloDecoder`: YOLOv5, YOLOv8/v11 (single tensor or split DFL heads) and Hailo on-chip NMS outputs.

Work happens in each tensor's own number format: the confidence threshold is converted once into
the tensor's integer domain, one vectorised pass finds the anchors whose best class reaches it,
and only those are dequantised and decoded. A quantized output and its dequantized float32 copy
give the same detections.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgert.core.errors import ConfigError, DecodeError
from edgert.postprocess import kernels
from edgert.postprocess.detections import Detections, nms, priority_order
from edgert.postprocess.hailo_nms import parse_hailo_nms
from edgert.postprocess.scores import (
    ACTIVATIONS,
    ScoreMap,
    check_count,
    check_size,
    check_specs,
    check_unit,
    require_shape,
)

LAYOUTS = ("auto", "v8", "v8-rows", "v5", "dfl", "hailo-nms")


@dataclass(frozen=True)
class _Head:
    """One stride of a split DFL head: box and class tensors and where they sit in the outputs."""

    box: int
    cls: int
    height: int
    width: int
    stride_x: float
    stride_y: float


class YoloDecoder:
    """Decodes YOLO outputs into `Detections` (boxes in model-input pixels).

    Args:
        outputs: The model's output specs (``model.outputs``), in output order.
        conf: Minimum score, in [0, 1].
        iou: NMS IoU threshold, in [0, 1].
        layout: "auto", "v8" (``1 x (4+C) x N``), "v8-rows" (``1 x N x (4+C)``), "v5"
            (``1 x N x (5+C)``, objectness), "dfl" (per stride a ``4*bins``-channel box tensor and a
            C-channel class tensor, NCHW or NHWC) or "hailo-nms" (HAILO_NMS_BY_CLASS float32).
        max_det: Most detections returned.
        class_aware: NMS per class (True) or across classes.
        labels: Class names; their count must match the outputs.
        num_classes: Class count, when the layout does not tell it (hailo-nms) or to check it.
        input_size: ``(width, height)`` of the model input: needed for normalised boxes, DFL grids
            and Hailo NMS.
        normalized: Box coordinates are in 0..1 of the input (v5/v8). None: decided from the
            quantization range (a range up to 2 means normalised); float outputs are taken as
            normalised, as Ultralytics exports them (pass False for pixel coordinates).
        class_activation: "none" (class outputs are probabilities) or "sigmoid" (logits).
        dfl_bins: Bins per box side of a DFL head.
        max_bboxes: Hailo NMS: boxes per class the buffer holds.
        max_candidates: Candidates kept (best first) before NMS.

    A decoder keeps scratch buffers: use one per thread.
    """

    def __init__(self, outputs, conf: float = 0.25, iou: float = 0.45, *, layout: str = "auto", max_det: int = 300,
                 class_aware: bool = True, labels=None, num_classes: int | None = None, input_size=None,
                 normalized: bool | None = None, class_activation: str = "none", dfl_bins: int = 16,
                 max_bboxes: int = 100, max_candidates: int = 30000):
        self.outputs = check_specs(outputs)
        self.conf = check_unit("conf", conf)
        self.iou = check_unit("iou", iou)
        if layout not in LAYOUTS:
            raise ConfigError(f"layout: expected one of {', '.join(LAYOUTS)}, got {layout!r}")
        if class_activation not in ACTIVATIONS:
            raise ConfigError(f"class_activation: expected one of {', '.join(ACTIVATIONS)}, got {class_activation!r}")
        self.max_det = check_count("max_det", max_det)
        self.max_candidates = check_count("max_candidates", max_candidates)
        self.bins = check_count("dfl_bins", dfl_bins)
        self.class_aware, self.activation = bool(class_aware), class_activation
        self.input_size = None if input_size is None else check_size("input_size", input_size)
        self.layout = self._resolve_layout(layout, labels, num_classes)
        self.labels = None if labels is None else list(labels)
        self.max_bboxes = check_count("max_bboxes", max_bboxes)
        if self.layout == "hailo-nms":
            self._init_hailo(num_classes)
        elif self.layout == "dfl":
            self._init_dfl()
        else:
            self._init_single(normalized)
        if self.labels is not None and len(self.labels) != self.num_classes:
            raise ConfigError(f"labels: {len(self.labels)} given but the outputs have {self.num_classes} classes")
        if num_classes is not None and int(num_classes) != self.num_classes:
            raise ConfigError(f"num_classes: {num_classes} given but the outputs have {self.num_classes} classes")

    # ---- configuration ---------------------------------------------------------------------------

    def _resolve_layout(self, layout, labels, num_classes) -> str:
        if layout != "auto":
            return layout
        shapes = [o.shape for o in self.outputs]
        if len(shapes) > 1:
            return "dfl"
        shape = shapes[0]
        if len(shape) != 3 or shape[0] != 1:
            raise ConfigError(f"layout: cannot tell the YOLO layout of an output of shape {shape}; pass layout=")
        if shape[1] < shape[2]:
            return "v8"
        n_cls = len(labels) if labels is not None else num_classes
        if n_cls is None:
            raise ConfigError(f"layout: an output of shape {shape} may be YOLOv5 (5 + C per row) or row-major "
                              "YOLOv8 (4 + C): pass layout= or num_classes=")
        if shape[2] == 4 + n_cls:
            return "v8-rows"
        if shape[2] == 5 + n_cls:
            return "v5"
        raise ConfigError(f"layout: rows of {shape[2]} values fit neither YOLOv5 nor YOLOv8 with {n_cls} classes")

    def _init_single(self, normalized) -> None:
        spec = self.outputs[0]
        if len(self.outputs) != 1 or len(spec.shape) != 3 or spec.shape[0] != 1:
            raise ConfigError(f"layout {self.layout}: expects one output of shape (1, a, b), got "
                              f"{[o.shape for o in self.outputs]}")
        self.channel_major = self.layout == "v8"
        n, width = (spec.shape[2], spec.shape[1]) if self.channel_major else spec.shape[1:]
        first_class = 5 if self.layout == "v5" else 4
        self.num_classes = width - first_class
        if self.num_classes < 1:
            raise ConfigError(f"layout {self.layout}: shape {spec.shape} leaves no class channels")
        self.first_class = first_class
        self.map = ScoreMap(spec, self.activation if self.layout != "v5" else "none")
        self.normalized = normalized
        if normalized is None:
            top = float((np.iinfo(spec.dtype).max - int(spec.quant.zero_point)) * float(spec.quant.scale)) \
                if self.map.quantized else 1.0
            self.normalized = top <= 2.0
        if self.layout == "v5":
            self.threshold = self._objectness_threshold(spec)
        else:
            self.threshold = _one_step_lower(self.map.threshold(self.conf), spec.dtype)
        self.buffers = kernels.CandidateBuffers(n, spec.dtype)
        self.args = self._single_args()

    def _objectness_threshold(self, spec):
        """v5 scores are objectness x best class: prefilter on objectness >= conf / (largest class value).

        Exact for any values the tensor can hold: without a bound (float outputs) or with negative
        values (whose products can be positive) every row is scored.
        """
        if not self.map.quantized:
            return np.float32(-np.inf)
        info = np.iinfo(spec.dtype)
        lo, hi = self.map.values(np.array([info.min, info.max], spec.dtype))
        if lo < 0:
            return spec.dtype.type(info.min)
        bound = self.conf / max(1.0, float(hi))
        ok = np.flatnonzero(self.map.values(np.arange(info.min, info.max + 1).astype(spec.dtype))
                            >= np.float32(bound))
        return None if ok.size == 0 else _one_step_lower(spec.dtype.type(info.min + ok[0]), spec.dtype)

    def _init_dfl(self) -> None:
        if self.input_size is None:
            raise ConfigError("input_size: required for split DFL heads (it sets each head's stride)")
        heads = self._pair_heads()
        self.heads = heads
        cls_specs = {self.outputs[h.cls].shape[1 if self.dfl_nchw else 3] for h in heads}
        if len(cls_specs) != 1:
            raise ConfigError(f"layout dfl: class tensors disagree on the class count: {sorted(cls_specs)}")
        self.num_classes = cls_specs.pop()
        if self.num_classes < 1:
            raise ConfigError("layout dfl: class tensors have no channels")
        self.maps = {h.cls: ScoreMap(self.outputs[h.cls], self.activation) for h in heads}
        self.box_maps = {h.box: ScoreMap(self.outputs[h.box]) for h in heads}
        self.thresholds = {h.cls: self.maps[h.cls].threshold(self.conf) for h in heads}
        self.buffers = {h.cls: kernels.CandidateBuffers(h.height * h.width, self.outputs[h.cls].dtype) for h in heads}

    def _pair_heads(self) -> list:
        box_ch = 4 * self.bins
        found = {}
        for nchw in (True, False):
            heads, ok = [], True
            by_size = {}
            for i, o in enumerate(self.outputs):
                if len(o.shape) != 4 or o.shape[0] != 1:
                    raise ConfigError(f"layout dfl: output {o.name!r} has shape {o.shape}, expected (1, C, H, W) "
                                      "or (1, H, W, C)")
                ch, hw = (o.shape[1], o.shape[2:]) if nchw else (o.shape[3], o.shape[1:3])
                by_size.setdefault(tuple(hw), []).append((i, ch))
            for (h, w), items in sorted(by_size.items(), key=lambda kv: -kv[0][0] * kv[0][1]):
                boxes = [i for i, ch in items if ch == box_ch]
                others = [(i, ch) for i, ch in items if ch != box_ch]
                if len(others) == 2:
                    # rknn_model_zoo adds a 1-channel score sum per stride: the class tensor is the
                    # other one (with a single class the two hold the same values).
                    others = [it for it in others if it[1] > 1] or others[:1]
                classes = [i for i, ch in others if ch >= 1]
                if len(boxes) != 1 or len(classes) != 1:
                    ok = False
                    break
                heads.append(_Head(boxes[0], classes[0], h, w, self.input_size[0] / w, self.input_size[1] / h))
            if ok and heads:
                found[nchw] = heads
        if len(found) != 1:
            why = "no" if not found else "more than one"
            raise ConfigError(f"layout dfl: {why} way to pair {box_ch}-channel box tensors with class tensors "
                              f"in {[o.shape for o in self.outputs]}")
        self.dfl_nchw = next(iter(found))
        return found[self.dfl_nchw]

    def _init_hailo(self, num_classes) -> None:
        if num_classes is None and self.labels is None:
            raise ConfigError("num_classes: required for Hailo NMS outputs (or pass labels)")
        if self.input_size is None:
            raise ConfigError("input_size: required for Hailo NMS outputs (boxes are normalised)")
        self.num_classes = check_count("num_classes", num_classes if num_classes is not None else len(self.labels))

    # ---- decoding --------------------------------------------------------------------------------

    def __call__(self, outputs) -> Detections:
        """Decode one frame's raw outputs (``model.run(x)``) into `Detections`."""
        if not isinstance(outputs, (list, tuple)) or len(outputs) != len(self.outputs):
            raise DecodeError(f"outputs: expected a list of {len(self.outputs)} arrays, got "
                              f"{type(outputs).__name__} of {len(outputs) if hasattr(outputs, '__len__') else '?'}")
        if self.layout == "hailo-nms":
            raw = outputs[0]
            if isinstance(raw, np.ndarray) and raw.shape != self.outputs[0].shape:
                raise DecodeError(f"outputs[0]: shape {raw.shape} does not hold the declared NMS output "
                                  f"{self.outputs[0].shape}")
            dets = parse_hailo_nms(raw, self.num_classes, self.max_bboxes, self.input_size, self.conf)
            return dets if len(dets) <= self.max_det else Detections(dets.boxes[:self.max_det],
                                                                      dets.scores[:self.max_det],
                                                                      dets.classes[:self.max_det])
        if self.layout != "dfl":
            return self._decode_single(outputs[0])
        boxes, scores, classes = self._decode_dfl(outputs)
        if scores.size > self.max_candidates:
            top = priority_order(scores)[: self.max_candidates]
            boxes, scores, classes = boxes[top], scores[top], classes[top]
        return nms(boxes, scores, classes, iou=self.iou, max_det=self.max_det, class_aware=self.class_aware)

    def _single_args(self) -> tuple:
        """The kernel's per-decoder arguments, computed once."""
        if self.normalized and self.input_size is None:
            raise ConfigError("input_size: required for normalised boxes (or pass normalized=False)")
        v5 = self.layout == "v5"
        quant = self.map.quant
        scale, zp = (1.0, 0) if quant is None else (float(quant.scale), int(quant.zero_point))
        sx, sy = self.input_size or (1.0, 1.0)
        return (self.channel_major, v5, 4 if v5 else self.first_class, 1 if v5 else self.num_classes,
                self.threshold, scale, zp, int(self.activation == "sigmoid" and not v5), self.conf, sx, sy,
                bool(self.normalized), self.iou, self.max_det, self.max_candidates, self.class_aware)

    def _decode_single(self, raw) -> Detections:
        x = require_shape(raw, self.outputs[0], "outputs[0]")[0]
        if self.threshold is None or x.size == 0:
            return Detections.empty()
        boxes, scores, classes = self.buffers.decode_single(x, self.args)
        return Detections(boxes, scores, classes, None)

    def _decode_dfl(self, outputs):
        arrays = [require_shape(a, s, f"outputs[{i}]") for i, (a, s) in enumerate(zip(outputs, self.outputs))]
        parts = []
        for h in self.heads:
            thr = self.thresholds[h.cls]
            if thr is None:
                continue
            cls_t = arrays[h.cls][0].reshape(self.num_classes, -1) if self.dfl_nchw else arrays[h.cls][0].reshape(
                -1, self.num_classes)
            idx, cls, best = self.buffers[h.cls].select(cls_t, 0, self.num_classes, thr, self.dfl_nchw,
                                                        f"outputs[{h.cls}]")
            scores = self.maps[h.cls].scores(best[idx])
            keep = scores >= np.float32(self.conf)
            idx, cls, scores = idx[keep], cls[keep], scores[keep]
            if idx.size == 0:
                continue
            box_t = arrays[h.box][0].reshape(4 * self.bins, -1) if self.dfl_nchw else arrays[h.box][0].reshape(
                -1, 4 * self.bins)
            bins = box_t[:, idx].T if self.dfl_nchw else box_t[idx]
            dist = dfl_distances(self.box_maps[h.box].values(bins), self.bins)
            parts.append((grid_boxes(idx, dist, h), scores, cls.copy()))
        if not parts:
            return _nothing()
        return tuple(np.concatenate(p) for p in zip(*parts))


def _one_step_lower(threshold, dtype):
    """An integer threshold one step lower: the kernel's own float scoring then decides exactly
    (its expf may differ from NumPy's exp by an ulp at the boundary)."""
    if threshold is None or dtype == np.float32:
        return threshold
    return dtype.type(max(int(threshold) - 1, int(np.iinfo(dtype).min)))


def dfl_distances(bins: np.ndarray, n_bins: int) -> np.ndarray:
    """``(K, 4)`` left, top, right, bottom distances (in strides) from ``(K, 4 * n_bins)`` DFL logits."""
    logits = bins.reshape(-1, 4, n_bins).astype(np.float32)
    if not np.all(np.isfinite(logits)):
        raise DecodeError("DFL box outputs hold NaN or inf")
    e = np.exp(logits - logits.max(axis=2, keepdims=True))
    return ((e * np.arange(n_bins, dtype=np.float32)).sum(axis=2) / e.sum(axis=2)).astype(np.float32)


def grid_boxes(index: np.ndarray, dist: np.ndarray, head: _Head) -> np.ndarray:
    """xyxy boxes in input pixels of grid cells `index` (row-major over the head) at `dist` strides."""
    cx = (index % head.width + 0.5).astype(np.float32)
    cy = (index // head.width + 0.5).astype(np.float32)
    sx, sy = np.float32(head.stride_x), np.float32(head.stride_y)
    return np.stack([(cx - dist[:, 0]) * sx, (cy - dist[:, 1]) * sy, (cx + dist[:, 2]) * sx,
                     (cy + dist[:, 3]) * sy], axis=1).astype(np.float32)


def _nothing():
    return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32)
