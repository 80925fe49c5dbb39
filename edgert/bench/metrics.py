"""Accuracy metrics for `edgert bench`: classification (top-k per class, agreement between two models)
and embeddings (verification FAR/FRR/EER and ROC AUC, identification Rank-k).

Plain NumPy, written to agree with scikit-learn's definitions (the tests check them against it):
FAR is the false-positive rate and FRR the false-negative rate of accepting pairs whose similarity
is >= a threshold; the ROC AUC counts tied scores as half.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgert.core.errors import ConfigError


def _labels(name: str, values, n: int | None = None) -> np.ndarray:
    a = np.asarray(values)
    if a.ndim != 1 or a.dtype.kind not in "iub":
        raise ConfigError(f"{name}: expected a 1-D array of class indices, got {a.dtype} {a.shape}")
    if n is not None and a.shape[0] != n:
        raise ConfigError(f"{name}: {a.shape[0]} entries, expected {n}")
    return a.astype(np.int64)


@dataclass(frozen=True)
class ClassAccuracy:
    """Top-k accuracy overall and per class.

    Attributes:
        k: The k of top-k.
        overall: Fraction of samples whose label is among their k best classes.
        per_class: ``(num_classes,)`` the same per true class (NaN for classes without samples).
        support: ``(num_classes,)`` samples per true class.
    """

    k: int
    overall: float
    per_class: np.ndarray
    support: np.ndarray


def topk_accuracy(labels, ranked, num_classes: int, k: int = 1) -> ClassAccuracy:
    """Top-k accuracy from ranked predictions.

    Args:
        labels: ``(N,)`` true classes.
        ranked: ``(N, >=k)`` class indices, best first, per sample (e.g. from `classify`).
        num_classes: Number of classes.
        k: How many of the best classes count.
    """
    ranked = np.asarray(ranked)
    if ranked.ndim != 2 or ranked.shape[1] < k or k < 1:
        raise ConfigError(f"ranked: expected (N, >= {k}) class indices, got shape {ranked.shape}")
    y = _labels("labels", labels, ranked.shape[0])
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ConfigError(f"labels: classes must lie in 0..{num_classes - 1}")
    hit = np.any(ranked[:, :k] == y[:, None], axis=1)
    support = np.bincount(y, minlength=num_classes)
    hits = np.bincount(y, weights=hit.astype(np.float64), minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(support > 0, hits / np.maximum(support, 1), np.nan)
    return ClassAccuracy(k, float(hit.mean()) if hit.size else float("nan"), per_class, support)


def agreement(pred_a, pred_b) -> float:
    """Fraction of samples where two models' top-1 classes agree."""
    a, b = _labels("pred_a", pred_a), _labels("pred_b", pred_b)
    if a.shape != b.shape:
        raise ConfigError(f"pred_a and pred_b: {a.shape[0]} and {b.shape[0]} predictions")
    return float(np.mean(a == b)) if a.size else float("nan")


@dataclass(frozen=True)
class Verification:
    """Face-verification style metrics of scored pairs.

    Attributes:
        thresholds: Decision thresholds, decreasing (accept when similarity >= threshold).
        far: False acceptance rate at each threshold (impostor pairs accepted).
        frr: False rejection rate at each threshold (genuine pairs rejected).
        eer: Equal error rate: where FAR and FRR cross (linearly interpolated).
        eer_threshold: The threshold at the EER.
        auc: Area under the ROC curve (TPR = 1 - FRR against FAR).
    """

    thresholds: np.ndarray
    far: np.ndarray
    frr: np.ndarray
    eer: float
    eer_threshold: float
    auc: float


def verification(scores, genuine) -> Verification:
    """FAR/FRR at every distinct score, the EER and its threshold, and the ROC AUC.

    Args:
        scores: ``(P,)`` similarity of each pair (higher = more alike).
        genuine: ``(P,)`` True where the pair shows the same identity.
    """
    s = np.asarray(scores, np.float64).reshape(-1)
    g = np.asarray(genuine).reshape(-1).astype(bool)
    if s.shape != g.shape:
        raise ConfigError(f"scores and genuine: {s.size} and {g.size} entries")
    if not np.all(np.isfinite(s)):
        raise ConfigError("scores: must be finite")
    n_pos, n_neg = int(g.sum()), int((~g).sum())
    if n_pos == 0 or n_neg == 0:
        raise ConfigError("genuine: needs both genuine and impostor pairs")
    order = np.argsort(-s, kind="stable")
    s_sorted, g_sorted = s[order], g[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), s.size - 1]  # last index of each distinct score
    tp = np.cumsum(g_sorted)[last]
    fp = np.cumsum(~g_sorted)[last]
    thresholds = s_sorted[last]
    far, tpr = fp / n_neg, tp / n_pos
    frr = 1.0 - tpr
    x, y = np.r_[0.0, far], np.r_[0.0, tpr]
    auc = float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))
    eer, eer_t = _eer(thresholds, far, frr)
    return Verification(thresholds, far, frr, eer, eer_t, auc)


def _eer(thresholds, far, frr):
    d = far - frr  # rises from <= 0 to >= 0 as the threshold falls
    i = int(np.argmax(d >= 0))
    if i == 0:
        return float((far[0] + frr[0]) / 2), float(thresholds[0])
    d0, d1 = d[i - 1], d[i]
    t = d0 / (d0 - d1) if d1 != d0 else 0.0
    eer = far[i - 1] + t * (far[i] - far[i - 1])
    return float(eer), float(thresholds[i - 1] + t * (thresholds[i] - thresholds[i - 1]))


def cosine_similarity(a, b) -> np.ndarray:
    """``(len(a), len(b))`` cosine similarities of two sets of embeddings."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ConfigError(f"embeddings: expected (N, D) and (M, D), got {a.shape} and {b.shape}")
    an = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return an @ bn.T


def all_pairs(embeddings, identities):
    """Every unordered pair of a set: ``(similarities, genuine)`` for `verification`."""
    ids = _labels("identities", identities, np.asarray(embeddings).shape[0])
    sim = cosine_similarity(embeddings, embeddings)
    i, j = np.triu_indices(ids.size, k=1)
    return sim[i, j], ids[i] == ids[j]


def identification_rank(query, query_ids, gallery, gallery_ids, ks=(1, 5)) -> dict:
    """Rank-k identification: the fraction of queries whose identity is among the gallery entries
    of the k most similar identities (each identity scored by its best gallery match)."""
    q_ids = _labels("query_ids", query_ids, np.asarray(query).shape[0])
    g_ids = _labels("gallery_ids", gallery_ids, np.asarray(gallery).shape[0])
    sim = cosine_similarity(query, gallery)
    identities = np.unique(g_ids)
    best = np.full((sim.shape[0], identities.size), -np.inf)
    for col, ident in enumerate(identities):
        best[:, col] = sim[:, g_ids == ident].max(axis=1)
    order = identities[np.argsort(-best, axis=1, kind="stable")]
    return {k: float(np.mean(np.any(order[:, :k] == q_ids[:, None], axis=1))) for k in ks}


def rates_at(scores, genuine, threshold: float) -> tuple:
    """``(far, frr)`` when pairs with similarity >= `threshold` are accepted."""
    s = np.asarray(scores, np.float64).reshape(-1)
    g = np.asarray(genuine).reshape(-1).astype(bool)
    if s.shape != g.shape:
        raise ConfigError(f"scores and genuine: {s.size} and {g.size} entries")
    if not g.any() or g.all():
        raise ConfigError("genuine: needs both genuine and impostor pairs")
    accepted = s >= threshold
    return float(np.mean(accepted[~g])), float(np.mean(~accepted[g]))


def leave_one_out_rank(embeddings, identities, ks=(1, 5), block: int = 1024) -> dict:
    """Rank-k identification with each sample as a query against all the others as the gallery.

    Each identity is scored by its best match among the gallery (ties: lower identity first, as
    `identification_rank`). Samples whose identity has no other sample cannot be found, so they are
    not queries (they stay in the gallery as distractors).

    Args:
        embeddings: ``(N, D)``.
        identities: ``(N,)`` identity of each sample.
        ks: The k's to report.
        block: Queries per block (memory is ``block * N`` similarities).

    Returns:
        ``{k: fraction, ..., "queries": number of queries}``.
    """
    e = np.asarray(embeddings, np.float64)
    ids = _labels("identities", identities, e.shape[0] if e.ndim == 2 else -1)
    if e.ndim != 2:
        raise ConfigError(f"embeddings: expected (N, D), got shape {e.shape}")
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    identities_sorted, counts = np.unique(ids, return_counts=True)
    queries = np.flatnonzero(counts[np.searchsorted(identities_sorted, ids)] > 1)
    if queries.size == 0:
        raise ConfigError("identities: no identity has two or more samples; nothing to identify")
    by_id = np.argsort(ids, kind="stable")
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    hits = {k: 0 for k in ks}
    for lo in range(0, queries.size, block):
        q = queries[lo:lo + block]
        sim = e[q] @ e.T
        sim[np.arange(q.size), q] = -np.inf  # a query is not its own gallery entry
        best = np.maximum.reduceat(sim[:, by_id], starts, axis=1)  # (queries, identities)
        order = identities_sorted[np.argsort(-best, axis=1, kind="stable")]
        for k in ks:
            hits[k] += int(np.count_nonzero(np.any(order[:, :k] == ids[q][:, None], axis=1)))
    out = {k: hits[k] / queries.size for k in ks}
    out["queries"] = int(queries.size)
    return out
