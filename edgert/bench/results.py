"""What one `edgert bench` run found: plain dataclasses that round-trip through JSON.

The shapes here are the contract between the runner (timings), the accuracy evaluation, the
terminal/CSV/plot reports and `edgert bench compare`.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

STAGES = ("capture", "preprocess", "infer", "decode", "end_to_end", "actuate")


@dataclass
class StageStats:
    """Latency of one stage over the measured frames (milliseconds).

    Attributes:
        n: Frames measured (warm-up excluded).
        p50, p90, p99, max, mean: Percentiles, maximum and mean.
        outliers: Frames slower than 3x the median (reported, never dropped).
    """

    n: int
    p50: float
    p90: float
    p99: float
    max: float
    mean: float
    outliers: int

    @classmethod
    def of(cls, samples_ms) -> StageStats:
        """Summarise raw samples in milliseconds."""
        d = np.asarray(samples_ms, np.float64)
        if d.size == 0:
            return cls(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
        p50, p90, p99 = np.percentile(d, (50, 90, 99))
        return cls(int(d.size), float(p50), float(p90), float(p99), float(d.max()), float(d.mean()),
                   int(np.count_nonzero(d > 3 * p50)))


@dataclass
class BackendRun:
    """One model on one backend.

    Attributes:
        backend: Backend key ("cpu", "onnx", "coral", "hailo", "rknn").
        status: "ok", "skipped" (backend not usable here) or "failed".
        reason: Why it was skipped or failed ("" when ok).
        model: Model file path.
        model_sha256: Hex digest of the model file.
        stages: Stage name (see `STAGES`) -> `StageStats`, for the stages measured.
        fps_sync: Frames per second running stage after stage on one thread.
        fps_pipelined: Frames per second through edgert's threaded pipeline (None if not run).
        cpu_percent: Process CPU time / wall time over the measured frames, in % of one core.
        peak_rss_mb: Peak resident memory of the bench process so far (MB): with several backends in
            one run, a later backend's figure includes the earlier ones' peaks.
        frames: Measured frames.
        warmup: Warm-up frames (excluded).
    """

    backend: str
    status: str
    reason: str = ""
    model: str = ""
    model_sha256: str = ""
    stages: dict = field(default_factory=dict)
    fps_sync: float | None = None
    fps_pipelined: float | None = None
    cpu_percent: float | None = None
    peak_rss_mb: float | None = None
    frames: int = 0
    warmup: int = 0


@dataclass
class BenchResult:
    """A whole bench run.

    Attributes:
        created: ISO 8601 time of the run (UTC).
        settings: The command's settings (frames, warmup, source, src_size, src_format, threads, ...).
        context: Device context (`edgert.bench.context.device_context`): board, governor, temperatures,
            throttling, versions, warnings.
        runs: One `BackendRun` per backend tried.
        accuracy: Accuracy results as plain dicts (see `edgert.bench.accuracy`), or None.
    """

    created: str
    settings: dict
    context: dict
    runs: list
    accuracy: dict | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False)

    @classmethod
    def from_json(cls, text: str) -> BenchResult:
        data = json.loads(text)
        runs = []
        for r in data.get("runs", []):
            stages = {k: StageStats(**v) for k, v in r.pop("stages", {}).items()}
            runs.append(BackendRun(stages=stages, **r))
        return cls(data["created"], data.get("settings", {}), data.get("context", {}), runs, data.get("accuracy"))

    def run(self, backend: str) -> BackendRun | None:
        return next((r for r in self.runs if r.backend == backend), None)
