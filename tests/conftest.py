"""Shared helpers of the preprocessing tests: frame makers, spec builders and the hypothesis profile."""
from __future__ import annotations

import os
import time

import numpy as np
from hypothesis import HealthCheck, settings

from edgert import Quantization, TensorSpec
from edgert.core.pixel_formats import pixel_format

pytest_plugins = ["fake_sdks", "skip_summary"]

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile("edgert", max_examples=80, deadline=None, suppress_health_check=_QUIET)
# A long bug hunt: EDGERT_HYPOTHESIS_PROFILE=thorough pytest tests
settings.register_profile("thorough", max_examples=3000, deadline=None, suppress_health_check=_QUIET)
settings.load_profile(os.environ.get("EDGERT_HYPOTHESIS_PROFILE", "edgert"))

PACKED_FORMATS = ("BGR", "RGB", "BGRA", "RGBA", "BGRX", "RGBX", "XRGB8888", "XBGR8888", "GRAY")
YUV420_FORMATS = ("NV12", "NV21", "YUV420")
ALL_FORMATS = PACKED_FORMATS + YUV420_FORMATS

#: Output layouts: (shape builder, TensorSpec.layout, channel axis).
LAYOUTS = {
    "NHWC": (lambda h, w, c: (1, h, w, c), "NHWC", 3),
    "NCHW": (lambda h, w, c: (1, c, h, w), "NCHW", 1),
    "HWC": (lambda h, w, c: (h, w, c), "NHWC", 2),
    "CHW": (lambda h, w, c: (c, h, w), "NCHW", 0),
}


def _fill(rng: np.random.Generator, shape, content: str) -> np.ndarray:
    if content == "noise":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    if content == "binary":  # only 0 and 255: the extremes where clamping and overflow show
        return (rng.integers(0, 2, shape, dtype=np.uint8) * 255).astype(np.uint8)
    if content == "constant":
        return np.full(shape, rng.integers(0, 256), dtype=np.uint8)
    raise ValueError(content)


def make_frame(fmt: str, w: int, h: int, rng: np.random.Generator, stride_pad: int = 0,
               content: str = "noise") -> np.ndarray:
    """A valid ``w`` x ``h`` frame of format `fmt`, laid out as a camera stack delivers it.

    Args:
        fmt: A source format name.
        w, h: Frame size (even for 4:2:0 formats).
        rng: Random source of the pixel values.
        stride_pad: Bytes (planar) or pixels (packed) of row padding past the width. Packed and
            NV12/NV21 frames are then column slices ``big[:, :w]`` of a wider buffer (picamera2
            style); YUV420 is the whole contiguous ``(h * 3 // 2, stride)`` buffer, with the stride
            rounded up to even.
        content: "noise" (uniform bytes), "binary" (0 or 255) or "constant" (one value). Row
            padding gets the same treatment, so a kernel that reads padding is caught by noise.

    Returns:
        The frame (a view with row strides larger than the row when `stride_pad` > 0).
    """
    pf = pixel_format(fmt)
    if pf.yuv420:
        assert w % 2 == 0 and h % 2 == 0, "4:2:0 frames need even sizes"
        stride = w + stride_pad
        if pf.yuv420 == "I420":
            stride += stride % 2
            return _fill(rng, (h * 3 // 2, stride), content)
        return _fill(rng, (h * 3 // 2, stride), content)[:, :w]
    bpp = pf.bytes_per_pixel
    shape = (h, w + stride_pad) if bpp == 1 else (h, w + stride_pad, bpp)
    return _fill(rng, shape, content)[:, :w]


def yuv_planes(frame: np.ndarray, fmt: str, w: int, h: int):
    """The Y, U and V planes of a 4:2:0 frame, read independently of edgert (picamera2 layouts)."""
    pf = pixel_format(fmt)
    y = frame[:h, :w]
    if pf.yuv420 == "I420":
        flat = frame.reshape(-1)
        stride = frame.shape[1]
        u0, plane = h * stride, (h // 2) * (stride // 2)
        u = flat[u0:u0 + plane].reshape(h // 2, stride // 2)[:, :w // 2]
        v = flat[u0 + plane:u0 + 2 * plane].reshape(h // 2, stride // 2)[:, :w // 2]
        return y, u, v
    uv = frame[h:, :w].reshape(h // 2, w // 2, 2)
    first, second = uv[..., 0], uv[..., 1]
    return (y, first, second) if pf.yuv420 == "NV12" else (y, second, first)


def image_spec(h: int, w: int, c: int, layout: str = "NHWC", dtype=np.uint8,
               quant: Quantization | None = None, name: str = "input") -> TensorSpec:
    """A model-input spec of ``h`` x ``w`` x ``c`` in one of `LAYOUTS`."""
    shape_of, spec_layout, _ = LAYOUTS[layout]
    return TensorSpec(name, shape_of(h, w, c), dtype, quant, spec_layout)


def channel_axis(layout: str) -> int:
    """Axis of the channels in a tensor of `layout`."""
    return LAYOUTS[layout][2]


def to_chw(x: np.ndarray, layout: str) -> np.ndarray:
    """A tensor of `layout` as ``(C, H, W)``."""
    if layout == "NHWC":
        return x[0].transpose(2, 0, 1)
    if layout == "NCHW":
        return x[0]
    if layout == "HWC":
        return x.transpose(2, 0, 1)
    return x


def packed_rgb(frame: np.ndarray, fmt: str) -> np.ndarray:
    """``(3, h, w)`` R, G, B planes of a packed frame (GRAY repeated), read by byte order of the format."""
    order = {"BGR": (2, 1, 0), "RGB": (0, 1, 2), "BGRA": (2, 1, 0), "RGBA": (0, 1, 2), "BGRX": (2, 1, 0),
             "RGBX": (0, 1, 2), "XRGB8888": (2, 1, 0), "XBGR8888": (0, 1, 2)}
    if frame.ndim == 2:
        return np.stack([frame] * 3)
    return np.stack([frame[..., i] for i in order[fmt]])


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.02) -> bool:
    """Poll `predicate` until it is true (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True
