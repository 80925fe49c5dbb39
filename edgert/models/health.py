"""How a model generation is doing since it went live: the facts a probation after a swap looks at."""
from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np


def top1_probability(output: np.ndarray, spec) -> float:
    """The top-1 class's probability: the output itself when it already is a distribution, else its softmax.

    Comparable across models and output scales (logits, int8 logits, softmax outputs), so a probation
    can tell a model that has become unsure.
    """
    from edgert.postprocess import dequantize

    x = (dequantize(output, spec) if spec.quant is not None else output).astype(np.float32).ravel()
    if x.size == 0:
        return 0.0
    if x.min() >= -1e-3 and abs(float(x.sum()) - 1.0) < 0.05:
        return float(x.max())
    e = np.exp(x - x.max())
    return float(1.0 / e.sum())


class ModelHealth:
    """Frames, errors, inference latency and top-1 confidence of one model generation.

    Args:
        generation: The model generation watched.
        window: Recent frames kept for the latency and confidence figures.
    """

    def __init__(self, generation: int, window: int = 1000):
        self.generation = generation
        self.started_ns = time.monotonic_ns()
        self.frames = 0
        self.errors = 0
        self._infer_ms: deque = deque(maxlen=window)
        self._top1: deque = deque(maxlen=window)
        self._lock = threading.Lock()

    def add(self, infer_ns: int, top1_probability: float | None) -> None:
        """Count one decided frame (its inference time and top-1 probability; None for a model with no
        confidence, such as an embedder: ``mean_top1`` then stays None)."""
        with self._lock:
            self.frames += 1
            self._infer_ms.append(infer_ns / 1e6)
            if top1_probability is not None:
                self._top1.append(top1_probability)

    def error(self) -> None:
        with self._lock:
            self.errors += 1

    def summary(self) -> dict:
        """``{"frames", "errors", "seconds", "infer_p50_ms", "mean_top1"}`` (None where no frame yet).

        ``mean_top1`` is the mean top-1 probability over the recent window.
        """
        with self._lock:
            infer = np.array(self._infer_ms) if self._infer_ms else None
            top1 = np.array(self._top1) if self._top1 else None
            return {"frames": self.frames, "errors": self.errors,
                    "seconds": (time.monotonic_ns() - self.started_ns) / 1e9,
                    "infer_p50_ms": float(np.median(infer)) if infer is not None else None,
                    "mean_top1": float(top1.mean()) if top1 is not None else None}
