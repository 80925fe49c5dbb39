"""`edgert bench --plot FILE.png`: latency CDF per backend and stage, per-class accuracy bars.

matplotlib is an optional extra (``pip install 'edgert[plot]'``). It is imported here, when a plot is
asked for, and drawn on an Agg canvas of its own: the process-wide pyplot backend is left alone.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgert.bench.report import check_output_path
from edgert.bench.results import STAGES, BenchResult
from edgert.core import durable
from edgert.core.errors import ConfigError


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'edgert[plot]'") from None
    return Figure, FigureCanvasAgg


def cdf_points(stats) -> tuple:
    """An approximate CDF from a stage's summary when raw samples are absent: (ms, fraction) at p50, p90, p99, max."""
    return np.array([stats.p50, stats.p90, stats.p99, stats.max]), np.array([0.5, 0.9, 0.99, 1.0])


def _sample_cdf(samples) -> tuple:
    x = np.sort(np.asarray(samples, np.float64))
    return x, np.arange(1, x.size + 1) / x.size


def plot(result: BenchResult, path, samples: dict | None = None) -> Path:
    """Draw the run as a PNG.

    One panel per stage with the latency CDF of every backend that ran (from the raw samples when
    given, else a step through the p50/p90/p99/max the result holds, drawn dashed), and a panel
    of per-class top-1 bars (model and reference) when the result has classification accuracy.

    Args:
        result: The bench run.
        path: PNG file to write (atomically: temporary file, then rename).
        samples: Optional raw latencies, ``{backend: {stage: [ms, ...]}}``.

    Raises:
        ConfigError: matplotlib is not installed, or there is nothing to plot.
    """
    Figure, FigureCanvasAgg = _matplotlib()
    samples = samples or {}
    runs = [r for r in result.runs if r.status == "ok" and r.stages]
    seen = {s for r in runs for s in r.stages} | {s for b in samples.values() for s in b}
    stages = [s for s in STAGES if s in seen] + sorted(seen - set(STAGES))
    acc = result.accuracy if (result.accuracy or {}).get("task") == "classification" else None
    per_class = (acc or {}).get("per_class") or {}
    panels = len(stages) + (1 if per_class else 0)
    if not panels:
        raise ConfigError("--plot: the result has no measured stage and no per-class accuracy to draw")
    cols = min(panels, 2)
    rows = -(-panels // cols)
    fig = Figure(figsize=(6.4 * cols, 3.6 * rows + (0.6 if per_class and len(per_class) > 8 else 0)),
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, stage in zip(axes, stages):
        _latency_panel(ax, stage, runs, samples)
    if per_class:
        _per_class_panel(axes[len(stages)], per_class)
    for ax in axes[panels:]:
        ax.set_visible(False)
    path = check_output_path(path, "--plot")
    with durable.atomic_file(path, make_parents=False) as handle:
        fig.savefig(handle, format="png", dpi=100)
    return path


def _latency_panel(ax, stage: str, runs, samples: dict) -> None:
    """One stage's latency CDF for every backend (raw samples solid, percentiles dashed)."""
    for r in runs:
        raw = (samples.get(r.backend) or {}).get(stage)
        if raw is not None and len(raw):
            x, y = _sample_cdf(raw)
            ax.plot(x, y, label=f"{r.backend} (n={len(raw)})", drawstyle="steps-post")
        elif stage in r.stages and r.stages[stage].n:
            x, y = cdf_points(r.stages[stage])
            ax.plot(x, y, "--o", drawstyle="steps-post", markersize=3, label=f"{r.backend} (percentiles)")
    xs = np.concatenate([ln.get_xdata() for ln in ax.lines]) if ax.lines else np.array([])
    if xs.size and xs.min() > 0 and xs.max() / xs.min() > 20:
        ax.set_xscale("log")  # backends an order of magnitude apart: keep both readable
    ax.set_title(f"{stage} latency")
    ax.set_xlabel("ms")
    ax.set_ylabel("fraction of frames")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8, loc="lower right")


def _per_class_panel(ax, per_class: dict) -> None:
    """Top-1 per class: the model's bars and, where measured, the reference's beside them."""
    names = list(per_class)
    pos = np.arange(len(names))
    model = [100 * (per_class[n].get("model_top1") or 0.0) for n in names]
    ref = [per_class[n].get("reference_top1") for n in names]
    has_ref = any(v is not None for v in ref)
    width = 0.4 if has_ref else 0.8
    ax.bar(pos - (width / 2 if has_ref else 0), model, width, label="model")
    if has_ref:
        ax.bar(pos + width / 2, [100 * (v or 0.0) for v in ref], width, label="reference")
    ax.set_xticks(pos, names, rotation=45 if len(names) > 6 else 0, ha="right" if len(names) > 6 else "center",
                  fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("top-1 %")
    ax.set_title("top-1 per class")
    ax.legend(fontsize=8, loc="lower right")
