"""Preprocessing against OpenCV where OpenCV has the same operation (stretch mode, packed BGR or NV12/I420).

Tolerances, as measured and as they must hold:
    * nearest vs ``INTER_NEAREST_EXACT`` (half-pixel centres, as edgert): exact, except where an output
      centre falls exactly on a source pixel edge; there OpenCV's fixed point takes the left/upper
      pixel and edgert (floor) the right/lower one. Those rows and columns are left out.
    * bilinear vs ``INTER_LINEAR``: <= 1 (both use half-pixel centres and replicated borders).
    * area vs ``INTER_AREA`` on downscales of 2x or more: <= 1.
    * ``cvtColor`` BGR2RGB: exact; BGR2GRAY: <= 1 (both use Q14 BT.601 weights).
    * NV12/NV21/I420 -> RGB at 1:1 with nearest (one chroma sample per 2x2 block, as OpenCV): <= 1
      for luma >= 16. OpenCV clamps ``Y - 16`` at 0 before scaling; edgert follows BT.601 and lets
      Y < 16 go below black before the final clamp, so those pixels differ by up to ~19 and are excluded.
"""
import cv2
import numpy as np
import pytest
from conftest import image_spec, make_frame
from hypothesis import given
from hypothesis import strategies as st

from edgert.preprocess import Preprocessor

cv2.setNumThreads(1)

seeds = st.integers(0, 2**32 - 1)


def _bgr(sw, sh, w, h, interp, c=3, order="BGR", stride_pad=0, seed=0):
    frame = make_frame("BGR", sw, sh, np.random.default_rng(seed), stride_pad)
    pre = Preprocessor(image_spec(h, w, c, "HWC"), "BGR", (sw, sh), "stretch", interp, channel_order=order)
    return frame, pre


def _untied(n_out: int, n_src: int) -> np.ndarray:
    """Output indices whose centre does not fall exactly on a source pixel edge."""
    i = np.arange(n_out)
    return i[((2 * i + 1) * n_src) % (2 * n_out) != 0]


@given(sw=st.integers(1, 120), sh=st.integers(1, 120), w=st.integers(1, 80), h=st.integers(1, 80),
       stride_pad=st.sampled_from([0, 5]), seed=seeds)
def test_nearest_matches_inter_nearest_exact(sw, sh, w, h, stride_pad, seed):
    frame, pre = _bgr(sw, sh, w, h, "nearest", stride_pad=stride_pad, seed=seed)
    want = cv2.resize(np.ascontiguousarray(frame), (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
    rows, cols = _untied(h, sh), _untied(w, sw)
    np.testing.assert_array_equal(pre(frame)[np.ix_(rows, cols)], want[np.ix_(rows, cols)])


@given(sw=st.integers(1, 120), sh=st.integers(1, 120), w=st.integers(1, 80), h=st.integers(1, 80),
       stride_pad=st.sampled_from([0, 5]), seed=seeds)
def test_bilinear_matches_inter_linear(sw, sh, w, h, stride_pad, seed):
    frame, pre = _bgr(sw, sh, w, h, "bilinear", stride_pad=stride_pad, seed=seed)
    want = cv2.resize(np.ascontiguousarray(frame), (w, h), interpolation=cv2.INTER_LINEAR)
    assert np.abs(pre(frame).astype(int) - want).max() <= 1


@given(w=st.integers(1, 40), h=st.integers(1, 40), fx=st.floats(2.0, 6.0), fy=st.floats(2.0, 6.0), seed=seeds)
def test_area_matches_inter_area_on_downscales(w, h, fx, fy, seed):
    sw, sh = max(2 * w, int(w * fx)), max(2 * h, int(h * fy))
    frame, pre = _bgr(sw, sh, w, h, "area", seed=seed)
    want = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
    assert np.abs(pre(frame).astype(int) - want).max() <= 1


@given(w=st.integers(1, 50), h=st.integers(1, 50), stride_pad=st.sampled_from([0, 3]), seed=seeds)
def test_colour_conversions_match_cvtcolor(w, h, stride_pad, seed):
    frame, pre_rgb = _bgr(w, h, w, h, "nearest", order="RGB", stride_pad=stride_pad, seed=seed)
    contiguous = np.ascontiguousarray(frame)
    np.testing.assert_array_equal(pre_rgb(frame), cv2.cvtColor(contiguous, cv2.COLOR_BGR2RGB))
    _, pre_gray = _bgr(w, h, w, h, "nearest", c=1)
    gray = cv2.cvtColor(contiguous, cv2.COLOR_BGR2GRAY)
    assert np.abs(pre_gray(frame)[..., 0].astype(int) - gray).max() <= 1


@pytest.mark.parametrize("fmt,code", [("NV12", cv2.COLOR_YUV2RGB_NV12), ("NV21", cv2.COLOR_YUV2RGB_NV21),
                                      ("YUV420", cv2.COLOR_YUV2RGB_I420)])
@pytest.mark.parametrize("order", ["RGB", "BGR"])
def test_yuv420_at_same_size_matches_cvtcolor(fmt, code, order):
    rng = np.random.default_rng(11)
    for w, h in [(2, 2), (6, 4), (64, 48), (38, 22)]:
        frame = np.ascontiguousarray(make_frame(fmt, w, h, rng))
        frame[:h] = np.maximum(frame[:h], 16)  # OpenCV clamps luma below 16 (see module docstring)
        pre = Preprocessor(image_spec(h, w, 3, "HWC"), fmt, (w, h), "stretch", "nearest", channel_order=order)
        want = cv2.cvtColor(frame, code)
        if order == "BGR":
            want = want[..., ::-1]
        assert np.abs(pre(frame).astype(int) - want).max() <= 1, (w, h)
