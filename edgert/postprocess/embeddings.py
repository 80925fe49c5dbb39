"""Embedding outputs as unit vectors: dequantised once (int8/uint8 models), L2-normalised once."""
from __future__ import annotations

import numpy as np

from edgert.core.errors import DecodeError
from edgert.core.tensor import TensorSpec


def embedding_size(spec: TensorSpec) -> int:
    """The length of the embedding an output spec holds: ``(D,)`` or ``(B, D)``.

    Raises:
        DecodeError: an output that is not one vector per image (e.g. a feature map).
    """
    shape = tuple(int(d) for d in spec.shape)
    if len(shape) == 1 or (len(shape) == 2 and shape[0] >= 1):
        return shape[-1]
    if len(shape) > 2 and all(d == 1 for d in shape[1:-1]):  # (B, 1, 1, D) of a pooled conv head
        return shape[-1]
    raise DecodeError(f"embedding output {spec.name!r} has shape {shape}; an embedding model must give one "
                      f"1-D vector per image, (D,) or (B, D)")


def unit_embeddings(output: np.ndarray, spec: TensorSpec, dtype=np.float32) -> np.ndarray:
    """``(B, D)`` L2-normalised rows of a raw embedding output (dequantised when quantised), computed
    and returned in `dtype` (float32 for galleries; float64 for evaluation).

    Raises:
        DecodeError: a non-vector output (`embedding_size`), NaN/inf, or an all-zero embedding.
    """
    dim = embedding_size(spec)
    out = np.asarray(output)
    if out.size % dim:
        raise DecodeError(f"embedding output {spec.name!r}: {out.size} values are not rows of {dim}")
    if spec.quant is not None and out.dtype != np.float32:
        from edgert.postprocess import dequantize

        real = dequantize(out, spec)
    else:
        real = out
    real = real.astype(dtype, copy=False).reshape(-1, dim)
    if not np.all(np.isfinite(real)):
        raise DecodeError(f"embedding output {spec.name!r} holds NaN or inf")
    norms = np.linalg.norm(real, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise DecodeError(f"embedding output {spec.name!r} is all zeros (no direction to compare)")
    return real / norms
