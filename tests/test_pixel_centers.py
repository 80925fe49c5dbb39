"""The two pixel-centre conventions (`edgert.resample_maps`): "half" (OpenCV resize), "corner" (warpAffine).

Kernel-vs-twin agreement for both conventions over every format and size is in test_preprocess_twin.py
(the cases draw the convention); "half" against ``cv2.resize`` is in test_preprocess_opencv.py. Here:
"corner" against ``cv2.warpAffine`` with the plain scale matrix (tolerances below), the shift between the
two, MediaPipe's exact-scale letterbox, and the coordinate map back.

Tolerances against warpAffine (packed RGB, stretch):
    * nearest: exact, except output pixels whose source index lies exactly half-way between two pixels
      (warpAffine's fixed point rounds those either way); they are left out.
    * bilinear: <= 1 where every sample position is a multiple of 1/32 pixel (warpAffine quantises the
      fraction to 1/32, ``INTER_TAB_SIZE``); elsewhere that quantisation moves a sample by up to 1/64 pixel,
      so <= 1 + 255/64 on noise (every neighbour difference up to 255).
"""
import cv2
import numpy as np
import pytest
from conftest import image_spec, make_frame
from hypothesis import given
from hypothesis import strategies as st

from edgert.core.errors import ConfigError
from edgert.geometry import place
from edgert.preprocess import Preprocessor

cv2.setNumThreads(1)
seeds = st.integers(0, 2**32 - 1)


def _stretch(sw, sh, w, h, interp, seed, pixel_centers="corner"):
    frame = make_frame("RGB", sw, sh, np.random.default_rng(seed))
    pre = Preprocessor(image_spec(h, w, 3, "HWC"), "RGB", (sw, sh), "stretch", interp, pixel_centers=pixel_centers)
    return np.ascontiguousarray(frame), pre


def _warp(frame, w, h, interp, border=cv2.BORDER_REPLICATE):
    sh, sw = frame.shape[:2]
    inverse = np.array([[sw / w, 0, 0], [0, sh / h, 0]], np.float64)  # output index -> source index
    return cv2.warpAffine(frame, inverse, (w, h), flags=interp | cv2.WARP_INVERSE_MAP, borderMode=border)


def _untied(n_out: int, n_src: int) -> np.ndarray:
    """Output indices whose source index ``i * n_src / n_out`` is not an exact half."""
    i = np.arange(n_out)
    return i[(2 * i * n_src) % (2 * n_out) != n_out]


@given(sw=st.integers(1, 120), sh=st.integers(1, 120), w=st.integers(1, 80), h=st.integers(1, 80), seed=seeds)
def test_corner_nearest_matches_warp_affine(sw, sh, w, h, seed):
    frame, pre = _stretch(sw, sh, w, h, "nearest", seed)
    want = _warp(frame, w, h, cv2.INTER_NEAREST)
    rows, cols = _untied(h, sh), _untied(w, sw)
    np.testing.assert_array_equal(pre(frame)[np.ix_(rows, cols)], want[np.ix_(rows, cols)])


@given(sw=st.integers(1, 30).map(lambda k: 8 * k), sh=st.integers(1, 30).map(lambda k: 8 * k),
       fx=st.sampled_from([0.25, 0.5, 0.625, 1.0, 2.0, 4.0]), fy=st.sampled_from([0.25, 0.5, 1.0, 2.0, 8.0]),
       seed=seeds)
def test_corner_bilinear_matches_warp_affine_on_its_grid(sw, sh, fx, fy, seed):
    """Scales whose sample positions fall on warpAffine's 1/32-pixel grid: within one level."""
    w, h = max(1, int(sw * fx)), max(1, int(sh * fy))
    frame, pre = _stretch(sw, sh, w, h, "bilinear", seed)
    diff = np.abs(pre(frame).astype(int) - _warp(frame, w, h, cv2.INTER_LINEAR))
    assert diff.max() <= 1, f"seed {seed}: max |edgert - warpAffine| {diff.max()}"


@given(sw=st.integers(2, 120), sh=st.integers(2, 120), w=st.integers(1, 80), h=st.integers(1, 80), seed=seeds)
def test_corner_bilinear_matches_warp_affine_anywhere(sw, sh, w, h, seed):
    frame, pre = _stretch(sw, sh, w, h, "bilinear", seed)
    diff = np.abs(pre(frame).astype(int) - _warp(frame, w, h, cv2.INTER_LINEAR))
    assert diff.max() <= 1 + 255 / 64, f"seed {seed}: max |edgert - warpAffine| {diff.max()}"


def test_half_centres_match_resize_and_corner_ones_do_not():
    """On a 640 -> 128 downscale the two conventions sample (5 - 1) / 2 = 2 source pixels apart."""
    ramp = np.zeros((4, 640, 3), np.uint8)
    ramp[:] = (np.arange(640) % 256)[None, :, None]
    values = {}
    for pc in ("half", "corner"):
        pre = Preprocessor(image_spec(4, 128, 3, "HWC"), "RGB", (640, 4), "stretch", "nearest", pixel_centers=pc)
        values[pc] = pre(ramp)[0, :, 0].astype(int)
    i = np.arange(128)
    np.testing.assert_array_equal(values["corner"], (5 * i) % 256)
    np.testing.assert_array_equal(values["half"], (5 * i + 2) % 256)
    np.testing.assert_array_equal(values["half"], cv2.resize(ramp, (128, 4), interpolation=cv2.INTER_NEAREST_EXACT)
                                  [0, :, 0])


@pytest.mark.parametrize("src", [(640, 300), (511, 301), (300, 640), (1920, 1080), (97, 203)])
def test_corner_letterbox_is_mediapipes(src):
    """MediaPipe's ImageToTensor: one exact scale, the content centred at a fractional offset, black
    border (BORDER_ZERO). Against warpAffine with that matrix: the same pixels except the rows and
    columns at the content's edge (edgert takes those wholly as content or wholly as padding)."""
    sw, sh = src
    frame = np.ascontiguousarray(make_frame("RGB", sw, sh, np.random.default_rng(3)))
    pre = Preprocessor(image_spec(128, 128, 3, "HWC"), "RGB", src, "letterbox", "bilinear", pad_value=0,
                       pixel_centers="corner")
    side = max(sw, sh)  # the ROI padded to a square around the frame's centre
    s = side / 128
    inverse = np.array([[s, 0, sw / 2 - side / 2], [0, s, sh / 2 - side / 2]])
    want = cv2.warpAffine(frame, inverse, (128, 128), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0).astype(int)
    got = pre(frame).astype(int)
    dx, dy, cw, ch = pre.placement.dst_rect
    inner = (slice(dy + 1, dy + ch - 1), slice(dx + 1, dx + cw - 1))
    assert np.abs(got[inner] - want[inner]).max() <= 1 + 255 / 64
    outside = np.ones((128, 128), bool)
    outside[max(dy - 1, 0):dy + ch + 1, max(dx - 1, 0):dx + cw + 1] = False
    assert np.all(got[outside] == 0) and np.all(want[outside] == 0)
    # Boxes go back as MediaPipe projects them: x_src = x_tensor * s + roi offset.
    np.testing.assert_allclose(pre.to_source([[0, 0, 128, 128]], clip=False)[0],
                               [sw / 2 - side / 2, sh / 2 - side / 2, sw / 2 + side / 2, sh / 2 + side / 2],
                               atol=1e-3)


@given(sw=st.integers(1, 3000), sh=st.integers(1, 3000), w=st.integers(1, 640), h=st.integers(1, 640))
def test_corner_letterbox_keeps_one_scale_and_stays_inside(sw, sh, w, h):
    pl = place((sw, sh), (w, h), "letterbox", "corner")
    sx, sy, swf, shf = pl.src_rect
    dx, dy, cw, ch = pl.dst_rect
    assert 0 <= dx and dx + cw <= w and 0 <= dy and dy + ch <= h and cw >= 1 and ch >= 1
    s = min(w / sw, h / sh)
    assert swf == pytest.approx(cw / s) and shf == pytest.approx(ch / s)
    # Every content pixel samples within half a pixel of the frame (or is the one pixel nearest it).
    for start, length, first, count, n in ((sx, swf, dx, cw, sw), (sy, shf, dy, ch, sh)):
        if count > 1:
            assert start >= -0.5 - 1e-6 and start + (count - 1) * length / count <= n - 0.5 + 1e-6


def test_stretch_maps_coordinates_the_same_under_both_conventions():
    boxes = [[10.0, 20.0, 60.0, 90.0]]
    spec = image_spec(128, 128, 3, "HWC")
    half = Preprocessor(spec, "RGB", (640, 480), "stretch", pixel_centers="half")
    corner = Preprocessor(spec, "RGB", (640, 480), "stretch", pixel_centers="corner")
    np.testing.assert_array_equal(half.to_source(boxes), corner.to_source(boxes))
    assert "corner pixel centres" in repr(corner)


def test_unknown_convention_is_a_config_error():
    with pytest.raises(ConfigError, match="pixel_centers: expected one of half, corner, got 'centre'"):
        Preprocessor(image_spec(8, 8, 3, "HWC"), "RGB", (16, 16), pixel_centers="centre")
