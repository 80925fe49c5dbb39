"""`edgert quantize --plot report.png`: the report drawn: float against int8 per class (or per metric), size, latency.

matplotlib comes with the ``plot`` extra; without it the plot is refused before any work is done
(`check_plot`). Drawn on an Agg canvas of its own (as `edgert.bench.plot`), written atomically.
"""
from __future__ import annotations

import numpy as np

from edgert.bench.plot import _matplotlib
from edgert.bench.report import check_output_path
from edgert.core import durable

#: Per task: the per-class figure drawn, its label, and the overall figures.
_PANELS = {"classify": ("top1", "top-1 %", ("top1", "top5")),
           "detect": ("ap50", "AP@0.5 %", ("map50", "map")),
           "embed": (None, None, ("rank1", "rank5", "auc"))}


def check_plot(path):
    """The plot's path, refused early when matplotlib is missing or the folder is not there.

    Raises:
        ConfigError: matplotlib is not installed (``pip install 'edgert[plot]'``), or a bad path.
    """
    _matplotlib()
    return check_output_path(path, "--plot")


def _bars(ax, names, float_values, int8_values, ylabel: str, title: str) -> None:
    pos = np.arange(len(names))
    ax.bar(pos - 0.2, [100 * (v or 0.0) for v in float_values], 0.4, label="float")
    ax.bar(pos + 0.2, [100 * (v or 0.0) for v in int8_values], 0.4, label="int8")
    ax.set_xticks(pos, names, rotation=45 if len(names) > 6 else 0, ha="right" if len(names) > 6 else "center",
                  fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")


def _size_latency(ax, report: dict) -> None:
    s, lat = report["sizes"], report.get("latency") or {}
    labels, values = ["size MB"], [(s["float_bytes"] / 1e6, s["int8_bytes"] / 1e6)]
    if lat and "skipped" not in lat["float"] and "skipped" not in lat["int8"]:
        labels.append("cpu p50 ms")
        values.append((lat["float"]["p50_ms"], lat["int8"]["p50_ms"]))
    pos = np.arange(len(labels))
    ax.bar(pos - 0.2, [v[0] for v in values], 0.4, label="float")
    ax.bar(pos + 0.2, [v[1] for v in values], 0.4, label="int8")
    ax.set_xticks(pos, labels)
    ax.set_title(f"size {s['ratio']:.3f}x")
    ax.legend(fontsize=8)


def plot_report(report: dict, task: str, path):
    """Draw `report` (from `edgert.quantize.job.run`) as a PNG at `path`; returns the path."""
    Figure, FigureCanvasAgg = _matplotlib()
    acc = report.get("accuracy")
    panels = 1 + (2 if acc and task != "embed" else 1 if acc else 0)
    fig = Figure(figsize=(5.2 * panels, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels, squeeze=False).ravel()
    _size_latency(axes[0], report)
    if acc:
        per, ylabel, overall = _PANELS[task]
        _bars(axes[1], list(overall), [acc["float"][k] for k in overall], [acc["int8"][k] for k in overall],
              "%", "overall")
        if per is not None:
            names = list(acc["per_class"])
            rows = acc["per_class"]
            _bars(axes[2], names, [rows[n][f"float_{per}"] for n in names], [rows[n][f"int8_{per}"] for n in names],
                  ylabel, f"{ylabel.split()[0]} per class")
    path = check_output_path(path, "--plot")
    with durable.atomic_file(path, make_parents=False) as handle:
        fig.savefig(handle, format="png", dpi=100)
    return path
