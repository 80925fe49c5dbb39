"""`Preprocessor`: camera frame -> model input in one fused pass (colour, resize, normalise, quantise).

Everything that does not change from frame to frame is computed when the preprocessor is built:
where each output pixel samples the source (`edgert.resample_maps`), and one 256-entry table per
channel that folds mean/std normalisation and the input tensor's quantisation together. Each frame
then costs one pass over the source pixels the output needs, with the GIL released, into a buffer
allocated once.
"""
from __future__ import annotations

import numpy as np

from edgert import colour
from edgert._ext.preprocess import FusedPreprocess
from edgert.core.errors import BusyError, ConfigError, FrameError
from edgert.core.pixel_formats import frame_layout, pixel_format
from edgert.core.tensor import Quantization, TensorSpec
from edgert.geometry import Placement, place
from edgert.resample_maps import (
    BILINEAR_BITS,
    BILINEAR_Y_BITS,
    INTERPOLATIONS,
    MAX_AREA_RATIO,
    PIXEL_CENTERS,
    axis_map,
)

_OUT_DTYPES = (np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.float32))
_INTERP_CODE = {"nearest": 0, "bilinear": 1, "area": 2}
_CONV_COPY, _CONV_GRAY2RGB, _CONV_RGB2GRAY, _CONV_YUV2RGB = 0, 1, 2, 3
_X_GENERAL, _X_COPY, _X_HALF = 0, 1, 2
_BUSY = "Preprocessor: called from two threads at once; make one preprocessor per thread"


def _x_kind(mx, step: int) -> int:
    """Whether a bilinear x map is a plain copy or an exact 2:1 average (the kernel's fixed-stride loops)."""
    i = np.arange(mx.first.size)
    if np.all(mx.weight == 0) and np.array_equal(mx.first, mx.first[0] + i * step):
        return _X_COPY
    if (np.all(mx.weight == 1 << (BILINEAR_BITS - 1)) and np.array_equal(mx.first, mx.first[0] + 2 * i * step)
            and np.array_equal(mx.second, mx.first + step)):
        return _X_HALF
    return _X_GENERAL


def _pair_windows(mx, step: int):
    """Two-pixel windows ``[px0, px0 + 2 * step)`` and the Q11 weight of their second pixel.

    Equal to the bilinear map, except that a tap clamped at the right border (both taps on the last
    pixel) becomes the window ending there with all weight on its second pixel, so every window
    lies inside the row.
    """
    px0 = mx.first.copy()
    pw = mx.weight.copy()
    clamped = mx.second == mx.first
    px0[clamped] -= step
    pw[clamped] = 1 << BILINEAR_BITS
    return np.ascontiguousarray(px0, np.int32), np.ascontiguousarray(pw, np.int32)


def affine_form(lut: np.ndarray, dtype) -> tuple | None:
    """``(M0, B0, M1, B1, M2, B2, lo, hi)`` with ``lut[c, v] == clamp((v * M_c + B_c) >> 16, lo, hi)``
    for every channel and value, or None. Such a table can be applied with vector arithmetic.
    """
    if lut.dtype.itemsize != 1 or lut.shape[0] > 3:
        return None
    info = np.iinfo(dtype)
    v = np.arange(256, dtype=np.int64)
    one = 1 << 16
    ks = []
    for row in lut.astype(np.int64):
        inside = (row > info.min) & (row < info.max)
        if inside.sum() < 2:
            return None
        vi, ri = v[inside], row[inside]
        slope = (ri[-1] - ri[0]) / (vi[-1] - vi[0])
        if not 0 < slope < 32:
            return None
        # Every v bounds B: row * 2^16 <= v * M + B < (row + 1) * 2^16 (one-sided where clamped).
        lower = np.where(row > info.min, row * one, -(1 << 40))
        upper = np.where(row < info.max, (row + 1) * one, 1 << 40)
        found = None
        centre = int(round(slope * one))
        for m in sorted(range(centre - 256, centre + 257), key=lambda x: abs(x - centre)):
            b_lo = int(np.max(lower - v * m))
            b_hi = int(np.min(upper - v * m)) - 1
            if b_lo <= b_hi:
                found = (m, b_lo)
                break
        if found is None:
            return None
        m, b = found
        if np.abs(v * m + b).max() >= 1 << 31:  # the kernel computes in int32
            return None
        if not np.array_equal(np.clip((v * m + b) >> 16, info.min, info.max), row):
            return None
        ks += [m, b]
    ks += [ks[0], ks[1]] * (3 - lut.shape[0])
    return tuple(ks) + (int(info.min), int(info.max))


def input_geometry(spec: TensorSpec):
    """``(height, width, channels, nhwc)`` of an image input spec; `ConfigError` if it is not one."""
    shape = spec.shape
    if len(shape) == 4:
        if shape[0] != 1:
            raise ConfigError(f"spec {spec.name!r}: batch size must be 1, got shape {shape}")
        shape = shape[1:]
    if len(shape) != 3:
        raise ConfigError(f"spec {spec.name!r}: not an image input: shape {spec.shape} "
                          "(expected (1, H, W, C), (1, C, H, W) or (H, W, C))")
    layout = spec.layout
    if layout is None:
        if shape[2] in (1, 3):
            layout = "NHWC"
        elif shape[0] in (1, 3):
            layout = "NCHW"
        else:
            raise ConfigError(f"spec {spec.name!r}: no 1- or 3-channel axis in shape {spec.shape}")
    h, w, c = shape if layout == "NHWC" else (shape[1], shape[2], shape[0])
    if c not in (1, 3):
        raise ConfigError(f"spec {spec.name!r}: {c} channels in shape {spec.shape}; expected 1 or 3")
    if h < 1 or w < 1:
        raise ConfigError(f"spec {spec.name!r}: empty image size {w}x{h}")
    return h, w, c, layout == "NHWC"


def _per_channel(name: str, value, channels: int, *, nonzero: bool = False, lo=None, hi=None) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected a number or {channels} numbers, got {value!r}") from None
    if arr.size == 1:
        arr = np.repeat(arr, channels)
    if arr.size != channels:
        raise ConfigError(f"{name}: expected 1 or {channels} values, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{name}: values must be finite, got {arr.tolist()}")
    if nonzero and np.any(arr == 0):
        raise ConfigError(f"{name}: values must be non-zero, got {arr.tolist()}")
    if lo is not None and (np.any(arr < lo) or np.any(arr > hi)):
        raise ConfigError(f"{name}: values must lie in [{lo}, {hi}], got {arr.tolist()}")
    return arr


def _channel_quant(spec: TensorSpec, channels: int, nhwc: bool) -> Quantization:
    """The spec's quantization as per-channel arrays of the image's channels."""
    q = spec.quant or Quantization(1.0, 0)
    if not q.per_channel:
        return Quantization(np.repeat(q.scale, channels), np.repeat(q.zero_point, channels), axis=0)
    ndim = len(spec.shape)
    channel_axis = ndim - 1 if nhwc else ndim - 3
    if q.axis % ndim != channel_axis:
        raise ConfigError(f"spec {spec.name!r}: per-channel quantization along axis {q.axis} "
                          "is not the channel axis; an image input cannot use it")
    return Quantization(q.scale, q.zero_point, axis=0)


def value_table(spec: TensorSpec, channels: int, nhwc: bool, mean, std, values) -> np.ndarray:
    """Map 8-bit pixel `values` (0..255, any shape ``(channels, n)``) to the spec's dtype.

    ``x = (value - mean) / std``, then quantised with the spec's scale and zero point (round half
    away from zero, saturate) or cast to float32.
    """
    x = (np.asarray(values, np.float64) - mean[:, None]) / std[:, None]
    if spec.dtype == np.float32:
        return x.astype(np.float32)
    return _channel_quant(spec, channels, nhwc).quantize(x, spec.dtype)


class Preprocessor:
    """Turns frames of one source stream into inputs of one model input tensor.

    Args:
        spec: The model input (``(1, H, W, C)``/``(H, W, C)`` NHWC or ``(1, C, H, W)`` NCHW; C is 1
            or 3; dtype uint8, int8 or float32; quantization from the spec, none meaning scale 1).
        src_format: One of `edgert.core.pixel_formats.SOURCE_FORMATS` (BGR, RGB, BGRA, RGBA, XRGB8888,
            XBGR8888, GRAY, NV12, NV21, YUV420, ...).
        src_size: ``(width, height)`` of the frames.
        resize: "stretch", "letterbox" (centred, padded with `pad_value`) or "center-crop".
        interpolation: "bilinear", "area" (downscales over 2x) or "nearest" (masks, label maps).
        mean: Per-channel mean in 0..255 pixel units, subtracted before dividing by `std`.
        std: Per-channel divisor in 0..255 units (non-zero).
        pad_value: Letterbox fill in 0..255 pixel units, a number or one per channel.
        channel_order: "RGB" or "BGR": channel order the model expects (3-channel inputs).
        yuv_range: "limited" (default, TV range) or "full" for 4:2:0 sources (see `edgert.colour`
            for which picamera2 configuration gives which). Gray models get full-range levels.
        yuv_matrix: "bt601" (default) or "bt709", the YUV -> RGB matrix of 4:2:0 sources.
        pixel_centers: "half" (default: half-pixel centres, as OpenCV ``resize``) or "corner"
            (corner-mapped affine, as OpenCV ``warpAffine`` and MediaPipe's ImageToTensor): where
            each output pixel samples the source (`edgert.resample_maps`). Use the one the model was
            trained behind (its card's ``pixel_centers``); `to_source` is the same map for both.
            Under "corner" a letterbox is also MediaPipe's: one exact scale, the content at a
            fractional offset (`edgert.geometry.place`).

    Raises:
        ConfigError: naming the argument that is invalid.

    The returned tensor is a read-only view of a buffer reused by the next call; pass ``out=`` to
    write into your own array (e.g. a backend's input buffer) instead. One preprocessor serves one
    thread at a time (a second thread meanwhile gets `BusyError`).
    """

    def __init__(self, spec: TensorSpec, src_format: str = "BGR", src_size=(640, 480), resize: str = "stretch",
                 interpolation: str = "bilinear", mean=0.0, std=1.0, pad_value=114, *,
                 channel_order: str = "RGB", yuv_range: str = "limited", yuv_matrix: str = "bt601",
                 pixel_centers: str = "half"):
        if not isinstance(spec, TensorSpec):
            raise ConfigError(f"spec: expected an edgert.TensorSpec, got {type(spec).__name__}")
        if spec.dtype not in _OUT_DTYPES:
            raise ConfigError(f"spec {spec.name!r}: dtype {spec.dtype} is not an image input dtype "
                              "(uint8, int8 or float32)")
        h, w, c, nhwc = input_geometry(spec)
        fmt = pixel_format(src_format)
        try:
            sw, sh = (int(v) for v in src_size)
        except (TypeError, ValueError):
            raise ConfigError(f"src_size: expected (width, height), got {src_size!r}") from None
        if sw < 1 or sh < 1 or (tuple(src_size) != (sw, sh)):
            raise ConfigError(f"src_size: expected positive integer (width, height), got {src_size!r}")
        if fmt.yuv420 and (sw % 2 or sh % 2):
            raise ConfigError(f"src_size: {fmt.name} is 4:2:0 and needs even width and height, got {sw}x{sh}")
        if sw * fmt.bytes_per_pixel >= 1 << 31 or (fmt.yuv420 and sw * sh * 3 // 2 >= 1 << 31):
            raise ConfigError(f"src_size: {sw}x{sh} {fmt.name} frames are too large (2 GiB per frame at most)")
        if interpolation not in INTERPOLATIONS:
            raise ConfigError(f"interpolation: unknown {interpolation!r}; expected one of {', '.join(INTERPOLATIONS)}")
        if pixel_centers not in PIXEL_CENTERS:
            raise ConfigError(f"pixel_centers: expected one of {', '.join(PIXEL_CENTERS)}, got {pixel_centers!r}")
        if channel_order not in ("RGB", "BGR"):
            raise ConfigError(f"channel_order: expected 'RGB' or 'BGR', got {channel_order!r}")
        yuv = colour.yuv_coefficients(yuv_range, yuv_matrix)
        self.mean = _per_channel("mean", mean, c)
        self.std = _per_channel("std", std, c, nonzero=True)
        pad = _per_channel("pad_value", pad_value, c, lo=0, hi=255)
        self.spec, self.format, self.src_size = spec, fmt, (sw, sh)
        self.interpolation, self.channel_order, self.pixel_centers = interpolation, channel_order, pixel_centers
        self.yuv_range, self.yuv_matrix = yuv_range, yuv_matrix
        self.resize = resize
        self.placement: Placement = place((sw, sh), (w, h), resize, pixel_centers)
        if interpolation == "area":
            _, _, sw_f, sh_f = self.placement.src_rect
            _, _, n_x, n_y = self.placement.dst_rect
            ratio = max(sw_f / n_x, sh_f / n_y)
            if ratio > MAX_AREA_RATIO:
                raise ConfigError(f"interpolation: area supports downscales up to {MAX_AREA_RATIO}x per axis, "
                                  f"got {ratio:.1f}x; downscale the stream first")
        self._size, self._channels, self._nhwc, self._pad_value = (w, h), c, nhwc, pad

        # A gray model fed luma gets gray levels (limited-range Y expanded), as a colour source would.
        levels = colour.luma_levels(yuv_range) if fmt.yuv420 and c == 1 else np.arange(256)
        lut = value_table(spec, c, nhwc, self.mean, self.std, np.tile(levels, (c, 1)))
        lut = np.ascontiguousarray(lut)
        identity = bool(spec.dtype == np.uint8 and np.array_equal(lut, np.tile(np.arange(256), (c, 1))))
        pad_out = value_table(spec, c, nhwc, self.mean, self.std, pad[:, None])[:, 0]
        pad_rows = np.ascontiguousarray(np.tile(pad_out, w) if nhwc else np.repeat(pad_out, w))
        groups, conv = self._groups(c)
        kernel_lut = lut.view(np.uint8) if lut.dtype.itemsize == 1 else lut
        self._kernel = FusedPreprocess(groups, _INTERP_CODE[interpolation], conv, self.placement.dst_rect,
                                       (w, h), nhwc, kernel_lut, identity, pad_rows.view(np.uint8),
                                       yuv, channel_order == "BGR",
                                       self._kernel_affine(lut, identity))
        self._lut = lut
        # What the region pass (`regions`) shares with the whole-frame kernel: tables and plane layout.
        self._region_args = {"step": groups[0]["step"], "inner": groups[0]["inner"], "conv": conv,
                             "chroma": 0 if len(groups) == 1 else (2 if fmt.yuv420 == "I420" else 1),
                             "lut": kernel_lut, "identity": identity, "pad_rows": pad_rows.view(np.uint8),
                             "affine": self._kernel_affine(lut, identity), "yuv": yuv,
                             "bgr_order": channel_order == "BGR", "nhwc": nhwc, "out_size": (w, h)}
        self._region_batcher = None
        self._out = np.empty(spec.shape, spec.dtype)
        self._kernel_padding = self.placement.dst_rect != (0, 0, w, h)
        self._out_view = self._out.view()
        self._out_view.flags.writeable = False
        self._fill_own = True

    def _kernel_affine(self, lut, identity):
        return None if identity else affine_form(lut, self.spec.dtype)

    def _groups(self, c: int):
        """Plane groups the kernel samples, and the colour conversion that combines them."""
        fmt = self.format
        sw, sh = self.src_size
        if fmt.yuv420:
            luma = self._group(1, [0], [0], sw, sh, 1.0, seg=[0])
            if c == 1:
                return [luma], _CONV_COPY
            # Chroma addresses depend on the frame's stride; the kernel sets them per frame.
            nseg = 2 if fmt.yuv420 == "I420" else 1
            step = 1 if nseg == 2 else 2
            chroma = self._group(step, [0, 1] if nseg == 2 else [0, 0], [0, 0] if nseg == 2 else [0, 1],
                                 sw // 2, sh // 2, 0.5, seg=[0] * nseg)
            return [luma, chroma], _CONV_YUV2RGB
        r, g, b = fmt.rgb_offsets
        bpp = fmt.bytes_per_pixel
        if fmt.is_gray:
            return [self._group(1, [0], [0], sw, sh, 1.0, seg=[0])], (_CONV_GRAY2RGB if c == 3 else _CONV_COPY)
        if c == 1:
            return [self._group(bpp, [0] * 3, [r, g, b], sw, sh, 1.0, seg=[0])], _CONV_RGB2GRAY
        order = [r, g, b] if self.channel_order == "RGB" else [b, g, r]
        return [self._group(bpp, [0] * 3, order, sw, sh, 1.0, seg=[0])], _CONV_COPY

    def _group(self, step, seg_of, inner, plane_w, plane_h, plane_scale, seg):
        sx, sy, swf, shf = self.placement.src_rect
        _, _, n_x, n_y = self.placement.dst_rect
        interp = self.interpolation
        pc = self.pixel_centers
        mx = axis_map(interp, sx, swf, n_x, plane_w, plane_scale, pixel_centers=pc).scaled(step)
        my = axis_map(interp, sy, shf, n_y, plane_h, plane_scale, bits=BILINEAR_Y_BITS, pixel_centers=pc)
        lo = hi = 0
        if interp == "area":
            lo = int(mx.first.min())
            hi = int((mx.first + (mx.second - 1) * step).max()) + step
        elif interp == "bilinear":
            lo, hi = int(mx.first.min()), int(mx.second.max()) + step
        xkind = _x_kind(mx, step) if interp == "bilinear" else _X_GENERAL
        px0 = pw = None
        n_wide = 0
        if interp == "bilinear" and xkind == _X_GENERAL and plane_w >= 2 and max(inner) < min(step, 3):
            px0, pw = _pair_windows(mx, step)
            fits = px0 + 8 <= plane_w * step
            n_wide = len(fits) if fits.all() else int(np.argmin(fits))
        return {"step": step, "seg": seg, "seg_of": seg_of, "inner": inner, "span_lo": lo, "span_len": hi - lo,
                "xkind": xkind, "px0": px0, "pw": pw, "n_wide": n_wide,
                "x0": mx.first, "x1": mx.second, "wx": mx.weight, "wxm": mx.weight_mid, "wxl": mx.weight_last,
                "y0": my.first, "y1": my.second, "wy": my.weight, "wym": my.weight_mid, "wyl": my.weight_last}

    @property
    def output_shape(self) -> tuple:
        """Shape of the tensors this preprocessor produces (the spec's shape)."""
        return self.spec.shape

    def __call__(self, frame: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Turn one frame into a model input.

        Args:
            frame: uint8 array in the declared format and size (see `edgert.core.pixel_formats`).
            out: Optional C-contiguous array of the spec's shape and dtype to write into.

        Returns:
            `out`, or a read-only view of the preprocessor's reused buffer.

        Raises:
            FrameError: the frame does not match the declared format or size, `out` is unusable, or
                the frame shares memory with the output (`out` or the own buffer).
        """
        pitch, cu, cv, cp = frame_layout(frame, self.format, *self.src_size)
        if out is None:
            if np.shares_memory(frame, self._out):
                raise FrameError("frame: is this preprocessor's own output buffer (copy it, or pass out=)")
            if not self._kernel.run(frame, pitch, cu, cv, cp, self._out, self._fill_own and self._kernel_padding):
                raise BusyError(_BUSY)
            self._fill_own = False
            return self._out_view
        self._check_out(out)
        if np.shares_memory(out, frame):  # the kernel would overwrite pixels it has yet to read
            raise FrameError("out: overlaps the frame (pass a buffer of its own)")
        if not self._kernel.run(frame, pitch, cu, cv, cp, out, self._kernel_padding):
            raise BusyError(_BUSY)
        return out

    def regions(self, frame: np.ndarray, boxes, out: np.ndarray | None = None) -> np.ndarray:
        """Turn many boxes of one frame into a batch of model inputs, in one compiled pass.

        Each box ``(x0, y0, x1, y1)`` (frame pixels, floats allowed) is cropped, resized by this
        preprocessor's resize mode, converted, normalised and quantised as a whole frame would be;
        see `edgert.regions` for the geometry and for boxes partly outside the frame.

        Args:
            frame: The full frame, as for `__call__`.
            boxes: ``(N, 4)`` xyxy boxes.
            out: Optional C-contiguous ``(N, *input shape without its batch axis)`` array of the spec's
                dtype to write into.

        Returns:
            `out`, or a read-only view of a batch buffer reused by the next call (it grows to the
            largest N seen, once).

        Raises:
            FrameError: the frame or `out` is unusable, or a box is refused (zero or negative size,
                no pixel inside the frame): one line naming it, nothing written.
            ConfigError: the preprocessor's interpolation is "area" (regions: bilinear or nearest).
        """
        if self._region_batcher is None:
            from edgert.regions import RegionBatcher

            shape = self.spec.shape[1:] if len(self.spec.shape) == 4 else self.spec.shape
            self._region_batcher = RegionBatcher(self.format, self.src_size, shape, self.spec.dtype, self.resize,
                                                 self.interpolation, getattr(self, "pixel_centers", "half"),
                                                 self._region_args)
        return self._region_batcher(frame, boxes, out)

    def _check_out(self, out) -> None:
        if not isinstance(out, np.ndarray):
            raise FrameError(f"out: expected a numpy.ndarray, got {type(out).__name__}")
        if out.dtype != self.spec.dtype or out.shape != self.spec.shape:
            raise FrameError(f"out: expected {self.spec.dtype} array of shape {self.spec.shape}, "
                             f"got {out.dtype} {out.shape}")
        if not out.flags.c_contiguous or not out.flags.writeable or not out.flags.aligned:
            raise FrameError("out: must be a writeable, aligned, C-contiguous array")

    def to_source(self, coords, clip: bool = True) -> np.ndarray:
        """Map boxes ``(..., 4)`` xyxy or points ``(..., 2)`` from model-input pixels to source pixels."""
        return self.placement.to_source(coords, clip=clip)

    def __repr__(self):
        w, h = self.src_size
        return (f"Preprocessor({self.format.name} {w}x{h} -> {self.spec.shape} {self.spec.dtype}, "
                f"{self.resize}, {self.interpolation}, {self.pixel_centers} pixel centres)")

