"""`edgert quantize`: a real float classifier (the digits model) quantised end to end with ai-edge-quantizer,
its report checked against scikit-learn, the calibration reader against the Preprocessor, and bad input."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ai_edge_quantizer", reason="ai-edge-quantizer is not installed: pip install 'edgert[quantize]'")
cv2 = pytest.importorskip("cv2", reason="OpenCV is not installed: pip install opencv-python-headless")
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.metrics import accuracy_score, recall_score, top_k_accuracy_score  # noqa: E402

import edgert  # noqa: E402
from edgert.cli.main import main  # noqa: E402
from edgert.core import durable  # noqa: E402
from edgert.postprocess import dequantize  # noqa: E402
from edgert.preprocess import Preprocessor  # noqa: E402
from edgert.quantize.calibration import CalibrationReader, select_evenly  # noqa: E402

DATA = Path(__file__).parent / "data"
DIGITS = [str(d) for d in range(10)]
DIGIT_PRE = {"resize": "stretch", "interpolation": "area", "mean": 0, "std": 255}


def _digit_png(path: Path, image8: np.ndarray, colour: bool, size: int = 16) -> None:
    big = cv2.resize(image8, (size, size), interpolation=cv2.INTER_NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(big, cv2.COLOR_GRAY2BGR) if colour else big)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """The float digits model with its card, a calibration folder (120 scikit-learn digits, gray PNGs in
    class folders) and a validation folder (the 450 held-out digits, colour PNGs)."""
    root = tmp_path_factory.mktemp("quantize")
    model = root / "digits_fp32.tflite"
    shutil.copy(DATA / "digits_fp32.tflite", model)
    (root / "digits.json").write_text(json.dumps({"name": "digits", "version": "1.0", "classes": DIGITS,
                                                  "preprocess": DIGIT_PRE}))
    x, y = load_digits(return_X_y=True)
    for i in range(120):
        _digit_png(root / "cal" / str(y[i]) / f"{i:04d}.png", (x[i].reshape(8, 8) * 255 / 16).round().astype(np.uint8),
                   colour=False)
    held = np.load(DATA / "digits_test.npz")
    for i, (image, label) in enumerate(zip(held["images"], held["labels"])):
        _digit_png(root / "val" / str(label) / f"{i:04d}.png", image, colour=True, size=32)
    return root


def _run(*argv) -> int:
    return main(["quantize", *map(str, argv)])


@pytest.fixture(scope="module")
def quantised(folders):
    out, report = folders / "out" / "digits_int8.tflite", folders / "out" / "report.json"
    out.parent.mkdir()
    rc = _run(folders / "digits_fp32.tflite", "--calibration", folders / "cal", "--out", out,
              "--validation", folders / "val", "--report", report, "--latency-frames", 5, "--quiet",
              "--max-drop", 100, "--max-class-drop", 100)
    return rc, out, json.loads(report.read_text())


def _scores(model_path: Path, folder: Path):
    """Class scores and labels of every validation image, run independently of the report's code."""
    files = sorted(folder.glob("*/*.png"), key=lambda p: (p.parent.name, p.name))
    labels = np.array([int(p.parent.name) for p in files])
    with edgert.load(model_path) as m:
        rows = []
        for p in files:
            image = cv2.imread(str(p), cv2.IMREAD_COLOR)
            out = m.run(Preprocessor(m.inputs[0], "BGR", (image.shape[1], image.shape[0]), **DIGIT_PRE)(image))[0]
            rows.append(dequantize(out, m.outputs[0]) if m.outputs[0].quant else out)
    return np.stack(rows).reshape(len(rows), -1), labels


def test_a_float_classifier_is_quantised_to_int8_with_its_card(folders, quantised):
    rc, out, _ = quantised
    assert rc == 0
    with edgert.load(out) as m:
        assert m.inputs[0].dtype == np.int8 and m.outputs[0].dtype == np.int8
        assert m.inputs[0].quant is not None
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["classes"] == DIGITS and card["preprocess"] == DIGIT_PRE and card["task"] == "classify"
    q = card["quantization"]
    parent = (folders / "digits_fp32.tflite").read_bytes()
    assert q["parent"] == {"file": "digits_fp32.tflite", "sha256": hashlib.sha256(parent).hexdigest()}
    assert q["calibration"]["used"] == 120 and sum(q["calibration"]["per_class"].values()) == 120
    assert set(q["calibration"]["per_class"]) == set(DIGITS)
    assert q["weights"] == q["activations"] == "int8" and q["granularity"] == "per-channel"
    assert out.stat().st_size < 0.4 * len(parent)
    assert [p.name for p in out.parent.iterdir() if p.name.endswith(durable.TEMP_SUFFIX)] == []


def test_the_report_matches_scikit_learn(folders, quantised):
    _, out, result = quantised
    report = result["report"]
    f_scores, labels = _scores(folders / "digits_fp32.tflite", folders / "val")
    q_scores, _ = _scores(out, folders / "val")
    assert len(set(np.argmax(f_scores, 1))) == 10  # the model really tells the digits apart
    # classify ranks lower indices first among equal scores; so does a stable argsort
    f_pred = np.argsort(-f_scores, axis=1, kind="stable")[:, 0]
    q_pred = np.argsort(-q_scores, axis=1, kind="stable")[:, 0]
    acc = report["accuracy"]
    assert acc["images"] == 450
    assert acc["float"]["top1"] == pytest.approx(accuracy_score(labels, f_pred))
    assert acc["int8"]["top1"] == pytest.approx(accuracy_score(labels, q_pred))
    assert acc["delta_top1_pt"] == pytest.approx(100 * (accuracy_score(labels, q_pred) - accuracy_score(labels, f_pred)))
    assert acc["float"]["top5"] == pytest.approx(top_k_accuracy_score(labels, f_scores, k=5, labels=range(10)))
    assert acc["agreement"] == pytest.approx(np.mean(f_pred == q_pred))
    f_rec = recall_score(labels, f_pred, labels=range(10), average=None)
    q_rec = recall_score(labels, q_pred, labels=range(10), average=None)
    for c in range(10):
        row = acc["per_class"][str(c)]
        assert row["float_top1"] == pytest.approx(f_rec[c]) and row["int8_top1"] == pytest.approx(q_rec[c])
        assert row["delta_top1_pt"] == pytest.approx(100 * (q_rec[c] - f_rec[c]))
    worst = [str(c) for c in np.argsort(q_rec - f_rec, kind="stable") if q_rec[c] < f_rec[c]][:3]
    assert [d["class"] for d in acc["largest_drops"]] == worst
    sizes = report["sizes"]
    assert sizes["float_bytes"] == (folders / "digits_fp32.tflite").stat().st_size
    assert sizes["ratio"] == pytest.approx(out.stat().st_size / sizes["float_bytes"])
    assert report["verdict"]["passed"] and set(report["latency"]) == {"float", "int8"}
    assert report["latency"]["int8"]["frames"] == 5


def test_exit_code_3_when_a_drop_exceeds_the_threshold(folders, tmp_path, capsys):
    # min/max ranges lose nothing on the digits; ai-edge-quantizer's moving-average ranges lose a little
    report = tmp_path / "report.json"
    rc = _run(folders / "digits_fp32.tflite", "--calibration", folders / "cal", "--out", tmp_path / "q.tflite",
              "--validation", folders / "val", "--latency-frames", 0, "--quiet", "--method", "moving-average",
              "--max-drop", 100, "--max-class-drop", 0, "--report", report)
    drops = [-r["delta_top1_pt"] for r in json.loads(report.read_text())["report"]["accuracy"]["per_class"].values()]
    assert max(drops) > 0, "the int8 model loses nothing on any class: this test needs a loss to gate on"
    assert rc == 3
    assert "verdict: FAIL" in capsys.readouterr().out
    assert (tmp_path / "q.tflite").is_file()  # the result is kept for inspection; CI reads the exit code


def test_the_calibration_reader_feeds_the_preprocessors_exact_tensors(folders):
    with edgert.load(folders / "digits_fp32.tflite") as m:
        spec = m.inputs[0]
    reader = CalibrationReader(spec, folders / "cal", samples=30, preprocess=DIGIT_PRE, min_samples=10)
    tensors = list(reader)
    assert len(tensors) == 30 and reader.summary.used == 30
    assert set(reader.summary.per_class.values()) == {3}  # 30 drawn evenly over 10 classes
    assert [p.parent.name for p in reader.files[:10]] == DIGITS  # interleaved: one of each class in turn
    for path, tensor in zip(reader.files, tensors):
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert image.ndim == 2
        expected = Preprocessor(spec, "GRAY", (image.shape[1], image.shape[0]), **DIGIT_PRE)(image)
        assert tensor.dtype == np.float32 and np.array_equal(tensor, expected)
    assert len({t.tobytes() for t in tensors}) == 30


def test_select_evenly_shares_across_classes():
    files = (tuple(f"a{i}" for i in range(10)), ("b0", "b1"), tuple(f"c{i}" for i in range(5)))
    picked = select_evenly(files, 9)
    # quotas 4, 2 (all of b), 3; spread evenly over each class
    assert sorted(picked) == ["a0", "a3", "a6", "a9", "b0", "b1", "c0", "c2", "c4"]
    assert picked[:3] == ["a0", "b0", "c0"]
    assert len(select_evenly(files, None)) == 17 and len(select_evenly(files, 100)) == 17


def _bad(tmp_path, capsys, model, cal, *extra, out=None):
    out = out or tmp_path / "out" / "q.tflite"
    out.parent.mkdir(exist_ok=True)
    before = sorted(p.name for p in out.parent.iterdir())
    rc = _run(model, "--calibration", cal, "--out", out, "--latency-frames", 0, "--quiet", *extra)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("edgert: "), err
    assert sorted(p.name for p in out.parent.iterdir()) == before  # nothing written, no temp file left
    return err


def test_an_already_quantised_model_is_refused(folders, tmp_path, capsys):
    err = _bad(tmp_path, capsys, DATA / "digits_int8.tflite", folders / "cal")
    assert "already quantised" in err and "uint8 input" in err


def test_empty_and_unreadable_calibration_folders(folders, tmp_path, capsys):
    (tmp_path / "empty" / "3").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    assert "no images" in _bad(tmp_path, capsys, folders / "digits_fp32.tflite", tmp_path / "empty")
    assert "not a directory" in _bad(tmp_path, capsys, folders / "digits_fp32.tflite", tmp_path / "missing")
    corrupt = tmp_path / "corrupt"
    for i in range(12):
        (corrupt / str(i % 10)).mkdir(parents=True, exist_ok=True)
        (corrupt / str(i % 10) / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert "none of the 12 images could be read" in _bad(tmp_path, capsys, folders / "digits_fp32.tflite", corrupt)


def test_fewer_samples_than_classes(folders, tmp_path, capsys):
    err = _bad(tmp_path, capsys, folders / "digits_fp32.tflite", folders / "cal", "--samples", 5)
    assert "5 image(s) for a model of 10 classes" in err


def test_calibration_images_of_another_channel_count(folders, tmp_path, capsys):
    bgra = tmp_path / "bgra" / "0"
    bgra.mkdir(parents=True)
    for i in range(10):
        assert cv2.imwrite(str(bgra / f"{i}.png"), np.full((16, 16, 4), 20 * i, np.uint8))
    err = _bad(tmp_path, capsys, folders / "digits_fp32.tflite", bgra.parent)
    assert "4 channel(s); the model takes 1" in err
    # a colour model (MobileNetV2, 224x224 RGB) given gray images
    err = _bad(tmp_path, capsys, DATA / "mobilenetv2_fp32.tflite", folders / "cal")
    assert "1 channel(s); the model takes 3" in err


def test_validation_classes_that_are_not_the_labels(folders, tmp_path, capsys):
    for name in ("cat", "dog"):
        (tmp_path / "val" / name).mkdir(parents=True)
        assert cv2.imwrite(str(tmp_path / "val" / name / "0.png"), np.zeros((8, 8, 3), np.uint8))
    err = _bad(tmp_path, capsys, folders / "digits_fp32.tflite", folders / "cal", "--validation", tmp_path / "val")
    assert "2 not among its labels: cat, dog" in err


def test_the_output_may_not_be_the_input_or_its_card(folders, tmp_path, capsys):
    model = tmp_path / "out" / "m_fp32.tflite"
    model.parent.mkdir()
    shutil.copy(folders / "digits_fp32.tflite", model)
    (tmp_path / "out" / "m.json").write_text(json.dumps({"classes": DIGITS, "preprocess": DIGIT_PRE}))
    assert "is the input model" in _bad(tmp_path, capsys, model, folders / "cal", out=model)
    assert "would replace the float model's card" in _bad(tmp_path, capsys, model, folders / "cal",
                                                          out=tmp_path / "out" / "m.tflite")


class _FullDisk:
    """A file whose writes fail as on a full disk."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


@pytest.mark.parametrize("failing_write", [1, 2], ids=["model", "card"])
def test_a_full_disk_leaves_no_new_file_and_keeps_old_ones(folders, tmp_path, capsys, monkeypatch, failing_write):
    out = tmp_path / "out" / "q.tflite"
    out.parent.mkdir()
    out.write_bytes(b"old model")
    out.with_suffix(".json").write_bytes(b"old card")
    real, calls = os.fdopen, []

    def fdopen(fd, *args, **kwargs):
        calls.append(fd)
        f = real(fd, *args, **kwargs)
        return _FullDisk(f) if len(calls) == failing_write else f

    monkeypatch.setattr(durable.os, "fdopen", fdopen)
    err = _bad(tmp_path, capsys, folders / "digits_fp32.tflite", folders / "cal", out=out)
    assert "No space left on device" in err and "nothing written" in err
    assert out.read_bytes() == b"old model" and out.with_suffix(".json").read_bytes() == b"old card"


@pytest.mark.parametrize("old_card", [b"old card", None], ids=["card-kept", "no-card-left"])
def test_a_failed_model_rename_takes_back_the_card_just_placed(folders, tmp_path, capsys, monkeypatch, old_card):
    out = tmp_path / "out" / "q.tflite"
    out.parent.mkdir()
    if old_card is not None:
        out.with_suffix(".json").write_bytes(old_card)
    real = os.replace

    def replace(src, dest):
        if Path(dest) == out:
            raise OSError(errno.EIO, "Input/output error")
        return real(src, dest)

    monkeypatch.setattr(durable.os, "replace", replace)
    assert "Input/output error" in _bad(tmp_path, capsys, folders / "digits_fp32.tflite", folders / "cal", out=out)
    assert not out.exists()
    card = out.with_suffix(".json")
    assert (card.read_bytes() if card.exists() else None) == old_card


def _input_range(tmp_path, *flags) -> float:
    """Calibrate the digits model on 40 small tensors, one of them (the 4th) with a wide range; the
    int8 result's input range (scale * 255)."""
    rng = np.random.default_rng(0)
    tensors = rng.uniform(0.0, 0.2, (40, 8, 8, 1)).astype(np.float32)
    tensors[3, 2, 2, 0], tensors[3, 5, 5, 0] = 1.0, -0.5
    np.save(tmp_path / "cal.npy", tensors)
    out = tmp_path / "digits_int8.tflite"
    assert _run(DATA / "digits_fp32.tflite", "--calibration", tmp_path / "cal.npy", "--out", out,
                "--latency-frames", 0, "--quiet", *flags) == 0
    with edgert.load(out) as m:
        return float(np.asarray(m.inputs[0].quant.scale).max()) * 255


def test_minmax_ranges_cover_every_calibration_sample(tmp_path):
    # the default: min and max over all samples, as TensorFlow's converter does (not a moving
    # average that forgets the 4th sample by the 40th)
    assert _input_range(tmp_path) == pytest.approx(1.5, rel=0.01)
    card = json.loads((tmp_path / "digits_int8.json").read_text())
    assert card["quantization"]["method"] == "minmax"


def test_moving_average_ranges_are_ai_edge_quantizers_default(tmp_path):
    assert _input_range(tmp_path, "--method", "moving-average") < 1.0
    card = json.loads((tmp_path / "digits_int8.json").read_text())
    assert card["quantization"]["method"] == "moving-average"


def test_a_result_litert_cannot_load_is_not_written(folders, tmp_path, capsys, monkeypatch):
    import edgert.quantize.job as job

    real = job.set_edge_types
    monkeypatch.setattr(job, "set_edge_types", lambda data, *a: real(data, *a)[: len(data) // 2])
    out = tmp_path / "out" / "q.tflite"
    out.parent.mkdir()
    rc = _run(folders / "digits_fp32.tflite", "--calibration", folders / "cal", "--out", out, "--latency-frames", 0,
              "--quiet")
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "the quantised model does not load in LiteRT" in err, err
    assert list(out.parent.iterdir()) == []
