"""`dequantize` and `classify` against their NumPy twins (`_reference.dequantize`, `_reference.top_k`).

dequantize: exact equality over int8/uint8/int16, shapes of 1 to 4 axes (empty ones included),
per-tensor and per-axis quantization, contiguous and strided inputs.

classify: ranking on the raw values, largest first and the lower index first among equal values
(checked against the twin and as a property), scores equal to the dequantized values, softmax over
all classes (rtol 1e-5 against NumPy), and one `edgert.core.errors` exception per kind of bad input.
"""
import importlib
import importlib.machinery

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgert import Quantization, TensorSpec, _reference
from edgert.core.errors import ConfigError, DecodeError, EdgertError
from edgert.postprocess import classify, dequantize

DTYPES = (np.int8, np.uint8, np.int16)


def test_decoding_kernels_are_compiled():
    """The decoders run the compiled module, not a Python fallback."""
    mod = importlib.import_module("edgert._ext.postprocess")
    assert mod.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), mod.__file__
    assert isinstance(mod.__loader__, importlib.machinery.ExtensionFileLoader)


# ---- dequantize ----------------------------------------------------------------------------------

@st.composite
def quantized_arrays(draw):
    """``(q, quant)``: an integer array (possibly empty, possibly strided) and a quantization for it."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    info = np.iinfo(dtype)
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(0, 5) | st.integers(1, 3), min_size=ndim, max_size=ndim)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    strided = draw(st.booleans())
    if strided:  # a view with gaps: every other element of a larger array along the last axis
        big = rng.integers(info.min, info.max, shape[:-1] + (2 * shape[-1],), endpoint=True).astype(dtype)
        q = big[..., ::2]
    else:
        q = rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
    scales = st.floats(1e-4, 10.0) | st.sampled_from([1.0, 0.5, 1 / 255, 0.00390625])
    zps = st.integers(int(info.min), int(info.max)) if dtype != np.int16 else st.integers(-300, 300)
    axes = [a for a in range(ndim) if shape[a] >= 1]
    if draw(st.booleans()) and axes:
        axis = draw(st.sampled_from(axes))
        c = shape[axis]
        quant = Quantization(draw(st.lists(scales, min_size=c, max_size=c)),
                             draw(st.lists(zps, min_size=c, max_size=c)),
                             axis=axis - draw(st.sampled_from([0, ndim])))  # also negative axes
    else:
        quant = Quantization(draw(scales), draw(zps))
    return q, quant


@given(qq=quantized_arrays())
def test_dequantize_equals_twin_exactly(qq):
    """Every element is ``float32(q - zero_point) * scale`` of its channel, bit for bit."""
    q, quant = qq
    got = dequantize(q, quant)
    want = _reference.dequantize(q, quant)
    assert got.dtype == np.float32 and got.shape == q.shape
    np.testing.assert_array_equal(got, want)
    # A TensorSpec carrying the quantization gives the same.
    spec = TensorSpec("t", q.shape, q.dtype, quant)
    np.testing.assert_array_equal(dequantize(q, spec), want)


def test_dequantize_per_axis_uses_each_channel_own_parameters():
    """Per-axis parameters apply along the given axis, not along another one of the same length."""
    q = np.arange(9, dtype=np.int8).reshape(3, 3)
    quant = Quantization([1.0, 2.0, 4.0], [0, 1, 2], axis=1)
    want = (q.astype(np.float32) - np.array([0, 1, 2])) * np.array([1.0, 2.0, 4.0], np.float32)
    np.testing.assert_array_equal(dequantize(q, quant), want)
    np.testing.assert_array_equal(dequantize(q, Quantization([1.0, 2.0, 4.0], [0, 1, 2], axis=-1)), want)
    rows = (q.astype(np.float32) - np.array([[0], [1], [2]])) * np.array([[1.0], [2.0], [4.0]], np.float32)
    np.testing.assert_array_equal(dequantize(q, Quantization([1.0, 2.0, 4.0], [0, 1, 2], axis=0)), rows)


@pytest.mark.parametrize("q,quant,exc", [
    (np.zeros(3, np.float32), Quantization(0.1, 0), DecodeError),
    (np.zeros(3, np.int32), Quantization(0.1, 0), DecodeError),
    (np.zeros((2, 3), np.int8), Quantization([0.1, 0.2], [0, 0], axis=1), DecodeError),
    (np.zeros(3, np.int8), TensorSpec("t", (3,), np.float32), ConfigError),
    (np.zeros(3, np.int8), 0.5, ConfigError),
])
def test_dequantize_rejects_bad_input(q, quant, exc):
    with pytest.raises(exc):
        dequantize(q, quant)


# ---- classify ------------------------------------------------------------------------------------

@st.composite
def classifier_outputs(draw):
    """``(output, spec)`` of a classifier: int8/uint8/int16 (quantized) or float32, with many ties."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES + (np.float32,))))
    c = draw(st.integers(1, 300))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    distinct = draw(st.sampled_from([1, 2, 3, 10, 1000]))
    if dtype == np.float32:
        pool = rng.normal(0, 4, distinct).astype(np.float32)
        quant = None
    else:
        info = np.iinfo(dtype)
        pool = rng.integers(info.min, info.max, distinct, endpoint=True)
        quant = Quantization(draw(st.floats(1e-3, 1.0)), draw(st.integers(-128, 127)))
    x = pool[rng.integers(0, distinct, c)].astype(dtype)
    shape = draw(st.sampled_from([(1, c), (c,)]))
    return x.reshape(shape), TensorSpec("logits", shape, dtype, quant)


def _real(x, spec):
    return x.astype(np.float32).reshape(-1) if spec.quant is None else _reference.dequantize(x, spec.quant).reshape(-1)


@given(out=classifier_outputs(), k=st.integers(1, 310))
def test_classify_ranks_like_twin_and_reports_real_values(out, k):
    """Indices equal the twin's top-k (largest first, lower index first on ties); scores are the real values."""
    x, spec = out
    got = classify(x, spec, top_k=k)
    idx = [i for i, _ in got]
    want = _reference.top_k(x, k)
    assert idx == want.tolist()
    assert len(got) == min(k, x.size)
    real = _real(x, spec)
    assert [s for _, s in got] == [float(v) for v in real[want]]
    assert all(isinstance(i, int) and isinstance(s, float) for i, s in got)


@given(out=classifier_outputs(), k=st.integers(1, 20))
def test_classify_order_property(out, k):
    """Scores never increase; among equal scores indices increase; nothing left out beats the last one."""
    x, spec = out
    got = classify(x, spec, top_k=k)
    real = _real(x, spec)
    for (i, s), (j, t) in zip(got, got[1:]):
        assert s > t or (s == t and i < j)
    chosen = {i for i, _ in got}
    last_i, last_s = got[-1]
    for j in range(real.size):
        if j not in chosen:
            assert real[j] < last_s or (real[j] == last_s and j > last_i)


@given(out=classifier_outputs(), k=st.integers(1, 300))
def test_classify_softmax_is_over_all_classes(out, k):
    """softmax=True gives NumPy's softmax of the whole dequantized vector at the chosen classes."""
    x, spec = out
    got = classify(x, spec, top_k=k, softmax=True)
    plain = classify(x, spec, top_k=k)
    assert [i for i, _ in got] == [i for i, _ in plain]
    real = _real(x, spec).astype(np.float64)
    p = np.exp(real - real.max())
    p /= p.sum()
    # atol: float32 exp underflows below about 1e-38; rtol 1e-5 everywhere else.
    np.testing.assert_allclose([s for _, s in got], p[[i for i, _ in got]], rtol=1e-5, atol=1e-37)
    if k >= x.size:
        assert sum(s for _, s in got) == pytest.approx(1.0, rel=1e-5)


def test_classify_top_k_larger_than_class_count_returns_every_class():
    spec = TensorSpec("p", (1, 4), np.float32)
    got = classify(np.array([[0.1, 0.4, 0.4, 0.1]], np.float32), spec, top_k=10)
    assert [i for i, _ in got] == [1, 2, 0, 3]


def test_classify_ties_prefer_the_lower_index_across_the_whole_vector():
    """Equal values far apart: the earlier one wins, also when it is the last slot of top-k."""
    x = np.zeros(1000, np.int8)
    x[[999, 3, 500]] = 7
    spec = TensorSpec("p", (1000,), np.int8, Quantization(0.1, 0))
    assert [i for i, _ in classify(x, spec, top_k=2)] == [3, 500]
    assert [i for i, _ in classify(x, spec, top_k=4)] == [3, 500, 999, 0]


def test_classify_per_channel_quantized_ranks_on_real_values():
    """Per-channel scales: the raw integers do not order the classes; the real values do."""
    spec = TensorSpec("p", (1, 3), np.uint8, Quantization([1.0, 0.1, 2.0], [0, 0, 100], axis=1))
    x = np.array([[10, 90, 104]], np.uint8)  # real: 10, 9, 8
    assert classify(x, spec, top_k=3) == [(0, 10.0), (1, pytest.approx(9.0)), (2, 8.0)]


@pytest.mark.parametrize("x,spec,kwargs,exc", [
    (np.zeros((1, 4), np.int8), TensorSpec("p", (1, 4), np.uint8, Quantization(0.1, 0)), {}, DecodeError),
    (np.zeros((1, 4), np.float64), TensorSpec("p", (1, 4), np.float32), {}, DecodeError),
    (np.zeros((1, 5), np.float32), TensorSpec("p", (1, 4), np.float32), {}, DecodeError),
    (np.zeros((1, 0), np.float32), TensorSpec("p", (1, 0), np.float32), {}, DecodeError),
    (np.array([[0.1, np.nan, 0.3]], np.float32), TensorSpec("p", (1, 3), np.float32), {}, DecodeError),
    (np.zeros((1, 4), np.int8), TensorSpec("p", (1, 4), np.int8), {}, DecodeError),  # no quantization
    ([0.1, 0.2], TensorSpec("p", (2,), np.float32), {}, DecodeError),
    (np.zeros((1, 4), np.float32), TensorSpec("p", (1, 4), np.float32), dict(top_k=0), ConfigError),
    (np.zeros((1, 4), np.float32), TensorSpec("p", (1, 4), np.float32), dict(top_k=-2), ConfigError),
    (np.zeros((1, 4), np.float32), TensorSpec("p", (1, 4), np.float32), dict(top_k=2.0), ConfigError),
    (np.zeros((1, 4), np.float32), TensorSpec("p", (1, 4), np.float32), dict(top_k="3"), ConfigError),
    (np.zeros((1, 4), np.float32), TensorSpec("p", (1, 4), np.float32), dict(top_k=None), ConfigError),
])
def test_classify_rejects_bad_input(x, spec, kwargs, exc):
    with pytest.raises(exc):
        classify(x, spec, **kwargs)


@given(dtype=st.sampled_from([np.int8, np.uint8, np.int16, np.float32, np.float64, np.int32]),
       shape=st.lists(st.integers(0, 6), min_size=0, max_size=3).map(tuple), k=st.integers(-2, 8))
def test_classify_never_crashes(dtype, shape, k):
    """Whatever array comes in, classify returns a ranking or raises an `EdgertError`."""
    spec = TensorSpec("p", (1, 4), np.int8, Quantization(0.5, 3))
    x = np.ones(shape, dtype)
    try:
        got = classify(x, spec, top_k=k)
    except EdgertError:
        return
    assert x.size == 4 and k >= 1 and len(got) == min(k, 4)
