"""Pure-NumPy twin of the region kernel (``ext/regions.pyx``): the readable spec (the warp twin: `edgert._reference_warp`).

Regions (`regions`), per box, the geometry of `edgert.regions`:
  1. place the box by the resize mode (`edgert.geometry.place` of a frame of the box's size, with the
     pixel-centre convention: under "corner" a letterbox is MediaPipe's exact-scale one);
  2. per axis, Q16 source positions ``P_i = rint((sx + o r - o) 2^16) + i rint(r 2^16)``, ``r = sw / n``;
     an output whose position lies outside ``[-0.5, size - 0.5)`` ("half") or ``[-0.5, size)``
     ("corner") is padding;
  3. bilinear: taps ``P >> 16`` and the next, clamped to the box's pixel hull in the frame, weights
     of the second tap rounded to Q8 for rows (``fy``) and Q15 for columns (``fx``); rows first:
     ``t = (256 v0 + (v1 - v0) fy) >> 1`` (Q7), then ``h = tl + ((((tr - tl) fx) >> 14) + 1) >> 1``
     (a rounded Q15 multiply, as 16-bit vector lanes do it) and the sample ``(h + 64) >> 7``.
     Nearest: the pixel at ``(P + 2^15) >> 16``. Chroma of 4:2:0 at ``(P - 2^15) >> 1`` over the hull halved;
  4. colour conversion and value tables as the whole-frame twin (`edgert._reference`).
With ``exact=True`` step 3 uses the unrounded fractions in float64 and rounds half up: the ideal
bilinear value, which the fixed-point one stays within one unit of.
"""
from __future__ import annotations

import numpy as np

from edgert import _reference, colour
from edgert.geometry import place
from edgert.preprocess import Preprocessor, value_table

_CENTRE = {"half": 0.5, "corner": 0.0}


def positions(start: float, length: float, n: int, centre: float) -> np.ndarray:
    """Q16 source positions (pixel indices) of the ``n`` outputs of one axis."""
    r = length / n
    return np.int64(np.rint((start + centre * r - centre) * 65536.0)) + np.arange(n, dtype=np.int64) * np.int64(
        np.rint(r * 65536.0))


def _taps(p: np.ndarray, lo: int, hi: int, bits: int, nearest: bool):
    """First tap, second tap and weight of the second (Q `bits`, or a float fraction when bits is 0)."""
    if nearest:
        i0 = np.clip((p + 32768) >> 16, lo, hi)
        return i0, i0, np.zeros(len(p), np.int64)
    i0 = p >> 16
    if bits:
        w = ((p & 0xFFFF) + (1 << (15 - bits))) >> (16 - bits)
        carry = w == 1 << bits
        i0, w = i0 + carry, np.where(carry, 0, w)
    else:
        w = (p & 0xFFFF) / 65536.0
    clamped = (i0 < lo) | (i0 >= hi)
    i0 = np.clip(i0, lo, hi)
    w = np.where(clamped, 0, w).astype(np.float64 if not bits else np.int64)
    return i0, np.where(w > 0, i0 + 1, i0), w


def _sample(plane: np.ndarray, py, px, hull, nearest: bool, exact: bool, chroma: bool) -> np.ndarray:
    """One plane sampled at the Q16 positions of the rows `py` and columns `px`."""
    if chroma:
        py, px = (py - 32768) >> 1, (px - 32768) >> 1
        hull = [v >> 1 for v in hull]
    lo_x, hi_x, lo_y, hi_y = hull
    y0, y1, fy = _taps(py, lo_y, hi_y, 0 if exact else 8, nearest)
    x0, x1, fx = _taps(px, lo_x, hi_x, 0 if exact else 15, nearest)
    v = plane.astype(np.int64)
    if exact:
        rows = v[y0] * (1 - fy[:, None]) + v[y1] * fy[:, None]
        return np.floor(rows[:, x0] * (1 - fx) + rows[:, x1] * fx + 0.5).astype(np.int64)
    t = (v[y0] * 256 + (v[y1] - v[y0]) * fy[:, None]) >> 1
    tl, tr = t[:, x0], t[:, x1]
    h = tl + (((((tr - tl) * fx) >> 14) + 1) >> 1)
    return (h + 64) >> 7


def _one_region(frame, pre: Preprocessor, box, centre: float, exact: bool) -> np.ndarray:
    fw, fh = pre.src_size
    w, h = pre._size
    x0, y0, x1, y1 = (float(v) for v in box)
    pl = place((x1 - x0, y1 - y0), (w, h), pre.resize, "corner" if centre == 0 else "half")
    sx, sy, sw, sh = pl.src_rect
    dx, dy, n_x, n_y = pl.dst_rect
    px, py = positions(x0 + sx, sw, n_x, centre), positions(y0 + sy, sh, n_y, centre)
    end = 0 if centre == 0 else 32768  # content up to the frame's end ("corner"), or half a pixel before it
    in_x = (px >= -32768) & (px < fw * 65536 - end)
    in_y = (py >= -32768) & (py < fh * 65536 - end)
    hull = (max(0, int(np.floor(x0))), min(fw, int(np.ceil(x1))) - 1,
            max(0, int(np.floor(y0))), min(fh, int(np.ceil(y1))) - 1)
    planes = _reference._planes(frame, pre)
    nearest = pre.interpolation == "nearest"
    c = pre._channels
    if "Y" in planes:
        y = _sample(planes["Y"], py, px, hull, nearest, exact, False)
        if c == 1:
            chans = [colour.luma_levels(pre.yuv_range)[y]]
        else:
            u, v = (_sample(planes[k], py, px, hull, nearest, exact, True) for k in "UV")
            chans = _reference.yuv_to_rgb(y, u, v, pre.yuv_range, pre.yuv_matrix)
    elif pre.format.is_gray:
        chans = [_sample(planes["R"], py, px, hull, nearest, exact, False)] * c
    else:
        r, g, b = (_sample(planes[k], py, px, hull, nearest, exact, False) for k in "RGB")
        chans = [_reference.rgb_to_gray(r, g, b)] if c == 1 else [r, g, b]
    if c == 3 and pre.channel_order == "BGR":
        chans = chans[::-1]
    content = np.stack([np.asarray(ch).reshape(n_y, n_x) for ch in chans])
    pad = np.asarray(pre._pad_value, np.float64)
    canvas = np.empty((c, h, w), pre.spec.dtype)
    canvas[:] = value_table(pre.spec, c, pre._nhwc, pre.mean, pre.std, pad[:, None])[:, :, None]
    mapped = value_table(pre.spec, c, pre._nhwc, pre.mean, pre.std, content.reshape(c, -1).astype(np.float64))
    inside = in_y[:, None] & in_x[None, :]
    window = canvas[:, dy:dy + n_y, dx:dx + n_x]
    window[:, inside] = mapped.reshape(c, n_y, n_x)[:, inside]
    return canvas.transpose(1, 2, 0) if pre._nhwc else canvas


def regions(frame: np.ndarray, pre: Preprocessor, boxes, pixel_centers: str = "half",
            exact: bool = False) -> np.ndarray:
    """What `pre.regions(frame, boxes)` must return, box by box (boxes already valid)."""
    images = [_one_region(frame, pre, box, _CENTRE[pixel_centers], exact) for box in np.asarray(boxes, float)]
    shape = pre.spec.shape[1:] if len(pre.spec.shape) == 4 else pre.spec.shape
    return np.stack(images).reshape((len(images), *shape)) if images else np.zeros((0, *shape), pre.spec.dtype)
