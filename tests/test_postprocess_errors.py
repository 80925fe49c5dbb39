"""Bad settings and bad outputs for the decoders: one specific `edgert.core.errors` exception each, never a crash.

Settings are checked when a decoder is built (`ConfigError`); outputs when it runs (`DecodeError`).
Empty outputs and frames without candidates give empty `Detections` of the documented shapes.
The API is also fuzzed: whatever list of arrays comes in, a decoder returns `Detections` or raises
an `EdgertError`.
"""
import numpy as np
import pytest
from decode_cases import assert_detections_shapes
from hypothesis import given
from hypothesis import strategies as st

from edgert import Quantization, TensorSpec, _reference
from edgert.core.errors import ConfigError, DecodeError, EdgertError
from edgert.postprocess import SsdDecoder, YoloDecoder

NAN = float("nan")
V8 = TensorSpec("output0", (1, 7, 20), np.float32)  # 3 classes, 20 anchors
V8_Q = TensorSpec("output0", (1, 7, 20), np.int8, Quantization(1 / 255, -128))
SSD = [TensorSpec("regressors", (1, 8, 6), np.float32), TensorSpec("classificators", (1, 8, 2), np.float32)]
HAILO = TensorSpec("nms", (1, 3 * (1 + 5 * 4)), np.float32)  # 3 classes, 4 boxes each at most
SSD_ANCHORS = np.tile(np.array([[0.5, 0.5, 1.0, 1.0]], np.float32), (8, 1))


def _dfl_specs(nchw=True, nc=3, size=(32, 32), dtype=np.float32, quant=None):
    specs = []
    for s in (8, 16, 32):
        h, w = size[1] // s, size[0] // s
        for name, c in (("box", 64), ("cls", nc)):
            shape = (1, c, h, w) if nchw else (1, h, w, c)
            specs.append(TensorSpec(f"{name}{s}", shape, dtype, quant))
    return specs


def _v8_output(spec=V8, value=0.0):
    return np.full(spec.shape, value, spec.dtype)


def _raises(cls, word):
    """`pytest.raises` for `cls` whose message names `word`."""
    return pytest.raises(cls, match=rf"(?i){word}")


# ---- construction: ConfigError -------------------------------------------------------------------

@pytest.mark.parametrize("name,value", [("conf", -0.1), ("conf", 1.5), ("conf", NAN), ("conf", "high"),
                                        ("iou", -1e-6), ("iou", 2.0), ("iou", NAN), ("iou", None)])
def test_thresholds_outside_unit_interval_raise_config_error(name, value):
    kw = {"conf": 0.25, "iou": 0.45, name: value}
    with _raises(ConfigError, name):
        YoloDecoder([V8], kw["conf"], kw["iou"], input_size=(64, 64))
    with _raises(ConfigError, name):
        SsdDecoder(SSD, SSD_ANCHORS, kw["conf"], kw["iou"], input_size=(64, 64))


@pytest.mark.parametrize("make", [
    lambda: YoloDecoder([V8], labels=["a", "b"], input_size=(64, 64)),
    lambda: YoloDecoder([V8], labels=["a", "b", "c", "d"], input_size=(64, 64)),
    lambda: YoloDecoder([V8], num_classes=4, input_size=(64, 64)),
    lambda: YoloDecoder([TensorSpec("o", (1, 20, 8), np.float32)], layout="v5", labels=["a"] * 4, input_size=(9, 9)),
    lambda: YoloDecoder(_dfl_specs(), labels=["a"] * 80, input_size=(32, 32)),
    lambda: SsdDecoder(SSD, SSD_ANCHORS, labels=["face"], input_size=(64, 64)),
], ids=["v8 fewer", "v8 more", "num_classes", "v5", "dfl", "ssd"])
def test_labels_disagreeing_with_the_class_count_raise_config_error(make):
    with pytest.raises(ConfigError):
        make()


def test_matching_labels_are_accepted():
    assert YoloDecoder([V8], labels=["a", "b", "c"], input_size=(64, 64)).labels == ["a", "b", "c"]
    assert YoloDecoder([TensorSpec("o", (1, 20, 8), np.float32)], labels=["a", "b", "c", "d"],
                       input_size=(9, 9)).layout == "v8-rows"  # the labels tell v8-rows from v5


@pytest.mark.parametrize("make,word", [
    (lambda: YoloDecoder([]), "outputs"),
    (lambda: YoloDecoder([(1, 84, 8400)]), "outputs"),
    (lambda: YoloDecoder([V8], layout="v9"), "layout"),
    (lambda: YoloDecoder([V8], class_activation="softmax", input_size=(64, 64)), "activation"),
    (lambda: YoloDecoder([V8], max_det=0, input_size=(64, 64)), "max_det"),
    (lambda: YoloDecoder([V8], input_size=(0, 64)), "input_size"),
    (lambda: YoloDecoder([TensorSpec("o", (1, 4, 20), np.float32)], layout="v8", input_size=(9, 9)), "class"),
    (lambda: YoloDecoder([TensorSpec("o", (84, 8400), np.float32)], input_size=(9, 9)), "layout"),
    (lambda: YoloDecoder([V8, V8], layout="v8", input_size=(9, 9)), "one output"),
    (lambda: YoloDecoder([TensorSpec("o", (1, 7, 20), np.float16)], input_size=(9, 9)), "dtype"),
    (lambda: YoloDecoder([TensorSpec("o", (1, 7, 20), np.int8)], input_size=(9, 9)), "quantization"),
    (lambda: YoloDecoder(_dfl_specs()), "input_size"),
    (lambda: SsdDecoder(SSD, None, input_size=(64, 64)), "anchors"),
    (lambda: SsdDecoder(SSD, SSD_ANCHORS[:7], input_size=(64, 64)), "anchors"),
    (lambda: SsdDecoder(SSD, SSD_ANCHORS), "input_size"),
    (lambda: SsdDecoder(SSD, SSD_ANCHORS, input_size=(64, 64), layout="yolo"), "layout"),
    (lambda: SsdDecoder(SSD, SSD_ANCHORS, input_size=(64, 64), scale=(1, 1, 0, 1)), "scale"),
    (lambda: SsdDecoder(SSD[:1], SSD_ANCHORS, input_size=(64, 64), layout="anchors"), "two outputs"),
    (lambda: SsdDecoder([SSD[0], TensorSpec("c", (1, 9, 1), np.float32)], SSD_ANCHORS, input_size=(64, 64)), "boxes"),
    (lambda: SsdDecoder([TensorSpec("b", (1, 8, 4), np.float32)] * 3 + [TensorSpec("n", (1, 8), np.float32)],
                        input_size=(64, 64)), "tflite-postprocess"),
])
def test_bad_decoder_settings_raise_config_error(make, word):
    with _raises(ConfigError, word):
        make()


@pytest.mark.parametrize("layout,spec", [
    ("v8", TensorSpec("o", (1, 7, 20), np.int8, Quantization([0.1] * 7, [0] * 7, axis=1))),
    ("v8-rows", TensorSpec("o", (1, 20, 7), np.uint8, Quantization([0.1] * 7, [0] * 7, axis=2))),
    ("v5", TensorSpec("o", (1, 20, 7), np.int8, Quantization([0.1] * 20, [0] * 20, axis=1))),
])
def test_per_channel_quantized_yolo_scores_raise_config_error(layout, spec):
    with _raises(ConfigError, "per-channel"):
        YoloDecoder([spec], layout=layout, input_size=(64, 64))


def test_per_channel_quantized_dfl_and_ssd_scores_raise_config_error():
    specs = _dfl_specs(dtype=np.int8, quant=Quantization(0.1, 0))
    cls = specs[1]
    specs[1] = TensorSpec(cls.name, cls.shape, np.int8, Quantization([0.1] * 3, [0] * 3, axis=1))
    with _raises(ConfigError, "per-channel"):
        YoloDecoder(specs, input_size=(32, 32))
    ssd = [SSD[0], TensorSpec("classificators", (1, 8, 2), np.int8, Quantization([0.1, 0.2], [0, 0], axis=2))]
    with _raises(ConfigError, "per-channel"):
        SsdDecoder(ssd, SSD_ANCHORS, input_size=(64, 64))


@pytest.mark.parametrize("specs", [
    _dfl_specs()[:-1],  # the stride-32 class tensor is missing
    _dfl_specs() + [TensorSpec("extra", (1, 5, 4, 4), np.float32)],  # two class tensors at stride 8
    _dfl_specs() + [TensorSpec("box8b", (1, 64, 4, 4), np.float32)],  # two box tensors at stride 8
    [TensorSpec("box", (1, 64, 4, 4), np.float32), TensorSpec("cls", (1, 3, 2, 2), np.float32)],  # sizes differ
    _dfl_specs()[:2] + [TensorSpec("flat", (1, 3, 16), np.float32)],  # not 4-D
    [TensorSpec(s.name, s.shape, np.float32) for s in _dfl_specs(nc=64)],  # classes and box bins alike
], ids=["missing", "two classes", "two boxes", "sizes", "3-D", "64 classes"])
def test_unpairable_dfl_outputs_raise_config_error(specs):
    with _raises(ConfigError, "dfl"):
        YoloDecoder(specs, layout="dfl", input_size=(32, 32))


# ---- running: DecodeError ------------------------------------------------------------------------

def _decoders(conf=0.25):
    """Decoders of each kind, with one valid list of outputs each (nothing detected unless conf is 0)."""
    v8 = YoloDecoder([V8], conf, input_size=(64, 64))
    v8q = YoloDecoder([V8_Q], conf, input_size=(64, 64))
    v5 = YoloDecoder([TensorSpec("o", (1, 20, 8), np.float32)], conf, layout="v5", input_size=(64, 64))
    dfl_specs = _dfl_specs(nchw=False)
    dfl = YoloDecoder(dfl_specs, conf, input_size=(32, 32))
    ssd = SsdDecoder(SSD, SSD_ANCHORS, conf, input_size=(64, 64))
    hailo = YoloDecoder([HAILO], conf, layout="hailo-nms", num_classes=3, max_bboxes=4, input_size=(64, 64))
    return {
        "hailo-nms": (hailo, [np.zeros(HAILO.shape, np.float32)]),
        "v8": (v8, [_v8_output()]),
        "v8-int8": (v8q, [_v8_output(V8_Q, -128)]),
        "v5": (v5, [np.zeros((1, 20, 8), np.float32)]),
        "dfl": (dfl, [np.zeros(s.shape, np.float32) for s in dfl_specs]),
        "ssd": (ssd, [np.zeros((1, 8, 6), np.float32), np.full((1, 8, 2), -9.0, np.float32)]),
    }


DECODERS = sorted(_decoders())


@pytest.mark.parametrize("kind", DECODERS)
def test_outputs_without_candidates_give_empty_detections(kind):
    dec, outs = _decoders()[kind]
    dets = dec(outs)
    assert len(dets) == 0
    assert_detections_shapes(dets, dec.num_keypoints if kind == "ssd" else 0)


@pytest.mark.parametrize("kind", DECODERS)
def test_wrong_number_of_outputs_raises_decode_error(kind):
    dec, outs = _decoders()[kind]
    with pytest.raises(DecodeError):
        dec(outs + [outs[0]])
    with pytest.raises(DecodeError):
        dec(outs[:-1])
    with pytest.raises(DecodeError):
        dec(outs[0])  # an array, not a list of arrays
    with pytest.raises(DecodeError):
        dec(None)


@pytest.mark.parametrize("kind", DECODERS)
def test_output_shape_not_matching_the_spec_raises_decode_error(kind):
    dec, outs = _decoders()[kind]
    for i, o in enumerate(outs):
        bad = list(outs)
        bad[i] = np.concatenate([o, o], axis=-1)
        with _raises(DecodeError, "shape"):
            dec(bad)
        bad[i] = o[0]  # batch axis dropped
        with _raises(DecodeError, "shape"):
            dec(bad)


@pytest.mark.parametrize("kind", DECODERS)
def test_output_dtype_not_matching_the_spec_raises_decode_error(kind):
    dec, outs = _decoders()[kind]
    for i, o in enumerate(outs):
        for dtype in (np.float64, np.uint8 if o.dtype != np.uint8 else np.int8):
            bad = list(outs)
            bad[i] = o.astype(dtype)
            with _raises(DecodeError, "dtype|float32 buffer"):
                dec(bad)


@pytest.mark.parametrize("value", [NAN, np.inf, -np.inf])
def test_nan_or_inf_in_float_scores_raises_decode_error(value):
    out = _v8_output()
    out[0, 4:, :] = 0.9
    for pos in [(0, 4, 0), (0, 6, 19), (0, 5, 7)]:
        bad = out.copy()
        bad[pos] = value
        with _raises(DecodeError, "NaN or inf"):
            YoloDecoder([V8], input_size=(64, 64), normalized=False)([bad])
    rows = np.full((1, 20, 7), 0.9, np.float32)
    rows[0, 3, 5] = value
    with _raises(DecodeError, "NaN or inf"):
        YoloDecoder([TensorSpec("o", (1, 20, 7), np.float32)], layout="v8-rows", input_size=(64, 64))([rows])


@pytest.mark.parametrize("value", [NAN, np.inf, -np.inf])
@pytest.mark.parametrize("column", [4, 5, 6, 7])
def test_nan_or_inf_in_float_v5_scores_raises_decode_error(column, value):
    """v5 (objectness in column 4, classes 5..7): a NaN or inf anywhere among the scores is an error."""
    x = np.full((1, 20, 8), 0.9, np.float32)
    x[0, 6, column] = value
    with _raises(DecodeError, "NaN or inf"):
        YoloDecoder([TensorSpec("o", (1, 20, 8), np.float32)], layout="v5", input_size=(64, 64))([x])


def test_nan_or_inf_in_a_candidate_box_raises_decode_error():
    out = _v8_output()
    out[0, 4, 3] = 0.9  # anchor 3 is a candidate
    for v in (NAN, np.inf):
        bad = out.copy()
        bad[0, 1, 3] = v
        with pytest.raises(DecodeError):
            YoloDecoder([V8], input_size=(64, 64), normalized=False)([bad])


def test_nan_in_dfl_outputs_raises_decode_error():
    specs = _dfl_specs(nchw=True)
    arrays = [np.zeros(s.shape, np.float32) for s in specs]
    arrays[1][0, 2, 1, 1] = 0.9  # a candidate at stride 8
    dec = YoloDecoder(specs, input_size=(32, 32))
    assert len(dec(arrays)) == 1
    bad = [a.copy() for a in arrays]
    bad[1][0, 0, 0, 0] = NAN
    with pytest.raises(DecodeError):
        dec(bad)
    bad = [a.copy() for a in arrays]
    bad[0][0, 5, 1, 1] = NAN  # a bin of the candidate's box
    with pytest.raises(DecodeError):
        dec(bad)


def test_nan_in_ssd_outputs_raises_decode_error():
    dec = SsdDecoder(SSD, SSD_ANCHORS, input_size=(64, 64))
    reg = np.zeros((1, 8, 6), np.float32)
    reg[0, :, 2:4] = 10
    scores = np.full((1, 8, 2), -9.0, np.float32)
    scores[0, 2, 1] = 3.0
    assert len(dec([reg, scores])) == 1
    for value in (NAN, np.inf, -np.inf):
        bad = scores.copy()
        bad[0, 5, 0] = value
        with _raises(DecodeError, "NaN or inf"):
            dec([reg, bad])
    bad = reg.copy()
    bad[0, 2, 0] = NAN
    with pytest.raises(DecodeError):
        dec([bad, scores])


@pytest.mark.parametrize("spec", [TensorSpec("o", (1, 84, 0), np.float32),
                                  TensorSpec("o", (1, 84, 0), np.int8, Quantization(1 / 255, -128)),
                                  TensorSpec("o", (1, 0, 84), np.float32)])
def test_empty_output_tensor_gives_empty_detections(spec):
    layout = "v8" if spec.shape[1] == 84 else "v8-rows"
    dec = YoloDecoder([spec], layout=layout, input_size=(64, 64))
    dets = dec([np.zeros(spec.shape, spec.dtype)])
    assert len(dets) == 0
    assert_detections_shapes(dets)


# ---- fuzzing -------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", DECODERS)
@given(data=st.data())
def test_decoders_never_crash(kind, data):
    """Any list of arrays of plausible and implausible shapes and dtypes: Detections or an EdgertError.

    Each array is the valid one, values aside, three times in four, so whole valid lists are common and
    the decoding itself is reached. conf=0, so that finite valid outputs always have candidates
    (frames without any are `test_outputs_without_candidates_give_empty_detections`).
    """
    dec, outs = _decoders(conf=0.0)[kind]
    n = data.draw(st.sampled_from([len(outs)] * 4 + [0, 1, len(outs) + 1]))
    arrays = []
    for i in range(n):
        like = outs[i % len(outs)]
        shape, dtype = like.shape, like.dtype
        if data.draw(st.sampled_from([False, False, False, True])):
            shape = data.draw(st.sampled_from([like.shape[1:], (1,) + like.shape, ()]) |
                              st.lists(st.integers(0, 9), max_size=4).map(tuple))
            dtype = data.draw(st.sampled_from([like.dtype, np.float32, np.float64, np.int8, np.uint8, np.int32]))
        fill = data.draw(st.sampled_from([0.0, 0.5, 1.0, -1.0, 100.0, NAN]))
        arrays.append(np.full(shape, fill if np.dtype(dtype).kind == "f" else int(fill == fill) * 100, dtype))
    try:
        dets = dec(arrays)
    except EdgertError:
        return
    assert_detections_shapes(dets, dec.num_keypoints if kind == "ssd" else 0)


# ---- the twins on the same edge cases ------------------------------------------------------------

_ANCHORS2 = np.array([[0.5, 0.5, 1, 1]] * 2, np.float32)
_NO_FACE = np.full((1, 2, 1), -9.0, np.float32)


@pytest.mark.parametrize("call", [
    pytest.param(lambda: _reference.decode_ssd_anchors(
        np.zeros((1, 2, 6), np.float32), _NO_FACE, _ANCHORS2, TensorSpec("r", (1, 2, 6), np.float32),
        TensorSpec("c", (1, 2, 1), np.float32), 0.5, 0.3, (64, 64), (64, 64, 64, 64)),
        id="ssd no candidates"),
    pytest.param(lambda: _reference.decode_ssd_anchors(
        np.zeros((1, 2, 4), np.float32), _NO_FACE, _ANCHORS2, TensorSpec("r", (1, 2, 4), np.float32),
        TensorSpec("c", (1, 2, 1), np.float32), 0.5, 0.3, (64, 64), (64, 64, 64, 64)),
        id="ssd no keypoints no candidates"),
    pytest.param(lambda: _reference.nms(np.zeros((0, 4)), np.zeros(0), weighted=True, keypoints=np.zeros((0, 3, 2))),
                 id="weighted nms of nothing"),
    pytest.param(lambda: _reference.decode_yolo_dfl(
        [np.zeros((1, 64, 2, 2), np.float32), np.zeros((1, 1, 2, 2), np.float32)],
        [TensorSpec("b", (1, 64, 2, 2), np.float32), TensorSpec("c", (1, 1, 2, 2), np.float32)], True, 0.5, 0.5,
        (16, 16)),
        id="dfl single class"),
])
def test_twins_decode_empty_and_single_class_cases(call):
    """The twins return empty results where the decoders do, so they can serve as the spec there too."""
    boxes, scores, classes, _ = call()
    assert len(scores) == len(classes) == np.asarray(boxes).reshape(-1, 4).shape[0] == 0
