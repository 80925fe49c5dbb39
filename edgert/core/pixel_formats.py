"""Source pixel formats: their memory layout, and the check that a frame matches its declared format.

Names follow picamera2 and OpenCV, with picamera2's byte orders: ``XRGB8888`` is stored B,G,R,X
(OpenCV's BGRA), ``XBGR8888`` R,G,B,X, ``RGB888`` B,G,R (the same as "BGR") and ``BGR888`` R,G,B
(the same as "RGB").

Planar 4:2:0 frames come as one 2-D uint8 array of ``h * 3 // 2`` rows:
  * ``NV12``/``NV21``: rows ``[0, h)`` are luma, rows ``[h, 3h/2)`` interleaved chroma (U,V or V,U).
    Columns past ``w`` are row padding; a column slice (``a[:, :w]`` as picamera2 gives NV12) is fine.
  * ``YUV420`` (I420): the whole ``(h * 3 // 2, stride)`` buffer as picamera2 gives it: luma rows of
    ``stride`` bytes, then the U plane and the V plane with rows of ``stride // 2`` bytes packed two
    per array row. It must be C-contiguous (a column slice would cut the chroma planes apart).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgert.core.errors import ConfigError, FrameError


@dataclass(frozen=True)
class PixelFormat:
    """Memory layout of one source format.

    Attributes:
        name: Canonical name.
        bytes_per_pixel: Bytes per pixel of a packed format; 1 for the luma plane of a planar one.
        rgb_offsets: Byte offsets of R, G, B inside a packed pixel (``(0, 0, 0)`` for GRAY).
        yuv420: ``None`` for packed formats, else ``"NV12"``, ``"NV21"`` or ``"I420"``.
    """

    name: str
    bytes_per_pixel: int
    rgb_offsets: tuple
    yuv420: str | None = None

    @property
    def is_gray(self) -> bool:
        return self.bytes_per_pixel == 1 and self.yuv420 is None


_FORMATS = {
    "BGR": PixelFormat("BGR", 3, (2, 1, 0)),
    "RGB": PixelFormat("RGB", 3, (0, 1, 2)),
    "BGRA": PixelFormat("BGRA", 4, (2, 1, 0)),
    "RGBA": PixelFormat("RGBA", 4, (0, 1, 2)),
    "BGRX": PixelFormat("BGRX", 4, (2, 1, 0)),
    "RGBX": PixelFormat("RGBX", 4, (0, 1, 2)),
    "XRGB8888": PixelFormat("XRGB8888", 4, (2, 1, 0)),
    "XBGR8888": PixelFormat("XBGR8888", 4, (0, 1, 2)),
    "RGB888": PixelFormat("RGB888", 3, (2, 1, 0)),
    "BGR888": PixelFormat("BGR888", 3, (0, 1, 2)),
    "GRAY": PixelFormat("GRAY", 1, (0, 0, 0)),
    "NV12": PixelFormat("NV12", 1, (0, 0, 0), "NV12"),
    "NV21": PixelFormat("NV21", 1, (0, 0, 0), "NV21"),
    "YUV420": PixelFormat("YUV420", 1, (0, 0, 0), "I420"),
    "I420": PixelFormat("I420", 1, (0, 0, 0), "I420"),
}

SOURCE_FORMATS = tuple(_FORMATS)


def pixel_format(name) -> PixelFormat:
    """The `PixelFormat` called `name` (case-insensitive); `ConfigError` if unknown."""
    fmt = _FORMATS.get(str(name).upper())
    if fmt is None:
        raise ConfigError(f"src_format: unknown format {name!r}; expected one of {', '.join(SOURCE_FORMATS)}")
    return fmt


def frame_layout(frame, fmt: PixelFormat, width: int, height: int) -> tuple:
    """Check `frame` against its declared format and size and say where its planes lie.

    Returns:
        ``(pitch, chroma_u, chroma_v, chroma_pitch)``: bytes between luma (or packed) rows, byte
        offsets of the first U and V samples from the frame's first byte, and bytes between chroma
        rows (the last three are 0 for packed formats).

    Raises:
        FrameError: naming what is wrong (type, dtype, shape, channels, strides).
    """
    if not isinstance(frame, np.ndarray):
        raise FrameError(f"frame: expected a numpy.ndarray, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise FrameError(f"frame: expected dtype uint8 for {fmt.name}, got {frame.dtype}")
    if frame.size == 0:
        raise FrameError(f"frame: empty array of shape {frame.shape}")
    if fmt.yuv420 is not None:
        return _planar_layout(frame, fmt, width, height)
    bpp = fmt.bytes_per_pixel
    if frame.ndim == 2 and bpp == 1:
        shape, strides = frame.shape + (1,), frame.strides + (1,)
    else:
        shape, strides = frame.shape, frame.strides
    if len(shape) != 3 or shape[2] != bpp:
        want = f"({height}, {width})" if bpp == 1 else f"({height}, {width}, {bpp})"
        raise FrameError(f"frame: {fmt.name} needs shape {want}, got {frame.shape}")
    if shape[:2] != (height, width):
        raise FrameError(f"frame: size {shape[1]}x{shape[0]} differs from src_size {width}x{height}")
    s0, s1, s2 = strides
    # Strides of length-1 axes never move the address: NumPy leaves them arbitrary.
    if (bpp > 1 and s2 != 1) or (width > 1 and s1 != bpp):
        raise FrameError(f"frame: pixels must be packed ({bpp}-byte pixels, 1-byte channels); "
                         f"got strides {frame.strides} (use np.ascontiguousarray)")
    if height > 1 and s0 < width * bpp:
        raise FrameError(f"frame: row stride {s0} is smaller than a row of {width * bpp} bytes")
    return (s0 if height > 1 else width * bpp), 0, 0, 0


def _planar_layout(frame: np.ndarray, fmt: PixelFormat, width: int, height: int) -> tuple:
    rows = height * 3 // 2
    if frame.ndim != 2:
        raise FrameError(f"frame: {fmt.name} needs a 2-D array of shape ({rows}, stride>={width}), got {frame.shape}")
    if frame.shape[0] != rows or frame.shape[1] < width:
        raise FrameError(f"frame: {fmt.name} {width}x{height} needs shape ({rows}, stride>={width}), "
                         f"got {frame.shape}")
    s0, s1 = frame.strides
    if s1 != 1:
        raise FrameError(f"frame: {fmt.name} rows must be contiguous bytes, got strides {frame.strides}")
    if s0 < width:
        raise FrameError(f"frame: row stride {s0} is smaller than the width {width}")
    if fmt.yuv420 == "I420":
        if s0 != frame.shape[1]:
            raise FrameError(f"frame: {fmt.name} must be the whole ({rows}, stride) buffer; got a slice with "
                             f"{frame.shape[1]} columns of a {s0}-byte stride")
        if s0 % 2:
            raise FrameError(f"frame: {fmt.name} stride must be even, got {s0}")
        cp = s0 // 2
        u = height * s0
        if rows * s0 >= 1 << 31:
            raise FrameError(f"frame: {fmt.name} frames over 2 GiB are not supported")
        return s0, u, u + (height // 2) * cp, cp
    uv = height * s0
    if uv + (height // 2) * s0 >= 1 << 31:
        raise FrameError(f"frame: {fmt.name} frames over 2 GiB are not supported")
    if fmt.yuv420 == "NV12":
        return s0, uv, uv + 1, s0
    return s0, uv + 1, uv, s0
