"""Pure-NumPy twin of ``ext/ctc.pyx``: greedy CTC decoding, the readable specification it is tested against."""
from __future__ import annotations

import numpy as np


def greedy_decode(x: np.ndarray, blank: int, softmax: bool, scale: float = 1.0, zero_point: int = 0):
    """Labels and per-label confidences of one ``(T, C)`` output (see `edgert.postprocess.ctc`).

    Returns:
        ``(labels int32, confidences float32)``, or None when a float output holds NaN or inf.
    """
    if x.dtype == np.float32 and not np.isfinite(x).all():
        return None
    real = x.astype(np.float32) if x.dtype == np.float32 else \
        ((x.astype(np.int32) - np.int32(zero_point)).astype(np.float32) * np.float32(scale))
    best = np.argmax(x, axis=1)  # on the raw values: the first of equal maxima
    if softmax:
        top = x[np.arange(len(x)), best][:, None]
        shifted = (x - top) if x.dtype == np.float32 else \
            (x.astype(np.int32) - top.astype(np.int32)).astype(np.float32) * np.float32(scale)
        p = (1.0 / np.exp(shifted, dtype=np.float32).sum(1, dtype=np.float32)).astype(np.float32)
    else:
        p = real[np.arange(len(x)), best]
    labels, confs = [], []
    prev = -1
    for t, k in enumerate(best):
        if k != blank:
            if k == prev:
                confs[-1] = max(confs[-1], p[t])
            else:
                labels.append(k)
                confs.append(p[t])
        prev = k
    return np.array(labels, np.int32), np.array(confs, np.float32)
