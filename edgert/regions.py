"""Regions of a full-resolution frame into one model-input batch: `Preprocessor.regions` builds on this.

Many boxes of one frame go through one compiled pass (``ext/regions.pyx``): per box, crop + resize
(stretch, letterbox or center-crop, as the preprocessor) + colour conversion + normalise + quantise,
into image ``k`` of an ``(N, H, W, C)`` (or ``(N, C, H, W)``) batch. The sampling maps are computed
in the kernel for every box, so boxes may change every frame at no extra cost.

Geometry, per box ``(x0, y0, x1, y1)`` in frame pixels (continuous coordinates: pixel ``i`` covers
``[i, i + 1)``, floats allowed):

* the box is placed into the output by the preprocessor's resize mode and pixel-centre convention,
  as `edgert.geometry.place` places a frame of the box's size (under ``"corner"`` a letterbox is
  MediaPipe's: one exact scale, the content centred at a fractional offset);
* ``pixel_centers="half"`` (the default, as ``cv2.resize``): output pixel ``i`` samples the box at
  ``x0 + (i + 0.5) * w / n``; ``"corner"``: at pixel index ``x0 + i * w / n`` (a corner-mapped affine,
  as ``cv2.warpAffine`` with the plain scale/offset matrix), the convention of
  `edgert.resample_maps`. Positions are Q16 fixed point;
* bilinear taps are clamped to the box's pixel hull (``floor(x0)`` .. ``ceil(x1) - 1``) inside the
  frame, so a box inside the frame gives what the preprocessor gives for the crop ``frame[y0:y1, x0:x1]``;
* **partly outside the frame**: the box keeps its geometry (the output is the box, so results map back
  with the same placement); output pixels whose sample lies outside the frame are padding
  (``pad_value``), the rest sample the part inside. A sample (pixel index ``p``) is inside when
  ``-0.5 <= p < size - 0.5`` under ``"half"`` (its centre is in the frame), and when
  ``-0.5 <= p < size`` under ``"corner"``, whose samples of a box that ends at the frame's edge reach
  up to a pixel past the last pixel's centre (and the exact letterbox's half a pixel before the
  first): a box inside the frame is never padded, under either convention;
* **refused** (`FrameError`, one line naming the box, nothing written): a box of zero or negative
  width or height, or with a coordinate that is not finite; a box with no pixel inside the frame;
  coordinates beyond ±1e6 px. Callers that prefer to skip such boxes filter them first
  (`valid_boxes` gives the mask, and the count of skips is theirs to report).

Interpolation: bilinear or nearest (area averaging is for whole-frame downscales; a region batcher
refuses it at construction).
"""
from __future__ import annotations

import numpy as np

from edgert._ext.regions import RegionKernel
from edgert.core.errors import BusyError, ConfigError, FrameError
from edgert.core.pixel_formats import frame_layout
from edgert.geometry import Placement, place

_MODES = {"stretch": 0, "letterbox": 1, "center-crop": 2}
_CENTRES = {"half": 0.5, "corner": 0.0}
_REFUSED = {1: "has zero or negative size (or a coordinate that is not finite)",
            2: "lies outside the {w}x{h} frame (or beyond ±1e6 px)"}
_BUSY = "Preprocessor.regions: called from two threads at once; make one preprocessor per thread"


def valid_boxes(boxes, frame_size) -> np.ndarray:
    """Boolean mask of the boxes ``(N, 4)`` xyxy that `RegionBatcher` accepts for a frame of ``frame_size``."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    w, h = frame_size
    finite = np.isfinite(b).all(1)
    with np.errstate(invalid="ignore"):
        sized = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
        inside = (b[:, 2] > 0) & (b[:, 3] > 0) & (b[:, 0] < w) & (b[:, 1] < h) & (np.abs(b) <= 1e6).all(1)
    return finite & sized & inside


def region_placement(box, dst_size, mode: str, frame_size, pixel_centers: str = "half") -> Placement:
    """Where `box` of the frame lands in an output of ``dst_size`` (`Placement.to_source` maps back)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    p = place((x1 - x0, y1 - y0), tuple(dst_size), mode, pixel_centers)
    sx, sy, sw, sh = p.src_rect
    return Placement((x0 + sx, y0 + sy, sw, sh), p.dst_rect, tuple(frame_size), tuple(dst_size))


class RegionBatcher:
    """The region pass of one preprocessor (built by `Preprocessor.regions`; one thread at a time).

    Args:
        fmt: The source `PixelFormat`.
        src_size: ``(width, height)`` of the frames (both at least 2).
        image_shape: Shape of one model input without the batch axis (``(H, W, C)`` or ``(C, H, W)``).
        dtype: Output dtype.
        resize: "stretch", "letterbox" or "center-crop".
        interpolation: "bilinear" or "nearest".
        pixel_centers: "half" or "corner".
        kernel_args: The preprocessor's tables: ``step, inner, chroma, conv, lut, identity, affine,
            pad_rows, yuv, bgr_order, nhwc, out_size``.
    """

    def __init__(self, fmt, src_size, image_shape, dtype, resize: str, interpolation: str, pixel_centers: str,
                 kernel_args: dict):
        if interpolation not in ("bilinear", "nearest"):
            raise ConfigError(f"regions: interpolation {interpolation!r} is not supported for regions "
                              "(bilinear or nearest)")
        if pixel_centers not in _CENTRES:
            raise ConfigError(f"pixel_centers: expected 'half' or 'corner', got {pixel_centers!r}")
        if min(src_size) < 2:
            raise ConfigError(f"regions: frames must be at least 2x2 pixels, got {src_size[0]}x{src_size[1]}")
        self.format, self.src_size, self.image_shape, self.dtype = fmt, tuple(src_size), tuple(image_shape), dtype
        self.resize, self.interpolation, self.pixel_centers = resize, interpolation, pixel_centers
        k = kernel_args
        self._kernel = RegionKernel(self.src_size, k["step"], list(k["inner"]), k["chroma"], _MODES[resize],
                                    interpolation == "nearest", _CENTRES[pixel_centers], k["lut"], k["pad_rows"],
                                    k["out_size"], k["nhwc"], k["identity"], k["affine"], k["yuv"],
                                    k["bgr_order"], k["conv"])
        self._out = np.empty((0, *self.image_shape), dtype)

    def _buffer(self, n: int) -> np.ndarray:
        """The own batch buffer's first `n` images; it grows (once) to the largest batch seen."""
        if n > len(self._out):
            self._out = np.empty((max(n, 2 * len(self._out)), *self.image_shape), self.dtype)
        return self._out[:n]

    def __call__(self, frame: np.ndarray, boxes, out: np.ndarray | None = None) -> np.ndarray:
        """Fill one model input per box; see `Preprocessor.regions`."""
        pitch, cu, cv, cp = frame_layout(frame, self.format, *self.src_size)
        try:
            b = np.ascontiguousarray(boxes, dtype=np.float64)
        except (TypeError, ValueError):
            raise FrameError(f"boxes: expected an (N, 4) array of xyxy numbers, got {boxes!r:.80}") from None
        if b.ndim == 1 and b.size == 4:
            b = b.reshape(1, 4)
        if b.ndim != 2 or b.shape[1] != 4:
            raise FrameError(f"boxes: expected shape (N, 4) xyxy, got {b.shape}")
        n = len(b)
        if out is None:
            dst = self._buffer(n)
            if np.may_share_memory(frame, self._out) and np.shares_memory(frame, self._out):
                raise FrameError("frame: is this preprocessor's own region batch (copy it, or pass out=)")
        else:
            dst = out
            self._check_out(out, n)
            if np.may_share_memory(out, frame) and np.shares_memory(out, frame):
                raise FrameError("out: overlaps the frame (pass a buffer of its own)")
        if n and not self._kernel.run(frame, pitch, cu, cv, cp, b, dst):
            raise BusyError(_BUSY)
        if n and self._kernel.bad >= 0:
            i = self._kernel.bad
            w, h = self.src_size
            raise FrameError(f"boxes[{i}] = {b[i].tolist()} " + _REFUSED[self._kernel.reason].format(w=w, h=h))
        if out is not None:
            return out
        view = dst.view()
        view.flags.writeable = False
        return view

    def _check_out(self, out, n: int) -> None:
        shape = (n, *self.image_shape)
        if not isinstance(out, np.ndarray):
            raise FrameError(f"out: expected a numpy.ndarray, got {type(out).__name__}")
        if out.dtype != self.dtype or out.shape != shape:
            raise FrameError(f"out: expected {np.dtype(self.dtype)} array of shape {shape}, got {out.dtype} {out.shape}")
        if not out.flags.c_contiguous or not out.flags.writeable or not out.flags.aligned:
            raise FrameError("out: must be a writeable, aligned, C-contiguous array")
