"""The plate crop: a quad of a BGR frame warped upright, straight into a recogniser's input rows.

`PlateWarp` warps with edgert's compiled projective warp (`edgert.warp.Warper.quads` /
`Warper.perspective`): bilinear sampling, PP-OCR's normalisation ``x / 127.5 - 1`` and the padding of the
rest of the row (0.0) in one pass. Taps past the frame read mid-grey (127.5, which normalises to ~0).

Geometry: quad corners are continuous image coordinates with pixel centres at integers (as the street
source's ``plate_quad``), top-left first, clockwise: the plate's outline. The outline maps onto the
output's outline, so output pixel (i, j) samples the quad at its centre (the "half" convention of
`edgert.warp`, whose corners put pixel centres at half integers: hence the 0.5 added to the quad).
"""
from __future__ import annotations

import numpy as np

from edgert.core.errors import FrameError
from edgert.core.tensor import TensorSpec
from edgert.warp import Warper, quad_homographies

#: Smallest quad side accepted, in source pixels.
MIN_SIDE = 2.0
#: Grey read past the frame's edge (and written past the plate in an input row): 0.0 once normalised.
GREY = 127.5
#: Frame sizes whose warpers are kept (one per camera, typically).
MAX_SIZES = 8


def check_quad(quad) -> np.ndarray:
    """`quad` as a float64 ``(4, 2)`` array; `FrameError` when it is not four finite corners of a convex,
    non-degenerate quad."""
    q = np.asarray(quad, np.float64)
    if q.shape != (4, 2) or not np.isfinite(q).all():
        raise FrameError(f"plate quad: expected 4 finite (x, y) corners, got shape {q.shape}")
    nxt = q[[1, 2, 3, 0]]
    area = 0.5 * abs(float(np.sum(q[:, 0] * nxt[:, 1] - q[:, 1] * nxt[:, 0])))
    sides = side_lengths(q)
    if sides.min() < MIN_SIDE or area < MIN_SIDE * MIN_SIDE:
        raise FrameError(f"plate quad: degenerate (sides {np.round(sides, 2).tolist()} px, area {area:.2f})")
    try:
        quad_homographies(q, (1, 1))
    except FrameError as e:
        raise FrameError(f"plate quad: {str(e).split(': ', 1)[1]}") from None
    return q


def side_lengths(q: np.ndarray) -> np.ndarray:
    """Top, right, bottom, left side lengths of a ``(4, 2)`` quad."""
    d = q[[1, 2, 3, 0]] - q
    return np.hypot(d[:, 0], d[:, 1])


def quad_size(q: np.ndarray) -> tuple:
    """``(width, height)`` of a quad: the mean of its opposite sides."""
    top, right, bottom, left = side_lengths(q)
    return (top + bottom) / 2, (left + right) / 2


def plate_homography(q: np.ndarray, size: tuple) -> np.ndarray:
    """The ``(3, 3)`` map (output pixel index -> frame pixel index) of a checked quad upright at ``size = (w, h)``."""
    return quad_homographies(q + 0.5, size, "half")[0]


class PlateWarp:
    """Warps plate quads of BGR frames into a recogniser's float32 ``(1, 3, H, W)`` input (BGR, ``x / 127.5 - 1``).

    Args:
        spec: The recogniser's input spec; rows are H pixels high.

    Warpers are made per frame size on first use (the last `MAX_SIZES` kept); not thread-safe (one per reader).
    """

    def __init__(self, spec: TensorSpec):
        self.spec = spec
        self.row_height, self.width = spec.shape[2], spec.shape[3]
        self._warpers: dict = {}

    def _warper(self, frame: np.ndarray, kind: str, height: int = 0) -> Warper:
        if not isinstance(frame, np.ndarray) or frame.ndim != 3:
            raise FrameError(f"plate crop: expected a BGR uint8 (H, W, 3) frame, got {getattr(frame, 'shape', frame)}")
        key = (kind, frame.shape[1], frame.shape[0], height)
        warper = self._warpers.pop(key, None)
        if warper is None:
            if kind == "input":
                warper = Warper(self.spec, "BGR", key[1:3], mean=GREY, std=GREY, pad_value=GREY,
                                channel_order="BGR")
            else:
                spec = TensorSpec("upright", (1, height, self.width, 3), np.uint8)
                warper = Warper(spec, "BGR", key[1:3], pad_value=GREY, channel_order="BGR")
            while len(self._warpers) >= MAX_SIZES:
                self._warpers.pop(next(iter(self._warpers)))
        self._warpers[key] = warper  # most recently used last
        return warper

    def fill(self, frame: np.ndarray, q: np.ndarray, size: tuple, row: int, out: np.ndarray) -> None:
        """Warp row `row` (of ``size[1] / H`` rows) of the checked quad `q`, upright at ``size = (w, h)``, into
        `out`: the first w columns, the rest 0.0 (PaddleOCR's padding)."""
        w = int(size[0])
        m = plate_homography(q, size) @ np.array([[1.0, 0, 0], [0, 1, row * self.row_height], [0, 0, 1]])
        self._warper(frame, "input").perspective(frame, m, out=out, widths=[w])

    def upright(self, frame: np.ndarray, q: np.ndarray, size: tuple) -> np.ndarray:
        """The checked quad `q` warped upright into a ``(h, w, 3)`` uint8 BGR image, ``size = (w, h)``."""
        w, h = int(size[0]), int(size[1])
        image = np.empty((1, h, self.width, 3), np.uint8)
        self._warper(frame, "bgr", h).perspective(frame, plate_homography(q, size), out=image, widths=[w])
        return image[0, :, :w]
