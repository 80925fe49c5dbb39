"""`TensorSpec` and `Quantization`: validation, quantize/dequantize, per-channel broadcasting, equality."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgert import Quantization, TensorSpec
from edgert.core.errors import SpecError


@pytest.mark.parametrize("scale,zero_point,axis", [
    (0.0, 0, None), (-0.5, 0, None), (float("nan"), 0, None), (float("inf"), 0, None),
    ([0.1, 0.0], [0, 0], 0), ([0.1, float("nan")], 0, 0),
    ([0.1, 0.2], [0, 0, 0], 0),           # mismatched per-channel lengths
    ([0.1, 0.2], [1, 2], None),           # per-channel without axis
    ([[0.1]], 0, None),                   # 2-D scale
    (0.1, [[1]], None),                   # 2-D zero point
    (0.1, 0.5, None),                     # fractional zero point
    (0.1, "zero", None), ("big", 0, None),
    ([0.1, 0.2], [0, 0], "1"),            # axis of the wrong type
])
def test_bad_quantization_raises_spec_error(scale, zero_point, axis):
    with pytest.raises(SpecError, match="Quantization"):
        Quantization(scale, zero_point, axis)


def test_quantization_normalises_its_parameters():
    q = Quantization(0.5, 3.0)
    assert q.scale.dtype == np.float32 and q.zero_point.dtype == np.int32
    assert q.scale.shape == () and not q.per_channel and q.axis is None
    pc = Quantization([0.1, 0.2, 0.3], 5, axis=-1)
    assert pc.per_channel and pc.zero_point.tolist() == [5, 5, 5] and pc.axis == -1
    one = Quantization([0.25], [7], axis=3)  # one channel is per tensor
    assert not one.per_channel and one.axis is None and float(one.scale) == 0.25


@pytest.mark.parametrize("kwargs", [
    dict(shape=(1, 4, 4, 3), dtype=np.float32, quant=Quantization(0.1, 0)),   # quant on a float tensor
    dict(shape=(1, 4, 4, 3), dtype=np.uint8, quant=Quantization([0.1, 0.2], 0, axis=3)),  # wrong length
    dict(shape=(1, 4, 4, 3), dtype=np.uint8, quant=Quantization([0.1, 0.2, 0.3], 0, axis=4)),  # no such axis
    dict(shape=(1, 4, 4, 3), dtype=np.uint8, quant=(0.1, 0)),                 # not a Quantization
    dict(shape=(1, 4, 4, 3), dtype=np.uint8, layout="HWC"),
    dict(shape=(1, -4, 4, 3), dtype=np.uint8),
    dict(shape=(1, "four", 4, 3), dtype=np.uint8),
    dict(shape=None, dtype=np.uint8),
    dict(shape=(1, 4), dtype="not-a-dtype"),
])
def test_bad_tensor_spec_raises_spec_error(kwargs):
    with pytest.raises(SpecError, match="TensorSpec"):
        TensorSpec("t", **kwargs)


def test_tensor_spec_normalises_shape_and_dtype_and_compares_by_value():
    a = TensorSpec("in", [1, np.int64(8), 8, 3], "uint8", Quantization(0.5, 2))
    b = TensorSpec("in", (1, 8, 8, 3), np.uint8, Quantization(np.float32(0.5), np.int8(2)))
    assert a.shape == (1, 8, 8, 3) and all(type(d) is int for d in a.shape)
    assert a.dtype == np.dtype(np.uint8) and isinstance(a.dtype, np.dtype)
    assert a == b and hash(a) == hash(b)
    assert a != TensorSpec("in", (1, 8, 8, 3), np.uint8, Quantization(0.5, 3))
    assert a != TensorSpec("in", (1, 8, 8, 3), np.uint8, Quantization(0.5, 2), layout="NHWC")
    assert a != TensorSpec("other", (1, 8, 8, 3), np.uint8, Quantization(0.5, 2))
    assert len({a, b}) == 1


def test_quantization_equality_and_hash():
    a = Quantization([0.1, 0.2], [1, 2], axis=1)
    assert a == Quantization(np.array([0.1, 0.2]), np.array([1, 2]), axis=1)
    assert hash(a) == hash(Quantization((0.1, 0.2), (1, 2), axis=1))
    assert a != Quantization([0.1, 0.2], [1, 2], axis=0)
    assert a != Quantization([0.1, 0.3], [1, 2], axis=1)
    assert a != Quantization([0.1, 0.2], [1, 3], axis=1)
    assert Quantization(0.1, 0) != Quantization([0.1, 0.1], [0, 0], axis=0)
    assert a != "Quantization"


@given(scale=st.floats(1e-4, 100), zp=st.integers(-128, 127),
       x=st.lists(st.floats(-1e4, 1e4), min_size=1, max_size=30))
def test_int8_round_trip_within_half_a_step_or_saturated(scale, zp, x):
    q = Quantization(scale, zp)
    x = np.asarray(x)
    y = q.quantize(x, np.int8)
    assert y.dtype == np.int8
    back = q.dequantize(y).astype(np.float64)
    step = float(q.scale)
    inside = np.abs(back - x) <= step * (0.5 + 1e-5)
    saturated = ((y == 127) & (x > back)) | ((y == -128) & (x < back))
    assert np.all(inside | saturated)


def test_quantize_rounds_half_away_from_zero_and_saturates():
    q = Quantization(1.0, 0)
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49, 300.0, -300.0])
    assert q.quantize(x, np.int8).tolist() == [1, 2, 3, -1, -2, -3, 0, 127, -128]
    assert q.quantize(x, np.uint8).tolist() == [1, 2, 3, 0, 0, 0, 0, 255, 0]
    shifted = Quantization(0.5, 10)
    assert shifted.quantize(np.array([1.0, -1.0]), np.int16).tolist() == [12, 8]


@given(axis=st.integers(0, 3), seed=st.integers(0, 2**32 - 1), negative=st.booleans())
def test_per_channel_parameters_broadcast_along_their_axis(axis, seed, negative):
    rng = np.random.default_rng(seed)
    shape = [2, 3, 4, 5]
    n = shape[axis]
    scales, zps = rng.uniform(0.01, 2, n), rng.integers(-20, 20, n)
    q = Quantization(scales, zps, axis=axis - 4 if negative else axis)
    x = rng.uniform(-50, 50, shape)
    got = q.quantize(x, np.int8)
    for i in range(n):
        sub = [slice(None)] * 4
        sub[axis] = i
        want = Quantization(scales[i], zps[i]).quantize(x[tuple(sub)], np.int8)
        np.testing.assert_array_equal(got[tuple(sub)], want)
        np.testing.assert_allclose(q.dequantize(got)[tuple(sub)],
                                   (got[tuple(sub)].astype(np.float64) - zps[i]) * np.float32(scales[i]), rtol=1e-6)
