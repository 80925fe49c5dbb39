"""`YoloDecoder` against its NumPy twins: single tensors (`_reference.decode_yolo_single`) and split
DFL heads (`_reference.decode_yolo_dfl`), over random cases (see `decode_cases`).

Tolerances: same number of detections, identical classes in identical order, scores within rtol 1e-6,
boxes within 1e-3 pixels. Cases include many equal scores and identical boxes, so the ordering rule
(score, then the lower candidate index) and NMS ties are exercised.

A quantized output and its dequantized float32 copy decode to bit-identical detections.
"""
import dataclasses

import numpy as np
import pytest
from decode_cases import (
    DflCase,
    assert_identical,
    assert_matches_twin,
    dfl_cases,
    float_spec,
    yolo_cases,
)
from hypothesis import given

from edgert import Quantization, TensorSpec, _reference
from edgert.core.errors import ConfigError
from edgert.postprocess import YoloDecoder, dequantize


def _float_copy(raw, spec):
    """A quantized output as its dequantized float32 tensor, through the public `dequantize`."""
    return dequantize(raw, spec) if spec.quant is not None else raw


# ---- single tensor: v8, v8-rows, v5 ---------------------------------------------------------------

@given(case=yolo_cases())
def test_single_tensor_matches_twin(case):
    """v8/v8-rows/v5, int8/uint8/float32, sigmoid or not, class-aware or not, normalised or not."""
    spec = case.spec()
    dec = YoloDecoder([spec], case.conf, case.iou, **case.decoder_kwargs())
    assert dec.num_classes == case.nc
    assert_matches_twin(dec([case.tensor()]), case.twin())


@given(case=yolo_cases(dtypes=(np.int8, np.uint8), contents=("spread", "ties", "raw")))
def test_single_tensor_quantized_equals_dequantized(case):
    """Decoding the raw integers and decoding their dequantized float32 copy give identical detections."""
    spec, raw = case.spec(), case.tensor()
    q = YoloDecoder([spec], case.conf, case.iou, **case.decoder_kwargs())([raw])
    f = YoloDecoder([float_spec(spec)], case.conf, case.iou, **case.decoder_kwargs())([_float_copy(raw, spec)])
    assert_identical(q, f)


@given(case=yolo_cases())
def test_detections_are_best_first_above_conf_and_capped(case):
    """Scores never increase, all reach conf, at most max_det detections (the ties order: see below)."""
    dets = YoloDecoder([case.spec()], case.conf, case.iou, **case.decoder_kwargs())([case.tensor()])
    assert np.all(np.diff(dets.scores) <= 0)
    assert np.all(dets.scores >= np.float32(case.conf))
    assert len(dets) <= case.max_det


def test_equal_scores_rank_by_candidate_index_v8():
    """Ten candidates far apart, all scoring 0.5 but anchor 3 (0.75): anchor 3, then the rest in anchor order."""
    n = 10
    x = np.zeros((1, 5, n), np.float32)
    x[0, 0] = np.arange(n) * 100 + 10  # cx
    x[0, 1] = 10
    x[0, 2:4] = 8
    x[0, 4] = 0.5
    x[0, 4, 3] = 0.75  # anchor 3 scores best
    dets = YoloDecoder([TensorSpec("o", x.shape, np.float32)], 0.25, 0.45, layout="v8", normalized=False)([x])
    order = (dets.boxes[:, 0] + 4 - 10) / 100
    np.testing.assert_array_equal(order, [3, 0, 1, 2, 4, 5, 6, 7, 8, 9])


def test_identical_boxes_with_equal_scores_keep_the_first_candidate():
    """Two identical boxes, equal scores, different classes: class-agnostic NMS keeps the earlier one."""
    rows = np.array([[20, 20, 10, 10, 0.1, 0.9], [20, 20, 10, 10, 0.9, 0.1]], np.float32)
    spec = TensorSpec("o", (1, 2, 6), np.float32)
    dets = YoloDecoder([spec], 0.5, 0.5, layout="v8-rows", normalized=False, class_aware=False)([rows[None]])
    np.testing.assert_array_equal(dets.classes, [1])
    dets = YoloDecoder([spec], 0.5, 0.5, layout="v8-rows", normalized=False, class_aware=True)([rows[None]])
    np.testing.assert_array_equal(dets.classes, [1, 0])


@given(case=yolo_cases(contents=("ties",)))
def test_single_tensor_with_ties_matches_twin(case):
    """Only tied cases: equal class values within a row (the lower class wins), equal scores across rows
    (the lower candidate wins) and identical boxes (which of them NMS keeps)."""
    dec = YoloDecoder([case.spec()], case.conf, case.iou, **case.decoder_kwargs())
    assert_matches_twin(dec([case.tensor()]), case.twin())


@pytest.mark.parametrize("layout", ["v8", "v8-rows", "v5"])
@pytest.mark.parametrize("dtype", [np.int8, np.float32])
def test_equal_class_values_pick_the_lowest_class(layout, dtype):
    """Classes 1 and 3 share the best value: the detection is class 1, in every layout and number format."""
    quant = Quantization(1 / 128, -128) if dtype == np.int8 else None
    first = 5 if layout == "v5" else 4
    real = np.zeros((1, first + 5), np.float32)
    real[0, :4] = [0.5, 0.5, 0.25, 0.25]
    real[0, 4:] = 0.25
    if layout == "v5":
        real[0, 4] = 1.0 - 1 / 128  # objectness
    real[0, first + 1] = real[0, first + 3] = 0.75
    raw = real if quant is None else quant.quantize(real, np.int8)
    x = np.ascontiguousarray(raw.T[None] if layout == "v8" else raw[None])
    dets = YoloDecoder([TensorSpec("o", x.shape, dtype, quant)], 0.5, 0.5, layout=layout, input_size=(64, 64),
                       normalized=True)([x])
    np.testing.assert_array_equal(dets.classes, [1])


@given(case=yolo_cases(dtypes=(np.float32,)))
def test_float_outputs_are_normalised_unless_told_otherwise(case):
    """normalized=None on float outputs means normalised (as Ultralytics exports them), whatever the values."""
    kw = case.decoder_kwargs()
    kw["normalized"] = None
    got = YoloDecoder([case.spec()], case.conf, case.iou, **kw)([case.tensor()])
    want = _reference.decode_yolo_single(case.tensor(), case.spec(), case.layout, case.conf, case.iou,
                                         case.input_size, True, case.activation, case.max_det, case.class_aware)
    assert_matches_twin(got, want)


def test_normalised_boxes_need_the_input_size():
    spec = TensorSpec("o", (1, 6, 10), np.float32)
    with pytest.raises(ConfigError, match="input_size"):
        YoloDecoder([spec])
    assert len(YoloDecoder([spec], normalized=False)([np.zeros(spec.shape, np.float32)])) == 0


@pytest.mark.parametrize("dtype,scale,zp,normalized", [
    (np.uint8, 1 / 255, 0, True), (np.int8, 1 / 255, -128, True), (np.int8, 0.5, -128, False),
    (np.uint8, 0.01, 0, False),  # top value 2.55 > 2: pixels
])
def test_quantized_normalised_is_decided_by_the_quantization_range(dtype, scale, zp, normalized):
    """normalized=None on integer outputs: normalised when the largest representable value is <= 2."""
    spec = TensorSpec("o", (1, 6, 3), dtype, Quantization(scale, zp))
    info = np.iinfo(dtype)
    x = np.full((1, 6, 3), zp, dtype)
    x[0, :4, 0] = np.clip(np.round(np.array([0.5, 0.5, 0.2, 0.2]) / scale) + zp, info.min, info.max)
    x[0, 4, 0] = info.max
    size = (100, 50)
    dets = YoloDecoder([spec], 0.1, 0.5, layout="v8", input_size=size)([x])
    want = _reference.decode_yolo_single(x, spec, "v8", 0.1, 0.5, size, normalized)
    assert_matches_twin(dets, want)


@pytest.mark.parametrize("dtype", [np.float32, np.int16])
def test_sigmoid_near_saturation_keeps_what_the_kernel_scores_above_conf(dtype):
    """conf = 1 - 2**-24 (a float32): logits 15..18 in steps of 0.05, scored and filtered like the twin."""
    conf = float(np.float32(1 - 2**-24))
    logits = np.arange(300, 360)  # x 0.05 = 15.0 .. 17.95
    quant = Quantization(0.05, 0) if dtype == np.int16 else None
    x = np.zeros((1, 5, logits.size), dtype)
    x[0, 0] = np.arange(logits.size) * 100  # boxes apart (int16: 5 px apart, 2 px wide): NMS keeps them all
    x[0, 1], x[0, 2:4] = 100, 40
    x[0, 4] = logits if quant else logits * np.float32(0.05)
    spec = TensorSpec("o", x.shape, dtype, quant)
    dets = YoloDecoder([spec], conf, 0.5, layout="v8", normalized=False, class_activation="sigmoid")([x])
    want = _reference.decode_yolo_single(x, spec, "v8", conf, 0.5, None, False, "sigmoid")
    assert_matches_twin(dets, want)


def test_v8_large_tensor_matches_twin():
    """A realistic (1, 84, 2100) int8 output (80 classes, 320x320 model) with a few hundred candidates."""
    rng = np.random.default_rng(7)
    n, c = 2100, 80
    quant = Quantization(1 / 255, -128)
    real = np.concatenate([rng.uniform(0, 1, (2, n)), rng.uniform(0.01, 0.2, (2, n)),
                           rng.uniform(0, 1, (c, n)) ** 24], 0)
    x = quant.quantize(real, np.int8)[None]
    spec = TensorSpec("o", x.shape, np.int8, quant)
    for aware in (True, False):
        dets = YoloDecoder([spec], 0.25, 0.45, input_size=(320, 320), class_aware=aware)([x])
        want = _reference.decode_yolo_single(x, spec, "v8", 0.25, 0.45, (320, 320), True, class_aware=aware)
        assert len(dets) > 20
        assert_matches_twin(dets, want)


def test_max_candidates_keeps_the_best_candidates_before_nms():
    """max_candidates=k: the result equals decoding only the k best candidates."""
    rng = np.random.default_rng(3)
    n = 50
    x = np.concatenate([rng.uniform(0, 60, (2, n)), rng.uniform(2, 6, (2, n)), rng.uniform(0, 1, (2, n))])
    x = x.astype(np.float32)[None]
    spec = TensorSpec("o", x.shape, np.float32)
    got = YoloDecoder([spec], 0.0, 0.5, layout="v8", normalized=False, max_candidates=10)([x])
    score = x[0, 4:].max(0)
    best = np.lexsort((np.arange(n), -score))[:10]
    sub = np.ascontiguousarray(x[:, :, np.sort(best)])
    want = _reference.decode_yolo_single(sub, TensorSpec("o", sub.shape, np.float32), "v8", 0.0, 0.5, None, False)
    assert_matches_twin(got, want)


# ---- split DFL heads -----------------------------------------------------------------------------

@given(case=dfl_cases())
def test_dfl_heads_match_twin(case):
    """rknn NCHW and Hailo NHWC heads, any output order, square and non-square inputs, C == W included."""
    specs, arrays = case.outputs()
    dec = YoloDecoder(specs, case.conf, case.iou, layout=_layout_for(case), **case.decoder_kwargs())
    assert dec.num_classes == case.nc
    assert_matches_twin(dec(arrays), case.twin(specs, arrays))


def _layout_for(case: DflCase) -> str:
    """Let the decoder find the layout by itself half of the time."""
    return "auto" if case.seed % 2 else "dfl"


@given(case=dfl_cases(dtypes=(np.int8, np.uint8)))
def test_dfl_quantized_equals_dequantized(case):
    """Integer DFL heads and their dequantized float32 copies decode to identical detections."""
    specs, arrays = case.outputs()
    q = YoloDecoder(specs, case.conf, case.iou, layout="dfl", **case.decoder_kwargs())(arrays)
    fspecs = [float_spec(s) for s in specs]
    farrays = [_float_copy(a, s) for a, s in zip(arrays, specs)]
    f = YoloDecoder(fspecs, case.conf, case.iou, layout="dfl", **case.decoder_kwargs())(farrays)
    assert_identical(q, f)


@given(case=dfl_cases())
def test_dfl_single_class_heads_decode_like_two_classes_with_an_empty_second(case):
    """One-class split heads (a face, person or plate detector; rknn with its 1-channel score sums too).

    The twin pairs only multi-class heads, so the expectation is the twin's decode of the same heads
    with a second class that never wins (its values at the bottom of the number format).
    """
    case = dataclasses.replace(case, nc=2, order_seed=0)
    specs2, arrays2 = case.outputs()
    specs1, arrays1 = [], []
    for spec, arr in zip(specs2, arrays2):
        if spec.name.startswith("cls"):
            low = np.iinfo(arr.dtype).min if arr.dtype != np.float32 else np.finfo(np.float32).min
            one = arr[:, :1] if case.nchw else arr[..., :1]
            (arr[:, 1:] if case.nchw else arr[..., 1:])[...] = low
            spec, arr = TensorSpec(spec.name, one.shape, spec.dtype, spec.quant), np.ascontiguousarray(one)
            if case.sums and case.nchw:  # rknn: a single class's score sum equals its class scores
                specs1.append(spec)
                arrays1.append(arr)
        elif spec.name.startswith("sum"):
            continue
        specs1.append(spec)
        arrays1.append(arr)
    dec = YoloDecoder(specs1, case.conf, case.iou, **case.decoder_kwargs())
    assert dec.num_classes == 1
    dets = dec(arrays1)
    assert_matches_twin(dets, case.twin(specs2, arrays2))
    assert np.all(dets.classes == 0)


@pytest.mark.parametrize("nchw", [True, False])
def test_dfl_classes_equal_width_pairs_heads_correctly(nchw):
    """8 classes on a 64x64 input: the stride-8 class tensor is (1, 8, 8, 8) (C == H == W).

    The decoder must still find 3 heads of 8 classes with strides 8, 16, 32 and decode like the twin;
    a single strong cell per head checks the grid position and stride of each head.
    """
    case = DflCase(nchw=nchw, input_size=(64, 64), nc=8, bins=16, cls_dtype=np.int8,
                   cls_quant=Quantization(1 / 255, -128), box_dtype=np.int8, box_quant=Quantization(0.05, 0),
                   activation="none", conf_draw=0.5, conf_pick=None, iou=1.0, class_aware=True, max_det=300,
                   sums=True, order_seed=0, seed=11)
    specs, arrays = case.outputs()
    # Class scores all zero, then one cell per head with score 1.0 for class 5.
    spots = {}
    for spec, arr in zip(specs, arrays):
        if spec.name.startswith("cls"):
            arr[...] = -128
            h, w = (arr.shape[2:] if nchw else arr.shape[1:3])
            y, x = h - 1, w // 2
            if nchw:
                arr[0, 5, y, x] = 127
            else:
                arr[0, y, x, 5] = 127
            spots[64 // w] = (x, y)
    dec = YoloDecoder(specs, case.conf, case.iou, layout="auto", **case.decoder_kwargs())
    dets = dec(arrays)
    assert dec.num_classes == 8
    assert_matches_twin(dets, case.twin(specs, arrays))
    assert len(dets) == 3 and np.all(dets.classes == 5)
    # Each box contains the centre of the cell it was decoded at.
    centres = sorted(((x + 0.5) * s, (y + 0.5) * s) for s, (x, y) in spots.items())
    for cx, cy in centres:
        inside = ((dets.boxes[:, 0] <= cx) & (cx <= dets.boxes[:, 2]) & (dets.boxes[:, 1] <= cy)
                  & (cy <= dets.boxes[:, 3]))
        assert inside.any(), (cx, cy, dets.boxes)


def test_dfl_distances_are_the_expectation_over_bins():
    """A box whose bins are one-hot at 2, 3, 4, 5 (left, top, right, bottom) spans exactly those strides."""
    size = (32, 16)  # stride 8: 4x2 map, stride 16: 2x1, stride 32: 1x... (16 // 32 = 0 -> skip that stride)
    specs, arrays = [], []
    for k, s in enumerate((8, 16)):
        h, w = size[1] // s, size[0] // s
        box = np.full((1, 64, h, w), -50.0, np.float32)
        for side, b in enumerate((2, 3, 4, 5)):
            box[0, side * 16 + b] = 50.0
        cls = np.zeros((1, 2, h, w), np.float32)
        if s == 8:
            cls[0, 1, 1, 2] = 0.9  # cell x=2, y=1
        specs += [TensorSpec(f"box{k}", box.shape, np.float32), TensorSpec(f"cls{k}", cls.shape, np.float32)]
        arrays += [box, cls]
    dets = YoloDecoder(specs, 0.5, 0.5, input_size=size)(arrays)
    cx, cy = 2.5 * 8, 1.5 * 8
    np.testing.assert_allclose(dets.boxes, [[cx - 2 * 8, cy - 3 * 8, cx + 4 * 8, cy + 5 * 8]], atol=1e-4)
    np.testing.assert_array_equal(dets.classes, [1])
