"""Affine and projective warps of a frame into a batch of model inputs: bilinear + tables, one pass.

`Warper.affine` takes one 2x3 matrix per output image, `Warper.perspective` one 3x3 homography;
`Warper.quads` takes four corners per image (a plate, a text line, seen in perspective) and warps each
upright through the homography of the output onto it (`quad_homographies`). A matrix maps output
pixel *indices* to source pixel indices (pixel i centred on i), exactly as
``cv2.warpAffine(src, M, size, flags=INTER_LINEAR | WARP_INVERSE_MAP, borderMode=BORDER_CONSTANT)``
and ``cv2.warpPerspective`` with the same flags use it. Taps outside the frame read the border:
`pad_value` (for 4:2:0 sources, pad_value taken to YUV, so a fully outside pixel is pad_value within a
unit or two).

Quads name their pixel-centre convention (``pixel_centers``): "half" (the default) maps the output's
outline onto the quad, corners in continuous coordinates where pixel i covers [i, i + 1) (as
``cv2.resize``); "corner" maps output pixel (0, 0) onto the top-left corner and (w - 1, h - 1) onto the
bottom-right one, corners in pixel indices (as ``cv2.getPerspectiveTransform`` of the corners onto
``[[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]]``).

Positions are Q24 fixed point and bilinear weights Q11 per axis (``ext/warp.pyx`` states the exact
arithmetic; `edgert._reference_warp` is its twin). OpenCV 5's warpAffine computes in float32
and agrees within one unit; OpenCV 4.x rounds positions to 1/32 pixel and differs by more on sharp
edges; warpPerspective rounds to 1/32 pixel in both (see tests/test_warp_perspective.py).
"""
from __future__ import annotations

import numpy as np

from edgert._ext.warp import WarpKernel, homographies
from edgert.core.errors import BusyError, FrameError
from edgert.core.pixel_formats import frame_layout
from edgert.preprocess import Preprocessor

_BUSY = "Warper: called from two threads at once; make one warper per thread"
#: Largest matrix entry accepted (keeps the kernel's Q24 positions far from overflow).
MAX_ENTRY = 1e6


def _border(pre: Preprocessor) -> list:
    """8-bit border value of each channel the kernel samples (see the module docstring)."""
    pad = np.asarray(pre._pad_value, np.float64)
    fmt, c = pre.format, pre._channels
    rgb = pad if c == 3 and pre.channel_order == "RGB" else (pad[::-1] if c == 3 else np.repeat(pad, 3))
    if not fmt.yuv420:
        n = len(pre._region_args["inner"])
        if fmt.is_gray:
            return [int(round(float(pad.mean())))]
        return [int(v) for v in (pad if c == 3 else np.repeat(pad, 3))][:n]
    from edgert import colour

    kr, kb = colour.MATRICES[pre.yuv_matrix]
    y = kr * rgb[0] + (1 - kr - kb) * rgb[1] + kb * rgb[2]
    u, v = (rgb[2] - y) / (2 * (1 - kb)) + 128, (rgb[0] - y) / (2 * (1 - kr)) + 128
    if pre.yuv_range == "limited":
        y, u, v = 16 + y * 219 / 255, 128 + (u - 128) * 224 / 255, 128 + (v - 128) * 224 / 255
    if c == 1:  # a gray model fed luma: the table expands luma levels
        y = 16 + pad[0] * 219 / 255 if pre.yuv_range == "limited" else pad[0]
    return [int(np.clip(round(float(x)), 0, 255)) for x in (y, u, v)]


PIXEL_CENTERS = ("half", "corner")
_QUAD_STATUS = {1: "a corner is not finite or beyond ±1e6", 2: "it is self-intersecting or not convex",
                3: "three corners lie on a line (or two coincide)"}


def quad_homographies(corners, size, pixel_centers: str = "half") -> np.ndarray:
    """The ``(N, 3, 3)`` maps (output index -> source index) that warp each quad upright into ``size`` (w, h).

    Args:
        corners: ``(N, 4, 2)`` or ``(4, 2)``: top-left, top-right, bottom-right, bottom-left, frame pixels.
        size: The output ``(w, h)`` (one for all, or ``(N, 2)``).
        pixel_centers: "half" or "corner" (see the module docstring).

    Raises:
        FrameError: a quad that gives no warp, in one line (not finite, self-intersecting, collinear).
    """
    if pixel_centers not in PIXEL_CENTERS:
        raise FrameError(f"pixel_centers: expected one of {', '.join(PIXEL_CENTERS)}, got {pixel_centers!r}")
    c = corners
    if type(c) is not np.ndarray or c.dtype != np.float64 or not c.flags.c_contiguous:
        c = np.ascontiguousarray(c, np.float64)
    if c.shape == (4, 2):
        c = c[None]
    if c.ndim != 3 or c.shape[1:] != (4, 2):
        raise FrameError(f"corners: expected shape (N, 4, 2), got {c.shape}")
    n, half = len(c), pixel_centers == "half"
    out, status = np.empty((n, 3, 3)), np.empty(n, np.int32)
    if type(size) is tuple and len(size) == 2 and all(type(v) is int and v >= 1 for v in size):
        refused = homographies(c, size[0], size[1], half, out, status)  # one size for all: the common case
    else:
        sizes = np.broadcast_to(np.asarray(size, np.float64), (n, 2))
        if not ((sizes >= 1) & (sizes == np.floor(sizes))).all():
            raise FrameError(f"quad size: expected whole (w, h) >= 1, got {np.asarray(size).tolist()}")
        refused = sum(homographies(c[k:k + 1], sizes[k, 0], sizes[k, 1], half, out[k:k + 1], status[k:k + 1])
                      for k in range(n))
    if refused:
        i = int(np.argmax(status != 0))
        raise FrameError(f"corners[{i}]: no warp, {_QUAD_STATUS[int(status[i])]}: {c[i].tolist()}")
    return out


def _check_entries(m: np.ndarray) -> None:
    """`FrameError` naming the first matrix with an entry not finite or beyond ±MAX_ENTRY."""
    if len(m) and not np.abs(m).max() <= MAX_ENTRY:  # NaN fails the comparison too
        bad = ~(np.isfinite(m) & (np.abs(m) <= MAX_ENTRY)).all((1, 2))
        i = int(np.argmax(bad))
        raise FrameError(f"matrices[{i}]: entries must be finite and within ±{MAX_ENTRY:g}, got {m[i].tolist()}")


class Warper:
    """Warps of frames of one stream into inputs of one model (arguments as `Preprocessor`'s).

    Args:
        spec: The model input (``(1, H, W, C)``, ``(H, W, C)`` or NCHW); the batch has N images of it.
        src_format, src_size, mean, std, channel_order, yuv_range, yuv_matrix: as `Preprocessor`.
        pad_value: Border value in 0..255 pixel units (default 0, as cv2's BORDER_CONSTANT).

    Raises:
        ConfigError: naming the argument that is invalid.
    """

    def __init__(self, spec, src_format: str = "BGR", src_size=(640, 480), mean=0.0, std=1.0, pad_value=0, *,
                 channel_order: str = "RGB", yuv_range: str = "limited", yuv_matrix: str = "bt601"):
        pre = Preprocessor(spec, src_format, src_size, "stretch", "nearest", mean, std, pad_value,
                           channel_order=channel_order, yuv_range=yuv_range, yuv_matrix=yuv_matrix)
        self.spec, self.format, self.src_size = pre.spec, pre.format, pre.src_size
        self._pre_args = {"mean": mean, "std": std, "pad_value": pad_value, "channel_order": channel_order,
                          "yuv_range": yuv_range, "yuv_matrix": yuv_matrix}
        self.image_shape = pre.spec.shape[1:] if len(pre.spec.shape) == 4 else pre.spec.shape
        self.out_size, self.channels, self.nhwc = tuple(int(v) for v in pre._size), pre._channels, pre._nhwc
        k = pre._region_args
        self._kernel = WarpKernel(self.src_size, k["step"], list(k["inner"]), k["chroma"], _border(pre), k["lut"],
                                  k["pad_rows"], k["out_size"], k["nhwc"], k["identity"], k["affine"], k["yuv"],
                                  k["bgr_order"], k["conv"])
        self._out = np.empty((0, *self.image_shape), self.spec.dtype)

    def affine(self, frame: np.ndarray, matrices, out: np.ndarray | None = None) -> np.ndarray:
        """Warp `frame` by each ``(2, 3)`` matrix of `matrices` (output index -> source index).

        Returns:
            `out`, or a read-only view of a batch buffer reused by the next call.

        Raises:
            FrameError: the frame or `out` is unusable, or a matrix is not finite or has an entry
                beyond ±1e6.
        """
        pitch, cu, cv, cp = frame_layout(frame, self.format, *self.src_size)
        m = np.ascontiguousarray(matrices, np.float64)
        if m.shape == (2, 3):
            m = m[None]
        if m.ndim != 3 or m.shape[1:] != (2, 3):
            raise FrameError(f"matrices: expected shape (N, 2, 3), got {m.shape}")
        _check_entries(m)
        return self._warp(frame, m, out, (pitch, cu, cv, cp))

    def _warp(self, frame, m: np.ndarray, out, layout=None, widths=None) -> np.ndarray:
        """`affine` / `perspective` for matrices already checked (C-contiguous float64 (N, 2 or 3, 3), finite,
        bounded)."""
        pitch, cu, cv, cp = layout or frame_layout(frame, self.format, *self.src_size)
        dst = self._target(frame, len(m), out)
        if len(m) and not self._kernel.run(frame, pitch, cu, cv, cp, m, dst, widths):
            raise BusyError(_BUSY)
        if out is not None:
            return out
        view = dst.view()
        view.flags.writeable = False
        return view

    def perspective(self, frame: np.ndarray, matrices, out: np.ndarray | None = None, widths=None) -> np.ndarray:
        """Warp `frame` by each ``(3, 3)`` homography of `matrices` (output index -> source index).

        Pixels where the homography's denominator (its last row) is not positive read the border: scale
        a matrix so that it is positive over the image (those of `quad_homographies` are).

        Args:
            widths: Optional, per image: the columns it fills (from the left); the rest is padding
                (`pad_value`). The homography is applied as given either way.

        Returns:
            `out`, or a read-only view of a batch buffer reused by the next call.

        Raises:
            FrameError: the frame or `out` is unusable, a matrix is not finite or has an entry
                beyond ±1e6, or a width is outside 0..W.
        """
        layout = frame_layout(frame, self.format, *self.src_size)
        m = np.ascontiguousarray(matrices, np.float64)
        if m.shape == (3, 3):
            m = m[None]
        if m.ndim != 3 or m.shape[1:] != (3, 3):
            raise FrameError(f"matrices: expected shape (N, 3, 3), got {m.shape}")
        _check_entries(m)
        return self._warp(frame, m, out, layout, self._widths(widths, len(m)))

    def quads(self, frame: np.ndarray, corners, out: np.ndarray | None = None, *, pixel_centers: str = "half",
              widths=None) -> np.ndarray:
        """Warp each quad ``(4, 2)`` of `corners` (tl, tr, br, bl) upright into the input, in perspective.

        Args:
            pixel_centers: "half" or "corner" (the module docstring).
            widths: Optional, per quad: it fills the first ``widths[k]`` columns (the rest is
                padding), i.e. maps onto a ``widths[k] x H`` output.

        Raises:
            FrameError: as `perspective`, or a quad that gives no warp (`quad_homographies`).
        """
        layout = frame_layout(frame, self.format, *self.src_size)
        if widths is None:
            return self._warp(frame, quad_homographies(corners, self.out_size, pixel_centers), out, layout)
        c = np.asarray(corners, np.float64)
        n = 1 if c.shape == (4, 2) else (len(c) if c.ndim == 3 else 0)
        wd = self._widths(widths, n)
        size = np.stack([np.maximum(wd, 1), np.full(n, self.out_size[1])], 1)
        return self._warp(frame, quad_homographies(c, size, pixel_centers), out, layout, wd)

    def _widths(self, widths, n: int):
        if widths is None:
            return None
        wd = np.asarray(widths)
        w = self.out_size[0]
        if wd.shape != (n,) or wd.dtype.kind not in "iu" or (n and not 0 <= wd.min() <= wd.max() <= w):
            raise FrameError(f"widths: expected {n} whole numbers in 0..{w}, got {wd.tolist()}")
        return wd if wd.dtype == np.int32 and wd.flags.c_contiguous else np.ascontiguousarray(wd, np.int32)

    def _target(self, frame, n: int, out) -> np.ndarray:
        if out is None:
            if n > len(self._out):
                self._out = np.empty((max(n, 2 * len(self._out)), *self.image_shape), self.spec.dtype)
            if np.may_share_memory(frame, self._out) and np.shares_memory(frame, self._out):
                raise FrameError("frame: is this warper's own batch (copy it, or pass out=)")
            return self._out[:n]
        shape = (n, *self.image_shape)
        if not isinstance(out, np.ndarray) or out.dtype != self.spec.dtype or out.shape != shape:
            raise FrameError(f"out: expected {self.spec.dtype} array of shape {shape}, got "
                             f"{getattr(out, 'dtype', type(out).__name__)} {getattr(out, 'shape', '')}")
        if not out.flags.c_contiguous or not out.flags.writeable or not out.flags.aligned:
            raise FrameError("out: must be a writeable, aligned, C-contiguous array")
        if np.may_share_memory(out, frame) and np.shares_memory(out, frame):
            raise FrameError("out: overlaps the frame (pass a buffer of its own)")
        return out
