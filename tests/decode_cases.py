"""Shared helpers of the decoding tests: quantization, random YOLO/DFL/SSD cases and detection comparisons.

Every case is a frozen dataclass of drawn parameters plus a seed; its tensors are generated from the
seed, so hypothesis shows the parameters of a failing case and shrinks them.

Thresholds drawn here (`unit_floats`) are float32 values: the kernels compare in float32 and the
twins in float64, and only for float32-exact thresholds do both sides mean the same number.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from edgert import Quantization, TensorSpec, _reference
from edgert.postprocess import SsdAnchorOptions, ssd_anchors


def unit_floats():
    """Thresholds in [0, 1]: the usual ones, the edges and any float32 in between."""
    return st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]) | st.floats(0.0, 1.0, width=32)


@st.composite
def covering_quant(draw, dtype, lo: float, hi: float) -> Quantization:
    """A per-tensor `Quantization` of `dtype` whose range roughly covers real values ``lo..hi``.

    The scale is drawn a little short at times, so the extreme values saturate, and the zero point
    is nudged a few steps, so the grid does not always hold 0 exactly.
    """
    info = np.iinfo(dtype)
    scale = (hi - lo) / (int(info.max) - int(info.min)) * draw(st.floats(0.7, 1.6))
    zp = int(info.min) + int(round(-lo / scale)) + draw(st.integers(-3, 3))
    return Quantization(scale, int(np.clip(zp, info.min, info.max)))


def to_dtype(real: np.ndarray, dtype, quant: Quantization | None) -> np.ndarray:
    """`real` in a tensor's number format: quantized (rounded, saturated) or float32."""
    if np.dtype(dtype) == np.float32:
        return np.ascontiguousarray(real, np.float32)
    return quant.quantize(real, dtype)


def real_of(raw: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """float32 real values of a raw output (the twin's dequantize for integer outputs)."""
    if raw.dtype == np.float32:
        return raw
    return _reference.dequantize(raw, spec.quant)


def float_spec(spec: TensorSpec) -> TensorSpec:
    """The float32 spec of the same tensor (what a dequantized copy of its output looks like)."""
    return TensorSpec(spec.name, spec.shape, np.float32, None, spec.layout)


def assert_detections_shapes(dets, num_keypoints: int = 0) -> None:
    """`dets` is a well-formed `Detections`: float32 (N, 4) boxes, float32 (N,) scores, int32 (N,) classes."""
    n = len(dets)
    assert dets.boxes.shape == (n, 4) and dets.boxes.dtype == np.float32
    assert dets.scores.shape == (n,) and dets.scores.dtype == np.float32
    assert dets.classes.shape == (n,) and dets.classes.dtype == np.int32
    if num_keypoints:
        assert dets.keypoints is not None
        assert dets.keypoints.shape == (n, num_keypoints, 2) and dets.keypoints.dtype == np.float32


def assert_matches_twin(dets, want, *, box_atol: float = 1e-3, score_rtol: float = 1e-6, num_keypoints: int = 0):
    """`dets` equals the twin's ``(boxes, scores, classes, keypoints)``: same count, classes and order,
    scores within `score_rtol`, boxes (and keypoints) within `box_atol` pixels."""
    boxes, scores, classes, keypoints = want
    assert_detections_shapes(dets, num_keypoints)
    assert len(dets) == len(scores), f"{len(dets)} detections, twin {len(scores)}"
    np.testing.assert_array_equal(dets.classes, classes)
    np.testing.assert_allclose(dets.scores, scores, rtol=score_rtol, atol=0)
    np.testing.assert_allclose(dets.boxes, np.asarray(boxes, np.float32).reshape(-1, 4), rtol=0, atol=box_atol)
    if num_keypoints:
        np.testing.assert_allclose(dets.keypoints, keypoints, rtol=0, atol=box_atol)


def assert_identical(a, b) -> None:
    """Two `Detections` are equal field by field, bit for bit."""
    assert len(a) == len(b)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.classes, b.classes)
    if a.keypoints is None or b.keypoints is None:
        assert a.keypoints is None and b.keypoints is None
    else:
        np.testing.assert_array_equal(a.keypoints, b.keypoints)


# ---- single-tensor YOLO -----------------------------------------------------------------------

@dataclass(frozen=True)
class YoloCase:
    """A single-tensor YOLO output (v8 ``(1, 4+C, N)``, v8-rows ``(1, N, 4+C)``, v5 ``(1, N, 5+C)``).

    ``content``: "spread" (boxes and scores drawn continuously), "ties" (a few distinct boxes and
    scores, repeated: equal scores and identical boxes everywhere) or "raw" (uniform raw values
    over the whole number format, boxes of any sign included).
    """

    layout: str
    n: int
    nc: int
    dtype: type
    quant: Quantization | None
    activation: str
    normalized: bool
    content: str
    conf_pick: float | None
    conf_draw: float
    iou: float
    class_aware: bool
    max_det: int
    seed: int
    input_size: tuple = (64, 48)

    @property
    def width(self) -> int:
        return (5 if self.layout == "v5" else 4) + self.nc

    def spec(self) -> TensorSpec:
        shape = (1, self.width, self.n) if self.layout == "v8" else (1, self.n, self.width)
        return TensorSpec("output0", shape, self.dtype, self.quant)

    def _rows_real(self, rng) -> np.ndarray:
        """``(N, width)`` real values, one row per candidate."""
        n, w = self.n, self.width
        sx, sy = (1.0, 1.0) if self.normalized else self.input_size
        if self.content == "ties":
            pool_b = np.column_stack([rng.uniform(0.2, 0.8, 3) * sx, rng.uniform(0.2, 0.8, 3) * sy,
                                      rng.uniform(0.1, 0.5, 3) * sx, rng.uniform(0.1, 0.5, 3) * sy])
            boxes = pool_b[rng.integers(0, 3, n)]
        else:
            boxes = np.column_stack([rng.uniform(0, sx, n), rng.uniform(0, sy, n),
                                     rng.uniform(0, 0.3 * sx, n), rng.uniform(0, 0.3 * sy, n)])
        k = w - 4
        if self.activation == "sigmoid":
            values = rng.uniform(-6, 6, (n, k))
        else:
            values = rng.uniform(0, 1, (n, k))
        if self.content == "ties":
            pool = values.reshape(-1)[:3] if values.size >= 3 else values.reshape(-1)
            values = pool[rng.integers(0, pool.size, (n, k))]
        return np.concatenate([boxes, values], axis=1)

    def rows(self) -> np.ndarray:
        """``(N, width)`` raw values in the tensor's number format."""
        rng = np.random.default_rng(self.seed)
        dt = np.dtype(self.dtype)
        if self.content == "raw":
            if dt == np.float32:
                return (rng.standard_normal((self.n, self.width)) * 3).astype(np.float32)
            info = np.iinfo(dt)
            return rng.integers(info.min, info.max, (self.n, self.width), endpoint=True).astype(dt)
        raw = to_dtype(self._rows_real(rng), dt, self.quant)
        if self.content == "ties" and dt == np.float32:
            raw = np.round(raw * 8) / 8  # exact in float32: ties stay ties
        return raw.astype(dt)

    def tensor(self) -> np.ndarray:
        r = self.rows()
        return np.ascontiguousarray((r.T if self.layout == "v8" else r)[None])

    def scores(self) -> np.ndarray:
        """float32 score of each candidate, as the twin computes it."""
        x = real_of(self.rows(), self.spec())
        if self.layout == "v5":
            return (x[:, 4] * x[:, 5:].max(1)).astype(np.float32)
        best = x[:, 4:].max(1)
        return _reference.sigmoid(best) if self.activation == "sigmoid" else best.astype(np.float32)

    @property
    def conf(self) -> float:
        """The confidence threshold: a drawn one, or exactly the score of one candidate (inclusive edge)."""
        if self.conf_pick is None or self.activation == "sigmoid":
            return self.conf_draw
        s = self.scores()
        v = float(s[int(self.conf_pick * (s.size - 1))])
        return v if 0.0 <= v <= 1.0 else self.conf_draw

    def decoder_kwargs(self) -> dict:
        return dict(layout=self.layout, max_det=self.max_det, class_aware=self.class_aware,
                    input_size=self.input_size, normalized=self.normalized,
                    class_activation=self.activation if self.layout != "v5" else "none")

    def twin(self, raw=None, spec=None):
        return _reference.decode_yolo_single(self.tensor() if raw is None else raw, spec or self.spec(), self.layout,
                                             self.conf, self.iou, self.input_size, self.normalized,
                                             self.activation, self.max_det, self.class_aware)


@st.composite
def yolo_cases(draw, layouts=("v8", "v8-rows", "v5"), dtypes=(np.int8, np.uint8, np.float32),
               activations=("none", "sigmoid"), contents=("spread", "ties", "raw")) -> YoloCase:
    """A random `YoloCase`: candidate and class counts, number format, thresholds and NMS options."""
    layout = draw(st.sampled_from(layouts))
    dtype = draw(st.sampled_from(dtypes))
    activation = "none" if layout == "v5" else draw(st.sampled_from(activations))
    normalized = draw(st.booleans())
    content = draw(st.sampled_from(contents))
    quant = None
    if dtype != np.float32:
        hi = 1.0 if normalized else 64.0 * 1.1
        lo, hi = (-6.0, max(hi, 6.0)) if activation == "sigmoid" else (0.0, hi)
        quant = draw(covering_quant(dtype, lo, hi))
    return YoloCase(layout=layout, n=draw(st.integers(1, 48)), nc=draw(st.integers(1, 5)), dtype=dtype,
                    quant=quant, activation=activation, normalized=normalized, content=content,
                    conf_pick=draw(st.none() | st.floats(0, 1)), conf_draw=draw(unit_floats()),
                    iou=draw(unit_floats()), class_aware=draw(st.booleans()),
                    max_det=draw(st.sampled_from([300, 300, 1, 2, 5])), seed=draw(st.integers(0, 2**32 - 1)))


# ---- split DFL heads --------------------------------------------------------------------------

@dataclass(frozen=True)
class DflCase:
    """Split per-stride DFL heads: rknn_model_zoo NCHW (box ``(1, 4*bins, H, W)``, classes
    ``(1, C, H, W)``, score sum ``(1, 1, H, W)``) or Hailo NHWC (``(1, H, W, 4*bins)``, ``(1, H, W, C)``).

    ``order`` permutes the outputs (decoders pair heads by feature-map size, not by position).
    """

    nchw: bool
    input_size: tuple
    nc: int
    bins: int
    cls_dtype: type
    cls_quant: Quantization | None
    box_dtype: type
    box_quant: Quantization | None
    activation: str
    conf_draw: float
    conf_pick: float | None
    iou: float
    class_aware: bool
    max_det: int
    sums: bool
    order_seed: int
    seed: int
    strides: tuple = (8, 16, 32)

    @property
    def conf(self) -> float:
        """A drawn threshold, or exactly the score of one cell (activation "none": the inclusive edge)."""
        if self.conf_pick is None or self.activation == "sigmoid":
            return self.conf_draw
        best = []
        for spec, arr in zip(*self._unordered()):
            if spec.name.startswith("cls"):
                r = real_of(arr, spec)[0]
                best.append((r.max(0) if self.nchw else r.max(-1)).reshape(-1))
        best = np.sort(np.concatenate(best))
        v = float(best[int(self.conf_pick * (best.size - 1))])
        return v if 0.0 <= v <= 1.0 else self.conf_draw

    def grids(self) -> list:
        """``(h, w)`` of each stride's feature map."""
        w, h = self.input_size
        return [(h // s, w // s) for s in self.strides]

    def _shape(self, h, w, c):
        return (1, c, h, w) if self.nchw else (1, h, w, c)

    def _unordered(self):
        rng = np.random.default_rng(self.seed)
        specs, arrays = [], []
        for k, (h, w) in enumerate(self.grids()):
            box_real = rng.uniform(-4, 4, (4 * self.bins, h, w))
            if self.activation == "sigmoid":
                cls_real = rng.uniform(-8, 4, (self.nc, h, w))
            else:
                cls_real = rng.uniform(0, 1, (self.nc, h, w)) ** 3
            tensors = [("box", box_real, self.box_dtype, self.box_quant),
                       ("cls", cls_real, self.cls_dtype, self.cls_quant)]
            if self.sums and self.nchw:
                tensors.append(("sum", np.clip(cls_real.sum(0, keepdims=True), 0, 1), self.cls_dtype, self.cls_quant))
            for name, real, dtype, quant in tensors:
                c = real.shape[0]
                chw = to_dtype(real, dtype, quant)
                arr = chw[None] if self.nchw else chw.transpose(1, 2, 0)[None]
                specs.append(TensorSpec(f"{name}{k}", self._shape(h, w, c), dtype, quant))
                arrays.append(np.ascontiguousarray(arr))
        return specs, arrays

    def outputs(self):
        """``(specs, arrays)`` in the case's output order."""
        specs, arrays = self._unordered()
        perm = np.random.default_rng(self.order_seed).permutation(len(specs)) if self.order_seed else range(len(specs))
        return [specs[i] for i in perm], [arrays[i] for i in perm]

    def decoder_kwargs(self) -> dict:
        return dict(max_det=self.max_det, class_aware=self.class_aware, input_size=self.input_size,
                    dfl_bins=self.bins, class_activation=self.activation)

    def twin(self, specs, arrays):
        return _reference.decode_yolo_dfl(arrays, specs, self.nchw, self.conf, self.iou, self.input_size, self.bins,
                                          self.activation, self.max_det, self.class_aware)


#: (input_size, classes): square, non-square both ways, and C == W at stride 8 (8 classes, 8x8 map).
#: Single-class heads are left out: the twin does not pair them (see test_postprocess_yolo's single-class test).
DFL_GEOMETRIES = [((32, 32), 3), ((64, 32), 2), ((32, 64), 4), ((64, 64), 8), ((32, 32), 2)]


@st.composite
def dfl_cases(draw, dtypes=(np.int8, np.uint8, np.float32)) -> DflCase:
    """A random `DflCase` over layout, geometry, number formats, activation and NMS options."""
    nchw = draw(st.booleans())
    size, nc = draw(st.sampled_from(DFL_GEOMETRIES))
    activation = draw(st.sampled_from(["none", "sigmoid"]))
    cls_dtype = draw(st.sampled_from(dtypes))
    box_dtype = draw(st.sampled_from(dtypes))
    lo, hi = (-8.0, 4.0) if activation == "sigmoid" else (0.0, 1.0)
    cls_quant = None if cls_dtype == np.float32 else draw(covering_quant(cls_dtype, lo, hi))
    box_quant = None if box_dtype == np.float32 else draw(covering_quant(box_dtype, -4.0, 4.0))
    return DflCase(nchw=nchw, input_size=size, nc=nc, bins=draw(st.sampled_from([16, 16, 8])), cls_dtype=cls_dtype,
                   cls_quant=cls_quant, box_dtype=box_dtype, box_quant=box_quant, activation=activation,
                   conf_draw=draw(unit_floats()), conf_pick=draw(st.none() | st.floats(0.5, 1)),
                   iou=draw(unit_floats()), class_aware=draw(st.booleans()),
                   max_det=draw(st.sampled_from([300, 300, 3])), sums=draw(st.booleans()),
                   order_seed=draw(st.sampled_from([0, 0, 1, 2, 3])), seed=draw(st.integers(0, 2**32 - 1)))


# ---- SSD with anchors -------------------------------------------------------------------------

#: Small anchor sets (BlazeFace-like at 32x32: 16 * 2 + 4 * 6 = 56 anchors; MobileNet-like, sized).
SMALL_ANCHORS = {
    "fixed": SsdAnchorOptions(input_size_width=32, input_size_height=32, strides=(8, 16, 16, 16)),
    "sized": SsdAnchorOptions(input_size_width=48, input_size_height=32, num_layers=3, min_scale=0.2, max_scale=0.9,
                              strides=(8, 16, 32), aspect_ratios=(1.0, 2.0, 0.5), fixed_anchor_size=False,
                              reduce_boxes_in_lowest_layer=True),
}


@dataclass(frozen=True)
class SsdCase:
    """MediaPipe-style SSD outputs: regressors ``(1, N, 4 + 2K)`` and class scores ``(1, N, C)``."""

    anchors: str
    keypoints: int
    nc: int
    reg_dtype: type
    reg_quant: Quantization | None
    score_dtype: type
    score_quant: Quantization | None
    reverse: bool
    exp_box: bool
    use_sigmoid: bool
    clip: float
    weighted: bool
    class_aware: bool
    conf: float
    iou: float
    max_det: int
    scores_first: bool
    seed: int

    @property
    def options(self) -> SsdAnchorOptions:
        return SMALL_ANCHORS[self.anchors]

    @property
    def input_size(self) -> tuple:
        return (self.options.input_size_width, self.options.input_size_height)

    @property
    def scale(self) -> tuple:
        w, h = self.input_size
        # exp_box: TF Object Detection style (y 10, x 10, h 5, w 5), made unequal so a swapped axis shows.
        return (10.0, 8.0, 5.0, 4.0) if self.exp_box else (float(w), float(h), float(w), float(h))

    def table(self) -> np.ndarray:
        return ssd_anchors(self.options)

    def _reg_real(self, rng, n):
        xs, ys, ws, hs = self.scale
        off = rng.uniform(-0.3, 0.3, (n, 2)) * np.array([xs, ys])
        if self.exp_box:
            size = rng.uniform(-1.5, 0.5, (n, 2)) * np.array([ws, hs])
        else:
            size = rng.uniform(0.05, 0.6, (n, 2)) * np.array([ws, hs])
        kp = rng.uniform(-0.5, 0.5, (n, 2 * self.keypoints)) * np.tile([xs, ys], self.keypoints)
        reg = np.concatenate([off, size, kp], 1)
        if not self.reverse:  # y, x, h, w and keypoints y, x
            reg = reg.reshape(n, -1, 2)[:, :, ::-1].reshape(n, -1)
        return reg

    def specs(self) -> list:
        n = self.table().shape[0]
        reg = TensorSpec("regressors", (1, n, 4 + 2 * self.keypoints), self.reg_dtype, self.reg_quant)
        cls = TensorSpec("classificators", (1, n, self.nc), self.score_dtype, self.score_quant)
        return [cls, reg] if self.scores_first else [reg, cls]

    def arrays(self) -> list:
        rng = np.random.default_rng(self.seed)
        n = self.table().shape[0]
        reg = to_dtype(self._reg_real(rng, n), self.reg_dtype, self.reg_quant)[None]
        lo, hi = (-8.0, 4.0) if self.use_sigmoid else (0.0, 1.0)
        score = to_dtype(rng.uniform(lo, hi, (n, self.nc)), self.score_dtype, self.score_quant)[None]
        return [score, reg] if self.scores_first else [reg, score]

    def decoder_kwargs(self) -> dict:
        return dict(input_size=self.input_size, scale=self.scale, reverse_output_order=self.reverse,
                    exp_box_size=self.exp_box, sigmoid=self.use_sigmoid, score_clip=self.clip,
                    max_det=self.max_det, weighted=self.weighted, class_aware=self.class_aware)

    def twin(self, specs, arrays):
        (reg_s, cls_s), (reg, cls) = ((specs[1], specs[0]), (arrays[1], arrays[0])) if self.scores_first else (
            specs, arrays)
        return _reference.decode_ssd_anchors(reg, cls, self.table(), reg_s, cls_s, self.conf, self.iou,
                                             self.input_size, self.scale, self.reverse, self.exp_box,
                                             self.use_sigmoid, self.clip, self.weighted, self.max_det,
                                             self.class_aware)


@st.composite
def ssd_cases(draw, dtypes=(np.int8, np.uint8, np.float32), keypoints=(1, 2, 6), clips=(100.0,)) -> SsdCase:
    """A random `SsdCase` over anchors, keypoints, number formats, box coding and NMS options."""
    exp_box = draw(st.booleans())
    reverse = draw(st.booleans())
    use_sigmoid = draw(st.booleans())
    anchors = draw(st.sampled_from(sorted(SMALL_ANCHORS)))
    reg_dtype, score_dtype = draw(st.sampled_from(dtypes)), draw(st.sampled_from(dtypes))
    reg_quant = None if reg_dtype == np.float32 else draw(covering_quant(reg_dtype, -30.0, 30.0))
    lo, hi = (-8.0, 4.0) if use_sigmoid else (0.0, 1.0)
    score_quant = None if score_dtype == np.float32 else draw(covering_quant(score_dtype, lo, hi))
    nc = draw(st.sampled_from([1, 1, 3]))
    return SsdCase(anchors=anchors, keypoints=draw(st.sampled_from(keypoints)), nc=nc, reg_dtype=reg_dtype,
                   reg_quant=reg_quant, score_dtype=score_dtype, score_quant=score_quant, reverse=reverse,
                   exp_box=exp_box, use_sigmoid=use_sigmoid, clip=draw(st.sampled_from(clips)),
                   weighted=draw(st.booleans()), class_aware=draw(st.booleans()), conf=draw(unit_floats()),
                   iou=draw(unit_floats()), max_det=draw(st.sampled_from([100, 100, 2])),
                   scores_first=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)))
