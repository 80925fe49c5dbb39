"""How a model generation is doing since it went live: the facts a probation after a swap looks at."""
from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np


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

    def add(self, infer_ns: int, top1_score: float) -> None:
        """Count one decided frame."""
        with self._lock:
            self.frames += 1
            self._infer_ms.append(infer_ns / 1e6)
            self._top1.append(top1_score)

    def error(self) -> None:
        with self._lock:
            self.errors += 1

    def summary(self) -> dict:
        """``{"frames", "errors", "seconds", "infer_p50_ms", "mean_top1"}`` (None where no frame yet)."""
        with self._lock:
            infer = np.array(self._infer_ms) if self._infer_ms else None
            top1 = np.array(self._top1) if self._top1 else None
            return {"frames": self.frames, "errors": self.errors,
                    "seconds": (time.monotonic_ns() - self.started_ns) / 1e9,
                    "infer_p50_ms": float(np.median(infer)) if infer is not None else None,
                    "mean_top1": float(top1.mean()) if top1 is not None else None}
