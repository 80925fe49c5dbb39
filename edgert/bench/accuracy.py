"""Accuracy of a model against a reference model on a labelled image folder (`edgert bench --reference`).

Classifiers: top-1/top-k per class for model and reference, the delta and the agreement rate.
Embedding models: verification (EER and its threshold, FAR/FRR there, ROC AUC) over pairs of images
and leave-one-out identification Rank-1/Rank-5. The metrics are `edgert.bench.metrics`'s.

Each model is fed through its own `Preprocessor`, built for its own input tensor and the size of each
source image, so a reference with another input size, layout or quantisation sees the same pictures.
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np

from edgert.bench import metrics as evaluate
from edgert.bench.dataset import ImageFolder
from edgert.core.errors import ConfigError, DecodeError
from edgert.models.cards import PREPROCESS_KEYS
from edgert.postprocess import classify, dequantize
from edgert.preprocess import Preprocessor

MAX_PAIRS = 2_000_000
_PAIR_BLOCK = 8192


class ModelFeeder:
    """Runs one model on BGR images of any size: one `Preprocessor` per source size (the last few kept).

    Args:
        model: An `edgert.Model` with one image input.
        preprocess: `Preprocessor` keyword arguments (`PREPROCESS_KEYS`), e.g. a model card's.
        role: "model" or "reference", for error messages.
        cache_size: Source sizes whose preprocessors are kept.
    """

    def __init__(self, model, preprocess: dict | None = None, role: str = "model", cache_size: int = 8):
        if len(model.inputs) != 1:
            raise ConfigError(f"{role}: takes {len(model.inputs)} inputs; accuracy needs a one-image-input model")
        kwargs = dict(preprocess or {})
        unknown = sorted(set(kwargs) - set(PREPROCESS_KEYS))
        if unknown:
            raise ConfigError(f"{role} preprocess: unknown key(s) {', '.join(unknown)}; "
                              f"expected some of {', '.join(PREPROCESS_KEYS)}")
        self.model, self.role, self.kwargs = model, role, kwargs
        self._cache: OrderedDict = OrderedDict()
        self._cache_size = cache_size

    def preprocessor(self, width: int, height: int) -> Preprocessor:
        """The preprocessor for BGR images of this size (built on first use)."""
        key = (width, height)
        pre = self._cache.get(key)
        if pre is None:
            pre = Preprocessor(self.model.inputs[0], "BGR", key, **self.kwargs)
            self._cache[key] = pre
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return pre

    def __call__(self, image: np.ndarray) -> list:
        """The model's raw outputs for one BGR ``(h, w, 3)`` uint8 image."""
        h, w = image.shape[:2]
        return self.model.run(self.preprocessor(w, h)(image))


def _dataset(dataset):
    return ImageFolder(dataset) if isinstance(dataset, (str, Path)) else dataset


def _class_count(model) -> int:
    return int(np.prod(model.outputs[0].shape))


def output_indices(classes, labels, n_out: int, role: str = "model") -> tuple:
    """Map dataset classes to output indices.

    The rule: with `labels` (class names in output order), every dataset class must be one of them
    by name (the dataset may hold fewer classes than the model); without (None or empty), the dataset
    must have as many classes as the model outputs, in sorted folder-name order.

    Returns:
        ``(indices, names)``: output index of each dataset class, and the name of each output.

    Raises:
        ConfigError: the classes do not match, in one line.
    """
    classes = list(classes)
    if not labels:  # None, or a model card without classes
        if len(classes) != n_out:
            raise ConfigError(f"dataset has {len(classes)} classes, {role} outputs {n_out}: give the {role}'s "
                              "labels (model card 'classes') to match classes by name")
        return np.arange(n_out), classes
    names = [str(v) for v in labels]
    if len(names) != n_out:
        raise ConfigError(f"{role} labels: {len(names)} names, but the {role} outputs {n_out} classes")
    if len(set(names)) != len(names):
        raise ConfigError(f"{role} labels: names must be unique")
    missing = [c for c in classes if c not in names]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise ConfigError(f"dataset has {len(classes)} classes, {role} outputs {n_out}: "
                          f"{len(missing)} not among its labels: {shown}")
    return np.array([names.index(c) for c in classes], np.int64), names


class _Progress:
    def __init__(self, callback, total: int):
        self.callback, self.total, self.done = callback, total, -1

    def report(self, done: int) -> None:
        if self.callback is not None and done != self.done:
            self.done = done
            self.callback(done, self.total)


def _no_images(ds) -> ConfigError:
    where = getattr(ds, "path", "dataset")
    return ConfigError(f"dataset {where}: none of the {len(ds)} images could be read")


def evaluate_classifier(model, dataset, *, reference=None, labels=None, preprocess=None, reference_preprocess=None,
                        top_k: int = 5, progress=None, reference_labels=None) -> dict:
    """Top-1/top-k accuracy per class of `model` (and `reference`) on a class-per-folder dataset.

    Args:
        model: The `edgert.Model` under test (a classifier: its first output holds the class scores).
        dataset: An `ImageFolder` or its directory.
        reference: The model to compare with (e.g. the fp32 original of an int8 model), or None.
        labels: The model's class names in output order (e.g. ``read_card(path).labels``), or None
            (then the dataset must have one folder per output, in sorted name order).
        preprocess: The model's `Preprocessor` keyword arguments (`PREPROCESS_KEYS`).
        reference_preprocess: The reference's (default: `preprocess`).
        top_k: The k of the "top5" figures (at most the class count).
        progress: Called as ``progress(done, total)`` with image files handled so far.
        reference_labels: The reference's class names in output order (default: `labels`).

    Returns:
        ``{"task": "classification", "images", "skipped", "skipped_paths", "classes", "top_k",
        "model": {"top1", "top5"}, "reference": {...} | None, "delta_top1" (model - reference) | None,
        "agreement" (fraction of images with the same top-1 class name) | None,
        "per_class": {name: {"n", "model_top1", "model_top5", "reference_top1", "reference_top5"}}}``.
        Fractions are in 0..1; a class whose images were all unreadable has n 0 and None figures.

    Raises:
        ConfigError: classes that do not match a model's outputs, a dataset with no readable image,
            bad preprocessing arguments.
    """
    ds = _dataset(dataset)
    if not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ConfigError(f"top_k: expected an integer >= 1, got {top_k!r}")
    feeders = [ModelFeeder(model, preprocess, "model")]
    maps = [output_indices(ds.classes, labels, _class_count(model), "model")]
    if reference is not None:
        feeders.append(ModelFeeder(reference, preprocess if reference_preprocess is None else reference_preprocess,
                                   "reference"))
        maps.append(output_indices(ds.classes, labels if reference_labels is None else reference_labels,
                                   _class_count(reference), "reference"))
    ks = [min(int(top_k), _class_count(f.model)) for f in feeders]
    ranked: list[list] = [[] for _ in feeders]
    truth = []
    bar = _Progress(progress, len(ds))
    for n, (image, cls, _path) in enumerate(ds, 1):
        truth.append(cls)
        for feeder, k, rows in zip(feeders, ks, ranked):
            top = classify(feeder(image)[0], feeder.model.outputs[0], top_k=k)
            rows.append([i for i, _ in top])
        bar.report(n + ds.skipped)
    bar.report(len(ds))
    if not truth:
        raise _no_images(ds)
    truth = np.asarray(truth, np.int64)

    scores = []
    for feeder, k, rows, (indices, _names) in zip(feeders, ks, ranked, maps):
        r, y, n_out = np.asarray(rows, np.int64), indices[truth], _class_count(feeder.model)
        scores.append((evaluate.topk_accuracy(y, r, n_out, 1), evaluate.topk_accuracy(y, r, n_out, k), indices))
    result = {"task": "classification", "images": int(truth.size), "skipped": int(ds.skipped),
              "skipped_paths": list(getattr(ds, "skipped_paths", [])), "classes": list(ds.classes),
              "top_k": int(top_k), "model": _overall(scores[0]), "reference": None, "delta_top1": None,
              "agreement": None, "per_class": {}}
    if reference is not None:
        result["reference"] = _overall(scores[1])
        result["delta_top1"] = result["model"]["top1"] - result["reference"]["top1"]
        result["agreement"] = _agreement(ranked, maps)
    for c, name in enumerate(ds.classes):
        row = {"n": int(np.count_nonzero(truth == c))}
        for role, sc in zip(("model", "reference"), scores + [None]):
            row[f"{role}_top1"] = None if sc is None or row["n"] == 0 else float(sc[0].per_class[sc[2][c]])
            row[f"{role}_top5"] = None if sc is None or row["n"] == 0 else float(sc[1].per_class[sc[2][c]])
        result["per_class"][name] = row
    return result


def _overall(score) -> dict:
    return {"top1": float(score[0].overall), "top5": float(score[1].overall)}


def _agreement(ranked, maps) -> float:
    """Top-1 agreement by class name (the two models may order their outputs differently)."""
    vocabulary: dict = {}
    preds = []
    for rows, (_indices, names) in zip(ranked, maps):
        preds.append([vocabulary.setdefault(names[r[0]], len(vocabulary)) for r in rows])
    return evaluate.agreement(preds[0], preds[1])


def embedding(outputs: list, spec) -> np.ndarray:
    """The L2-normalised float64 embedding in a model's first output (dequantised when quantised)."""
    out = outputs[0]
    real = out.astype(np.float64) if spec.dtype == np.float32 else dequantize(out, spec).astype(np.float64)
    real = real.reshape(-1)
    if not np.all(np.isfinite(real)):
        raise DecodeError(f"embedding output {spec.name!r} holds NaN or inf")
    return real / max(float(np.linalg.norm(real)), 1e-12)


def evaluate_embedder(model, dataset, *, reference=None, preprocess=None, reference_preprocess=None,
                      max_pairs: int = MAX_PAIRS, progress=None) -> dict:
    """Verification and identification metrics of an embedding model on a folder-per-identity dataset.

    Verification scores pairs of images by the cosine similarity of their embeddings (genuine = same
    identity): every pair when there are at most `max_pairs`, else every genuine pair and a fixed
    random sample (seed 0) of impostor pairs up to `max_pairs`; model and reference use the same pairs.
    Identification is leave-one-out: each image is a query against all the other images as the
    gallery (an identity scores its best match); images whose identity has no other image are not
    queries but stay in the gallery.

    Args:
        model: The `edgert.Model` under test (its first output is the embedding).
        dataset: An `ImageFolder` or its directory (one subfolder per identity).
        reference: The model to compare with, or None.
        preprocess: The model's `Preprocessor` keyword arguments (`PREPROCESS_KEYS`).
        reference_preprocess: The reference's (default: `preprocess`).
        max_pairs: Most pairs scored for verification.
        progress: Called as ``progress(done, total)`` with image files handled so far.

    Returns:
        ``{"task": "embedding", "images", "skipped", "skipped_paths", "identities", "queries",
        "pairs": {"genuine", "impostor", "sampled"}, "model": {"eer", "eer_threshold", "auc", "far",
        "frr", "rank1", "rank5"}, "reference": {the same} | None}``: rates in 0..1, thresholds are
        cosine similarities, FAR/FRR at the EER threshold (accepting similarity >= threshold).

    Raises:
        ConfigError: fewer than two identities, no identity with two readable images, a dataset with
            no readable image, bad preprocessing arguments.
    """
    ds = _dataset(dataset)
    feeders = [ModelFeeder(model, preprocess, "model")]
    if reference is not None:
        feeders.append(ModelFeeder(reference, preprocess if reference_preprocess is None else reference_preprocess,
                                   "reference"))
    vectors: list[list] = [[] for _ in feeders]
    ids = []
    bar = _Progress(progress, len(ds))
    for n, (image, cls, _path) in enumerate(ds, 1):
        ids.append(cls)
        for feeder, rows in zip(feeders, vectors):
            rows.append(embedding(feeder(image), feeder.model.outputs[0]))
        bar.report(n + ds.skipped)
    bar.report(len(ds))
    if not ids:
        raise _no_images(ds)
    ids = np.asarray(ids, np.int64)
    counts = np.bincount(ids)
    if np.count_nonzero(counts) < 2 or counts.max() < 2:
        raise ConfigError(f"dataset {getattr(ds, 'path', '')}: embedding evaluation needs two or more identities "
                          "and one with two or more readable images")
    first, second, sampled = pair_indices(ids, max_pairs)
    genuine = ids[first] == ids[second]
    metrics = [_embedding_metrics(np.asarray(rows), ids, first, second, genuine) for rows in vectors]
    queries = [m.pop("queries") for m in metrics][0]
    return {"task": "embedding", "images": int(ids.size), "skipped": int(ds.skipped),
            "skipped_paths": list(getattr(ds, "skipped_paths", [])), "identities": int(np.count_nonzero(counts)),
            "queries": queries,
            "pairs": {"genuine": int(genuine.sum()), "impostor": int((~genuine).sum()), "sampled": sampled},
            "model": metrics[0], "reference": metrics[1] if reference is not None else None}


def pair_indices(ids, max_pairs: int = MAX_PAIRS, seed: int = 0) -> tuple:
    """``(first, second, sampled)``: the pairs ``first[p] < second[p]`` to score.

    Every unordered pair when there are at most `max_pairs`; otherwise every genuine pair (a seeded
    sample of half `max_pairs` if they exceed that) plus a seeded sample of distinct impostor pairs
    up to `max_pairs` in all (at most half of all impostor pairs).
    """
    ids = np.asarray(ids, np.int64)
    n = ids.size
    if n * (n - 1) // 2 <= max_pairs:
        first, second = np.triu_indices(n, k=1)
        return first, second, False
    rng = np.random.default_rng(seed)
    gi, gj = [], []
    for ident in np.unique(ids):
        members = np.flatnonzero(ids == ident)
        a, b = np.triu_indices(members.size, k=1)
        gi.append(members[a])
        gj.append(members[b])
    gi, gj = np.concatenate(gi), np.concatenate(gj)
    impostors = n * (n - 1) // 2 - gi.size
    if gi.size > max_pairs // 2:
        keep = np.sort(rng.choice(gi.size, max_pairs // 2, replace=False))
        gi, gj = gi[keep], gj[keep]
    # At most half of all impostor pairs, so that drawing distinct ones at random ends quickly.
    want = min(max_pairs - gi.size, impostors // 2)
    found = np.empty(0, np.int64)  # pair (i, j), i < j, as the key i * n + j
    while found.size < want:
        draw = rng.integers(0, n, size=(2 * (want - found.size) + 16, 2))
        draw = np.sort(draw[ids[draw[:, 0]] != ids[draw[:, 1]]], axis=1)
        found = np.sort(np.r_[found, draw[:, 0] * n + draw[:, 1]])
        found = found[np.r_[True, found[1:] != found[:-1]]]  # distinct (np.unique's hashing is slower here)
    found = found[rng.permutation(found.size)[:want]]
    return np.r_[gi, found // n], np.r_[gj, found % n], True


def _embedding_metrics(vectors, ids, first, second, genuine) -> dict:
    scores = np.empty(first.size, np.float64)
    for lo in range(0, first.size, _PAIR_BLOCK):
        a, b = vectors[first[lo:lo + _PAIR_BLOCK]], vectors[second[lo:lo + _PAIR_BLOCK]]
        scores[lo:lo + _PAIR_BLOCK] = np.einsum("ij,ij->i", a, b)
    v = evaluate.verification(scores, genuine)
    far, frr = evaluate.rates_at(scores, genuine, v.eer_threshold)
    ranks = evaluate.leave_one_out_rank(vectors, ids, ks=(1, 5))
    return {"eer": v.eer, "eer_threshold": v.eer_threshold, "auc": v.auc, "far": far, "frr": frr,
            "rank1": ranks[1], "rank5": ranks[5], "queries": ranks["queries"]}
