"""`edgert.postprocess.ctc`: the compiled greedy CTC decode against `_reference_ctc`, hand cases, refusals.

Scores come from few levels, so equal maxima (argmax ties) and runs of one class are everywhere.
Labels must equal the twin's exactly; confidences within 1e-6 relative (the twin sums a softmax in
another order).
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgert import Quantization, TensorSpec
from edgert._reference_ctc import greedy_decode
from edgert.core.errors import ConfigError, DecodeError
from edgert.postprocess.ctc import CtcDecoder, read_dictionary

DTYPES = (np.int8, np.uint8, np.int16, np.float32)


def _dictionary(n: int) -> list:
    return [chr(ord("A") + i) if i < 26 else f"<{i}>" for i in range(n)]


@st.composite
def ctc_cases(draw):
    """``(scores, spec, blank, probabilities, seed)`` for random (T, C) outputs with ties and runs."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # Class counts around the kernel's lanes (64), search chunks (128, 16) and PP-OCR's 6625.
    t = draw(st.integers(1, 60))
    c = draw(st.one_of(st.integers(2, 40), st.integers(60, 300),
                       st.sampled_from([63, 64, 65, 127, 128, 129, 143, 144, 145, 1023, 1024, 1025, 6625])))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    levels = draw(st.sampled_from([2, 3, 16, 1000]))
    # Runs: each step copies the previous one with probability 1/2, so repeats and blank gaps occur.
    rows = rng.integers(0, levels, (t, c))
    for i in range(1, t):
        if rng.uniform() < 0.5:
            rows[i] = rows[i - 1]
    if dtype == np.float32:
        x = (rows / (levels - 1) * draw(st.sampled_from([1.0, 20.0]))).astype(np.float32)
        quant = None
    else:
        info = np.iinfo(dtype)
        span = min(levels, info.max - info.min + 1)
        x = (info.min + rows % span).astype(dtype)
        quant = Quantization(float(rng.uniform(0.001, 0.2)), int(rng.integers(info.min, info.max + 1)))
    blank = draw(st.sampled_from([0, c - 1]))
    batch = draw(st.booleans())
    shape = (1, t, c) if batch else (t, c)
    spec = TensorSpec("scores", shape, dtype, quant)
    return x.reshape(shape), spec, blank, draw(st.booleans()), seed


@settings(max_examples=150, deadline=None)
@given(ctc_cases())
def test_kernel_matches_twin(case):
    x, spec, blank, probabilities, seed = case
    decoder = CtcDecoder(spec, _dictionary(spec.shape[-1] - 1), blank=blank, probabilities=probabilities)
    got = decoder(x)
    q = spec.quant
    want = greedy_decode(x.reshape(spec.shape[-2:]), blank, not probabilities,
                         float(q.scale) if q else 1.0, int(q.zero_point) if q else 0)
    np.testing.assert_array_equal(got.labels, want[0], err_msg=f"seed {seed}")
    np.testing.assert_allclose(got.confidences, want[1], rtol=1e-6, atol=1e-7, err_msg=f"seed {seed}")
    assert got.text == "".join(decoder.characters[k] for k in want[0])
    assert blank not in got.labels.tolist()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("classes", [70, 200, 6625])
def test_first_of_equal_maxima_across_lanes_and_chunks(dtype, classes):
    """The best class is the lowest index among equal maxima wherever they fall: in one lane, across
    lanes, across search chunks, in the overlapping last lanes; as numpy.argmax picks."""
    places = [p for p in (0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 143, 144, classes - 65, classes - 64,
                          classes - 2, classes - 1) if 0 <= p < classes]
    pairs = [(a, b) for a in places for b in places if a < b] + [(a, a) for a in places]
    x = np.zeros((len(pairs), classes), dtype)
    for i, (a, b) in enumerate(pairs):
        x[i, a] = x[i, b] = 7
    d = CtcDecoder(TensorSpec("s", x.shape, np.dtype(dtype), None if dtype == np.float32 else Quantization(0.1, 0)),
                   _dictionary(classes - 1), blank=classes - 1)
    want = np.argmax(x, axis=1)
    assert want.tolist() == [a for a, _ in pairs]
    # Rows one at a time (a repeat would collapse): each row's single label is its first maximum.
    for i in range(len(pairs)):
        got = d(np.ascontiguousarray(np.broadcast_to(x[i], x.shape)))
        assert got.labels.tolist() == ([] if want[i] == classes - 1 else [want[i]]), pairs[i]


def test_signed_zero_maxima_tie_like_argmax():
    d = CtcDecoder(TensorSpec("s", (1, 300), np.float32), _dictionary(299), blank=299)
    x = np.full((1, 300), -1.0, np.float32)
    x[0, 130], x[0, 200] = -0.0, 0.0
    assert d(x).labels.tolist() == [130] == np.argmax(x, axis=1).tolist()


def test_results_are_own_arrays_and_strided_outputs_decode():
    d = CtcDecoder(TensorSpec("s", (2, 6, 3), np.float32), ["a", "b"])
    x = np.stack([_one_hot([1, 1, 0, 2, 2, 2], 3), _one_hot([2, 0, 1, 0, 0, 2], 3)])
    a, b = d(x), d(x, 1)
    assert (a.text, b.text) == ("ab", "bab")
    assert a.labels.base is None and a.confidences.base is None and a.labels.dtype == np.int32
    assert a.confidences.dtype == np.float32 and len(a.confidences) == 2
    wide = np.zeros((2, 6, 6), np.float32)
    wide[:, :, ::2] = x
    assert [line.text for line in d.lines(wide[:, :, ::2])] == ["ab", "bab"]
    for bad in (2, -1, 1.0):
        with pytest.raises(DecodeError, match="line"):
            d(x, bad)


def _one_hot(path: list, c: int, p: float = 0.9) -> np.ndarray:
    x = np.full((len(path), c), (1 - p) / (c - 1), np.float32)
    x[np.arange(len(path)), path] = p
    return x


def test_collapse_repeats_and_blanks():
    d = CtcDecoder(TensorSpec("s", (8, 4), np.float32), ["a", "b", "c"])
    # a a - a b b - - : blank between the two a's keeps both
    x = _one_hot([1, 1, 0, 1, 2, 2, 0, 0], 4)
    x[1, 1] = 0.95
    out = d(x)
    assert out.text == "aab"
    np.testing.assert_allclose(out.confidences, [0.95, 0.9, 0.9], rtol=1e-6)
    assert out.confidence == pytest.approx(0.9)


def test_softmax_confidences_from_logits():
    d = CtcDecoder(TensorSpec("s", (1, 2, 3), np.float32), ["x", "y"], probabilities=False)
    logits = np.array([[[0.0, 2.0, 0.0], [0.0, 0.0, 1.0]]], np.float32)
    out = d(logits)
    assert out.text == "xy"
    e = np.exp(logits[0])
    np.testing.assert_allclose(out.confidences, [e[0, 1] / e[0].sum(), e[1, 2] / e[1].sum()], rtol=1e-6)


def test_int8_probabilities_dequantized():
    spec = TensorSpec("s", (3, 3), np.int8, Quantization(1 / 256, -128))
    d = CtcDecoder(spec, ["1", "2"])
    x = np.array([[-128, 100, -128], [-128, -128, 0], [127, -128, -128]], np.int8)
    out = d(x)
    assert out.text == "12"
    np.testing.assert_allclose(out.confidences, [228 / 256, 128 / 256])


def test_space_class_and_blank_last():
    d = CtcDecoder(TensorSpec("s", (3, 4), np.float32), ["a", "b"], blank=3, space=True)
    assert d.characters == ("a", "b", " ", "")
    assert d(_one_hot([0, 2, 1], 4)).text == "a b"


def test_empty_read_and_batch_lines():
    d = CtcDecoder(TensorSpec("s", (2, 5, 3), np.float32), ["a", "b"])
    x = np.stack([_one_hot([0] * 5, 3), _one_hot([1, 0, 2, 2, 0], 3)])
    lines = d.lines(x)
    assert [line.text for line in lines] == ["", "ab"]
    assert lines[0].confidence == 0.0 and len(lines[0].labels) == 0


def test_dictionary_size_mismatch_names_both_sizes():
    with pytest.raises(ConfigError, match=r"3 entries .*= 5 classes.* 6625 classes"):
        CtcDecoder(TensorSpec("s", (1, 40, 6625), np.float32), ["a", "b", "c"], space=True)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((5, 4), np.float32), "shape"),
    (np.zeros((6, 3), np.int8), "dtype"),
    ([[0.0]], "numpy"),
])
def test_bad_outputs_refused(bad, match):
    d = CtcDecoder(TensorSpec("s", (6, 3), np.float32), ["a", "b"])
    with pytest.raises(DecodeError, match=match):
        d(bad)


@pytest.mark.parametrize("classes, at", [(3, 2), (200, 5), (200, 199), (130, 64)])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_refused(classes, at, bad):
    d = CtcDecoder(TensorSpec("s", (2, classes), np.float32), _dictionary(classes - 1))
    x = np.zeros((2, classes), np.float32)
    x[1, at] = bad
    with pytest.raises(DecodeError, match="NaN"):
        d(x)


def test_bad_specs_refused():
    with pytest.raises(ConfigError, match="blank"):
        CtcDecoder(TensorSpec("s", (2, 3), np.float32), ["a", "b"], blank=3)
    with pytest.raises(ConfigError, match="float64|dtype"):
        CtcDecoder(TensorSpec("s", (2, 3), np.float64), ["a", "b"])


def test_read_dictionary(tmp_path):
    p = tmp_path / "keys.txt"
    p.write_text("a\nb\n", encoding="utf-8")
    assert read_dictionary(p) == ("a", "b")
    p.write_text("a\n\nb\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line 2 is empty"):
        read_dictionary(p)
    with pytest.raises(ConfigError, match="unreadable"):
        read_dictionary(tmp_path / "missing.txt")


def test_ppocr_card_decoder_fits_the_model():
    from edgert.models.reference import model_path
    from edgert.models.cards import read_card

    path = model_path("builtin:ch_PP-OCRv4_rec")
    card = read_card(path)
    spec = TensorSpec("softmax_11.tmp_0", (1, 40, 6625), np.float32)
    d = CtcDecoder.from_card(spec, card.decoder, path.parent)
    assert len(d.characters) == 6625 and d.characters[0] == "" and d.characters[-1] == " "
    assert set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-.") <= set(d.characters)
    with pytest.raises(ConfigError, match="6625 classes"):
        CtcDecoder.from_card(TensorSpec("s", (1, 40, 6625), np.float32), {**card.decoder, "space": False},
                             path.parent)
