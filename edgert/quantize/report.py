"""The optimisation report: float model against its int8 result, measured here with edgert's own backends.

For a classifier: file sizes and their ratio, inference latency p50/p99 on the CPU backend, top-1
and top-k overall and per class (`edgert.bench.accuracy.evaluate_classifier`), the per-class deltas,
the largest drops, float/int8 top-1 agreement, and a verdict against the allowed drops. Deltas and
drops are in percentage points (int8 minus float; a drop is positive).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

import edgert
from edgert.bench.accuracy import evaluate_classifier
from edgert.bench.runner import BenchSettings, run_backend

LARGEST_DROPS = 3
EXIT_EXCEEDED = 3


def sizes(float_path, int8_path) -> dict:
    """``{"float_bytes", "int8_bytes", "ratio"}`` (ratio = int8 / float)."""
    f, q = Path(float_path).stat().st_size, Path(int8_path).stat().st_size
    return {"float_bytes": f, "int8_bytes": q, "ratio": q / f}


def latency(model_path, preprocess: dict, frames: int = 100, warmup: int = 10, seed: int = 0) -> dict:
    """Inference latency on the CPU backend: ``{"p50_ms", "p99_ms", "frames"}`` or ``{"skipped": why}``.

    Frames are seeded random BGR images of the model's input size (latency does not depend on the picture).
    """
    with edgert.load(model_path, backend="cpu") as m:
        shape = m.inputs[0].shape
    h, w = (shape[1], shape[2]) if shape[-1] in (1, 3) else (shape[2], shape[3])
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (h, w, 3), np.uint8) for _ in range(4)]
    run = run_backend(model_path, "cpu", images, BenchSettings(frames=frames, warmup=warmup, src_size=(w, h),
                                                               preprocess=dict(preprocess)))
    if run.status != "ok":
        return {"skipped": run.reason}
    infer = run.stages["infer"]
    return {"p50_ms": infer.p50, "p99_ms": infer.p99, "frames": infer.n}


def _points(v):
    return None if v is None else 100.0 * v


def classify_accuracy(float_path, int8_path, validation, labels, preprocess: dict, top_k: int = 5,
                      progress=None) -> dict:
    """Top-1/top-k of float and int8 overall and per class, deltas, largest drops and agreement.

    Returns:
        ``{"images", "skipped", "top_k", "float": {"top1", "top5"}, "int8": {...}, "delta_top1_pt",
        "delta_top5_pt", "agreement", "per_class": {name: {"n", "float_top1", "int8_top1",
        "delta_top1_pt", "float_top5", "int8_top5"}}, "largest_drops": [{"class", "delta_top1_pt"}]}``;
        accuracies are fractions in 0..1, deltas in points.
    """
    with edgert.load(int8_path, backend="cpu") as q, edgert.load(float_path, backend="cpu") as f:
        acc = evaluate_classifier(q, validation, reference=f, labels=list(labels) or None, preprocess=preprocess,
                                  top_k=top_k, progress=progress)
    per_class = {}
    for name, row in acc["per_class"].items():
        delta = None if row["n"] == 0 else _points(row["model_top1"] - row["reference_top1"])
        per_class[name] = {"n": row["n"], "float_top1": row["reference_top1"], "int8_top1": row["model_top1"],
                           "delta_top1_pt": delta, "float_top5": row["reference_top5"],
                           "int8_top5": row["model_top5"]}
    drops = sorted(((r["delta_top1_pt"], name) for name, r in per_class.items()
                    if r["delta_top1_pt"] is not None and r["delta_top1_pt"] < 0))
    return {"images": acc["images"], "skipped": acc["skipped"], "top_k": acc["top_k"],
            "float": acc["reference"], "int8": acc["model"],
            "delta_top1_pt": _points(acc["model"]["top1"] - acc["reference"]["top1"]),
            "delta_top5_pt": _points(acc["model"]["top5"] - acc["reference"]["top5"]),
            "agreement": acc["agreement"], "per_class": per_class,
            "largest_drops": [{"class": name, "delta_top1_pt": d} for d, name in drops[:LARGEST_DROPS]]}


def verdict(accuracy: dict, max_drop: float, max_class_drop: float) -> dict:
    """Whether the int8 model's losses are within the allowed drops (in points).

    Returns:
        ``{"passed", "max_drop", "max_class_drop", "drop_pt", "worst_class", "worst_class_drop_pt", "failures"}``.
    """
    drop = -accuracy["delta_top1_pt"]
    rows = [(-r["delta_top1_pt"], name) for name, r in accuracy["per_class"].items() if r["delta_top1_pt"] is not None]
    worst_drop, worst = max(rows, default=(0.0, None))
    failures = []
    if drop > max_drop + 1e-9:
        failures.append(f"top-1 drops {drop:.2f} pt > {max_drop:g}")
    over = [f"{name} {d:.2f} pt" for d, name in sorted(rows, reverse=True) if d > max_class_drop + 1e-9]
    if over:
        failures.append(f"class drop > {max_class_drop:g} pt: {', '.join(over)}")
    return {"passed": not failures, "max_drop": max_drop, "max_class_drop": max_class_drop, "drop_pt": drop,
            "worst_class": worst, "worst_class_drop_pt": worst_drop, "failures": failures}


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _pt(v) -> str:
    return "-" if v is None else f"{v:+.2f}"


def _ms(lat: dict, key: str) -> str:
    return "-" if "skipped" in lat else f"{lat[key]:.3f}"


def format_report(report: dict) -> str:
    """The report as a terminal table."""
    s = report["sizes"]
    lines = [f"{'':18}{'float':>14}{'int8':>14}",
             f"{'size':18}{s['float_bytes'] / 1e6:>11.3f} MB{s['int8_bytes'] / 1e6:>11.3f} MB   "
             f"ratio {s['ratio']:.3f}x"]
    lat = report.get("latency")
    if lat:
        f, q = lat["float"], lat["int8"]
        lines += [f"{'cpu infer p50 ms':18}{_ms(f, 'p50_ms'):>14}{_ms(q, 'p50_ms'):>14}",
                  f"{'cpu infer p99 ms':18}{_ms(f, 'p99_ms'):>14}{_ms(q, 'p99_ms'):>14}"]
    acc = report.get("accuracy")
    if acc:
        k = acc["top_k"]
        lines += [f"{'top-1':18}{_pct(acc['float']['top1']):>14}{_pct(acc['int8']['top1']):>14}   "
                  f"{_pt(acc['delta_top1_pt'])} pt",
                  f"{f'top-{k}':18}{_pct(acc['float']['top5']):>14}{_pct(acc['int8']['top5']):>14}   "
                  f"{_pt(acc['delta_top5_pt'])} pt",
                  f"agreement (same top-1): {_pct(acc['agreement'])} of {acc['images']} images",
                  "", f"{'class':18}{'n':>6}{'float top-1':>14}{'int8 top-1':>14}{'delta pt':>10}"]
        for name, r in acc["per_class"].items():
            lines.append(f"{name[:18]:18}{r['n']:>6}{_pct(r['float_top1']):>14}{_pct(r['int8_top1']):>14}"
                         f"{_pt(r['delta_top1_pt']):>10}")
        drops = ", ".join(f"{d['class']} {d['delta_top1_pt']:+.2f}" for d in acc["largest_drops"])
        lines.append(f"largest drops: {drops or 'none'}")
    v = report.get("verdict")
    if v:
        head = "PASS" if v["passed"] else "FAIL"
        why = "; ".join(v["failures"]) if v["failures"] else (
            f"top-1 drop {v['drop_pt']:.2f} pt, worst class {v['worst_class']} {v['worst_class_drop_pt']:.2f} pt")
        lines.append(f"verdict: {head} (--max-drop {v['max_drop']:g} --max-class-drop {v['max_class_drop']:g}): {why}")
    return "\n".join(lines)
