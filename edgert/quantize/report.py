"""The optimisation report: float model against its int8 result, measured here with edgert's own backends.

Every task: file sizes and their ratio, inference latency p50/p99 on the CPU backend. Then per task,
with the metrics `edgert bench` computes:

* classify: top-1 and top-k overall and per class (`edgert.bench.accuracy.evaluate_classifier`), the
  per-class deltas, the largest drops, float/int8 top-1 agreement;
* detect: mAP@0.5 and mAP@0.5:0.95, AP@0.5 per class (`edgert.bench.detection`), float/int8 box
  agreement;
* embed: EER, ROC AUC, Rank-1/Rank-5 (`edgert.bench.accuracy.evaluate_embedder`).

The verdict compares the main figure's drop with ``--max-drop`` (top-1, mAP@0.5 or Rank-1, in points)
and the per-class drops with ``--max-class-drop`` (top-1 or AP@0.5; embed has no classes). Deltas
and drops are in percentage points (int8 minus float; a drop is positive).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

import edgert
from edgert.bench.accuracy import evaluate_classifier, evaluate_embedder
from edgert.bench.detection import evaluate_detector
from edgert.bench.runner import BenchSettings, run_backend

LARGEST_DROPS = 3
EXIT_EXCEEDED = 3


def sizes(float_path, int8_path) -> dict:
    """``{"float_bytes", "int8_bytes", "ratio"}`` (ratio = int8 / float)."""
    f, q = Path(float_path).stat().st_size, Path(int8_path).stat().st_size
    return {"float_bytes": f, "int8_bytes": q, "ratio": q / f}


CPU = ("cpu", {})


def _load(path, runtime):
    if callable(runtime):  # an opener of its own (the rknn-toolkit2 simulator session)
        return runtime(path)
    backend, options = runtime
    return edgert.load(path, backend=backend, **options)


def latency(model_path, preprocess: dict, frames: int = 100, warmup: int = 10, seed: int = 0, runtime=CPU) -> dict:
    """Inference latency: ``{"p50_ms", "p99_ms", "frames"}`` or ``{"skipped": why}``.

    `runtime` is ``(backend, options)``: the CPU backend for ``.tflite``, onnx for ``.onnx``. Frames are
    seeded random BGR images of the model's input size (latency does not depend on the picture).
    """
    with _load(model_path, runtime) as m:
        shape = m.inputs[0].shape
    h, w = (shape[1], shape[2]) if shape[-1] in (1, 3) else (shape[2], shape[3])
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (h, w, 3), np.uint8) for _ in range(4)]
    run = run_backend(model_path, runtime[0], images, BenchSettings(frames=frames, warmup=warmup, src_size=(w, h),
                                                                    preprocess=dict(preprocess),
                                                                    options=dict(runtime[1])))
    if run.status != "ok":
        return {"skipped": run.reason}
    infer = run.stages["infer"]
    return {"p50_ms": infer.p50, "p99_ms": infer.p99, "frames": infer.n}


def _points(v):
    return None if v is None else 100.0 * v


def classify_accuracy(float_path, int8_path, validation, labels, preprocess: dict, top_k: int = 5,
                      progress=None, runtime=CPU) -> dict:
    """Top-1/top-k of float and int8 overall and per class, deltas, largest drops and agreement.

    Returns:
        ``{"images", "skipped", "top_k", "float": {"top1", "top5"}, "int8": {...}, "delta_top1_pt",
        "delta_top5_pt", "agreement", "per_class": {name: {"n", "float_top1", "int8_top1",
        "delta_top1_pt", "float_top5", "int8_top5"}}, "largest_drops": [{"class", "delta_top1_pt"}]}``;
        accuracies are fractions in 0..1, deltas in points.
    """
    with _load(int8_path, runtime) as q, _load(float_path, runtime) as f:
        acc = evaluate_classifier(q, validation, reference=f, labels=list(labels) or None, preprocess=preprocess,
                                  top_k=top_k, progress=progress)
    per_class = {}
    for name, row in acc["per_class"].items():
        delta = None if row["n"] == 0 else _points(row["model_top1"] - row["reference_top1"])
        per_class[name] = {"n": row["n"], "float_top1": row["reference_top1"], "int8_top1": row["model_top1"],
                           "delta_top1_pt": delta, "float_top5": row["reference_top5"],
                           "int8_top5": row["model_top5"]}
    return {"images": acc["images"], "skipped": acc["skipped"], "top_k": acc["top_k"],
            "float": acc["reference"], "int8": acc["model"],
            "delta_top1_pt": _points(acc["model"]["top1"] - acc["reference"]["top1"]),
            "delta_top5_pt": _points(acc["model"]["top5"] - acc["reference"]["top5"]),
            "agreement": acc["agreement"], "per_class": per_class,
            "largest_drops": _largest_drops(per_class, "delta_top1_pt")}


def detect_accuracy(float_path, int8_path, images, labels, preprocess: dict, progress=None, runtime=CPU) -> dict:
    """mAP@0.5 and mAP@0.5:0.95 of float and int8, AP@0.5 per class, deltas, largest drops, box agreement.

    Args:
        images: `edgert.bench.detection.LabelledImage`s (`read_detection_labels`).
        labels: Class names in output order (per-class rows are named by them, else by index).

    Returns:
        ``{"images", "skipped", "float": {"map50", "map"}, "int8": {...}, "delta_map50_pt",
        "delta_map_pt", "agreement": {...}, "per_class": {name: {"gt", "float_ap50", "int8_ap50",
        "delta_ap50_pt", "float_ap", "int8_ap"}}, "largest_drops"}``.
    """
    with _load(int8_path, runtime) as q, _load(float_path, runtime) as f:
        n_classes = len(labels) or None
        acc = evaluate_detector(q, images, reference=f, preprocess=preprocess,
                                n_classes=n_classes or _yolo_classes(q), progress=progress)
    fl, it = acc["reference"], acc["model"]
    per_class = {}
    for c, row in it["per_class"].items():
        ref = fl["per_class"][c]
        name = labels[c] if labels else str(c)
        per_class[name] = {"gt": row["gt"], "float_ap50": ref["ap50"], "int8_ap50": row["ap50"],
                           "delta_ap50_pt": None if not row["gt"] else _points(row["ap50"] - ref["ap50"]),
                           "float_ap": ref["ap"], "int8_ap": row["ap"]}
    delta = lambda key: None if fl[key] is None else _points(it[key] - fl[key])  # noqa: E731
    return {"images": acc["images"], "skipped": acc["skipped"],
            "float": {"map50": fl["map50"], "map": fl["map"]}, "int8": {"map50": it["map50"], "map": it["map"]},
            "delta_map50_pt": delta("map50"), "delta_map_pt": delta("map"), "agreement": acc["agreement"],
            "per_class": per_class, "largest_drops": _largest_drops(per_class, "delta_ap50_pt")}


def _yolo_classes(model) -> int:
    shape = model.outputs[0].shape
    return int(min(shape[1:]) - 4)


def embed_accuracy(float_path, int8_path, validation, preprocess: dict, progress=None, runtime=CPU) -> dict:
    """EER, ROC AUC and Rank-1/Rank-5 of float and int8 on a folder-per-identity set, and their deltas.

    Returns:
        ``{"images", "identities", "queries", "pairs", "float": {"eer", "auc", "rank1", "rank5", ...},
        "int8": {...}, "delta_rank1_pt", "delta_eer_pt", "delta_auc_pt"}``.
    """
    with _load(int8_path, runtime) as q, _load(float_path, runtime) as f:
        acc = evaluate_embedder(q, validation, reference=f, preprocess=preprocess, progress=progress)
    fl, it = acc["reference"], acc["model"]
    return {"images": acc["images"], "skipped": acc["skipped"], "identities": acc["identities"],
            "queries": acc["queries"], "pairs": acc["pairs"], "float": fl, "int8": it,
            "delta_rank1_pt": _points(it["rank1"] - fl["rank1"]), "delta_eer_pt": _points(it["eer"] - fl["eer"]),
            "delta_auc_pt": _points(it["auc"] - fl["auc"])}


def _largest_drops(per_class: dict, key: str) -> list:
    drops = sorted((r[key], name) for name, r in per_class.items() if r[key] is not None and r[key] < 0)
    return [{"class": name, key: d} for d, name in drops[:LARGEST_DROPS]]


#: Per task: the overall delta the verdict gates on, and the per-class delta.
VERDICT_KEYS = {"classify": ("delta_top1_pt", "delta_top1_pt", "top-1"),
                "detect": ("delta_map50_pt", "delta_ap50_pt", "mAP@0.5"),
                "embed": ("delta_rank1_pt", None, "Rank-1")}


def verdict(accuracy: dict, max_drop: float, max_class_drop: float, task: str = "classify") -> dict:
    """Whether the int8 model's losses are within the allowed drops (in points).

    Returns:
        ``{"passed", "metric", "max_drop", "max_class_drop", "drop_pt", "worst_class", "worst_class_drop_pt",
        "failures"}``.
    """
    overall, per, metric = VERDICT_KEYS[task]
    drop = -accuracy[overall]
    rows = [(-r[per], name) for name, r in accuracy.get("per_class", {}).items() if per and r[per] is not None]
    worst_drop, worst = max(rows, default=(0.0, None))
    failures = []
    if drop > max_drop + 1e-9:
        failures.append(f"{metric} drops {drop:.2f} pt > {max_drop:g}")
    over = [f"{name} {d:.2f} pt" for d, name in sorted(rows, reverse=True) if d > max_class_drop + 1e-9]
    if over:
        failures.append(f"class drop > {max_class_drop:g} pt: {', '.join(over)}")
    return {"passed": not failures, "metric": metric, "max_drop": max_drop, "max_class_drop": max_class_drop, "drop_pt": drop,
            "worst_class": worst, "worst_class_drop_pt": worst_drop, "failures": failures}


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _pt(v) -> str:
    return "-" if v is None else f"{v:+.2f}"


def _ms(lat: dict, key: str) -> str:
    return "-" if "skipped" in lat else f"{lat[key]:.3f}"


def _classify_lines(acc: dict) -> list:
    k = acc["top_k"]
    lines = [f"{'top-1':18}{_pct(acc['float']['top1']):>14}{_pct(acc['int8']['top1']):>14}   "
             f"{_pt(acc['delta_top1_pt'])} pt",
             f"{f'top-{k}':18}{_pct(acc['float']['top5']):>14}{_pct(acc['int8']['top5']):>14}   "
             f"{_pt(acc['delta_top5_pt'])} pt",
             f"agreement (same top-1): {_pct(acc['agreement'])} of {acc['images']} images",
             "", f"{'class':18}{'n':>6}{'float top-1':>14}{'int8 top-1':>14}{'delta pt':>10}"]
    for name, r in acc["per_class"].items():
        lines.append(f"{name[:18]:18}{r['n']:>6}{_pct(r['float_top1']):>14}{_pct(r['int8_top1']):>14}"
                     f"{_pt(r['delta_top1_pt']):>10}")
    drops = ", ".join(f"{d['class']} {d['delta_top1_pt']:+.2f}" for d in acc["largest_drops"])
    return lines + [f"largest drops: {drops or 'none'}"]


def _detect_lines(acc: dict) -> list:
    a = acc["agreement"]
    lines = [f"{'mAP@0.5':18}{_pct(acc['float']['map50']):>14}{_pct(acc['int8']['map50']):>14}   "
             f"{_pt(acc['delta_map50_pt'])} pt",
             f"{'mAP@0.5:0.95':18}{_pct(acc['float']['map']):>14}{_pct(acc['int8']['map']):>14}   "
             f"{_pt(acc['delta_map_pt'])} pt",
             f"box agreement (score >= 0.25, IoU >= 0.5): {_pct(a['agreement'])} ({a['matched']} matched of "
             f"{a['first']} float, {a['second']} int8 boxes; mean IoU "
             f"{'-' if a['mean_iou'] is None else format(a['mean_iou'], '.3f')}) on {acc['images']} images",
             "", f"{'class':18}{'boxes':>6}{'float AP50':>14}{'int8 AP50':>14}{'delta pt':>10}"]
    for name, r in acc["per_class"].items():
        lines.append(f"{name[:18]:18}{r['gt']:>6}{_pct(r['float_ap50']):>14}{_pct(r['int8_ap50']):>14}"
                     f"{_pt(r['delta_ap50_pt']):>10}")
    drops = ", ".join(f"{d['class']} {d['delta_ap50_pt']:+.2f}" for d in acc["largest_drops"])
    return lines + [f"largest drops: {drops or 'none'}"]


def _embed_lines(acc: dict) -> list:
    f, q = acc["float"], acc["int8"]
    return [f"{'EER':18}{_pct(f['eer']):>14}{_pct(q['eer']):>14}   {_pt(acc['delta_eer_pt'])} pt",
            f"{'ROC AUC':18}{f['auc']:>14.4f}{q['auc']:>14.4f}   {_pt(acc['delta_auc_pt'])} pt",
            f"{'Rank-1':18}{_pct(f['rank1']):>14}{_pct(q['rank1']):>14}   {_pt(acc['delta_rank1_pt'])} pt",
            f"{'Rank-5':18}{_pct(f['rank5']):>14}{_pct(q['rank5']):>14}",
            f"{acc['images']} images of {acc['identities']} identities, {acc['pairs']['genuine']} genuine and "
            f"{acc['pairs']['impostor']} impostor pairs"]


_TASK_LINES = {"classify": _classify_lines, "detect": _detect_lines, "embed": _embed_lines}


def format_report(report: dict, task: str = "classify") -> str:
    """The report as a terminal table."""
    s = report["sizes"]
    lines = [f"{'':18}{'float':>14}{'int8':>14}",
             f"{'size':18}{s['float_bytes'] / 1e6:>11.3f} MB{s['int8_bytes'] / 1e6:>11.3f} MB   "
             f"ratio {s['ratio']:.3f}x"]
    if report.get("note"):
        lines.append(report["note"])
    lat = report.get("latency")
    if lat:
        f, q = lat["float"], lat["int8"]
        lines += [f"{'cpu infer p50 ms':18}{_ms(f, 'p50_ms'):>14}{_ms(q, 'p50_ms'):>14}",
                  f"{'cpu infer p99 ms':18}{_ms(f, 'p99_ms'):>14}{_ms(q, 'p99_ms'):>14}"]
    acc = report.get("accuracy")
    if acc:
        lines += _TASK_LINES[task](acc)
    v = report.get("verdict")
    if v:
        head = "PASS" if v["passed"] else "FAIL"
        worst = "" if v["worst_class"] is None else f", worst class {v['worst_class']} {v['worst_class_drop_pt']:.2f} pt"
        why = "; ".join(v["failures"]) if v["failures"] else f"{v['metric']} drop {v['drop_pt']:.2f} pt{worst}"
        lines.append(f"verdict: {head} (--max-drop {v['max_drop']:g} --max-class-drop {v['max_class_drop']:g}): {why}")
    return "\n".join(lines)
