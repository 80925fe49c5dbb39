"""Preprocessing results that follow from the definitions alone, without the NumPy twin.

All exact (tolerance 0) unless a test says otherwise: 1:1 copies, 2:1 box averages, the nearest pixel
under the mapped output centre, normalisation and quantization at 1:1.
"""
import numpy as np
import pytest
from conftest import (
    PACKED_FORMATS,
    YUV420_FORMATS,
    image_spec,
    make_frame,
    packed_rgb,
    to_chw,
    yuv_planes,
)
from hypothesis import given
from hypothesis import strategies as st

from edgert import Quantization, TensorSpec
from edgert.core.errors import ConfigError
from edgert.preprocess import Preprocessor

layouts = st.sampled_from(["NHWC", "NCHW", "HWC", "CHW"])


@given(fmt=st.sampled_from(PACKED_FORMATS), w=st.integers(1, 40), h=st.integers(1, 30),
       stride_pad=st.sampled_from([0, 1, 7]), interp=st.sampled_from(["nearest", "bilinear", "area"]),
       order=st.sampled_from(["RGB", "BGR"]), layout=layouts, seed=st.integers(0, 2**32 - 1))
def test_same_size_is_an_exact_copy_in_channel_order(fmt, w, h, stride_pad, interp, order, layout, seed):
    """At 1:1 every interpolation copies the source pixels, R, G, B (or B, G, R) by the format's byte order."""
    frame = make_frame(fmt, w, h, np.random.default_rng(seed), stride_pad)
    pre = Preprocessor(image_spec(h, w, 3, layout), fmt, (w, h), "stretch", interp, channel_order=order)
    rgb = packed_rgb(frame, fmt)
    np.testing.assert_array_equal(to_chw(pre(frame), layout), rgb if order == "RGB" else rgb[::-1])


@given(fmt=st.sampled_from(YUV420_FORMATS), k=st.tuples(st.integers(1, 20), st.integers(1, 16)),
       stride_pad=st.sampled_from([0, 2, 64]), interp=st.sampled_from(["nearest", "bilinear", "area"]),
       seed=st.integers(0, 2**32 - 1))
def test_same_size_luma_output_is_the_y_plane(fmt, k, stride_pad, interp, seed):
    """A 1-channel model fed a 4:2:0 stream at 1:1 gets the Y plane as gray levels, whatever the chroma
    and padding hold: Y itself in full range, (Y - 16) * 255/219 rounded and clamped in limited range."""
    w, h = 2 * k[0], 2 * k[1]
    frame = make_frame(fmt, w, h, np.random.default_rng(seed), stride_pad)
    y = yuv_planes(frame, fmt, w, h)[0].astype(np.int64)
    full = Preprocessor(image_spec(h, w, 1), fmt, (w, h), "stretch", interp, yuv_range="full")
    np.testing.assert_array_equal(full(frame)[0, :, :, 0], y)
    limited = Preprocessor(image_spec(h, w, 1), fmt, (w, h), "stretch", interp)
    expected = np.clip(np.floor((y - 16) * 255 / 219 + 0.5), 0, 255)
    assert np.abs(limited(frame)[0, :, :, 0].astype(np.int64) - expected).max() <= 0


@given(fmt=st.sampled_from(["BGR", "RGBA", "XRGB8888", "GRAY"]), n=st.tuples(st.integers(1, 16), st.integers(1, 12)),
       interp=st.sampled_from(["bilinear", "area"]), stride_pad=st.sampled_from([0, 5]),
       content=st.sampled_from(["noise", "binary"]), seed=st.integers(0, 2**32 - 1))
def test_two_to_one_downscale_is_the_rounded_2x2_mean(fmt, n, interp, stride_pad, content, seed):
    """Halving with bilinear or area gives floor(mean of the 2x2 block + 1/2) exactly (the fast 2:1 path)."""
    w, h = n
    frame = make_frame(fmt, 2 * w, 2 * h, np.random.default_rng(seed), stride_pad, content)
    pre = Preprocessor(image_spec(h, w, 3, "NCHW"), fmt, (2 * w, 2 * h), "stretch", interp)
    rgb = packed_rgb(frame, fmt).astype(np.int64)
    block_sum = rgb[:, 0::2, 0::2] + rgb[:, 0::2, 1::2] + rgb[:, 1::2, 0::2] + rgb[:, 1::2, 1::2]
    np.testing.assert_array_equal(pre(frame)[0], (block_sum + 2) // 4)


@given(src=st.tuples(st.integers(1, 16), st.integers(1, 16)), dst=st.tuples(st.integers(1, 40), st.integers(1, 40)),
       resize=st.sampled_from(["stretch", "letterbox", "center-crop"]), stride_pad=st.sampled_from([0, 3]))
def test_nearest_takes_the_source_pixel_under_the_mapped_centre(src, dst, resize, stride_pad):
    """Each content pixel holds the source pixel that contains `to_source` of its centre.

    The frame encodes each pixel's own coordinates (R = x, G = y), so the output says where it was sampled.
    Centres that map within 1e-4 of a pixel edge may go either way (float32 coordinates).
    """
    (sw, sh), (w, h) = src, dst
    frame = np.zeros((sh, sw + stride_pad, 3), np.uint8)[:, :sw]
    frame[..., 2] = np.arange(sw)[None, :]  # BGR: R = x
    frame[..., 1] = np.arange(sh)[:, None]  # G = y
    frame[..., 0] = 77
    pre = Preprocessor(image_spec(h, w, 3), "BGR", (sw, sh), resize, "nearest")
    out = pre(frame)[0]
    dx, dy, n_x, n_y = pre.placement.dst_rect
    ys, xs = np.mgrid[dy:dy + n_y, dx:dx + n_x]
    centres = pre.to_source(np.stack([xs + 0.5, ys + 0.5], axis=-1), clip=False)
    got_x, got_y = out[dy:dy + n_y, dx:dx + n_x, 0], out[dy:dy + n_y, dx:dx + n_x, 1]
    for got, c, size in ((got_x, centres[..., 0], sw), (got_y, centres[..., 1], sh)):
        c = np.clip(c, 0, size - 1e-3)
        assert np.all((c >= got - 1e-4) & (c < got + 1 + 1e-4))
    assert np.all(out[dy:dy + n_y, dx:dx + n_x, 2] == 77)


@given(fmt=st.sampled_from(["GRAY", "BGR"]), src=st.tuples(st.integers(1, 30), st.integers(1, 30)),
       dst=st.tuples(st.integers(1, 30), st.integers(1, 30)), interp=st.sampled_from(["nearest", "bilinear", "area"]),
       value=st.integers(0, 255))
def test_letterbox_content_fills_exactly_dst_rect(fmt, src, dst, interp, value):
    """A flat frame letterboxed: the pixels that differ from the padding are exactly `dst_rect`."""
    (sw, sh), (w, h) = src, dst
    frame = make_frame(fmt, sw, sh, np.random.default_rng(0), content="constant")
    frame[...] = value
    pad = (value + 128) % 256
    pre = Preprocessor(image_spec(h, w, 3, "NCHW"), fmt, (sw, sh), "letterbox", interp, pad_value=pad)
    out = pre(frame)[0]
    dx, dy, n_x, n_y = pre.placement.dst_rect
    assert np.all(out[:, dy:dy + n_y, dx:dx + n_x] == value)
    content = np.argwhere(np.any(out != pad, axis=0))
    assert (content.min(0).tolist(), (content.max(0) + 1).tolist()) == ([dy, dx], [dy + n_y, dx + n_x])


@given(w=st.integers(1, 20), h=st.integers(1, 20), mean=st.floats(0, 255), std=st.floats(-200, 200).filter(
    lambda s: abs(s) > 0.01), seed=st.integers(0, 2**32 - 1))
def test_float_output_is_normalised_pixels(w, h, mean, std, seed):
    """float32 output at 1:1 is (pixel - mean) / std, computed in float64 and rounded to float32."""
    frame = make_frame("GRAY", w, h, np.random.default_rng(seed))
    pre = Preprocessor(image_spec(h, w, 1, dtype=np.float32), "GRAY", (w, h), "stretch", "bilinear", mean, std)
    want = ((frame.astype(np.float64) - mean) / std).astype(np.float32)
    np.testing.assert_array_equal(pre(frame)[0, :, :, 0], want)


@given(dtype=st.sampled_from([np.uint8, np.int8]), scale=st.floats(0.004, 4.0), zp=st.integers(-128, 255),
       mean=st.floats(0, 255), std=st.floats(0.5, 128), seed=st.integers(0, 2**32 - 1))
def test_quantized_output_dequantizes_to_the_normalised_pixels(dtype, scale, zp, mean, std, seed):
    """Quantized output at 1:1 dequantizes to within half a step of (pixel - mean) / std, or saturates."""
    info = np.iinfo(dtype)
    zp = int(np.clip(zp, info.min, info.max))
    q = Quantization(scale, zp)
    frame = make_frame("BGR", 9, 7, np.random.default_rng(seed))
    pre = Preprocessor(image_spec(7, 9, 3, dtype=dtype, quant=q), "BGR", (9, 7), "stretch", "nearest", mean, std,
                       channel_order="BGR")
    out = pre(frame)[0]
    x = (frame.astype(np.float64) - mean) / std
    real = (out.astype(np.float64) - zp) * np.float64(q.scale)
    step = float(q.scale)
    close = np.abs(real - x) <= step / 2 * (1 + 1e-6)
    saturated = ((out == info.max) & (x > real)) | ((out == info.min) & (x < real))
    assert np.all(close | saturated)


@pytest.mark.parametrize("yuv_range", ["limited", "full"])
@pytest.mark.parametrize("fmt", YUV420_FORMATS)
def test_yuv_to_rgb_follows_bt601_in_float_within_one(fmt, yuv_range):
    """Colour conversion at 1:1 (nearest: one chroma sample per 2x2 block) is BT.601 within 1 LSB."""
    w, h = 32, 16
    rng = np.random.default_rng(3)
    frame = make_frame(fmt, w, h, rng, stride_pad=6)
    pre = Preprocessor(image_spec(h, w, 3, "NCHW"), fmt, (w, h), "stretch", "nearest", yuv_range=yuv_range)
    y, u, v = (p.astype(np.float64) for p in yuv_planes(frame, fmt, w, h))
    u, v = (np.repeat(np.repeat(p, 2, 0), 2, 1) - 128 for p in (u, v))
    if yuv_range == "limited":
        y, u, v = (y - 16) * 255 / 219, u * 255 / 224, v * 255 / 224
    want = np.stack([y + 1.402 * v, y - 0.344136 * u - 0.714136 * v, y + 1.772 * u])
    want = np.clip(np.floor(want + 0.5), 0, 255)
    assert np.abs(pre(frame)[0] - want).max() <= 1


@given(w=st.integers(1, 12), h=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
def test_gray_to_three_channels_replicates(w, h, seed):
    """A GRAY stream into a 3-channel model gives three equal channels equal to the gray plane."""
    frame = make_frame("GRAY", w, h, np.random.default_rng(seed), stride_pad=2)
    pre = Preprocessor(TensorSpec("x", (1, h, w, 3), np.uint8), "GRAY", (w, h), "stretch", "nearest")
    np.testing.assert_array_equal(pre(frame)[0], np.repeat(frame[:, :, None], 3, axis=2))


@pytest.mark.parametrize("src,dst", [((1280, 720), (20, 12)), ((435, 1), (7, 1)), ((640, 480), (10, 8)),
                                     ((1920, 1080), (30, 17)), ((64, 64), (1, 1)), ((4000, 3000), (63, 47))])
@pytest.mark.parametrize("value", [255, 254, 1])
def test_area_keeps_flat_frames_flat_at_wide_footprints(src, dst, value):
    """Averaging a flat frame gives its value, however wide (up to MAX_AREA_RATIO) an output footprint is.

    Regression: Q16 weights rounded one by one summed above one, so 255 became 256 and wrapped to 0.
    """
    frame = np.full((src[1], src[0], 3), value, np.uint8)
    pre = Preprocessor(image_spec(dst[1], dst[0], 3), "BGR", src, "stretch", "area")
    assert np.all(pre(frame) == value), np.unique(pre(frame))


@pytest.mark.parametrize("src,dst,resize", [((1920, 1080), (4, 4), "stretch"), ((435, 1), (1, 1), "stretch"),
                                            ((3000, 10), (10, 640), "letterbox")])
def test_area_refuses_downscales_past_its_limit(src, dst, resize):
    """Beyond MAX_AREA_RATIO (per axis) area is refused at construction, naming the argument."""
    with pytest.raises(ConfigError, match="interpolation"):
        Preprocessor(image_spec(dst[1], dst[0], 3), "BGR", src, resize, "area")
    Preprocessor(image_spec(dst[1], dst[0], 3), "BGR", src, resize, "bilinear")  # bilinear has no limit


@pytest.mark.parametrize("src,dst", [((1920, 1080), (224, 224)), ((640, 480), (11, 9)), ((300, 200), (7, 5))])
def test_area_keeps_flat_frames_flat_at_usual_sizes(src, dst):
    """Flat frames stay flat at ordinary downscales, for every level including the extremes 0 and 255."""
    pre = Preprocessor(image_spec(dst[1], dst[0], 1), "GRAY", src, "stretch", "area")
    for value in (0, 1, 128, 254, 255):
        assert np.all(pre(np.full((src[1], src[0]), value, np.uint8)) == value)


@given(r=st.tuples(st.integers(2, 64), st.integers(2, 64)), n=st.tuples(st.integers(1, 3), st.integers(1, 2)),
       content=st.sampled_from(["noise", "binary"]), seed=st.integers(0, 2**32 - 1))
def test_area_integer_downscale_is_the_block_mean(r, n, content, seed):
    """Area at an integer factor (up to MAX_AREA_RATIO) is the mean of each r x r block, within 1."""
    (rx, ry), (w, h) = r, n
    frame = make_frame("GRAY", rx * w, ry * h, np.random.default_rng(seed), content=content)
    pre = Preprocessor(image_spec(h, w, 1), "GRAY", (rx * w, ry * h), "stretch", "area")
    mean = frame.reshape(h, ry, w, rx).mean(axis=(1, 3))
    assert np.abs(pre(frame)[0, :, :, 0] - mean).max() <= 1


@pytest.mark.parametrize("size,out", [(61, 1), (63, 1), (127, 2), (190, 3)])
def test_area_mean_of_a_frame_with_bright_borders(size, out):
    """Black frames with 1-px white borders (the worst case for the weights of footprint edges),
    averaged down by up to 64x: every output is its footprint's exact mean, within 1."""
    frame = np.zeros((size, size), np.uint8)
    frame[[0, -1], :] = frame[:, [0, -1]] = 255
    pre = Preprocessor(image_spec(out, out, 1), "GRAY", (size, size), "stretch", "area")
    got = pre(frame)[0, :, :, 0].astype(float)
    edges = np.arange(out + 1) * size / out
    cover = np.clip(np.minimum(edges[1:, None], np.arange(size) + 1) - np.maximum(edges[:-1, None],
                                                                                  np.arange(size)), 0, None)
    cover /= cover.sum(1, keepdims=True)
    exact = cover @ frame.astype(float) @ cover.T
    assert np.abs(got - exact).max() <= 1, (got, exact)