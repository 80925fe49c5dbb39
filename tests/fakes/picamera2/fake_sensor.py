"""The fake camera's sensor and ISP: a rendered RGB scene written into a stream buffer as libcamera
lays it out (row stride, planes, byte order), converted to YUV in the configured colour space."""
from __future__ import annotations

import libcamera
import numpy as np

RGB_FORMATS = {"BGR888", "RGB888", "XBGR8888", "XRGB8888"}
_MATRICES = {libcamera.ColorSpace.YcbcrEncoding.Rec601: (0.299, 0.114),
             libcamera.ColorSpace.YcbcrEncoding.Rec709: (0.2126, 0.0722)}


def stride_and_size(platform: str, fmt: str, size) -> tuple:
    """(stride, framesize) libcamera gives a stream: rows aligned to 64 bytes on Pi 5, 32 on VC4."""
    w, h = size
    align = 64 if platform == "PISP" else 32
    if fmt in ("YUV420", "YVU420", "NV12", "NV21"):
        stride = -(-w // align) * align
        return stride, stride * h * 3 // 2
    bpp = {"RGB888": 3, "BGR888": 3, "XRGB8888": 4, "XBGR8888": 4}.get(fmt, 2)
    stride = -(-(w * bpp) // align) * align
    return stride, stride * h


def render_buffer(rgb: np.ndarray, fmt: str, stride: int, framesize: int, colour_space) -> np.ndarray:
    """The camera buffer of one stream: padding bytes hold junk, as real row padding may."""
    h, w = rgb.shape[:2]
    buffer = (np.arange(framesize, dtype=np.uint32) * 2654435761 >> 24).astype(np.uint8)
    if fmt in RGB_FORMATS:
        order = {"RGB888": (2, 1, 0), "XRGB8888": (2, 1, 0), "BGR888": (0, 1, 2), "XBGR8888": (0, 1, 2)}[fmt]
        pixels = rgb[..., order]
        if fmt.startswith("X"):
            pixels = np.concatenate([pixels, np.full((h, w, 1), 255, np.uint8)], axis=2)
        buffer.reshape(h, stride)[:, : pixels.shape[1] * pixels.shape[2]] = pixels.reshape(h, -1)
        return buffer
    y, u, v = rgb_to_yuv420(rgb, colour_space)
    buffer[: h * stride].reshape(h, stride)[:, :w] = y
    plane = (h // 2) * (stride // 2)
    for k, chroma in enumerate((u, v)):
        start = h * stride + k * plane
        buffer[start:start + plane].reshape(h // 2, stride // 2)[:, : w // 2] = chroma
    return buffer


def rgb_to_yuv420(rgb: np.ndarray, colour_space) -> tuple:
    """Y, U, V planes (4:2:0, chroma averaged over 2x2) of an RGB image in a libcamera colour space."""
    kr, kb = _MATRICES[colour_space.ycbcrEncoding]
    r, g, b = (rgb[..., i].astype(np.float64) / 255 for i in range(3))
    luma = kr * r + (1 - kr - kb) * g + kb * b
    cb, cr = (b - luma) / (2 * (1 - kb)), (r - luma) / (2 * (1 - kr))
    h, w = luma.shape
    cb = cb.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    cr = cr.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    full = colour_space.range == libcamera.ColorSpace.Range.Full
    y_scale, y_offset, c_scale = (255, 0, 255) if full else (219, 16, 224)
    y = np.clip(np.rint(y_offset + y_scale * luma), 0, 255).astype(np.uint8)
    u = np.clip(np.rint(128 + c_scale * cb), 0, 255).astype(np.uint8)
    v = np.clip(np.rint(128 + c_scale * cr), 0, 255).astype(np.uint8)
    return y, u, v
