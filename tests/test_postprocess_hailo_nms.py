"""Hailo on-chip NMS output (HAILO_NMS_BY_CLASS, float32): `parse_hailo_nms` and `YoloDecoder(layout="hailo-nms")`.

The raw buffer is built here from HailoRT's definition: per class a box count (as float32), then that
many ``y_min, x_min, y_max, x_max, score`` rows, classes back to back, the whole buffer sized
``num_classes * (1 + 5 * max_bboxes)`` floats. The list form is what ``get_buffer()`` returns with
the NMS-by-class format: one ``(n_i, 5)`` array per class. Both must parse to the same detections:
boxes xyxy in input pixels (normalised coordinates times the input size), best first.
"""
import numpy as np
import pytest
from decode_cases import assert_detections_shapes, assert_identical
from hypothesis import given
from hypothesis import strategies as st

from edgert import TensorSpec
from edgert.core.errors import ConfigError, DecodeError
from edgert.postprocess import YoloDecoder, parse_hailo_nms


def raw_buffer(per_class, max_bboxes: int) -> np.ndarray:
    """The HAILO_NMS_BY_CLASS float32 buffer of per-class ``(n_i, 5)`` rows."""
    buf = np.zeros(len(per_class) * (1 + 5 * max_bboxes), np.float32)
    p = 0
    for rows in per_class:
        buf[p] = len(rows)
        buf[p + 1:p + 1 + 5 * len(rows)] = np.asarray(rows, np.float32).reshape(-1)
        p += 1 + 5 * len(rows)
    return buf


@st.composite
def nms_outputs(draw):
    """``(per_class, num_classes, max_bboxes)``: random per-class detections, ties in scores included."""
    num_classes = draw(st.integers(1, 6))
    max_bboxes = draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    per_class = []
    for _ in range(num_classes):
        n = int(rng.integers(0, max_bboxes + 1))
        y0, x0 = rng.uniform(0, 0.7, n), rng.uniform(0, 0.7, n)
        score = rng.choice([0.3, 0.5, 0.9], n) if draw(st.booleans()) else rng.uniform(0, 1, n)
        rows = np.stack([y0, x0, y0 + rng.uniform(0, 0.3, n), x0 + rng.uniform(0, 0.3, n), score], 1)
        per_class.append(rows.astype(np.float32))
    return per_class, num_classes, max_bboxes


def expected(per_class, size, conf=0.0):
    """Boxes xyxy in pixels, scores, classes: best first, class order then row order among equal scores."""
    w, h = size
    items = [(r, c, k) for c, rows in enumerate(per_class) for k, r in enumerate(rows) if r[4] >= np.float32(conf)]
    items.sort(key=lambda t: (-float(t[0][4]), t[1], t[2]))
    boxes = np.array([[r[1] * w, r[0] * h, r[3] * w, r[2] * h] for r, _, _ in items], np.float32).reshape(-1, 4)
    return boxes, np.array([r[4] for r, _, _ in items], np.float32), np.array([c for _, c, _ in items], np.int32)


@given(out=nms_outputs(), size=st.sampled_from([(640, 640), (640, 480), (300, 200)]),
       conf=st.sampled_from([0.0, 0.5]) | st.floats(0, 1, width=32))
def test_raw_buffer_and_list_form_parse_to_the_same_detections(out, size, conf):
    per_class, num_classes, max_bboxes = out
    from_raw = parse_hailo_nms(raw_buffer(per_class, max_bboxes), num_classes, max_bboxes, size, conf)
    from_list = parse_hailo_nms(per_class, num_classes, max_bboxes, size, conf)
    assert_detections_shapes(from_raw)
    assert_identical(from_raw, from_list)
    boxes, scores, classes = expected(per_class, size, conf)
    np.testing.assert_allclose(from_raw.boxes, boxes, rtol=1e-6)
    np.testing.assert_array_equal(from_raw.scores, scores)
    np.testing.assert_array_equal(from_raw.classes, classes)


def test_all_classes_empty_gives_empty_detections():
    dets = parse_hailo_nms(raw_buffer([[], [], []], 4), 3, 4, (640, 640))
    assert len(dets) == 0
    assert_detections_shapes(dets)
    dets = parse_hailo_nms([np.zeros((0, 5), np.float32)] * 3, 3, 4, (640, 640))
    assert len(dets) == 0
    assert_detections_shapes(dets)


def test_raw_buffer_may_have_a_batch_axis():
    """A (1, size) buffer (as a spec with a batch axis gives it) parses like the flat one."""
    per_class = [[[0.1, 0.2, 0.3, 0.4, 0.9]], []]
    buf = raw_buffer(per_class, 2)
    assert_identical(parse_hailo_nms(buf[None], 2, 2, (100, 100)), parse_hailo_nms(buf, 2, 2, (100, 100)))


def _buffer_with(mutate):
    buf = raw_buffer([[[0.1, 0.1, 0.2, 0.2, 0.9]], [[0.3, 0.3, 0.5, 0.5, 0.8], [0.6, 0.6, 0.7, 0.7, 0.7]]], 3)
    return mutate(buf)


def _set(i, v):
    def f(buf):
        buf[i] = v
        return buf
    return f


@pytest.mark.parametrize("buf", [
    _buffer_with(_set(0, 4.0)),  # class 0 claims 4 boxes, max_bboxes is 3
    _buffer_with(_set(0, -1.0)),
    _buffer_with(_set(0, 1.5)),
    _buffer_with(_set(0, np.nan)),
    _buffer_with(_set(3, np.nan)),  # a NaN coordinate
    _buffer_with(_set(5, np.nan)),  # a NaN score
    _buffer_with(lambda b: b[:-1]),  # short buffer
    _buffer_with(lambda b: b[:10]),
    _buffer_with(lambda b: b.astype(np.float64)),
], ids=["count>max", "negative count", "fractional count", "NaN count", "NaN coordinate", "NaN score", "short",
        "very short", "float64"])
def test_bad_raw_buffers_raise_decode_error(buf):
    with pytest.raises(DecodeError):
        parse_hailo_nms(buf, 2, 3, (640, 640))


def test_wrong_class_count_raises_decode_error():
    per_class = [np.zeros((0, 5), np.float32)] * 3
    with pytest.raises(DecodeError):
        parse_hailo_nms(per_class, 4, 3, (640, 640))
    with pytest.raises(DecodeError):  # 4 classes x (1 + 5 x 3) floats do not fit a 3-class buffer
        parse_hailo_nms(raw_buffer(per_class, 3), 4, 3, (640, 640))


@pytest.mark.parametrize("rows", [np.zeros((2, 4), np.float32), np.zeros((5, 4), np.float32),
                                  np.full((4, 5), 0.5, np.float32)],
                         ids=["2x4", "5x4", "more than max_bboxes"])
def test_list_form_bad_rows_raise_decode_error(rows):
    """Each class's array must be (n, 5) with n <= max_bboxes, as the raw form enforces."""
    with pytest.raises(DecodeError):
        parse_hailo_nms([rows], 1, 3, (640, 640))


def test_list_form_nan_raises_decode_error():
    per_class = [np.array([[0.1, 0.1, 0.2, 0.2, np.nan]], np.float32)]
    with pytest.raises(DecodeError):
        parse_hailo_nms(per_class, 1, 3, (640, 640))


# ---- through YoloDecoder -------------------------------------------------------------------------

def _hailo_spec(num_classes, max_bboxes):
    return TensorSpec("yolov8n/yolov8_nms_postprocess", (num_classes * (1 + 5 * max_bboxes),), np.float32)


@given(out=nms_outputs(), max_det=st.integers(1, 12), conf=st.sampled_from([0.0, 0.4]))
def test_yolo_decoder_hailo_nms_uses_the_parser_and_caps_at_max_det(out, max_det, conf):
    per_class, num_classes, max_bboxes = out
    size = (640, 480)
    dec = YoloDecoder([_hailo_spec(num_classes, max_bboxes)], conf=conf, layout="hailo-nms", num_classes=num_classes,
                      input_size=size, max_bboxes=max_bboxes, max_det=max_det)
    for form in (raw_buffer(per_class, max_bboxes), per_class):
        dets = dec([form])
        assert_detections_shapes(dets)
        boxes, scores, classes = expected(per_class, size, conf)
        assert len(dets) == min(max_det, len(scores))
        np.testing.assert_allclose(dets.boxes, boxes[:max_det], rtol=1e-6)
        np.testing.assert_array_equal(dets.scores, scores[:max_det])
        np.testing.assert_array_equal(dets.classes, classes[:max_det])


def test_yolo_decoder_hailo_nms_takes_the_class_count_from_labels():
    labels = ["person", "car"]
    dec = YoloDecoder([_hailo_spec(2, 3)], layout="hailo-nms", labels=labels, input_size=(640, 640), max_bboxes=3)
    assert dec.num_classes == 2
    dets = dec([raw_buffer([[], [[0.1, 0.1, 0.2, 0.2, 0.9]]], 3)])
    np.testing.assert_array_equal(dets.classes, [1])


@pytest.mark.parametrize("kwargs", [dict(input_size=(640, 640)),  # no class count
                                    dict(num_classes=2),  # no input size
                                    dict(num_classes=2, labels=["a", "b", "c"], input_size=(640, 640))])
def test_yolo_decoder_hailo_nms_config_errors(kwargs):
    with pytest.raises(ConfigError):
        YoloDecoder([_hailo_spec(2, 3)], layout="hailo-nms", max_bboxes=3, **kwargs)
