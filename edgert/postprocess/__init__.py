"""Decoding model outputs into decisions: classification, YOLO, SSD, NMS — in the quantised domain.

    from edgert.postprocess import classify, YoloDecoder, SsdDecoder
    classify(outputs[0], model.outputs[0], top_k=5)           # -> [(index, score), ...]
    YoloDecoder(model.outputs, conf=0.25, iou=0.45)(outputs)  # -> Detections
    DECODERS.load("yolo") is YoloDecoder                      # by name (entry-point group edgert.decoders)
"""
from __future__ import annotations

import numpy as np

from edgert.core.errors import ConfigError, DecodeError
from edgert.core.tensor import Quantization, TensorSpec
from edgert.postprocess import kernels
from edgert.postprocess.decoders import DECODERS
from edgert.postprocess.detections import Detections, nms
from edgert.postprocess.hailo_nms import parse_hailo_nms
from edgert.postprocess.ssd import SsdAnchorOptions, SsdDecoder, ssd_anchors
from edgert.postprocess.yolo import YoloDecoder

__all__ = ["DECODERS", "Detections", "SsdAnchorOptions", "SsdDecoder", "YoloDecoder", "classify", "dequantize",
           "nms", "parse_hailo_nms", "ssd_anchors"]


def dequantize(q: np.ndarray, quant: Quantization | TensorSpec) -> np.ndarray:
    """float32 real values of a quantized array: ``(q - zero_point) * scale``.

    Args:
        q: int8, uint8 or int16 array.
        quant: Its `Quantization` (per tensor or per axis), or a `TensorSpec` carrying one.
    """
    if isinstance(quant, TensorSpec):
        if quant.quant is None:
            raise ConfigError(f"dequantize: spec {quant.name!r} has no quantization")
        quant = quant.quant
    if not isinstance(quant, Quantization):
        raise ConfigError(f"dequantize: expected a Quantization or TensorSpec, got {type(quant).__name__}")
    return kernels.dequantize(np.asarray(q), quant)


def classify(output: np.ndarray, spec: TensorSpec, top_k: int = 5, softmax: bool = False) -> list:
    """Top-k classes of a classifier output, ranked straight on the raw (quantized) values.

    Args:
        output: The raw output, ``(1, C)`` or ``(C,)`` (quantized dtype where quantized).
        spec: Its `TensorSpec` (dtype and quantization).
        top_k: How many classes (at most C).
        softmax: Report softmax probabilities over all classes instead of the raw real values.

    Returns:
        ``[(class_index, score), ...]`` best first (lower index first among equal scores).
    """
    if not isinstance(output, np.ndarray):
        raise DecodeError(f"classify: expected a numpy.ndarray, got {type(output).__name__}")
    if output.dtype != spec.dtype:
        raise DecodeError(f"classify: output dtype {output.dtype} differs from the spec's {spec.dtype}")
    if output.size != int(np.prod(spec.shape)) or output.size == 0:
        raise DecodeError(f"classify: output of shape {output.shape} does not fit spec shape {spec.shape}")
    if not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ConfigError(f"top_k: expected an integer >= 1, got {top_k!r}")
    x = np.ascontiguousarray(output).reshape(-1)
    quantized = spec.dtype != np.float32
    if spec.dtype not in kernels.KERNEL_DTYPES:
        raise DecodeError(f"classify: unsupported output dtype {spec.dtype}")
    if quantized and spec.quant is None:
        raise DecodeError(f"classify: integer output {spec.name!r} has no quantization")
    if quantized and spec.quant.per_channel:
        x, quantized = kernels.dequantize(x.reshape(spec.shape), spec.quant).reshape(-1), False
    if not quantized and not np.all(np.isfinite(x)):
        raise DecodeError(f"classify: output {spec.name!r} holds NaN or inf")
    idx = kernels.top_k(x, int(top_k))
    values = kernels.dequantize(x[idx], spec.quant) if quantized else x[idx].astype(np.float32)
    if softmax:
        real = kernels.dequantize(x, spec.quant) if quantized else x.astype(np.float32)
        top = real.max()
        values = np.exp(values - top) / np.exp(real - top).sum(dtype=np.float64)
    return [(int(i), float(v)) for i, v in zip(idx, values)]
