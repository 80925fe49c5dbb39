"""SSD decoding: MediaPipe SSD anchors, `SsdDecoder` against `_reference.decode_ssd_anchors`, and the
TFLite_Detection_PostProcess four-output layout.

Anchors are checked against a plain loop written from MediaPipe's SsdAnchorsCalculator definition
(layers sharing a stride share a feature map, anchors of a cell are consecutive, cells row-major)
and against hand-computed BlazeFace facts (896 anchors, first centre (1/32, 1/32)).

Tolerances against the twin: same count, classes and order, scores rtol 1e-6, boxes and keypoints
within 1e-3 pixels. A quantized output and its dequantized float32 copy decode identically.
"""
import math

import numpy as np
import pytest
from decode_cases import (
    SsdCase,
    assert_detections_shapes,
    assert_identical,
    assert_matches_twin,
    float_spec,
    real_of,
    ssd_cases,
    unit_floats,
)
from hypothesis import given
from hypothesis import strategies as st

from edgert import Quantization, TensorSpec, _reference
from edgert.core.errors import ConfigError, DecodeError
from edgert.postprocess import SsdAnchorOptions, SsdDecoder, dequantize, ssd_anchors

BLAZEFACE = SsdAnchorOptions()


def mediapipe_anchors(o: SsdAnchorOptions) -> np.ndarray:
    """SsdAnchorsCalculator, written out as loops: ``(N, 4)`` x_centre, y_centre, w, h."""
    def scale(i):
        if o.num_layers == 1:
            return (o.min_scale + o.max_scale) / 2
        return o.min_scale + (o.max_scale - o.min_scale) * i / (o.num_layers - 1)

    out = []
    layer = 0
    while layer < o.num_layers:
        ratios, scales = [], []
        last = layer
        while last < o.num_layers and o.strides[last] == o.strides[layer]:
            s = scale(last)
            if last == 0 and o.reduce_boxes_in_lowest_layer:
                ratios += [1.0, 2.0, 0.5]
                scales += [0.1, s, s]
            else:
                for r in o.aspect_ratios:
                    ratios.append(r)
                    scales.append(s)
                if o.interpolated_scale_aspect_ratio > 0:
                    nxt = 1.0 if last == o.num_layers - 1 else scale(last + 1)
                    scales.append(math.sqrt(s * nxt))
                    ratios.append(o.interpolated_scale_aspect_ratio)
            last += 1
        if o.feature_map_width:
            fw, fh = o.feature_map_width[layer], o.feature_map_height[layer]
        else:
            fw = math.ceil(o.input_size_width / o.strides[layer])
            fh = math.ceil(o.input_size_height / o.strides[layer])
        for y in range(fh):
            for x in range(fw):
                for s, r in zip(scales, ratios):
                    cx, cy = (x + o.anchor_offset_x) / fw, (y + o.anchor_offset_y) / fh
                    w, h = (1.0, 1.0) if o.fixed_anchor_size else (s * math.sqrt(r), s / math.sqrt(r))
                    out.append((cx, cy, w, h))
        layer = last
    return np.array(out, np.float32)


# ---- anchors -------------------------------------------------------------------------------------

def test_blazeface_defaults_give_896_anchors_with_known_centres():
    """BlazeFace: stride 8 -> 16x16 cells x 2 anchors, strides 16,16,16 -> 8x8 cells x 6 anchors = 896."""
    a = ssd_anchors(BLAZEFACE)
    assert a.shape == (16 * 16 * 2 + 8 * 8 * 6, 4) == (896, 4) and a.dtype == np.float32
    np.testing.assert_allclose(a[0, :2], [1 / 32, 1 / 32])
    np.testing.assert_allclose(a[1, :2], [1 / 32, 1 / 32])  # second anchor of the same cell
    np.testing.assert_allclose(a[2, :2], [3 / 32, 1 / 32])  # next cell along x
    np.testing.assert_allclose(a[32, :2], [1 / 32, 3 / 32])  # next row: 16 cells x 2 anchors later
    np.testing.assert_allclose(a[511, :2], [31 / 32, 31 / 32])
    np.testing.assert_allclose(a[512:518, :2], np.tile([1 / 16, 1 / 16], (6, 1)))  # 8x8 map, 6 per cell
    np.testing.assert_allclose(a[-1, :2], [15 / 16, 15 / 16])
    np.testing.assert_array_equal(a[:, 2:], 1.0)  # fixed anchor size


OPTION_SETS = {
    "blazeface": BLAZEFACE,
    "blazeface-back": SsdAnchorOptions(input_size_width=256, input_size_height=256, min_scale=0.15625,
                                       strides=(16, 32, 32, 32)),
    "mobilenet-ssd": SsdAnchorOptions(input_size_width=300, input_size_height=300, num_layers=6, min_scale=0.2,
                                      max_scale=0.95, strides=(16, 32, 64, 128, 256, 512),
                                      aspect_ratios=(1.0, 2.0, 0.5, 3.0, 1 / 3), fixed_anchor_size=False,
                                      reduce_boxes_in_lowest_layer=True),
    "explicit-maps": SsdAnchorOptions(input_size_width=96, input_size_height=64, num_layers=2, strides=(8, 16),
                                      feature_map_width=(12, 6), feature_map_height=(8, 4), anchor_offset_x=0.0,
                                      anchor_offset_y=0.25, fixed_anchor_size=False,
                                      interpolated_scale_aspect_ratio=0.0, aspect_ratios=(1.0, 4.0)),
    "one-layer": SsdAnchorOptions(input_size_width=40, input_size_height=24, num_layers=1, strides=(8,),
                                  fixed_anchor_size=False, interpolated_scale_aspect_ratio=2.0),
}


@pytest.mark.parametrize("name", sorted(OPTION_SETS))
def test_anchors_follow_the_ssd_anchors_calculator(name):
    o = OPTION_SETS[name]
    np.testing.assert_allclose(ssd_anchors(o), mediapipe_anchors(o), rtol=1e-6, atol=1e-7)


def test_anchor_sizes_are_scale_times_and_over_sqrt_ratio():
    """Non-fixed sizes: w = s * sqrt(r), h = s / sqrt(r); the interpolated anchor at sqrt(s_i * s_i+1)."""
    o = SsdAnchorOptions(input_size_width=32, input_size_height=32, num_layers=2, min_scale=0.2, max_scale=0.6,
                         strides=(16, 32), aspect_ratios=(1.0, 2.0, 0.5), fixed_anchor_size=False,
                         interpolated_scale_aspect_ratio=1.0)
    a = ssd_anchors(o)
    assert a.shape == (2 * 2 * 4 + 1 * 1 * 4, 4)
    r2 = math.sqrt(2.0)
    layer0 = [(0.2, 0.2), (0.2 * r2, 0.2 / r2), (0.2 / r2, 0.2 * r2), (math.sqrt(0.2 * 0.6),) * 2]
    layer1 = [(0.6, 0.6), (0.6 * r2, 0.6 / r2), (0.6 / r2, 0.6 * r2), (math.sqrt(0.6 * 1.0),) * 2]
    np.testing.assert_allclose(a[:4, 2:], layer0, rtol=1e-6)
    np.testing.assert_allclose(a[12:16, 2:], layer0, rtol=1e-6)  # every cell of layer 0 alike
    np.testing.assert_allclose(a[16:, 2:], layer1, rtol=1e-6)


def test_reduce_boxes_in_lowest_layer_gives_three_anchors_per_cell():
    """Layer 0 with reduce_boxes_in_lowest_layer: ratios 1, 2, 0.5 at scales 0.1, s0, s0 (no interpolated one)."""
    o = SsdAnchorOptions(input_size_width=32, input_size_height=16, num_layers=2, min_scale=0.3, max_scale=0.9,
                         strides=(8, 16), aspect_ratios=(1.0,), fixed_anchor_size=False,
                         reduce_boxes_in_lowest_layer=True)
    a = ssd_anchors(o)
    cells0, cells1 = 4 * 2, 2 * 1
    assert a.shape == (cells0 * 3 + cells1 * 2, 4)
    r2 = math.sqrt(2.0)
    want0 = np.tile([(0.1, 0.1), (0.3 * r2, 0.3 / r2), (0.3 / r2, 0.3 * r2)], (cells0, 1))
    np.testing.assert_allclose(a[:cells0 * 3, 2:], want0, rtol=1e-6)
    np.testing.assert_allclose(a[:3, :2], [[1 / 8, 1 / 4]] * 3)


@pytest.mark.parametrize("kwargs", [dict(num_layers=2, strides=(8,)), dict(strides=(8, 0, 16, 16)),
                                    dict(aspect_ratios=()), dict(aspect_ratios=(1.0, -2.0)),
                                    dict(input_size_width=0), dict(num_layers=0, strides=()),
                                    dict(feature_map_width=(16, 8, 8, 8), feature_map_height=(16,))])
def test_bad_anchor_options_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        SsdAnchorOptions(**kwargs)


# ---- SsdDecoder, anchors layout ------------------------------------------------------------------

def _candidates(case: SsdCase, specs, arrays) -> int:
    """How many anchors score >= conf (by the twin's own scoring)."""
    cls_spec, cls = (specs[0], arrays[0]) if case.scores_first else (specs[1], arrays[1])
    best = real_of(cls[0], cls_spec).max(1)
    if case.use_sigmoid:
        best = _reference.sigmoid(np.clip(best, -case.clip, case.clip) if case.clip > 0 else best)
    return int((best >= np.float32(case.conf)).sum())


@given(case=ssd_cases(keypoints=(0, 1, 2, 6), clips=(100.0, 100.0, 3.0)))
def test_anchors_layout_matches_twin(case):
    """Greedy and weighted NMS, keypoints, x,y,w,h or y,x,h,w order, log-encoded sizes, int8/uint8/float32.

    Where no anchor reaches conf the twin cannot decode; the decoder must return empty detections.
    """
    specs, arrays = case.specs(), case.arrays()
    dec = SsdDecoder(specs, case.options, case.conf, case.iou, **case.decoder_kwargs())
    assert dec.num_classes == case.nc and dec.num_keypoints == case.keypoints
    dets = dec(arrays)
    if case.keypoints == 0:
        assert dets.keypoints is None
    if _candidates(case, specs, arrays) == 0:
        assert len(dets) == 0
        assert_detections_shapes(dets, case.keypoints)
        return
    assert_matches_twin(dets, case.twin(specs, arrays), num_keypoints=case.keypoints)


@pytest.mark.parametrize("weighted", [False, True])
def test_no_candidates_give_empty_detections(weighted):
    """BlazeFace on a frame without faces: empty Detections with (0, 6, 2) keypoints, no exception."""
    n = ssd_anchors(BLAZEFACE).shape[0]
    specs = [TensorSpec("regressors", (1, n, 16), np.float32), TensorSpec("classificators", (1, n, 1), np.float32)]
    arrays = [np.zeros((1, n, 16), np.float32), np.full((1, n, 1), -20.0, np.float32)]
    dets = SsdDecoder(specs, BLAZEFACE, conf=0.5, weighted=weighted)(arrays)
    assert len(dets) == 0
    assert_detections_shapes(dets, num_keypoints=6)


@given(case=ssd_cases(dtypes=(np.int8, np.uint8), keypoints=(0, 1, 6), clips=(100.0, 3.0)))
def test_anchors_layout_quantized_equals_dequantized(case):
    """Integer regressors and scores, and their dequantized float32 copies, give identical detections."""
    specs, arrays = case.specs(), case.arrays()
    q = SsdDecoder(specs, case.table(), case.conf, case.iou, **case.decoder_kwargs())(arrays)
    fspecs = [float_spec(s) for s in specs]
    farrays = [dequantize(a, s) for a, s in zip(arrays, specs)]
    f = SsdDecoder(fspecs, case.table(), case.conf, case.iou, **case.decoder_kwargs())(farrays)
    assert_identical(q, f)


def test_blazeface_full_size_weighted_with_keypoints_matches_twin():
    """BlazeFace front: 896 anchors, 16 regressors (box + 6 keypoints), weighted NMS, int8 outputs."""
    rng = np.random.default_rng(5)
    anchors = ssd_anchors(BLAZEFACE)
    n = anchors.shape[0]
    reg_q, score_q = Quantization(0.5, 0), Quantization(0.1, 20)
    reg_real = np.concatenate([rng.normal(0, 3, (n, 2)), rng.uniform(10, 40, (n, 2)), rng.normal(0, 10, (n, 12))], 1)
    logits = rng.uniform(-10, -2, n)
    faces = rng.choice(n, 6, replace=False)
    for f in faces:  # clusters of anchors around a few faces
        near = np.argsort(np.abs(anchors[:, :2] - anchors[f, :2]).sum(1))[:8]
        logits[near] = rng.uniform(0.5, 3, near.size)
    specs = [TensorSpec("regressors", (1, n, 16), np.int8, reg_q), TensorSpec("classificators", (1, n, 1), np.int8,
                                                                                 score_q)]
    arrays = [reg_q.quantize(reg_real, np.int8)[None], score_q.quantize(logits[:, None], np.int8)[None]]
    dec = SsdDecoder(specs, BLAZEFACE, conf=0.6, iou=0.3, weighted=True)
    dets = dec(arrays)
    want = _reference.decode_ssd_anchors(arrays[0], arrays[1], anchors, specs[0], specs[1], 0.6, 0.3, (128, 128),
                                         (128, 128, 128, 128), weighted=True)
    assert len(dets) >= 3
    assert_matches_twin(dets, want, num_keypoints=6)


def test_weighted_nms_blends_boxes_and_keypoints_by_score():
    """Two overlapping anchors with scores 0.75 and 0.25: the kept face is their 3:1 blend, score 0.75."""
    anchors = np.array([[0.5, 0.5, 1, 1], [0.5, 0.5, 1, 1]], np.float32)
    reg = np.array([[[0, 0, 40, 40, 10, 10], [4, 8, 40, 40, 14, 18]]], np.float32)
    logit = np.log(np.array([0.75, 0.25]) / (1 - np.array([0.75, 0.25])))
    scores = logit.astype(np.float32).reshape(1, 2, 1)
    specs = [TensorSpec("reg", (1, 2, 6), np.float32), TensorSpec("cls", (1, 2, 1), np.float32)]
    dets = SsdDecoder(specs, anchors, conf=0.2, iou=0.3, input_size=(100, 100), weighted=True)([reg, scores])
    assert len(dets) == 1
    np.testing.assert_allclose(dets.scores, [0.75], rtol=1e-6)
    # Box centres at 50 + (0, 0) and 50 + (4, 8), size 40: blend centre 51, 52.
    np.testing.assert_allclose(dets.boxes, [[31, 32, 71, 72]], atol=1e-4)
    np.testing.assert_allclose(dets.keypoints, [[[61, 62]]], atol=1e-4)
    greedy = SsdDecoder(specs, anchors, conf=0.2, iou=0.3, input_size=(100, 100))([reg, scores])
    np.testing.assert_allclose(greedy.boxes, [[30, 30, 70, 70]], atol=1e-4)


def test_anchors_layout_without_keypoints():
    """A plain SSD regressor (1, N, 4): boxes decode, keypoints are None."""
    anchors = np.array([[0.25, 0.5, 1, 1], [0.75, 0.5, 1, 1]], np.float32)
    reg = np.array([[[0, 0, 20, 10], [0, 0, 10, 20]]], np.float32)
    scores = np.array([[[3.0], [-3.0]]], np.float32)
    specs = [TensorSpec("reg", (1, 2, 4), np.float32), TensorSpec("cls", (1, 2, 1), np.float32)]
    dets = SsdDecoder(specs, anchors, conf=0.5, input_size=(100, 100))([reg, scores])
    np.testing.assert_allclose(dets.boxes, [[15, 45, 35, 55]], atol=1e-4)
    assert dets.keypoints is None


def test_score_clip_applies_before_the_threshold():
    """score_clip=2, conf=0.1: a logit of -10 scores sigmoid(-2) = 0.119 >= 0.1, as the twin says."""
    anchors = np.array([[0.25, 0.5, 1, 1], [0.75, 0.5, 1, 1]], np.float32)
    reg = np.array([[[0, 0, 20, 10, 0, 0], [0, 0, 10, 20, 0, 0]]], np.float32)
    scores = np.array([[[-10.0], [0.0]]], np.float32)
    specs = [TensorSpec("reg", (1, 2, 6), np.float32), TensorSpec("cls", (1, 2, 1), np.float32)]
    dets = SsdDecoder(specs, anchors, conf=0.1, iou=0.3, input_size=(100, 100), score_clip=2.0)([reg, scores])
    want = _reference.decode_ssd_anchors(reg, scores, anchors, specs[0], specs[1], 0.1, 0.3, (100, 100),
                                         (100, 100, 100, 100), clip=2.0)
    assert_matches_twin(dets, want, num_keypoints=1)
    assert len(dets) == 2


@pytest.mark.parametrize("names,order", [(("regressors", "classificators"), (0, 1)),
                                         (("classificators", "regressors"), (1, 0)),
                                         (("Identity", "Identity_1"), (0, 1))])  # unnamed: MediaPipe's order
def test_regressor_is_found_when_classes_outnumber_regressor_columns(names, order):
    """Regressor (1, N, 6), 8 classes (wider than the regressor): found by name, else it is output 0."""
    anchors = np.array([[0.5, 0.5, 1, 1]] * 3, np.float32)
    shapes = {0: (1, 3, 6), 1: (1, 3, 8)}
    specs = [TensorSpec(n, shapes[k], np.float32) for n, k in zip(names, order)]
    dec = SsdDecoder(specs, anchors, conf=0.5, input_size=(100, 100))
    assert dec.num_classes == 8 and dec.num_keypoints == 1
    reg = np.zeros((1, 3, 6), np.float32)
    reg[0, :, 2:4] = 20
    scores = np.full((1, 3, 8), -9.0, np.float32)
    scores[0, 1, 6] = 4.0
    arrays = [reg, scores] if order == (0, 1) else [scores, reg]
    dets = dec(arrays)
    np.testing.assert_array_equal(dets.classes, [6])
    np.testing.assert_allclose(dets.boxes, [[40, 40, 60, 60]], atol=1e-4)


def test_regressor_index_can_be_given():
    """Unhelpful names and the classificator first: regressor=1 says which is which."""
    anchors = np.array([[0.5, 0.5, 1, 1]] * 3, np.float32)
    specs = [TensorSpec("Identity", (1, 3, 8), np.float32), TensorSpec("Identity_1", (1, 3, 6), np.float32)]
    dec = SsdDecoder(specs, anchors, conf=0.5, input_size=(100, 100), regressor=1)
    assert dec.num_classes == 8 and dec.num_keypoints == 1


# ---- TFLite_Detection_PostProcess ----------------------------------------------------------------

def _postprocess_specs(n=6):
    """TFLite_Detection_PostProcess outputs as a converter names them: boxes, classes, scores, count."""
    names = ["TFLite_Detection_PostProcess"] + [f"TFLite_Detection_PostProcess:{i}" for i in (1, 2, 3)]
    shapes = [(1, n, 4), (1, n), (1, n), (1,)]
    return [TensorSpec(name, shape, np.float32) for name, shape in zip(names, shapes)]


def _postprocess_outputs(rng, n=6, count=4):
    ymin, xmin = rng.uniform(0, 0.5, n), rng.uniform(0, 0.5, n)
    boxes = np.stack([ymin, xmin, ymin + rng.uniform(0.1, 0.5, n), xmin + rng.uniform(0.1, 0.5, n)], 1)
    classes = rng.integers(0, 90, n).astype(np.float32)
    scores = np.sort(rng.uniform(0, 1, n))[::-1].astype(np.float32)
    return [boxes.astype(np.float32)[None], classes[None], scores[None].copy(), np.array([count], np.float32)]


@given(seed=st.integers(0, 2**32 - 1), count=st.integers(0, 6), conf=st.sampled_from([0.0, 0.5]) | unit_floats(),
       max_det=st.sampled_from([1, 2, 3, 100]), size=st.sampled_from([(300, 300), (320, 240), (33, 77)]))
def test_tflite_postprocess_layout(seed, count, conf, max_det, size):
    """Only the first `count` rows; scores >= conf; ymin,xmin,ymax,xmax normalised -> xyxy input pixels."""
    rng = np.random.default_rng(seed)
    outs = _postprocess_outputs(rng, count=count)
    outs[2][0, count:] = 1.0  # rows past count would win if they were read
    specs = _postprocess_specs()
    dec = SsdDecoder(specs, conf=conf, input_size=size, max_det=max_det)
    assert dec.layout == "tflite-postprocess"
    dets = dec(outs)
    assert_detections_shapes(dets)
    keep = [i for i in range(count) if outs[2][0, i] >= np.float32(conf)]
    keep = sorted(keep, key=lambda i: (-outs[2][0, i], i))[:max_det]
    w, h = size
    y0, x0, y1, x1 = outs[0][0, keep].T
    want = np.stack([x0 * w, y0 * h, x1 * w, y1 * h], 1).reshape(-1, 4)
    np.testing.assert_allclose(dets.boxes, want, rtol=1e-6)
    np.testing.assert_array_equal(dets.scores, outs[2][0, keep])
    np.testing.assert_array_equal(dets.classes, outs[1][0, keep].astype(np.int32))


def test_tflite_postprocess_named_outputs_in_another_order():
    """Outputs named scores/classes in the other order are read by name."""
    rng = np.random.default_rng(1)
    boxes, classes, scores, count = _postprocess_outputs(rng, count=6)
    specs = [TensorSpec("detection_boxes", (1, 6, 4), np.float32), TensorSpec("detection_scores", (1, 6), np.float32),
             TensorSpec("detection_classes", (1, 6), np.float32), TensorSpec("num_detections", (1,), np.float32)]
    dets = SsdDecoder(specs, conf=0.0, input_size=(100, 100))([boxes, scores, classes, count])
    np.testing.assert_array_equal(dets.scores, scores[0])
    np.testing.assert_array_equal(dets.classes, classes[0].astype(np.int32))


def test_tflite_postprocess_tf2_output_order():
    """TF2 exports: StatefulPartitionedCall:0..3 = scores, boxes, count, classes."""
    rng = np.random.default_rng(2)
    boxes, classes, scores, count = _postprocess_outputs(rng, count=6)
    classes[0, :] = [3, 1, 4, 1, 5, 9]
    names = [f"StatefulPartitionedCall:{i}" for i in range(4)]
    shapes = [(1, 6), (1, 6, 4), (1,), (1, 6)]
    specs = [TensorSpec(n, s, np.float32) for n, s in zip(names, shapes)]
    dets = SsdDecoder(specs, conf=0.0, input_size=(100, 100))([scores, boxes, count, classes])
    np.testing.assert_array_equal(dets.scores, scores[0])
    np.testing.assert_array_equal(dets.classes, [3, 1, 4, 1, 5, 9])


@pytest.mark.parametrize("count", [-1.0, 7.0, np.nan, np.inf])
def test_tflite_postprocess_bad_count_raises_decode_error(count):
    outs = _postprocess_outputs(np.random.default_rng(0))
    outs[3][0] = count
    with pytest.raises(DecodeError):
        SsdDecoder(_postprocess_specs(), conf=0.5, input_size=(300, 300))(outs)


def test_tflite_postprocess_nan_in_counted_rows_raises_decode_error():
    outs = _postprocess_outputs(np.random.default_rng(0), count=4)
    outs[0][0, 2, 1] = np.nan
    with pytest.raises(DecodeError):
        SsdDecoder(_postprocess_specs(), conf=0.5, input_size=(300, 300))(outs)
