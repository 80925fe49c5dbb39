"""Fixed-point sampling maps that tell the preprocessing kernel which source pixels feed each output pixel.

Computed once per stream (one call per image axis and plane). Conventions, shared with the NumPy twin
in `edgert._reference` and with every resize or warp of edgert (DESIGN.md convention 13):

Coordinates are continuous: source pixel ``j`` covers ``[j, j + 1)`` and its centre is ``j + 0.5``.
An axis maps the source run ``[src_start, src_start + src_len)`` onto ``n`` output pixels, ``step =
src_len / n`` source pixels per output pixel. Where output pixel ``i`` samples the source is its
*centre* ``c_i``, set by the pixel-centre convention (`PIXEL_CENTERS`):

* ``"half"`` (half-pixel centres): ``c_i = src_start + (i + 0.5) * step``. Output pixel centres map
  onto source points, so a 2:1 downscale averages pixel pairs. OpenCV ``resize``, TF/LiteRT
  ``resize_bilinear(half_pixel_centers=True)``, PIL, scikit-image.
* ``"corner"`` (corner-mapped affine): ``c_i = src_start + i * step + 0.5``, i.e. output *index* ``i``
  samples source *index* ``src_start + i * step``: the plain scale/offset matrix ``x_src = s * x_dst +
  t`` applied to pixel indices, as OpenCV ``warpAffine``/``warpPerspective`` do with such a matrix.
  MediaPipe's CPU ``ImageToTensorCalculator`` works so (it maps the ROI's corners onto the tensor's
  corners and warps), and its models (BlazeFace, ...) were trained behind it. Against "half" the
  samples sit ``(step - 1) / 2`` source pixels up and left (2 pixels at 640 -> 128).

Both conventions map *coordinates* the same way: a box edge at output ``x`` is source ``src_start +
x * step`` (`edgert.geometry.Placement.to_source`, the inverse of the affine map), which is how
MediaPipe projects its detections back too (under "corner" a letterbox also takes MediaPipe's exact
scale and fractional offset: `edgert.geometry.place`). Each plane scales centres by ``plane_scale``
(0.5 for 4:2:0 chroma, whose samples sit between luma samples), so every plane samples the same point.

* nearest: source pixel ``floor(c)``, clamped to the plane (``round`` of the index, as warpAffine).
* bilinear: taps ``floor(c - 0.5)`` and the next one, borders replicated (as OpenCV's INTER_LINEAR
  with BORDER_REPLICATE); the weight of the second tap in Q11 along x (``BILINEAR_BITS``) and Q8
  along y (``BILINEAR_Y_BITS``: rows are blended first, into 16-bit lanes).
* area: every source pixel weighted by how much of it the footprint ``[c - step / 2, c + step / 2)``
  covers (as OpenCV's INTER_AREA on downscales); weights normalised to sum to 1 in Q16
  (``AREA_BITS``). Only the first and last pixel of a run can be partly covered, so a run is stored
  as start, count and three weights.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BILINEAR_BITS = 11
BILINEAR_Y_BITS = 8
AREA_BITS = 16
#: Largest area downscale per axis. Up to it, the rounding residue of the Q16 weights moves the
#: result by well under one unit (4K -> 224 is 17x); past it, downscale the stream first.
MAX_AREA_RATIO = 64
INTERPOLATIONS = ("nearest", "bilinear", "area")
#: Pixel-centre conventions (see the module docstring): "half" (OpenCV resize) or "corner" (warpAffine, MediaPipe).
PIXEL_CENTERS = ("half", "corner")


@dataclass(frozen=True)
class AxisMap:
    """Sampling of one image axis; which arrays are meaningful depends on the interpolation.

    Attributes:
        interpolation: "nearest", "bilinear" or "area".
        first: nearest/bilinear: first tap; area: first covered source pixel (int32).
        second: bilinear: second tap; area: number of covered source pixels (int32).
        weight: bilinear: Q11 weight of the second tap; area: Q16 weight of the first pixel (int32).
        weight_mid: area: Q16 weight of each fully covered pixel (int32).
        weight_last: area: Q16 weight of the last pixel (int32).

    Every array has one entry per output pixel; entries an interpolation does not use are zero.
    """

    interpolation: str
    first: np.ndarray
    second: np.ndarray
    weight: np.ndarray
    weight_mid: np.ndarray
    weight_last: np.ndarray

    def scaled(self, step: int) -> "AxisMap":
        """The same map with pixel indices turned into byte offsets (``step`` bytes per pixel)."""
        second = self.second if self.interpolation == "area" else self.second * step
        return AxisMap(self.interpolation, (self.first * step).astype(np.int32), second.astype(np.int32),
                       self.weight, self.weight_mid, self.weight_last)


def _check(pixel_centers: str) -> None:
    if pixel_centers not in PIXEL_CENTERS:
        raise ValueError(f"pixel_centers: expected one of {', '.join(PIXEL_CENTERS)}, got {pixel_centers!r}")


def centres(src_start: float, src_len: float, n: int, plane_scale: float, pixel_centers: str = "half") -> np.ndarray:
    """Source coordinates (in plane pixels) of the centres of the ``n`` output pixels."""
    _check(pixel_centers)
    step = src_len / n
    if pixel_centers == "corner":
        return (src_start + np.arange(n) * step + 0.5) * plane_scale
    return (src_start + (np.arange(n) + 0.5) * step) * plane_scale


def footprint_edges(src_start: float, src_len: float, n: int, plane_scale: float,
                    pixel_centers: str = "half") -> np.ndarray:
    """The ``n + 1`` edges (in plane pixels) of the output pixels' footprints ``[c - step / 2, c + step / 2)``."""
    _check(pixel_centers)
    step = src_len / n
    if pixel_centers == "corner":
        return (src_start + 0.5 + (np.arange(n + 1) - 0.5) * step) * plane_scale
    return (src_start + np.arange(n + 1) * step) * plane_scale


def axis_map(interpolation: str, src_start: float, src_len: float, n: int, size: int,
             plane_scale: float = 1.0, bits: int = BILINEAR_BITS, pixel_centers: str = "half") -> AxisMap:
    """The `AxisMap` of ``n`` outputs over a plane axis of ``size`` pixels.

    ``bits``: bilinear weight bits; ``pixel_centers``: one of `PIXEL_CENTERS`.
    """
    zeros = np.zeros(n, np.int32)
    if interpolation == "nearest":
        idx = np.floor(centres(src_start, src_len, n, plane_scale, pixel_centers))
        idx = np.clip(idx, 0, size - 1).astype(np.int32)
        return AxisMap("nearest", idx, idx, zeros, zeros, zeros)
    if interpolation == "bilinear":
        p = centres(src_start, src_len, n, plane_scale, pixel_centers) - 0.5
        i0 = np.floor(p)
        frac = p - i0
        low, high = i0 < 0, i0 >= size - 1
        i0 = np.clip(i0, 0, size - 1).astype(np.int32)
        frac[low | high] = 0.0
        i1 = np.minimum(i0 + 1, size - 1).astype(np.int32)
        w = np.round(frac * (1 << bits)).astype(np.int32)
        return AxisMap("bilinear", i0, i1, w, zeros, zeros)
    if interpolation == "area":
        return _area_map(footprint_edges(src_start, src_len, n, plane_scale, pixel_centers), n, size)
    raise ValueError(interpolation)


def _area_map(edges: np.ndarray, n: int, size: int) -> AxisMap:
    lo = np.clip(edges[:-1], 0, size)
    hi = np.clip(edges[1:], 0, size)
    hi = np.maximum(hi, np.minimum(lo + 1e-9, size))
    first = np.minimum(np.floor(lo), size - 1)
    last = np.maximum(np.ceil(hi) - 1, first)
    count = (last - first + 1).astype(np.int32)
    length = np.maximum(hi - lo, 1e-12)
    one = 1 << AREA_BITS
    cover_first = np.minimum(hi, first + 1) - lo
    cover_last = np.where(count > 1, hi - last, 0.0)
    inner = np.maximum(count - 2, 0)
    # Inner pixels share one rounded weight; first and last share what they leave, so the weights
    # sum to exactly 1 in Q16 and a flat image stays flat (255 stays 255).
    w_mid = np.round(one / length).astype(np.int64) * (count > 2)
    rest = one - w_mid * inner
    short = rest < 0
    w_mid[short] = np.floor(one / length[short]).astype(np.int64)
    rest = one - w_mid * inner
    ends = np.maximum(cover_first + cover_last, 1e-12)
    w_first = np.where(count == 1, one, np.round(rest * cover_first / ends)).astype(np.int64)
    w_last = np.where(count == 1, 0, rest - w_first)
    return AxisMap("area", first.astype(np.int32), count, w_first.astype(np.int32), w_mid.astype(np.int32),
                   w_last.astype(np.int32))
