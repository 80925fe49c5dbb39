"""edgert.bench.metrics against scikit-learn on the same data (scikit-learn is a test-only dependency)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score, roc_curve, top_k_accuracy_score

from edgert.bench import metrics as evaluate
from edgert.core.errors import ConfigError


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 200), c=st.integers(3, 12), k=st.integers(1, 5))
def test_topk_accuracy_matches_sklearn(seed, n, c, k):
    """(sklearn wants 1-D scores for two classes, so three or more here.)"""
    rng = np.random.default_rng(seed)
    k = min(k, c - 1) or 1
    scores = rng.random((n, c))
    labels = rng.integers(0, c, n)
    ranked = np.argsort(-scores, axis=1, kind="stable")
    got = evaluate.topk_accuracy(labels, ranked, c, k)
    assert got.overall == pytest.approx(top_k_accuracy_score(labels, scores, k=k, labels=np.arange(c)))
    for cls in range(c):
        mask = labels == cls
        if mask.any():
            want = top_k_accuracy_score(labels[mask], scores[mask], k=k, labels=np.arange(c))
            assert got.per_class[cls] == pytest.approx(want)
            assert got.support[cls] == mask.sum()
        else:
            assert np.isnan(got.per_class[cls])


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(4, 300), ties=st.booleans())
def test_verification_matches_sklearn_roc(seed, n, ties):
    rng = np.random.default_rng(seed)
    genuine = rng.random(n) < 0.4
    genuine[:2] = [True, False]
    scores = rng.normal(0, 1, n) + 1.5 * genuine
    if ties:
        scores = np.round(scores, 1)  # many equal scores
    got = evaluate.verification(scores, genuine)
    fpr, tpr, thr = roc_curve(genuine, scores, drop_intermediate=False)
    # sklearn prepends an "accept nothing" point; the rest is one point per distinct score
    np.testing.assert_allclose(got.far, fpr[1:])
    np.testing.assert_allclose(got.frr, 1 - tpr[1:])
    np.testing.assert_allclose(got.thresholds, thr[1:])
    assert got.auc == pytest.approx(roc_auc_score(genuine, scores))
    i = np.argmin(np.abs(got.far - got.frr))
    assert got.eer <= max(got.far[i], got.frr[i]) + 1e-12 and got.eer >= 0


def test_eer_of_separable_and_random_scores():
    genuine = np.array([True] * 50 + [False] * 50)
    perfect = evaluate.verification(np.r_[np.linspace(2, 3, 50), np.linspace(0, 1, 50)], genuine)
    assert perfect.eer == 0 and perfect.auc == 1.0 and 1 <= perfect.eer_threshold <= 2
    rng = np.random.default_rng(0)
    chance = evaluate.verification(rng.random(20000), rng.random(20000) < 0.5)
    assert abs(chance.eer - 0.5) < 0.02 and abs(chance.auc - 0.5) < 0.02


def test_identification_rank():
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 1, (10, 16))
    gallery = np.repeat(centres, 2, axis=0) + rng.normal(0, 0.05, (20, 16))
    gallery_ids = np.repeat(np.arange(10), 2)
    query = centres + rng.normal(0, 0.05, (10, 16))
    ranks = evaluate.identification_rank(query, np.arange(10), gallery, gallery_ids, ks=(1, 5))
    assert ranks == {1: 1.0, 5: 1.0}
    shuffled = evaluate.identification_rank(query, rng.permutation(10), gallery, gallery_ids, ks=(1, 10))
    assert shuffled[10] == 1.0 and shuffled[1] < 1.0


def test_all_pairs_and_agreement():
    emb = np.array([[1.0, 0], [0.9, 0.1], [0, 1.0]])
    sims, genuine = evaluate.all_pairs(emb, [0, 0, 1])
    assert genuine.tolist() == [True, False, False]
    assert sims[0] == pytest.approx(0.9 / np.hypot(0.9, 0.1))
    assert evaluate.agreement([1, 2, 3, 4], [1, 2, 0, 4]) == 0.75


@pytest.mark.parametrize("call,word", [
    (lambda: evaluate.verification([0.1, 0.2], [True, True]), "genuine"),
    (lambda: evaluate.verification([0.1, np.nan], [True, False]), "finite"),
    (lambda: evaluate.topk_accuracy([0, 1], np.zeros((2, 1), int), 2, k=2), "ranked"),
    (lambda: evaluate.topk_accuracy([0, 5], np.zeros((2, 1), int), 2), "labels"),
    (lambda: evaluate.agreement([0, 1], [0]), "pred_a"),
    (lambda: evaluate.cosine_similarity(np.zeros((2, 3)), np.zeros((2, 4))), "embeddings"),
])
def test_bad_input(call, word):
    with pytest.raises(ConfigError, match=word):
        call()
