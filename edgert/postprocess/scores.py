"""Scores from raw outputs, and confidence thresholds moved into each tensor's integer domain."""
from __future__ import annotations

import numpy as np

from edgert.core.errors import ConfigError, DecodeError
from edgert.core.tensor import TensorSpec
from edgert.postprocess import kernels

ACTIVATIONS = ("none", "sigmoid")


def sigmoid(x: np.ndarray) -> np.ndarray:
    """float32 logistic function (the one every decoder uses, so thresholds agree exactly)."""
    x = np.asarray(x, np.float32)
    with np.errstate(over="ignore"):
        return (np.float32(1.0) / (np.float32(1.0) + np.exp(-x))).astype(np.float32)


def check_unit(name: str, value) -> float:
    """`value` as a float in [0, 1]; `ConfigError` naming `name` otherwise."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected a number in [0, 1], got {value!r}") from None
    if not 0.0 <= v <= 1.0:
        raise ConfigError(f"{name}: expected a number in [0, 1], got {value!r}")
    return v


def check_count(name: str, value, minimum: int = 1) -> int:
    """`value` as an int >= `minimum`; `ConfigError` naming `name` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def check_size(name: str, value) -> tuple:
    """`value` as ``(width, height)`` floats > 0; `ConfigError` naming `name` otherwise."""
    try:
        w, h = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected (width, height), got {value!r}") from None
    if not (w > 0 and h > 0 and np.isfinite(w) and np.isfinite(h)):
        raise ConfigError(f"{name}: expected (width, height) > 0, got {value!r}")
    return w, h


def check_specs(outputs) -> tuple:
    """The output specs as a tuple; `ConfigError` unless a non-empty sequence of TensorSpec."""
    if isinstance(outputs, TensorSpec) or not isinstance(outputs, (list, tuple)) or not outputs \
            or not all(isinstance(o, TensorSpec) for o in outputs):
        raise ConfigError("outputs: expected a non-empty list of edgert.TensorSpec (model.outputs)")
    return tuple(outputs)


class ScoreMap:
    """How one output tensor's raw values become scores, and the raw threshold for a confidence.

    Args:
        spec: The output tensor (its dtype and quantization).
        activation: "none" (values are probabilities) or "sigmoid" (values are logits).
    """

    def __init__(self, spec: TensorSpec, activation: str = "none"):
        if activation not in ACTIVATIONS:
            raise ConfigError(f"class_activation: expected one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        if spec.dtype not in kernels.KERNEL_DTYPES:
            raise ConfigError(f"output {spec.name!r}: dtype {spec.dtype} is not supported "
                              "(int8, uint8, int16 or float32)")
        if spec.quant is not None and spec.quant.per_channel:
            raise ConfigError(f"output {spec.name!r}: per-channel quantized scores are not supported")
        self.spec, self.activation = spec, activation
        self.quantized = spec.dtype != np.float32
        self.quant = spec.quant
        if self.quantized and self.quant is None:
            raise ConfigError(f"output {spec.name!r}: integer output without quantization parameters")

    def values(self, raw: np.ndarray) -> np.ndarray:
        """float32 real values of raw entries (dequantized when quantized)."""
        raw = np.asarray(raw)
        if not self.quantized:
            return raw.astype(np.float32, copy=False)
        return kernels.dequantize(raw, self.quant)

    def scores(self, raw: np.ndarray) -> np.ndarray:
        """float32 scores of raw entries."""
        v = self.values(raw)
        return sigmoid(v) if self.activation == "sigmoid" else v

    def threshold(self, conf: float):
        """A raw value t such that every entry scoring >= conf has raw value >= t (never misses one).

        Integer tensors: the smallest representable value whose score reaches `conf` (with a sigmoid,
        one float32 step below `conf`: the single-tensor kernel's C sigmoid may round a saturated
        score up where NumPy's rounds it down); None when no value can. Float tensors: a value a
        little below the exact bound. Callers keep candidates on their computed scores.
        """
        target = np.float32(conf)
        if self.activation == "sigmoid":
            target = np.nextafter(target, np.float32(-np.inf))
        if self.quantized:
            info = np.iinfo(self.spec.dtype)
            grid = np.arange(info.min, info.max + 1, dtype=np.int64).astype(self.spec.dtype)
            ok = np.flatnonzero(self.scores(grid) >= target)
            return None if ok.size == 0 else self.spec.dtype.type(grid[ok[0]])
        if target <= 0:
            return np.float32(-np.inf)
        if self.activation == "sigmoid":
            if target >= 1.0:
                return np.float32(15.0)  # float32 sigmoid reaches 1.0 from about 16.6 on
            bound = float(np.log(float(target) / (1.0 - float(target))))
        else:
            bound = float(target)
        return np.float32(np.nextafter(np.float32(bound), np.float32(-np.inf)) - 1e-3 * abs(bound))


def require_shape(arr: np.ndarray, spec: TensorSpec, what: str) -> np.ndarray:
    """`arr` as a contiguous array of `spec`'s dtype and shape, or `DecodeError`."""
    if not isinstance(arr, np.ndarray):
        raise DecodeError(f"{what}: expected a numpy.ndarray, got {type(arr).__name__}")
    if arr.dtype != spec.dtype:
        raise DecodeError(f"{what}: dtype {arr.dtype} differs from the declared {spec.dtype}")
    if arr.shape != spec.shape:
        raise DecodeError(f"{what}: shape {arr.shape} differs from the declared {spec.shape}")
    return np.ascontiguousarray(arr)
