"""Detector accuracy on labelled images: COCO-style mAP@0.5 and mAP@0.5:0.95, and box agreement of two models.

Validation labels come in either common form:

* **YOLO txt**: a folder with ``images/`` and ``labels/`` (``labels/NAME.txt`` for ``images/NAME.jpg``), or
  the ``.txt`` files beside the images; one ``class cx cy w h`` line per object, coordinates in 0..1 of the
  image, class an index into the model's labels. An image without a label file has no objects. A
  ``classes.txt`` (one name a line) in the folder, if present, must name the model's labels.
* **COCO JSON**: an annotation file (``images``, ``annotations`` with ``bbox`` ``[x, y, w, h]`` in
  pixels, ``categories``); image files are found beside it or in an ``images/`` folder beside it, and
  categories are matched to the model's labels by name.

The average precision follows pycocotools' definition (the tests check it against pycocotools): per
class and IoU threshold, detections are matched greedily in score order to the unmatched ground-truth
box of highest IoU; precision is made monotone and sampled at 101 recall points; classes without
ground truth do not count. Crowd annotations (``iscrowd``) are left out.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgert.core.errors import ConfigError, EdgertError, one_line
from edgert.sources.folder import IMAGE_SUFFIXES
from edgert.sources.opencv import import_cv2

log = logging.getLogger(__name__)

IOU_THRESHOLDS = np.round(np.linspace(0.5, 0.95, 10), 2)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True)
class LabelledImage:
    """One validation image and its ground truth: ``boxes`` ``(N, 4)`` xyxy pixels, ``classes`` ``(N,)``."""

    path: Path
    boxes: np.ndarray
    classes: np.ndarray


def _images(folder: Path) -> list:
    return sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: p.name)


def _image_size(path: Path):
    cv2 = import_cv2()
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return None if image is None else (image.shape[1], image.shape[0])


def _yolo_rows(txt: Path, n_classes: int) -> np.ndarray:
    try:
        text = txt.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"validation labels {txt}: unreadable ({exc})") from None
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            values = [float(v) for v in fields[:5]]
        except ValueError:
            values = []
        if len(fields) < 5 or len(values) != 5 or values[0] != int(values[0]) or not 0 <= values[0] < n_classes:
            raise ConfigError(f"validation labels {txt}:{number}: expected 'class cx cy w h' with a class in "
                              f"0..{n_classes - 1}, got {line.strip()!r}")
        rows.append(values)
    return np.array(rows, np.float64).reshape(-1, 5)


def _check_class_names(names, labels, where: str) -> None:
    names = [str(n) for n in names]
    if list(labels) and names != list(labels)[:len(names)]:
        raise ConfigError(f"{where}: classes {', '.join(names[:5])}{', ...' if len(names) > 5 else ''} do not "
                          f"match the model's labels {', '.join(list(labels)[:5])}{', ...' if len(labels) > 5 else ''}")


def read_yolo(folder, labels, n_classes: int) -> list:
    """`LabelledImage`s of a YOLO-txt validation folder (see the module docstring)."""
    folder = Path(folder)
    image_dir = folder / "images" if (folder / "images").is_dir() else folder
    label_dir = folder / "labels" if (folder / "labels").is_dir() else image_dir
    names_file = folder / "classes.txt"
    if names_file.is_file():
        names = [n.strip() for n in names_file.read_text(encoding="utf-8").splitlines() if n.strip()]
        _check_class_names(names, labels, f"validation {names_file}")
    out = []
    for path in _images(image_dir):
        txt = label_dir / (path.stem + ".txt")
        rows = _yolo_rows(txt, n_classes) if txt.is_file() else np.zeros((0, 5))
        size = _image_size(path) if len(rows) else (1, 1)
        if size is None:
            log.warning("validation: skipping %s: not a readable image", path)
            continue
        w, h = size
        cx, cy, bw, bh = rows[:, 1] * w, rows[:, 2] * h, rows[:, 3] * w, rows[:, 4] * h
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        out.append(LabelledImage(path, boxes, rows[:, 0].astype(np.int64)))
    if not out:
        raise ConfigError(f"validation {folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in {image_dir}")
    return out


def read_coco(json_path, labels) -> list:
    """`LabelledImage`s of a COCO annotation file, categories matched to `labels` by name."""
    json_path = Path(json_path)
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
        images, cats = data["images"], data["categories"]
        anns = data.get("annotations", [])
        names = {c["id"]: str(c["name"]) for c in cats}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"validation {json_path}: not a COCO annotation file ({exc})") from None
    labels = list(labels)
    missing = sorted(set(names.values()) - set(labels)) if labels else []
    if not labels or missing:
        raise ConfigError(f"validation {json_path}: categories not among the model's labels: "
                          f"{', '.join(missing[:5]) or 'the model card names no classes'}")
    index = {cid: labels.index(name) for cid, name in names.items()}
    per_image: dict = {im["id"]: ([], []) for im in images}
    for n, a in enumerate(anns):
        try:
            if a.get("iscrowd", 0):
                continue
            x, y, w, h = (float(v) for v in a["bbox"])
            boxes, classes = per_image[a["image_id"]]
            classes.append(index[a["category_id"]])
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"validation {json_path}: annotation {n}: expected bbox [x, y, w, h] and an image_id "
                              f"and category_id listed in the file ({type(exc).__name__}: {exc})") from None
        boxes.append([x, y, x + w, y + h])
    roots = [json_path.parent, json_path.parent / "images"]
    out = []
    for im in images:
        path = next((r / im["file_name"] for r in roots if (r / im["file_name"]).is_file()), None)
        if path is None:
            raise ConfigError(f"validation {json_path}: image {im['file_name']!r} not found beside it or in images/")
        boxes, classes = per_image[im["id"]]
        out.append(LabelledImage(path, np.array(boxes, np.float64).reshape(-1, 4), np.array(classes, np.int64)))
    if not out:
        raise ConfigError(f"validation {json_path}: no images")
    return out


def read_detection_labels(path, labels, n_classes: int) -> list:
    """The validation set at `path`: a COCO ``.json`` file, or a YOLO-txt folder."""
    path = Path(path)
    if path.suffix.lower() == ".json" and path.is_file():
        return read_coco(path, labels)
    if not path.is_dir():
        raise ConfigError(f"validation {path}: expected a COCO .json file or a folder of images with YOLO labels")
    return read_yolo(path, labels, n_classes)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` IoU of xyxy boxes."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lo, hi = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _matches(det_boxes, gt_boxes, thresholds) -> np.ndarray:
    """``(T, D)`` whether each detection (score order) is a true positive at each threshold."""
    ious = box_iou(det_boxes, gt_boxes)
    tp = np.zeros((len(thresholds), len(det_boxes)), bool)
    for t, thr in enumerate(thresholds):
        taken = np.zeros(len(gt_boxes), bool)
        for d in range(len(det_boxes)):
            row = np.where(taken, -1.0, ious[d])
            g = int(np.argmax(row)) if row.size else -1
            if g >= 0 and row[g] >= min(thr, 1 - 1e-10):
                taken[g], tp[t, d] = True, True
    return tp


def _ap(tp_sorted: np.ndarray, n_gt: int) -> float:
    tp = np.cumsum(tp_sorted)
    fp = np.cumsum(~tp_sorted)
    recall = tp / n_gt
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    precision = np.maximum.accumulate(precision[::-1])[::-1] if precision.size else precision
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    sampled = np.zeros(RECALL_POINTS.size)
    valid = idx < precision.size
    sampled[valid] = precision[idx[valid]]
    return float(np.mean(sampled))


def average_precision(detections, truths, n_classes: int) -> dict:
    """COCO-style AP per class and IoU threshold.

    Args:
        detections: Per image ``(boxes xyxy, scores, classes)``.
        truths: Per image ``(boxes xyxy, classes)``, the same images in the same order.
        n_classes: Class count.

    Returns:
        ``{"map50", "map", "per_class": {index: {"gt", "ap50", "ap"}}}``; classes without ground
        truth have None APs and are left out of the means (None when no class has ground truth).
    """
    if len(detections) != len(truths):
        raise ConfigError(f"detections and truths: {len(detections)} and {len(truths)} images")
    scores_by_class = [[] for _ in range(n_classes)]
    tp_by_class = [[] for _ in range(n_classes)]
    n_gt = np.zeros(n_classes, np.int64)
    for (d_boxes, d_scores, d_classes), (g_boxes, g_classes) in zip(detections, truths):
        d_classes, g_classes = np.asarray(d_classes), np.asarray(g_classes)
        for c in range(n_classes):
            gt = np.asarray(g_boxes).reshape(-1, 4)[g_classes == c]
            n_gt[c] += len(gt)
            sel = np.flatnonzero(d_classes == c)
            if sel.size == 0:
                continue
            order = sel[np.argsort(-np.asarray(d_scores)[sel], kind="mergesort")]
            scores_by_class[c].append(np.asarray(d_scores, np.float64)[order])
            tp_by_class[c].append(_matches(np.asarray(d_boxes).reshape(-1, 4)[order], gt, IOU_THRESHOLDS))
    per_class = {}
    for c in range(n_classes):
        if n_gt[c] == 0:
            per_class[c] = {"gt": 0, "ap50": None, "ap": None}
            continue
        if scores_by_class[c]:
            scores = np.concatenate(scores_by_class[c])
            tps = np.concatenate(tp_by_class[c], axis=1)[:, np.argsort(-scores, kind="mergesort")]
            aps = [_ap(tps[t], int(n_gt[c])) for t in range(len(IOU_THRESHOLDS))]
        else:
            aps = [0.0] * len(IOU_THRESHOLDS)
        per_class[c] = {"gt": int(n_gt[c]), "ap50": aps[0], "ap": float(np.mean(aps))}
    rows = [r for r in per_class.values() if r["gt"]]
    return {"map50": float(np.mean([r["ap50"] for r in rows])) if rows else None,
            "map": float(np.mean([r["ap"] for r in rows])) if rows else None, "per_class": per_class}


def box_agreement(first, second, iou: float = 0.5) -> dict:
    """How far two models' detections on the same images agree.

    Per image, each detection of `second` is matched (greedily, in `first`'s score order) to a detection
    of `first` of the same class with IoU >= `iou`.

    Returns:
        ``{"first", "second", "matched", "agreement" (2 * matched / (first + second); 1.0 when both are
        empty), "mean_iou" (of the matched pairs, None without any)}``.
    """
    n1 = n2 = matched = 0
    ious = []
    for (b1, _s1, c1), (b2, _s2, c2) in zip(first, second):
        n1, n2 = n1 + len(c1), n2 + len(c2)
        if not len(c1) or not len(c2):
            continue
        m = box_iou(b1, b2)
        m[np.asarray(c1)[:, None] != np.asarray(c2)[None, :]] = -1.0
        taken = np.zeros(len(c2), bool)
        for i in range(len(c1)):
            row = np.where(taken, -1.0, m[i])
            j = int(np.argmax(row))
            if row[j] >= iou:
                taken[j] = True
                matched += 1
                ious.append(row[j])
    total = n1 + n2
    return {"first": n1, "second": n2, "matched": matched, "agreement": 1.0 if total == 0 else 2 * matched / total,
            "mean_iou": float(np.mean(ious)) if ious else None}


MAP_CONF = 0.001
AGREEMENT_CONF = 0.25


def _decoder(model, labels):
    from edgert.bench.runner import _input_size
    from edgert.postprocess.yolo import YoloDecoder

    try:
        return YoloDecoder(model.outputs, conf=MAP_CONF, iou=0.6, max_det=100, input_size=_input_size(model))
    except EdgertError as exc:
        raise ConfigError(f"detect: the model's outputs are not a YOLO layout edgert decodes ({one_line(exc)})") \
            from None


def evaluate_detector(model, images, *, reference=None, preprocess=None, n_classes: int, progress=None) -> dict:
    """mAP of `model` (and `reference`) on `LabelledImage`s, and their box agreement.

    Both models are decoded with `YoloDecoder` (score >= `MAP_CONF` for the mAP; box agreement
    counts detections scoring >= `AGREEMENT_CONF`, a deployment threshold), boxes mapped back to
    source pixels through each model's own `Preprocessor`.

    Returns:
        ``{"images", "skipped", "model": average_precision(...), "reference": ... | None,
        "agreement": box_agreement(reference, model) | None}``.
    """
    from edgert.bench.accuracy import ModelFeeder

    cv2 = import_cv2()
    runs = [(ModelFeeder(model, preprocess, "model"), _decoder(model, None), [])]
    if reference is not None:
        runs.append((ModelFeeder(reference, preprocess, "reference"), _decoder(reference, None), []))
    truths, skipped = [], 0
    for n, item in enumerate(images, 1):
        image = cv2.imread(str(item.path), cv2.IMREAD_COLOR)
        if image is None:
            skipped += 1
            log.warning("validation: skipping %s: not a readable image", item.path)
            continue
        truths.append((item.boxes, item.classes))
        h, w = image.shape[:2]
        for feeder, decode, rows in runs:
            det = decode(feeder(image)).to_source(feeder.preprocessor(w, h))
            rows.append((det.boxes, det.scores, det.classes))
        if progress is not None:
            progress(n, len(images))
    if not truths:
        raise ConfigError(f"validation: none of the {len(images)} images could be read")
    results = [average_precision(rows, truths, n_classes) for _f, _d, rows in runs]
    agreement = None
    if reference is not None:
        keep = lambda rows: [(b[s >= AGREEMENT_CONF], s[s >= AGREEMENT_CONF], c[s >= AGREEMENT_CONF])  # noqa: E731
                             for b, s, c in rows]
        agreement = box_agreement(keep(runs[1][2]), keep(runs[0][2]))
    return {"images": len(truths), "skipped": skipped, "model": results[0],
            "reference": results[1] if reference is not None else None, "agreement": agreement}
