"""`edgert bench` accuracy on real image folders with real models: classifiers against a reference
(digits int8 vs fp32, and a MobileNetV2 reference with another input size) and embedding models
(a linear digit embedding built here), checked against scikit-learn and direct counts."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.metrics import recall_score, roc_auc_score, roc_curve, top_k_accuracy_score
from tflite_builder import _buffer, _code, _finish, _tensor

import edgert
from edgert.bench import metrics as evaluate
from edgert.bench.accuracy import (
    ModelFeeder,
    evaluate_classifier,
    evaluate_embedder,
    output_indices,
    pair_indices,
)
from edgert.bench.dataset import ImageFolder
from edgert.core.errors import ConfigError
from edgert.postprocess import dequantize
from edgert.preprocess import Preprocessor

DATA = Path(__file__).parent / "data"
MANIFEST = json.loads((DATA / "models.json").read_text())
DIGITS = [str(d) for d in range(10)]
DIGIT_PRE = {"resize": "stretch", "interpolation": "area", "mean": 0, "std": 255}
MOBILENET_PRE = {"resize": "stretch", "interpolation": "bilinear", "mean": 127.5, "std": 127.5}
SCALES = (4, 3, 5, 1)  # source image sizes 32, 24, 40 and 8 px: a preprocessor per size


def digits():
    d = np.load(DATA / "digits_test.npz")
    return d["images"], d["labels"]


def write_digit_folder(root: Path, count: int | None = None, scales=SCALES, classes=None) -> list:
    """PNGs of the held-out digits, nearest-upscaled (exact under area downscaling); returns (index, label)
    of each image written, in the folder's iteration order."""
    images, labels = digits()
    written = []
    for i in range(len(images) if count is None else count):
        label = str(labels[i])
        if classes is not None and label not in classes:
            continue
        s = scales[i % len(scales)]
        big = cv2.resize(images[i], (8 * s, 8 * s), interpolation=cv2.INTER_NEAREST)
        (root / label).mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(root / label / f"{i:04d}.png"), cv2.cvtColor(big, cv2.COLOR_GRAY2BGR))
        written.append((i, labels[i]))
    return sorted(written, key=lambda t: (t[1], f"{t[0]:04d}"))


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory):
    """All 450 held-out digits in ten class folders, plus a corrupt PNG, a hidden file and a text file."""
    root = tmp_path_factory.mktemp("digits")
    write_digit_folder(root)
    (root / "3" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "3" / ".hidden.png").write_bytes(b"junk")
    (root / "5" / "notes.txt").write_text("not an image")
    (root / ".cache").mkdir()
    (root / ".cache" / "x.png").write_bytes(b"junk")
    return root


def direct_scores(model_path: Path, pre_kwargs: dict, count: int | None = None) -> np.ndarray:
    """Dequantised class scores of every held-out digit, fed straight from the 8x8 arrays."""
    images, _ = digits()
    with edgert.load(model_path) as m:
        pre = Preprocessor(m.inputs[0], "GRAY", (8, 8), **pre_kwargs)
        out = [m.run(pre(img))[0] for img in images[:count]]
        spec = m.outputs[0]
    return np.stack([dequantize(o, spec) if spec.quant else o for o in out]).reshape(len(out), -1)


@pytest.fixture(scope="module")
def digits_result(digit_folder):
    calls = []
    with edgert.load(DATA / "digits_int8.tflite") as q, edgert.load(DATA / "digits_fp32.tflite") as f:
        result = evaluate_classifier(q, ImageFolder(digit_folder), reference=f, labels=DIGITS, preprocess=DIGIT_PRE,
                                     progress=lambda done, total: calls.append((done, total)))
    return result, calls


def test_int8_against_fp32_reference_matches_sklearn(digits_result):
    result, _ = digits_result
    _, labels = digits()
    assert result["task"] == "classification" and result["classes"] == DIGITS
    assert result["images"] == 450 and result["skipped"] == 1
    assert result["model"]["top1"] == pytest.approx(MANIFEST["digits"]["int8_accuracy"], abs=0.01)
    assert result["reference"]["top1"] == pytest.approx(MANIFEST["digits"]["fp32_accuracy"], abs=0.01)
    assert result["delta_top1"] == pytest.approx(result["model"]["top1"] - result["reference"]["top1"])

    nearest = {"resize": "stretch", "interpolation": "nearest", "mean": 0, "std": 255}
    for role, name in (("model", "digits_int8.tflite"), ("reference", "digits_fp32.tflite")):
        scores = direct_scores(DATA / name, nearest)
        # classify ranks lower indices first among equal scores; so does a stable argsort
        preds = np.argsort(-scores, axis=1, kind="stable")[:, 0]
        recall = recall_score(labels, preds, labels=range(10), average=None)
        assert result[role]["top1"] == pytest.approx(np.mean(preds == labels))
        for c in range(10):
            row = result["per_class"][str(c)]
            assert row["n"] == np.count_nonzero(labels == c)
            assert row[f"{role}_top1"] == pytest.approx(recall[c])
            mask = labels == c
            assert row[f"{role}_top5"] == pytest.approx(
                top_k_accuracy_score(labels[mask], scores[mask], k=5, labels=range(10)))
    assert min(r["model_top1"] for r in result["per_class"].values()) < 1.0  # the numbers can tell classes apart


def test_agreement_is_a_direct_count(digits_result):
    result, _ = digits_result
    nearest = {"resize": "stretch", "interpolation": "nearest", "mean": 0, "std": 255}
    q = np.argsort(-direct_scores(DATA / "digits_int8.tflite", nearest), axis=1, kind="stable")[:, 0]
    f = np.argsort(-direct_scores(DATA / "digits_fp32.tflite", nearest), axis=1, kind="stable")[:, 0]
    assert 0.0 <= result["agreement"] <= 1.0
    assert result["agreement"] == pytest.approx(np.mean(q == f))


def test_unreadable_images_are_skipped_counted_and_named(digits_result, digit_folder):
    result, calls = digits_result
    assert result["skipped"] == 1 and result["skipped_paths"] == [str(digit_folder / "3" / "corrupt.png")]
    assert calls[-1] == (451, 451)  # every image file counted, the corrupt one included
    assert [d for d, _ in calls] == sorted({d for d, _ in calls})
    assert json.loads(json.dumps(result)) == result  # plain JSON for --json


def test_reference_with_another_input_size(tmp_path):
    """digits int8 (8x8 gray uint8) against MobileNetV2 (224x224 RGB): each fed for its own input."""
    write_digit_folder(tmp_path, count=150, scales=(1,))
    with edgert.load(DATA / "digits_int8.tflite") as q, edgert.load(DATA / "mobilenetv2_int8.tflite") as mb:
        assert q.inputs[0].shape != mb.inputs[0].shape
        result = evaluate_classifier(q, tmp_path, reference=mb, labels=DIGITS, preprocess=DIGIT_PRE,
                                     reference_preprocess=MOBILENET_PRE)
    _, labels = digits()
    labels = labels[:150]
    assert result["reference"]["top1"] == pytest.approx(MANIFEST["mobilenetv2"]["int8_accuracy_150"], abs=0.01)
    scores = direct_scores(DATA / "mobilenetv2_int8.tflite", MOBILENET_PRE, 150)
    preds = np.argsort(-scores, axis=1, kind="stable")[:, 0]
    recall = recall_score(labels, preds, labels=range(10), average=None)
    for c in range(10):
        mask = labels == c
        assert result["per_class"][str(c)]["reference_top1"] == pytest.approx(recall[c])
        assert result["per_class"][str(c)]["reference_top5"] == pytest.approx(
            top_k_accuracy_score(labels[mask], scores[mask], k=5, labels=range(10)))
    assert result["reference"]["top5"] < 1.0  # top-5 is not trivially reached here
    assert result["model"]["top1"] > result["reference"]["top1"] > 0.5


def test_classes_are_matched_by_name(tmp_path, digits_result):
    """A dataset with fewer classes than the model maps each folder to the output of its name."""
    full, _ = digits_result
    write_digit_folder(tmp_path, classes={"3", "7"})
    with edgert.load(DATA / "digits_int8.tflite") as q:
        result = evaluate_classifier(q, tmp_path, labels=DIGITS, preprocess=DIGIT_PRE, top_k=3)
        with pytest.raises(ConfigError, match="dataset has 2 classes, model outputs 10"):
            evaluate_classifier(q, tmp_path, preprocess=DIGIT_PRE)
    assert result["classes"] == ["3", "7"] and result["reference"] is None and result["agreement"] is None
    assert result["per_class"]["7"]["model_top1"] == full["per_class"]["7"]["model_top1"]
    assert result["per_class"]["7"]["reference_top1"] is None
    n3 = full["per_class"]["3"]["n"]
    n7 = full["per_class"]["7"]["n"]
    want = (full["per_class"]["3"]["model_top1"] * n3 + full["per_class"]["7"]["model_top1"] * n7) / (n3 + n7)
    assert result["model"]["top1"] == pytest.approx(want)


def test_feeder_builds_one_preprocessor_per_source_size():
    images, _ = digits()
    with edgert.load(DATA / "digits_int8.tflite") as q:
        feeder = ModelFeeder(q, DIGIT_PRE, cache_size=2)
        first = feeder.preprocessor(32, 32)
        assert feeder.preprocessor(32, 32) is first
        assert feeder.preprocessor(24, 24) is not first
        feeder.preprocessor(40, 40)  # a third size: the least recently used (32x32) goes
        assert feeder.preprocessor(32, 32) is not first
        outs = [feeder(cv2.cvtColor(cv2.resize(images[7], (8 * s, 8 * s), interpolation=cv2.INTER_NEAREST),
                                    cv2.COLOR_GRAY2BGR))[0] for s in (1, 3, 4, 5)]
    assert all(np.array_equal(o, outs[0]) for o in outs)  # the same digit at any size: the same input


def test_class_mismatch_is_one_line(tmp_path):
    write_digit_folder(tmp_path, count=100)
    assert len(list(tmp_path.iterdir())) == 10
    for extra in ("cat", "dog"):
        (tmp_path / extra).mkdir()
        cv2.imwrite(str(tmp_path / extra / "a.png"), np.zeros((8, 8, 3), np.uint8))
    with edgert.load(DATA / "digits_int8.tflite") as q:
        with pytest.raises(ConfigError, match=r"dataset has 12 classes, model outputs 10: 2 not among its labels: "
                                              r"cat, dog$"):
            evaluate_classifier(q, tmp_path, labels=DIGITS, preprocess=DIGIT_PRE)
        for no_labels in (None, ()):  # () is what a model without a card has
            with pytest.raises(ConfigError, match="dataset has 12 classes, model outputs 10"):
                evaluate_classifier(q, tmp_path, labels=no_labels, preprocess=DIGIT_PRE)
        with pytest.raises(ConfigError, match="model labels: 9 names, but the model outputs 10"):
            evaluate_classifier(q, tmp_path, labels=DIGITS[:9], preprocess=DIGIT_PRE)
        with pytest.raises(ConfigError, match="unknown key.*src_format"):
            evaluate_classifier(q, tmp_path, labels=DIGITS, preprocess={"src_format": "RGB"})
    with pytest.raises(ConfigError, match="names must be unique"):
        output_indices(["a"], ["a", "a"], 2)


def test_image_folder_layout(digit_folder):
    ds = ImageFolder(digit_folder)
    assert ds.classes == tuple(DIGITS)  # ".cache" is hidden
    assert len(ds) == 451 and sum(ds.class_counts().values()) == 451
    assert all(p.suffix == ".png" and not p.name.startswith(".") for p, _ in ds.samples)
    image, index, path = next(iter(ds))
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert ds.classes[index] == path.parent.name == "0"


def test_empty_folders_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not a directory"):
        ImageFolder(tmp_path / "missing")
    with pytest.raises(ConfigError, match=f"dataset {tmp_path}: no class subfolders"):
        ImageFolder(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cv2.imwrite(str(tmp_path / "a" / "x.png"), np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "b" / "readme.txt").write_text("no images here")
    with pytest.raises(ConfigError, match="class folder 'b' has no images"):
        ImageFolder(tmp_path)
    (tmp_path / "b" / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "a" / "x.png").write_bytes(b"not a png either")
    with edgert.load(DATA / "digits_int8.tflite") as q, pytest.raises(ConfigError, match="none of the 2 images"):
        evaluate_classifier(q, tmp_path, labels=["a", "b"] + DIGITS[2:], preprocess=DIGIT_PRE)


# --- embeddings -----------------------------------------------------------------------------------------


def linear_embedder(side: int, weights: np.ndarray, bias: np.ndarray, int8_quant: tuple | None = None) -> bytes:
    """float32 (1, side, side, 1) image -> RESHAPE -> FULLY_CONNECTED -> (1, D) embedding
    (-> QUANTIZE to int8 with `int8_quant` = (scale, zero_point) when given)."""
    dim, n = weights.shape
    tensors = [_tensor("image", (1, side, side, 1), np.float32, 0), _tensor("shape", (2,), np.int32, 1),
               _tensor("flat", (1, n), np.float32, 0), _tensor("weights", (dim, n), np.float32, 2),
               _tensor("bias", (dim,), np.float32, 3), _tensor("embedding", (1, dim), np.float32, 0)]
    reshape = schema.OperatorT()
    reshape.opcodeIndex, reshape.inputs, reshape.outputs = 0, [0, 1], [2]
    reshape.builtinOptionsType = schema.BuiltinOptions.ReshapeOptions
    reshape.builtinOptions = schema.ReshapeOptionsT()
    reshape.builtinOptions.newShape = [1, n]
    fc = schema.OperatorT()
    fc.opcodeIndex, fc.inputs, fc.outputs = 1, [2, 3, 4], [5]
    fc.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
    fc.builtinOptions = schema.FullyConnectedOptionsT()
    ops = [reshape, fc]
    codes = [_code(schema.BuiltinOperator.RESHAPE), _code(schema.BuiltinOperator.FULLY_CONNECTED)]
    outputs = [5]
    if int8_quant is not None:
        tensors.append(_tensor("embedding_q", (1, dim), np.int8, 0, int8_quant))
        quant = schema.OperatorT()
        quant.opcodeIndex, quant.inputs, quant.outputs = 2, [5], [6]
        ops.append(quant)
        codes.append(_code(schema.BuiltinOperator.QUANTIZE))
        outputs = [6]
    buffers = [_buffer(), _buffer(np.array([1, n], np.int32).tobytes()),
               _buffer(np.ascontiguousarray(weights, np.float32).tobytes()), _buffer(bias.astype(np.float32).tobytes())]
    return _finish(tensors, ops, codes, [0], outputs, buffers)


@pytest.fixture(scope="module")
def embedders(tmp_path_factory):
    """An int8-output 8x8 embedder (9 LDA components of the digit, fitted on scikit-learn's digits: the
    input pixel / 255 is the digit value / 16) and a float 16x16 reference (the first 2 components)."""
    from sklearn.datasets import load_digits
    d = load_digits()
    lda = LinearDiscriminantAnalysis(n_components=9).fit(d.data / 16, d.target)
    w = lda.scalings_[:, :9].T  # (9, 64)
    b = -lda.xbar_ @ lda.scalings_[:, :9]
    images, _ = digits()
    emb = images.reshape(len(images), 64) / 255.0 @ w.T + b
    np.testing.assert_allclose(emb, lda.transform(images.reshape(len(images), 64) / 255.0), atol=1e-9)
    quant = (float(np.abs(emb).max()) / 100, 10)  # a zero point: cosine of the raw integers would be wrong
    # The reference keeps 2 components (a weaker embedding, so the two differ) at 16x16 input: each
    # 8x8 weight spread over its 2x2 block (the digit area-downscaled to 16 px has the same values).
    w16 = np.repeat(np.repeat(w[:2].reshape(2, 8, 8), 2, axis=1), 2, axis=2).reshape(2, 256) / 4
    folder = tmp_path_factory.mktemp("embedders")
    (folder / "emb_int8.tflite").write_bytes(linear_embedder(8, w, b, int8_quant=quant))
    (folder / "emb_fp32_16.tflite").write_bytes(linear_embedder(16, w16, b[:2]))
    return folder / "emb_int8.tflite", folder / "emb_fp32_16.tflite"


def direct_embeddings(model_path: Path) -> np.ndarray:
    """Each held-out digit through the model, fed straight from the 8x8 arrays, dequantised."""
    images, _ = digits()
    with edgert.load(model_path) as m:
        side = m.inputs[0].shape[1]
        out = [m.run(cv2.resize(img, (side, side), interpolation=cv2.INTER_NEAREST)
                     .astype(np.float32).reshape(1, side, side, 1) / 255)[0] for img in images]
        spec = m.outputs[0]
    out = np.stack([dequantize(o, spec) if spec.quant else o for o in out]).reshape(len(out), -1)
    return out.astype(np.float64)


def sklearn_eer(scores, genuine) -> tuple:
    """EER on scikit-learn's ROC curve: where FPR and FNR cross, linearly interpolated."""
    fpr, tpr, thr = roc_curve(genuine, scores, drop_intermediate=False)
    fpr, fnr, thr = fpr[1:], 1 - tpr[1:], thr[1:]
    i = int(np.argmax(fpr - fnr >= 0))
    d0, d1 = fpr[i - 1] - fnr[i - 1], fpr[i] - fnr[i]
    t = d0 / (d0 - d1)
    return fpr[i - 1] + t * (fpr[i] - fpr[i - 1]), thr[i - 1] + t * (thr[i] - thr[i - 1])


def direct_ranks(emb, ids) -> tuple:
    """Leave-one-out Rank-1 (nearest other image) and Rank-5 (identities ranked by best match), by loops."""
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sim = e @ e.T
    np.fill_diagonal(sim, -np.inf)
    rank1 = np.mean(ids[np.argmax(sim, axis=1)] == ids)
    rank5 = 0
    for q in range(len(ids)):
        best = {ident: sim[q, ids == ident].max() for ident in np.unique(ids)}
        top = sorted(best, key=lambda ident: -best[ident])[:5]
        rank5 += ids[q] in top
    return rank1, rank5 / len(ids)


@pytest.fixture(scope="module")
def embedding_result(digit_folder, embedders):
    model_path, ref_path = embedders
    pre = {"resize": "stretch", "interpolation": "area", "mean": 0, "std": 255}
    with edgert.load(model_path) as m, edgert.load(ref_path) as r:
        assert m.outputs[0].dtype == np.int8 and r.inputs[0].shape == (1, 16, 16, 1)
        return evaluate_embedder(m, digit_folder, reference=r, preprocess=pre)


def test_embedding_metrics_match_sklearn_and_direct_counts(embedding_result, embedders):
    result = embedding_result
    _, ids = digits()
    assert result["task"] == "embedding" and result["images"] == 450 and result["skipped"] == 1
    assert result["identities"] == 10 and result["queries"] == 450
    n_genuine = int(sum(c * (c - 1) // 2 for c in np.bincount(ids)))
    assert result["pairs"] == {"genuine": n_genuine, "impostor": 450 * 449 // 2 - n_genuine, "sampled": False}
    for role, path in zip(("model", "reference"), embedders):
        emb = direct_embeddings(path)
        assert len({row.tobytes() for row in emb}) > 400  # outputs depend on the input
        sims, genuine = evaluate.all_pairs(emb, ids)
        got = result[role]
        assert got["auc"] == pytest.approx(roc_auc_score(genuine, sims), abs=1e-6)
        eer, threshold = sklearn_eer(sims, genuine)
        assert got["eer"] == pytest.approx(eer, abs=1e-4)
        assert got["eer_threshold"] == pytest.approx(threshold, abs=1e-4)
        accepted = sims >= got["eer_threshold"]
        assert got["far"] == pytest.approx(np.mean(accepted[~genuine]), abs=1e-3)
        assert got["frr"] == pytest.approx(np.mean(~accepted[genuine]), abs=1e-3)
        assert abs(got["far"] - got["eer"]) < 0.01 and abs(got["frr"] - got["eer"]) < 0.01
        rank1, rank5 = direct_ranks(emb, ids)
        assert got["rank1"] == pytest.approx(rank1)
        assert got["rank5"] == pytest.approx(rank5)
        assert 0 < got["rank1"] <= got["rank5"] and 0 < got["eer"] < 0.5
    assert result["model"]["rank1"] > 0.9 and result["model"]["auc"] > 0.95 and result["model"]["eer"] < 0.1
    assert result["reference"]["rank5"] < 1 and result["reference"]["eer"] > result["model"]["eer"]


def test_sampled_pairs_keep_the_metrics_close(digit_folder, embedders, embedding_result):
    pre = {"resize": "stretch", "interpolation": "area", "mean": 0, "std": 255}
    with edgert.load(embedders[0]) as m:
        small = evaluate_embedder(m, digit_folder, preprocess=pre, max_pairs=6000)
    assert small["pairs"]["sampled"] and small["pairs"]["genuine"] + small["pairs"]["impostor"] == 6000
    assert small["reference"] is None
    assert small["model"]["auc"] == pytest.approx(embedding_result["model"]["auc"], abs=0.03)
    assert small["model"]["rank1"] == embedding_result["model"]["rank1"]  # identification never samples


def test_pair_indices():
    ids = np.repeat(np.arange(6), [1, 2, 3, 5, 8, 13])
    first, second, sampled = pair_indices(ids, max_pairs=10_000)
    assert not sampled and first.size == 32 * 31 // 2 and np.all(first < second)
    first, second, sampled = pair_indices(ids, max_pairs=200)
    pairs = set(zip(first.tolist(), second.tolist()))
    assert sampled and len(pairs) == first.size == 200 and np.all(first < second)
    genuine = ids[first] == ids[second]
    assert genuine.sum() == 100  # genuine pairs (112) over half: a sample of half
    assert pair_indices(ids, max_pairs=200)[0].tolist() == first.tolist()  # seeded


def test_leave_one_out_rank_excludes_self_and_singletons():
    emb = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99], [0.7, 0.7]])
    ranks = evaluate.leave_one_out_rank(emb, [0, 0, 1, 1, 2], ks=(1, 2))
    assert ranks == {1: 1.0, 2: 1.0, "queries": 4}  # the lone identity 2 is no query
    swapped = evaluate.leave_one_out_rank(emb, [0, 1, 0, 1, 2], ks=(1, 3))
    assert swapped[1] == 0.0 and swapped[3] == 1.0
    with pytest.raises(ConfigError, match="no identity has two"):
        evaluate.leave_one_out_rank(emb, [0, 1, 2, 3, 4])
    assert evaluate.rates_at([0.9, 0.8, 0.3, 0.1], [True, False, True, False], 0.5) == (0.5, 0.5)


def test_embedding_needs_repeated_identities(tmp_path, embedders):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        cv2.imwrite(str(tmp_path / name / "x.png"), np.full((8, 8, 3), 40 if name == "a" else 200, np.uint8))
    with edgert.load(embedders[0]) as m, pytest.raises(ConfigError, match="two or more identities"):
        evaluate_embedder(m, tmp_path, preprocess={"std": 255})
