"""Source format names and the plane addresses `frame_layout` reports for the kernel."""
import numpy as np
import pytest
from conftest import image_spec, make_frame

from edgert.core.errors import ConfigError
from edgert.core.pixel_formats import SOURCE_FORMATS, frame_layout, pixel_format
from edgert.preprocess import Preprocessor


def test_names_are_case_insensitive_and_unknown_ones_refused():
    assert pixel_format("nv12") is pixel_format("NV12")
    assert {"BGR", "RGB", "RGBA", "XRGB8888", "GRAY", "NV12", "YUV420"} <= set(SOURCE_FORMATS)
    with pytest.raises(ConfigError, match="src_format"):
        pixel_format("YUYV")


@pytest.mark.parametrize("fmt,stride", [("NV12", 40), ("NV21", 40), ("YUV420", 40), ("NV12", 32)])
def test_planar_layout_offsets(fmt, stride):
    """Luma pitch, U and V offsets and chroma pitch as picamera2 lays the buffer out."""
    w, h = 32, 6
    frame = np.zeros((h * 3 // 2, stride), np.uint8)
    if fmt != "YUV420":
        frame = frame[:, :w]
    pitch, u, v, cp = frame_layout(frame, pixel_format(fmt), w, h)
    assert pitch == stride
    if fmt == "NV12":
        assert (u, v, cp) == (h * stride, h * stride + 1, stride)
    elif fmt == "NV21":
        assert (u, v, cp) == (h * stride + 1, h * stride, stride)
    else:
        assert (u, v, cp) == (h * stride, h * stride + (h // 2) * (stride // 2), stride // 2)


def test_packed_layout_reports_row_pitch():
    frame = np.zeros((4, 9, 4), np.uint8)[:, :5]
    assert frame_layout(frame, pixel_format("XRGB8888"), 5, 4) == (36, 0, 0, 0)


@pytest.mark.parametrize("interp", ["nearest", "bilinear", "area"])
def test_i420_alias_and_gray_with_channel_axis_give_the_same_results(interp):
    rng = np.random.default_rng(5)
    yuv = make_frame("YUV420", 12, 8, rng, stride_pad=4)
    spec = image_spec(5, 7, 3)
    a = Preprocessor(spec, "YUV420", (12, 8), "letterbox", interp)(yuv).copy()
    np.testing.assert_array_equal(a, Preprocessor(spec, "i420", (12, 8), "letterbox", interp)(yuv))
    gray = make_frame("GRAY", 11, 9, rng)
    pre = Preprocessor(spec, "GRAY", (11, 9), "center-crop", interp)
    np.testing.assert_array_equal(pre(np.expand_dims(gray, -1)).copy(), pre(gray))


@pytest.mark.parametrize("fmt,frame", [
    ("GRAY", np.zeros((9, 11), np.uint8)[:, :, None]),       # strides (11, 1, 0)
    ("BGR", np.zeros((9, 1, 3), np.uint8)[:, ::2]),          # strides (3, 6, 1), one pixel per row
])
def test_c_contiguous_frames_of_the_right_shape_are_accepted(fmt, frame):
    """What the error message advises (np.ascontiguousarray) must give an accepted frame."""
    frame = np.ascontiguousarray(frame)
    assert frame.flags.c_contiguous
    h, w = frame.shape[:2]
    pre = Preprocessor(image_spec(4, 4, 3), fmt, (w, h), "stretch", "nearest")
    assert pre(frame).shape == (1, 4, 4, 3)
