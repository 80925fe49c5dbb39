"""Buffer handling of a `Preprocessor`: the reused own buffer, ``out=``, and padding across calls."""
import numpy as np
import pytest
from conftest import to_chw
from hypothesis import given
from strategies import cases

from edgert import _reference
from edgert.core.errors import EdgertError


@given(case=cases())
def test_out_gets_the_own_buffer_result_even_when_dirty(case):
    """``out=`` filled with garbage first receives exactly what the own buffer gets, padding included."""
    pre = case.preprocessor()
    frame = case.frame()
    own = pre(frame).copy()
    out = np.frombuffer(np.random.default_rng(case.seed).bytes(own.nbytes), own.dtype).reshape(own.shape).copy()
    if out.dtype == np.float32:
        out[np.isnan(out)] = 1e30  # garbage, but comparable
    assert pre(frame, out=out) is out
    np.testing.assert_array_equal(out, own)


@given(case=cases(interpolations=("nearest",), resizes=("letterbox", "stretch")))
def test_repeated_calls_follow_the_frames(case):
    """Two different frames give their own results, the second overwriting the first in the own buffer.

    Letterbox padding stays in place on calls after the first, also after a refused frame.
    """
    pre = case.preprocessor()
    f1 = case.frame()
    f2 = 255 - f1  # differs in every byte
    x1 = pre(f1).copy()
    with pytest.raises(EdgertError):
        pre(f1[:0])
    x2 = pre(f2)
    np.testing.assert_array_equal(x1, _reference.preprocess(f1, pre))
    np.testing.assert_array_equal(x2, _reference.preprocess(f2, pre))
    x3 = pre(f1)
    assert np.shares_memory(x3, x2)  # the own buffer is reused
    np.testing.assert_array_equal(x3, x1)


@given(case=cases(interpolations=("nearest",), mappings=("identity",), resizes=("stretch",)))
def test_different_frames_give_different_outputs(case):
    """Inverting every pixel changes the output somewhere (the kernel reads the frame it is given)."""
    pre = case.preprocessor()
    f1 = case.frame()
    x1 = to_chw(pre(f1), case.layout).copy()
    x2 = to_chw(pre(255 - f1), case.layout)
    yuv = case.fmt in ("NV12", "NV21", "YUV420")
    if case.fmt == "GRAY" or (yuv and case.channels == 1 and case.yuv_range == "full") or (
            not yuv and case.channels == 3):
        # Copied pixel values (no colour conversion): inverted exactly.
        np.testing.assert_array_equal(x2, 255 - x1)
    else:
        assert np.any(x1 != x2)
