"""Pure-NumPy twins of the warp kernel (``ext/warp.pyx``) and of its estimates: the readable spec.

Affine (`warp`): a matrix M maps an output pixel index (x, y) to a source pixel index; positions are
Q24, ``P = rint(M[., 2] 2^24) + y rint(M[., 1] 2^24) + x rint(M[., 0] 2^24)``.

Projective (`perspective`): a 3x3 H, per output row y ``X0 = H01 y + H02`` (and Y0, W0 alike), per pixel
``r = 1 / (H20 x + W0)``, ``u = (H00 x + X0) r``, clamped to ``[-1e6, 1e6]``, ``P = rint(u 2^24)``; a
pixel whose denominator is not positive reads the border. Each float64 operation is rounded on its
own (the kernel is built without fused multiply-adds there). An image may fill only its first
`width` columns; the rest is the padding value.

Then, for both: taps ``P >> 24`` and the next, Q11 weights of the fraction per axis,
``(t0 (2048 - wy) + t1 wy + 2^21) >> 22`` with ``t = v0 (2048 - wx) + v1 wx``, taps outside the plane
reading the border; 4:2:0 chroma at ``(P >> 1) - 2^22``; colour conversion and the value tables of the
whole-frame twin (`edgert._reference`).

`homography` solves the 8x8 linear system of the four corner correspondences (the kernel's
`homographies` uses a closed form); `umeyama` is the similarity estimate by SVD.
"""
from __future__ import annotations

import numpy as np

from edgert import _reference, colour
from edgert.preprocess import Preprocessor, value_table

LIMIT = 1e6


def _warp_plane(plane: np.ndarray, qx: np.ndarray, qy: np.ndarray, border: int) -> np.ndarray:
    """Bilinear samples of one 8-bit plane at Q24 positions, taps outside the plane reading `border`."""
    one = 1 << 24
    ix, iy = qx >> 24, qy >> 24
    wx = ((qx & (one - 1)) + (1 << 12)) >> 13
    wy = ((qy & (one - 1)) + (1 << 12)) >> 13
    ix, wx = np.where(wx == 2048, ix + 1, ix), np.where(wx == 2048, 0, wx)
    iy, wy = np.where(wy == 2048, iy + 1, iy), np.where(wy == 2048, 0, wy)
    h, w = plane.shape

    def tap(x, y):
        inside = (x >= 0) & (y >= 0) & (x < w) & (y < h)
        return np.where(inside, plane[np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)].astype(np.int64), border)

    t0 = tap(ix, iy) * (2048 - wx) + tap(ix + 1, iy) * wx
    t1 = tap(ix, iy + 1) * (2048 - wx) + tap(ix + 1, iy + 1) * wx
    return (t0 * (2048 - wy) + t1 * wy + (1 << 21)) >> 22


def _preprocessor(warper) -> Preprocessor:
    a = warper._pre_args
    return Preprocessor(warper.spec, warper.format.name, warper.src_size, "stretch", "nearest", a["mean"], a["std"],
                        a["pad_value"], channel_order=a["channel_order"], yuv_range=a["yuv_range"],
                        yuv_matrix=a["yuv_matrix"])


def _images(frame, warper, positions, widths=None) -> np.ndarray:
    """The batch whose image k samples the frame at ``positions[k] = (qx, qy)`` (Q24, (h, w) each)."""
    from edgert.warp import _border

    pre = _preprocessor(warper)
    border = _border(pre)
    w, h = pre._size
    planes = _reference._planes(frame, pre)
    c = pre._channels
    pad = value_table(pre.spec, c, pre._nhwc, pre.mean, pre.std,
                      np.asarray(pre._pad_value, np.float64).reshape(-1, 1))
    images = []
    for k, (qx, qy) in enumerate(positions):
        cx, cy = (qx >> 1) - (1 << 22), (qy >> 1) - (1 << 22)
        if "Y" in planes:
            y = _warp_plane(np.asarray(planes["Y"]), qx, qy, border[0])
            if c == 1:
                chans = [colour.luma_levels(pre.yuv_range)[y]]
            else:
                u = _warp_plane(np.asarray(planes["U"]), cx, cy, border[1])
                v = _warp_plane(np.asarray(planes["V"]), cx, cy, border[2])
                chans = _reference.yuv_to_rgb(y, u, v, pre.yuv_range, pre.yuv_matrix)
                chans = chans[::-1] if pre.channel_order == "BGR" else chans
        elif pre.format.is_gray:
            chans = [_warp_plane(np.asarray(planes["R"]), qx, qy, border[0])] * c
        else:
            order = "RGB" if pre.channel_order == "RGB" or c == 1 else "BGR"
            rgb = [_warp_plane(np.asarray(planes[k]), qx, qy, b) for k, b in zip(order, border + border * (c == 1))]
            chans = [_reference.rgb_to_gray(*rgb)] if c == 1 else rgb
        content = np.stack([np.asarray(ch).reshape(h, w) for ch in chans]).reshape(c, -1).astype(np.float64)
        mapped = value_table(pre.spec, c, pre._nhwc, pre.mean, pre.std, content).reshape(c, h, w)
        if widths is not None:
            mapped[:, :, max(0, int(widths[k])):] = pad.reshape(c, 1, 1)
        images.append(mapped.transpose(1, 2, 0) if pre._nhwc else mapped)
    shape = warper.image_shape
    return np.stack(images).reshape((len(images), *shape)) if images else np.zeros((0, *shape), pre.spec.dtype)


def warp(frame: np.ndarray, warper, matrices) -> np.ndarray:
    """What `warper.affine(frame, matrices)` must return, image by image."""
    w, h = warper.out_size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.int64)
    positions = []
    for m in np.asarray(matrices, np.float64).reshape(-1, 2, 3):
        q = np.rint(m * (1 << 24)).astype(np.int64)
        positions.append((q[0, 2] + ys * q[0, 1] + xs * q[0, 0], q[1, 2] + ys * q[1, 1] + xs * q[1, 0]))
    return _images(frame, warper, positions)


def projective_positions(m: np.ndarray, w: int, h: int):
    """Q24 source positions ``(qx, qy)``, each (h, w), of a 3x3 output index -> source index map."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    x0, y0, w0 = m[0, 1] * ys + m[0, 2], m[1, 1] * ys + m[1, 2], m[2, 1] * ys + m[2, 2]
    den = m[2, 0] * xs + w0
    ok = den > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        r = 1.0 / den
        u, v = (m[0, 0] * xs + x0) * r, (m[1, 0] * xs + y0) * r
    u = np.where(ok & ~np.isnan(u), np.clip(u, -LIMIT, LIMIT), -LIMIT)
    v = np.where(ok & ~np.isnan(v), np.clip(v, -LIMIT, LIMIT), -LIMIT)
    return np.rint(u * (1 << 24)).astype(np.int64), np.rint(v * (1 << 24)).astype(np.int64)


def perspective(frame: np.ndarray, warper, matrices, widths=None) -> np.ndarray:
    """What `warper.perspective(frame, matrices, widths=widths)` must return, image by image."""
    w, h = warper.out_size
    mats = np.asarray(matrices, np.float64).reshape(-1, 3, 3)
    return _images(frame, warper, [projective_positions(m, w, h) for m in mats], widths)


def homography(corners, size, pixel_centers: str = "half") -> np.ndarray:
    """The 3x3 map (output pixel index -> source pixel index, ``[2, 2] = 1``) that takes a ``size`` (w, h)
    output onto the quad `corners` (tl, tr, br, bl), by the 8x8 solve of the corner correspondences.

    "half": the output's outline maps onto the quad, corners in continuous coordinates (pixel i covers
    [i, i + 1)); "corner": output pixels (0, 0) and (w - 1, h - 1) map onto tl and br, corners in indices.
    """
    w, h = size
    q = np.asarray(corners, np.float64).reshape(4, 2)
    if pixel_centers == "half":
        out = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    else:
        out = np.array([[0, 0], [max(w - 1, 1), 0], [max(w - 1, 1), max(h - 1, 1)], [0, max(h - 1, 1)]], np.float64)
    a, b = np.zeros((8, 8)), np.zeros(8)
    for i, ((x, y), (u, v)) in enumerate(zip(out, q)):
        a[2 * i] = [x, y, 1, 0, 0, 0, -u * x, -u * y]
        a[2 * i + 1] = [0, 0, 0, x, y, 1, -v * x, -v * y]
        b[2 * i], b[2 * i + 1] = u, v
    m = np.append(np.linalg.solve(a, b), 1.0).reshape(3, 3)
    if pixel_centers == "half":  # index = continuous - 1/2 on both sides
        shift = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
        m = np.linalg.inv(shift) @ m @ shift
    elif w == 1 or h == 1:  # a one-pixel axis: every output of it maps onto the first corner's side
        m = m @ np.diag([0.0 if w == 1 else 1.0, 0.0 if h == 1 else 1.0, 1.0])
    return m / m[2, 2]


def umeyama(src, dst) -> np.ndarray:
    """Umeyama's least-squares similarity (2, 3) mapping src (K, 2) onto dst (K, 2), by SVD as he wrote it."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    e = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[1, 1] = -1
    r = u @ e @ vt
    scale = np.trace(np.diag(sig) @ e) / (s ** 2).sum(1).mean()
    t = mu_d - scale * r @ mu_s
    return np.c_[scale * r, t]
