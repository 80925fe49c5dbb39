"""The compiled kernel against its NumPy twin `edgert._reference.preprocess`, over random cases.

Cases (see `strategies.cases`) cover every source format, 1x1/2x2 frames, odd packed sizes, 3x3 -> 64x64
upscales, 300x200 -> 7x5 downscales, row strides larger than the row, the three resize modes and
interpolations, NHWC/NCHW/HWC/CHW outputs with 1 or 3 channels, RGB/BGR order, limited/full YUV range,
and uint8 (raw or quantized), int8 (quantized or raw), float32 and per-channel quantized outputs, under
both pixel-centre conventions ("half" and "corner", `edgert.resample_maps`).

Tolerances:
    * nearest: exact, for every format, layout, dtype and value mapping.
    * bilinear/area, compared as 8-bit resampled values (uint8 output, no quantization, mean 0, std 1):
      |diff| <= 1 for packed and GRAY sources and for full-range 4:2:0 sources with 1-channel (luma)
      output; <= 2 with limited range, whose luma is expanded by 255/219 to gray levels;
      |diff| <= 4 for 4:2:0 sources with 3-channel output (a 1-LSB difference of Y, U or V is amplified
      by the BT.601 gains, up to 1.164 + 2.03 for blue).
    * bilinear/area with any other value mapping: exactly the value table (`value_table`) applied to
      the kernel's own 8-bit values of the same geometry, which the check above ties to the twin;
      padding exactly the table's value of `pad_value`.
"""
import numpy as np
import pytest
from conftest import YUV420_FORMATS, image_spec, make_frame, to_chw
from hypothesis import given
from strategies import MAPPINGS, cases

from edgert import _reference
from edgert.preprocess import Preprocessor, value_table


def _table(pre):
    """The per-channel value table of `pre`, computed from its public settings (not its kernel LUT).

    It applies to 8-bit pixel levels, which is what the identity preprocessor gives (luma of a
    limited-range 4:2:0 source already expanded to gray levels).
    """
    c = pre._channels
    return value_table(pre.spec, c, pre._nhwc, pre.mean, pre.std, np.tile(np.arange(256), (c, 1)))


def _tolerance(fmt, channels, yuv_range="full"):
    """Allowed |kernel - twin| of 8-bit values for bilinear/area (see the module docstring)."""
    if fmt not in YUV420_FORMATS:
        return 1
    if channels == 3:
        return 4
    return 2 if yuv_range == "limited" else 1


@given(case=cases(interpolations=("nearest",)))
def test_nearest_matches_twin_exactly(case):
    """Nearest sampling: the kernel equals the twin bit for bit, whatever the format and output."""
    frame = case.frame()
    pre = case.preprocessor()
    got = pre(frame)
    want = _reference.preprocess(frame, pre)
    assert got.shape == want.shape == pre.spec.shape
    assert got.dtype == want.dtype == pre.spec.dtype
    np.testing.assert_array_equal(got, want)


@given(case=cases(interpolations=("bilinear", "area"), mappings=("identity",)))
def test_resampled_8bit_values_within_tolerance_of_twin(case):
    """Bilinear/area 8-bit values: within 1 (packed, GRAY, luma) or 4 (4:2:0 -> RGB) of the twin."""
    frame = case.frame()
    pre = case.preprocessor()
    got = pre(frame).astype(np.int64)
    want = _reference.preprocess(frame, pre).astype(np.int64)
    tol = _tolerance(case.fmt, case.channels, getattr(case, "yuv_range", "limited"))
    diff = np.abs(got - want)
    assert diff.max() <= tol, f"max |kernel - twin| = {diff.max()} > {tol} at {np.argwhere(diff > tol)[:5]}"


@given(case=cases(interpolations=("bilinear", "area"), mappings=[m for m in MAPPINGS if m != "identity"]))
def test_value_mapping_is_the_table_of_the_8bit_values(case):
    """Quantized/float outputs are the value table applied to the kernel's 8-bit values, exactly."""
    frame = case.frame()
    pre = case.preprocessor()
    got = to_chw(pre(frame), case.layout)
    u8 = to_chw(case.identity_preprocessor()(frame), case.layout)
    table = _table(pre)
    want = table[np.arange(case.channels)[:, None, None], u8]
    assert got.dtype == table.dtype == pre.spec.dtype
    np.testing.assert_array_equal(got, want)


@given(case=cases(resizes=("letterbox",)))
def test_letterbox_padding_is_the_mapped_pad_value(case):
    """Outside `placement.dst_rect` every output element is `pad_value` mapped through the table."""
    frame = case.frame()
    pre = case.preprocessor()
    got = to_chw(pre(frame), case.layout)
    c = case.channels
    pad = np.broadcast_to(np.asarray(case.pad_value, np.float64), (c,))
    pad_out = value_table(pre.spec, c, pre._nhwc, pre.mean, pre.std, pad[:, None])[:, 0]
    dx, dy, n_x, n_y = pre.placement.dst_rect
    outside = np.ones(got.shape[1:], bool)
    outside[dy:dy + n_y, dx:dx + n_x] = False
    for ch in range(c):
        assert np.all(got[ch][outside] == pad_out[ch])


@pytest.mark.parametrize("fmt,src,stride_pad,dst,resize,interp", [
    ("BGR", (1920, 1080), 0, (640, 640), "letterbox", "bilinear"),
    ("NV12", (1280, 720), 0, (640, 360), "stretch", "bilinear"),         # exact 2:1, fast path
    ("NV12", (1536, 864), 0, (1536, 864), "stretch", "bilinear"),       # 1:1, copy path
    ("YUV420", (640, 480), 64, (224, 224), "center-crop", "area"),
    ("XRGB8888", (1280, 960), 32, (320, 320), "letterbox", "area"),
    ("NV21", (640, 480), 64, (300, 300), "letterbox", "nearest"),
    ("RGBA", (1280, 720), 0, (640, 640), "center-crop", "bilinear"),
])
def test_camera_sized_frames_match_twin(fmt, src, stride_pad, dst, resize, interp):
    """Frame and model sizes of real deployments, where the kernel's fixed-stride loops kick in."""
    rng = np.random.default_rng(7)
    frame = make_frame(fmt, *src, rng, stride_pad)
    for channels in (3, 1):
        pre = Preprocessor(image_spec(dst[1], dst[0], channels), fmt, src, resize, interp)
        diff = np.abs(pre(frame).astype(np.int64) - _reference.preprocess(frame, pre))
        tol = 0 if interp == "nearest" else _tolerance(fmt, channels, "limited")
        assert diff.max() <= tol
