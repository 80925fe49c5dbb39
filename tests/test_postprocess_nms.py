"""`edgert.postprocess.nms` against `_reference.nms`, NMS properties, and `Detections.to_source`.

Boxes sit on a coarse grid, so identical boxes, boxes touching along an edge, zero-area boxes and
IoUs of exactly the threshold all occur; scores come from a few values, so ties are everywhere.
Thresholds are float32 values (see `decode_cases.unit_floats`).

Greedy NMS must match the twin exactly (same boxes, scores and classes, bit for bit); weighted NMS
within 1e-4 (score-weighted means summed in a different order).
"""
import numpy as np
import pytest
from decode_cases import assert_detections_shapes, unit_floats
from hypothesis import given
from hypothesis import strategies as st

from edgert import TensorSpec, _reference
from edgert.core.errors import DecodeError
from edgert.postprocess import Detections, nms
from edgert.preprocess import Preprocessor


@st.composite
def box_sets(draw, max_n=40):
    """``(boxes, scores, classes, keypoints)``: random xyxy boxes (degenerate ones too) with many ties."""
    n = draw(st.integers(0, max_n))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    grid = draw(st.sampled_from([1.0, 0.5, 0.1]))
    xy = np.round(rng.uniform(0, 20, (n, 2)) / grid) * grid
    wh = np.round(rng.uniform(0, 10, (n, 2)) / grid) * grid
    wh[rng.uniform(size=(n, 2)) < 0.1] = 0.0  # zero-width or zero-height boxes
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    dup = rng.uniform(size=n) < 0.3  # exact copies of the previous box
    for i in np.flatnonzero(dup):
        if i:
            boxes[i] = boxes[i - 1]
    levels = draw(st.sampled_from([1, 2, 3, 100]))
    scores = rng.integers(1, levels + 1, n).astype(np.float32) / levels
    classes = rng.integers(0, draw(st.integers(1, 3)), n).astype(np.int32)
    kp = rng.uniform(0, 20, (n, draw(st.integers(0, 2)), 2)).astype(np.float32)
    return boxes, scores, classes, kp


@given(data=box_sets(), iou=unit_floats(), max_det=st.sampled_from([300, 1, 2, 5]), class_aware=st.booleans())
def test_greedy_nms_matches_twin_exactly(data, iou, max_det, class_aware):
    boxes, scores, classes, kp = data
    kp = kp if kp.shape[1] else None
    got = nms(boxes, scores, classes, iou=iou, max_det=max_det, class_aware=class_aware, keypoints=kp)
    want = _reference.nms(boxes, scores, classes, iou, max_det, class_aware, False, kp)
    assert len(got) == len(want[1])
    np.testing.assert_array_equal(got.boxes, want[0])
    np.testing.assert_array_equal(got.scores, want[1])
    np.testing.assert_array_equal(got.classes, want[2])
    if kp is not None:
        np.testing.assert_array_equal(got.keypoints, want[3])


@given(data=box_sets(), iou=unit_floats(), max_det=st.sampled_from([300, 1, 2, 5]), class_aware=st.booleans())
def test_weighted_nms_matches_twin(data, iou, max_det, class_aware):
    boxes, scores, classes, kp = data
    kp = kp if kp.shape[1] and kp.shape[0] else None  # the twin cannot blend 0 boxes with keypoints
    got = nms(boxes, scores, classes, iou=iou, max_det=max_det, class_aware=class_aware, weighted=True,
              keypoints=kp)
    want = _reference.nms(boxes, scores, classes, iou, max_det, class_aware, True, kp)
    assert len(got) == len(want[1])
    np.testing.assert_array_equal(got.scores, want[1])
    np.testing.assert_array_equal(got.classes, want[2])
    np.testing.assert_allclose(got.boxes, want[0], rtol=0, atol=1e-4)
    if kp is not None:
        np.testing.assert_allclose(got.keypoints, want[3], rtol=0, atol=1e-4)


@given(data=box_sets(), iou=unit_floats(), max_det=st.sampled_from([300, 3]), class_aware=st.booleans())
def test_greedy_nms_properties(data, iou, max_det, class_aware):
    """Kept boxes overlap each other (same class, or any when agnostic) by at most `iou`; every dropped
    box before the max_det cut overlaps a better kept box by more; output is best first."""
    boxes, scores, classes, _ = data
    got = nms(boxes, scores, classes, iou=iou, max_det=max_det, class_aware=class_aware)
    assert_detections_shapes(got)
    assert len(got) <= max_det
    assert np.all(np.diff(got.scores) <= 0)
    same = (lambda a, b: a == b) if class_aware else (lambda a, b: True)
    for i in range(len(got)):
        for j in range(i):
            if same(got.classes[i], got.classes[j]):
                assert _reference.iou(got.boxes[i], got.boxes[j]) <= iou
    if len(got) < max_det:  # nothing was cut: every box is kept or suppressed by a kept one
        kept = {(tuple(b), float(s), int(c)) for b, s, c in zip(got.boxes, got.scores, got.classes)}
        for b, s, c in zip(boxes, scores, classes):
            if (tuple(b), float(s), int(c)) in kept:
                continue
            assert any(same(c, kc) and ks >= s and _reference.iou(b, kb) > iou
                       for kb, ks, kc in zip(got.boxes, got.scores, got.classes))


@given(n=st.integers(1, 20), seed=st.integers(0, 2**32 - 1), iou=unit_floats(), with_kp=st.booleans())
def test_weighted_nms_of_identical_boxes_returns_that_box(n, seed, iou, with_kp):
    """A flat cluster of one box repeated (any scores): one detection, that very box, the best score."""
    rng = np.random.default_rng(seed)
    box = np.round(rng.uniform(0, 100, 2), 2)
    box = np.concatenate([box, box + np.round(rng.uniform(1, 50, 2), 2)]).astype(np.float32)
    boxes = np.tile(box, (n, 1))
    scores = rng.uniform(0.01, 1, n).astype(np.float32)
    kp = np.tile(rng.uniform(0, 100, (1, 3, 2)).astype(np.float32), (n, 1, 1)) if with_kp else None
    got = nms(boxes, scores, iou=min(iou, 0.99), weighted=True, keypoints=kp)
    assert len(got) == 1
    np.testing.assert_array_equal(got.boxes[0], box)
    assert got.scores[0] == scores.max()
    if with_kp:
        np.testing.assert_allclose(got.keypoints[0], kp[0], rtol=1e-6)


def test_weighted_nms_is_the_score_weighted_mean():
    boxes = np.array([[0, 0, 10, 10], [2, 2, 12, 12], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.6, 0.2, 0.5], np.float32)
    got = nms(boxes, scores, iou=0.3, weighted=True)
    np.testing.assert_allclose(got.boxes, [[0.5, 0.5, 10.5, 10.5], [50, 50, 60, 60]], atol=1e-5)
    np.testing.assert_array_equal(got.scores, np.array([0.6, 0.5], np.float32))


def test_iou_exactly_at_threshold_is_not_suppressed():
    """IoU 1/3 (a box and its half-overlapping neighbour) with iou=1/3 as float32: both kept."""
    boxes = np.array([[0, 0, 2, 1], [1, 0, 3, 1]], np.float32)  # inter 1, union 3
    thr = float(np.float32(1) / np.float32(3))
    assert len(nms(boxes, np.array([0.9, 0.8]), iou=thr)) == 2
    assert len(nms(boxes, np.array([0.9, 0.8]), iou=float(np.nextafter(np.float32(thr), np.float32(0))))) == 1


def test_twin_and_kernel_agree_at_an_iou_threshold_not_exact_in_float32():
    """iou=0.3 (SsdDecoder's default) and two boxes of IoU exactly 3/10: kernel and twin agree, and keep both
    (an IoU equal to the threshold does not suppress)."""
    boxes = np.array([[0, 0, 6.5, 1], [3.5, 0, 10, 1]], np.float32)  # inter 3, union 10
    assert _reference.iou(boxes[0], boxes[1]) == float(np.float32(0.3))
    got = nms(boxes, np.array([0.9, 0.8]), iou=0.3)
    want = _reference.nms(boxes, np.array([0.9, 0.8]), None, 0.3)
    assert len(got) == len(want[1]) == 2


def test_weighted_nms_of_zero_scores_averages_the_cluster():
    """conf=0 lets scores of exactly 0 through (a float32 sigmoid of -100 is 0): such a cluster averages
    its boxes (and keypoints) with equal weights."""
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10]], np.float32)
    kp = np.array([[[2, 4]], [[4, 8]]], np.float32)
    got = nms(boxes, np.zeros(2, np.float32), iou=0.3, weighted=True, keypoints=kp)
    assert len(got) == 1
    np.testing.assert_allclose(got.boxes, [[0.5, 0.5, 10, 10]], rtol=1e-6)
    np.testing.assert_allclose(got.keypoints, [[[3, 6]]], rtol=1e-6)


def test_empty_input_gives_empty_detections():
    got = nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
    assert len(got) == 0
    assert_detections_shapes(got)
    assert len(nms(np.zeros((0, 4)), np.zeros(0), weighted=True)) == 0


@pytest.mark.parametrize("weighted", [False, True])
def test_empty_input_with_keypoints_gives_empty_detections(weighted):
    got = nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), keypoints=np.zeros((0, 6, 2), np.float32),
              weighted=weighted)
    assert len(got) == 0
    assert_detections_shapes(got, num_keypoints=6)


@pytest.mark.parametrize("kwargs", [dict(iou=1.5), dict(iou=-0.1), dict(iou=float("nan")), dict(max_det=-1)])
def test_nms_rejects_bad_settings(kwargs):
    boxes = np.array([[0, 0, 1, 1]], np.float32)
    with pytest.raises(DecodeError):
        nms(boxes, np.ones(1), **kwargs)


def test_nms_rejects_mismatched_lengths():
    with pytest.raises(DecodeError):
        nms(np.zeros((3, 4)), np.zeros(2))
    with pytest.raises(DecodeError):
        nms(np.zeros((2, 4)), np.zeros(2), np.zeros(3))


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("where", ["boxes", "scores", "keypoints"])
def test_nms_refuses_nan_or_inf_inputs(where, value, weighted):
    arrays = {"boxes": np.array([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 9, 9]], np.float32),
              "scores": np.array([0.9, 0.8, 0.7], np.float32), "keypoints": np.zeros((3, 2, 2), np.float32)}
    assert len(nms(**arrays, weighted=weighted)) == 2
    arrays[where].reshape(-1)[4 if where != "scores" else 1] = value
    with pytest.raises(DecodeError, match=f"nms: {where} hold NaN or inf"):
        nms(**arrays, weighted=weighted)


# ---- Detections.to_source ------------------------------------------------------------------------

def _letterbox(src=(1920, 1080), dst=(640, 640)):
    return Preprocessor(TensorSpec("in", (1, dst[1], dst[0], 3), np.uint8), "BGR", src, resize="letterbox")


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 10), k=st.integers(0, 3),
       src=st.sampled_from([(1920, 1080), (1080, 1920), (640, 480), (333, 777)]))
def test_to_source_maps_boxes_and_keypoints_like_the_preprocessor(seed, n, k, src):
    rng = np.random.default_rng(seed)
    pre = _letterbox(src)
    xy = rng.uniform(-20, 600, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0, 200, (n, 2))], 1).astype(np.float32)
    kp = rng.uniform(-50, 700, (n, k, 2)).astype(np.float32) if k else None
    dets = Detections(boxes, rng.uniform(0, 1, n).astype(np.float32), rng.integers(0, 5, n).astype(np.int32), kp)
    out = dets.to_source(pre)
    assert_detections_shapes(out, num_keypoints=k)
    np.testing.assert_array_equal(out.boxes, pre.to_source(boxes).reshape(-1, 4))
    np.testing.assert_array_equal(out.scores, dets.scores)
    np.testing.assert_array_equal(out.classes, dets.classes)
    if k:
        np.testing.assert_array_equal(out.keypoints, pre.to_source(kp.reshape(-1, 2), clip=False).reshape(kp.shape))


def test_to_source_letterbox_geometry():
    """1920x1080 into 640x640: scale 1/3, 140 pixels of padding above; the content box maps to the frame."""
    pre = _letterbox()
    boxes = np.array([[0, 140, 640, 500], [320, 320, 330, 330]], np.float32)
    dets = Detections(boxes, np.array([0.9, 0.8], np.float32), np.array([0, 1], np.int32),
                      np.array([[[320, 320]], [[0, 0]]], np.float32))
    out = dets.to_source(pre)
    np.testing.assert_allclose(out.boxes, [[0, 0, 1920, 1080], [960, 540, 990, 570]], atol=1e-3)
    # Keypoints are not clipped: a point in the top padding maps above the frame.
    np.testing.assert_allclose(out.keypoints, [[[960, 540]], [[0, -420]]], atol=1e-3)
