"""Where a source frame lands in a model input: stretch, letterbox or centre-crop, and the way back.

Coordinates are continuous pixel coordinates: pixel ``i`` covers ``[i, i + 1)``, so a box edge at 0
is the left edge of the image and the centre of pixel ``i`` is ``i + 0.5``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgert.core.errors import ConfigError

RESIZE_MODES = ("stretch", "letterbox", "center-crop")


@dataclass(frozen=True)
class Placement:
    """An affine map from a source rectangle onto an output rectangle.

    Attributes:
        src_rect: ``(x, y, w, h)`` in source pixels (floats: a centre crop may start mid-pixel).
        dst_rect: ``(x, y, w, h)`` in output pixels (ints); output outside it is padding.
        src_size: ``(width, height)`` of the source frame.
        dst_size: ``(width, height)`` of the output.
    """

    src_rect: tuple
    dst_rect: tuple
    src_size: tuple
    dst_size: tuple

    def to_source(self, coords, clip: bool = True) -> np.ndarray:
        """Map boxes ``(..., 4)`` xyxy or points ``(..., 2)`` xy from output to source pixels.

        Args:
            coords: Array-like whose last axis is 4 (boxes) or 2 (points), in output pixels.
            clip: Clamp results to the source frame.

        Returns:
            float32 array of the same shape, in source pixels.
        """
        try:
            a = np.asarray(coords, dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"to_source: expected boxes (..., 4) or points (..., 2) of numbers, got {coords!r}") from None
        if a.ndim == 0 or a.shape[-1] not in (2, 4):
            raise ConfigError(f"to_source: expected boxes (..., 4) or points (..., 2), got shape {a.shape}")
        sx, sy, sw, sh = self.src_rect
        dx, dy, dw, dh = self.dst_rect
        scale = np.array([sw / dw, sh / dh] * (a.shape[-1] // 2))
        shift_dst = np.array([dx, dy] * (a.shape[-1] // 2))
        shift_src = np.array([sx, sy] * (a.shape[-1] // 2))
        out = (a - shift_dst) * scale + shift_src
        if clip:
            out = np.clip(out, 0, np.array(list(self.src_size) * (a.shape[-1] // 2)))
        return out.astype(np.float32)


def place(src_size, dst_size, mode: str, pixel_centers: str = "half") -> Placement:
    """The `Placement` of a ``src_size`` frame into a ``dst_size`` output by resize `mode`.

    Letterbox keeps the aspect ratio, centres the content and pads the rest; centre-crop keeps the
    aspect ratio and cuts the overhanging source evenly from both sides; stretch maps the whole frame.

    Letterbox under "half" pixel centres rounds the content to whole output pixels (its scale per
    axis is content pixels / source pixels, as YOLO letterboxes do). Under "corner" it is MediaPipe's:
    one exact scale ``min(w / sw, h / sh)``, the content centred at a fractional offset, and the
    content rectangle the output pixels whose sample falls within half a pixel of the frame (the
    source rectangle may then reach a fraction of a pixel past the frame; those samples take the
    edge pixel).
    """
    sw, sh = src_size
    w, h = dst_size
    if mode == "stretch":
        return Placement((0.0, 0.0, float(sw), float(sh)), (0, 0, w, h), (sw, sh), (w, h))
    if mode == "letterbox" and pixel_centers == "corner":
        return _letterbox_exact(sw, sh, w, h)
    if mode == "letterbox":
        s = min(w / sw, h / sh)
        cw = min(w, max(1, int(round(sw * s))))
        ch = min(h, max(1, int(round(sh * s))))
        return Placement((0.0, 0.0, float(sw), float(sh)), ((w - cw) // 2, (h - ch) // 2, cw, ch), (sw, sh), (w, h))
    if mode == "center-crop":
        s = max(w / sw, h / sh)
        cw, ch = min(sw, w / s), min(sh, h / s)
        return Placement(((sw - cw) / 2, (sh - ch) / 2, cw, ch), (0, 0, w, h), (sw, sh), (w, h))
    raise ConfigError(f"resize: unknown mode {mode!r}; expected one of {', '.join(RESIZE_MODES)}")


def _exact_span(n_src: int, n_dst: int, scale: float) -> tuple:
    """``(first, count, src_start)`` of the content along one axis of an exact-scale letterbox.

    Output index i samples source index ``(i - offset) / scale``; it is content when that lies in
    ``[-0.5, n_src - 0.5]`` (at least one pixel is, the one nearest the content's centre).
    """
    offset = (n_dst - n_src * scale) / 2
    first = max(0, math.ceil(offset - 0.5 * scale - 1e-9))
    last = min(n_dst - 1, math.floor(offset + (n_src - 0.5) * scale + 1e-9))
    if last < first:
        first = last = min(n_dst - 1, max(0, int(math.floor(n_dst / 2))))
    return first, last - first + 1, (first - offset) / scale


def _letterbox_exact(sw: int, sh: int, w: int, h: int) -> Placement:
    s = min(w / sw, h / sh)
    dx, cw, sx = _exact_span(sw, w, s)
    dy, ch, sy = _exact_span(sh, h, s)
    return Placement((sx, sy, cw / s, ch / s), (dx, dy, cw, ch), (sw, sh), (w, h))
