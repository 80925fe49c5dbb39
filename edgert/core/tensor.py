"""Tensor descriptions shared by every backend: `TensorSpec` and `Quantization`."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgert.core.errors import SpecError

_QUANT_DTYPES = (np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.uint16), np.dtype(np.int16), np.dtype(np.int32))


@dataclass(frozen=True, eq=False)
class Quantization:
    """Affine quantization: ``real = (q - zero_point) * scale``.

    Args:
        scale: A positive float (per tensor) or a 1-D array of positive floats (per channel).
        zero_point: An int, or a 1-D int array of the same length as ``scale``.
        axis: The channel axis of per-channel parameters; ``None`` for per-tensor.

    Attributes:
        scale: float32 array of shape ``()`` or ``(C,)``.
        zero_point: int32 array of the same shape as ``scale``.
        axis: The channel axis, or ``None``.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None = None

    def __post_init__(self):
        try:
            scale = np.asarray(self.scale, dtype=np.float64)
            zp_raw = np.asarray(self.zero_point)
        except (TypeError, ValueError) as exc:
            raise SpecError(f"Quantization: scale and zero_point must be numbers or arrays ({exc})") from None
        if scale.ndim > 1:
            raise SpecError(f"Quantization: scale must be a scalar or 1-D, got shape {scale.shape}")
        if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            raise SpecError(f"Quantization: scale must be finite and > 0, got {scale.tolist()}")
        if zp_raw.dtype.kind not in "iuf" or (zp_raw.dtype.kind == "f" and not np.all(zp_raw == np.round(zp_raw))):
            raise SpecError(f"Quantization: zero_point must be integer, got {zp_raw.tolist()}")
        zp = zp_raw.astype(np.int64)
        if zp.ndim > 1:
            raise SpecError(f"Quantization: zero_point must be a scalar or 1-D, got shape {zp.shape}")
        if zp.ndim == 1 and scale.ndim == 0:
            scale = np.full(zp.shape, scale)
        if scale.ndim == 1 and zp.ndim == 0:
            zp = np.full(scale.shape, zp)
        if scale.shape != zp.shape:
            raise SpecError(f"Quantization: scale has {scale.shape} entries but zero_point has {zp.shape}")
        if scale.ndim == 1 and scale.size == 1:
            scale, zp = scale.reshape(()), zp.reshape(())
        if scale.ndim == 1 and self.axis is None:
            raise SpecError("Quantization: per-channel scale needs an axis")
        if self.axis is not None and not isinstance(self.axis, (int, np.integer)):
            raise SpecError(f"Quantization: axis must be an int or None, got {self.axis!r}")
        object.__setattr__(self, "scale", scale.astype(np.float32))
        object.__setattr__(self, "zero_point", zp.astype(np.int32))
        object.__setattr__(self, "axis", None if scale.ndim == 0 else int(self.axis))

    @property
    def per_channel(self) -> bool:
        """True when scale and zero point vary along `axis`."""
        return self.scale.ndim == 1

    def __eq__(self, other):
        if not isinstance(other, Quantization):
            return NotImplemented
        return (self.axis == other.axis and np.array_equal(self.scale, other.scale)
                and np.array_equal(self.zero_point, other.zero_point))

    def __hash__(self):
        return hash((self.axis, self.scale.tobytes(), self.zero_point.tobytes()))

    def __repr__(self):
        if self.per_channel:
            return f"Quantization(scale=<{self.scale.size} per channel>, zero_point=<...>, axis={self.axis})"
        return f"Quantization(scale={float(self.scale)!r}, zero_point={int(self.zero_point)})"

    def _broadcast(self, ndim: int):
        if not self.per_channel:
            return self.scale, self.zero_point
        shape = [1] * ndim
        shape[self.axis] = -1
        return self.scale.reshape(shape), self.zero_point.reshape(shape)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """Real values of a quantized array, as float32."""
        scale, zp = self._broadcast(np.ndim(q))
        return ((np.asarray(q, dtype=np.float32) - zp) * scale).astype(np.float32)

    def quantize(self, x: np.ndarray, dtype) -> np.ndarray:
        """Quantize real values into ``dtype``: round half away from zero (as TFLite), then saturate."""
        dtype = np.dtype(dtype)
        info = np.iinfo(dtype)
        scale, zp = self._broadcast(np.ndim(x))
        y = np.asarray(x, dtype=np.float64) / scale
        y = np.sign(y) * np.floor(np.abs(y) + 0.5) + zp
        return np.clip(y, info.min, info.max).astype(dtype)


@dataclass(frozen=True, eq=True)
class TensorSpec:
    """What a model input or output looks like.

    Args:
        name: Tensor name as the model file gives it.
        shape: Dimensions, e.g. ``(1, 224, 224, 3)``.
        dtype: NumPy dtype (or anything ``np.dtype`` accepts).
        quant: Quantization of an integer tensor, or ``None`` (float tensors, raw uint8 pixels).
        layout: ``"NHWC"``, ``"NCHW"`` or ``None`` (then inferred where a consumer needs it).
    """

    name: str
    shape: tuple
    dtype: np.dtype
    quant: Quantization | None = None
    layout: str | None = field(default=None, compare=True)

    def __post_init__(self):
        try:
            shape = tuple(int(d) for d in self.shape)
        except (TypeError, ValueError):
            raise SpecError(f"TensorSpec {self.name!r}: shape must be a sequence of ints, got {self.shape!r}") from None
        if any(d < 0 for d in shape):
            raise SpecError(f"TensorSpec {self.name!r}: negative dimension in shape {shape}")
        try:
            dtype = np.dtype(self.dtype)
        except TypeError:
            raise SpecError(f"TensorSpec {self.name!r}: unknown dtype {self.dtype!r}") from None
        if self.quant is not None:
            if not isinstance(self.quant, Quantization):
                raise SpecError(f"TensorSpec {self.name!r}: quant must be a Quantization or None")
            if dtype not in _QUANT_DTYPES:
                raise SpecError(f"TensorSpec {self.name!r}: quantization given for dtype {dtype} "
                                "(int8, uint8, int16, uint16 or int32 only)")
            if self.quant.per_channel:
                ax = self.quant.axis
                if not -len(shape) <= ax < len(shape) or shape[ax] != self.quant.scale.size:
                    raise SpecError(f"TensorSpec {self.name!r}: {self.quant.scale.size} per-channel scales "
                                    f"do not fit axis {ax} of shape {shape}")
        if self.layout not in (None, "NHWC", "NCHW"):
            raise SpecError(f"TensorSpec {self.name!r}: layout must be 'NHWC', 'NCHW' or None, got {self.layout!r}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "dtype", dtype)
