"""Per-stage latency: a fixed ring of recent durations per stage, summarised as percentiles."""
from __future__ import annotations

import threading

import numpy as np


class StageTimes:
    """Recent durations (ns) of each named stage, allocated once.

    Args:
        stages: Stage names, in pipeline order.
        window: Durations kept per stage (the percentiles describe the most recent `window` frames).
    """

    def __init__(self, stages, window: int = 8192):
        self.stages = tuple(stages)
        self._index = {name: i for i, name in enumerate(self.stages)}
        self._ring = np.zeros((len(self.stages), window), np.int64)
        self._count = np.zeros(len(self.stages), np.int64)
        self._window = window
        self._lock = threading.Lock()

    def add(self, stage: str, duration_ns: int) -> None:
        """Record one duration of `stage`."""
        i = self._index[stage]
        with self._lock:
            self._ring[i, self._count[i] % self._window] = duration_ns
            self._count[i] += 1

    def count(self, stage: str) -> int:
        return int(self._count[self._index[stage]])

    def summary(self, percentiles=(50, 90, 99)) -> dict:
        """``{stage: {"n": count, "p50": ms, "p90": ms, "p99": ms, "max": ms}}`` over the window."""
        out = {}
        with self._lock:
            for i, name in enumerate(self.stages):
                n = int(self._count[i])
                if n == 0:
                    continue
                d = self._ring[i, : min(n, self._window)] / 1e6
                row = {"n": n}
                row.update({f"p{p}": float(v) for p, v in zip(percentiles, np.percentile(d, percentiles))})
                row["max"] = float(d.max())
                out[name] = row
        return out
