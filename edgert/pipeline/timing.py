"""Per-stage latency: a fixed ring of recent durations per stage, summarised as percentiles, and
cumulative histogram counts since the start (the metrics endpoint's latency histograms)."""
from __future__ import annotations

import threading
from bisect import bisect_left

import numpy as np


#: Upper bounds (ms) of the latency histogram buckets (a last one, +Inf, takes the rest).
LATENCY_BUCKETS_MS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 33.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 5000.0)


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
        self._bounds_ns = tuple(int(b * 1e6) for b in LATENCY_BUCKETS_MS)
        self._buckets = np.zeros((len(self.stages), len(self._bounds_ns) + 1), np.int64)
        self._sum_ns = np.zeros(len(self.stages), np.int64)
        self._lock = threading.Lock()

    def add(self, stage: str, duration_ns: int) -> None:
        """Record one duration of `stage`."""
        i = self._index[stage]
        with self._lock:
            self._ring[i, self._count[i] % self._window] = duration_ns
            self._count[i] += 1
            self._buckets[i, bisect_left(self._bounds_ns, duration_ns)] += 1
            self._sum_ns[i] += duration_ns

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

    def histogram(self) -> dict:
        """``{stage: {"le_ms": bounds, "counts": cumulative counts per bound then +Inf, "sum_ms": total}}``
        over every duration since the start (not only the window)."""
        with self._lock:
            cumulative = np.cumsum(self._buckets, axis=1)
            sums = self._sum_ns.copy()
        return {name: {"le_ms": LATENCY_BUCKETS_MS, "counts": [int(c) for c in cumulative[i]],
                       "sum_ms": float(sums[i]) / 1e6}
                for i, name in enumerate(self.stages) if cumulative[i, -1]}
