"""The plate crop: a quad of a BGR frame warped upright into a recogniser's input rows.

THE ONE PLACE to swap for the compiled rotated-rectangle warp (`edgert.warp.Warper.quads`, branch
i13-regions) once it lands: `upright` warps with ``cv2.warpPerspective`` (bilinear, border replicated) and
`fill_input` normalises in NumPy, two passes where the kernel does one.

Geometry: quad corners are continuous image coordinates with pixel centres at integers (as the street
source's ``plate_quad``), top-left first, clockwise: the plate's outline. The outline maps onto the
output's outline, so output pixel (i, j) samples the quad at its centre (corner-free: the half-pixel
convention of `edgert.resample_maps`).
"""
from __future__ import annotations

import numpy as np

from edgert.core.errors import FrameError

#: Smallest quad side accepted, in source pixels.
MIN_SIDE = 2.0


def check_quad(quad) -> np.ndarray:
    """`quad` as a float64 ``(4, 2)`` array; `FrameError` when it is not four finite, non-degenerate points."""
    q = np.asarray(quad, np.float64)
    if q.shape != (4, 2) or not np.isfinite(q).all():
        raise FrameError(f"plate quad: expected 4 finite (x, y) corners, got shape {q.shape}")
    x, y = q[:, 0], q[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    if min(side_lengths(q)) < MIN_SIDE or area < MIN_SIDE * MIN_SIDE:
        raise FrameError(f"plate quad: degenerate (sides {np.round(side_lengths(q), 2).tolist()} px, area {area:.2f})")
    return q


def side_lengths(q: np.ndarray) -> np.ndarray:
    """Top, right, bottom, left side lengths of a ``(4, 2)`` quad."""
    return np.linalg.norm(np.roll(q, -1, axis=0) - q, axis=1)


def quad_size(q: np.ndarray) -> tuple:
    """``(width, height)`` of a quad: the mean of its opposite sides."""
    top, right, bottom, left = side_lengths(q)
    return (top + bottom) / 2, (left + right) / 2


def upright(frame: np.ndarray, quad: np.ndarray, size: tuple) -> np.ndarray:
    """The quad warped upright into a ``(h, w, 3)`` uint8 BGR image, ``size = (w, h)``."""
    import cv2

    w, h = size
    dst = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]], np.float32)
    m = cv2.getPerspectiveTransform(quad.astype(np.float32), dst)
    return cv2.warpPerspective(frame, m, (int(w), int(h)), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def fill_input(rows: list, out: np.ndarray) -> None:
    """Write upright BGR rows ``(48, w_i, 3)`` into a float32 ``(N, 3, 48, W)`` input: ``x / 127.5 - 1``,
    left-aligned, the rest 0.0 (PaddleOCR's padding)."""
    out[...] = 0.0
    for i, row in enumerate(rows):
        w = row.shape[1]
        out[i, :, :, :w] = row.transpose(2, 0, 1).astype(np.float32) * np.float32(1 / 127.5) - np.float32(1.0)
