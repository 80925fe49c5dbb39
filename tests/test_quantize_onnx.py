"""`edgert quantize` on a float .onnx (onnxruntime's quantize_static, QDQ): the digits perceptron end to end with
each calibration method, the report against scikit-learn, the calibration reader's tensors, `--target rknn`
without rknn-toolkit2, and bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed: pip install 'edgert[onnx]'")
pytest.importorskip("onnx", reason="the onnx package is not installed: pip install 'edgert[onnx]'")
cv2 = pytest.importorskip("cv2", reason="OpenCV is not installed: pip install opencv-python-headless")
from onnx_builder import DIGIT_PRE, DIGITS, digits_job  # noqa: E402
from sklearn.metrics import accuracy_score, recall_score  # noqa: E402

import edgert  # noqa: E402
from edgert.cli.main import main  # noqa: E402
from edgert.postprocess import dequantize  # noqa: E402
from edgert.preprocess import Preprocessor  # noqa: E402
from edgert.quantize import onnx as onnx_quant  # noqa: E402
from edgert.quantize.calibration import calibration_set  # noqa: E402

SEED = 0
DATA = Path(__file__).parent / "data"


def _run(*argv) -> int:
    return main(["quantize", *map(str, argv)])


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The digits perceptron as a float .onnx (dynamic batch) with its card, calibration and validation digits."""
    return digits_job(tmp_path_factory.mktemp("qonnx"), SEED)


def _predictions(path: Path, folder: Path):
    files = sorted(folder.glob("*/*.png"), key=lambda p: (p.parent.name, p.name))
    labels = np.array([int(p.parent.name) for p in files])
    preds = []
    with edgert.load(path, input_shape=(1, 1, 8, 8)) as m:
        for p in files:
            image = cv2.imread(str(p), cv2.IMREAD_COLOR)
            out = m.run(Preprocessor(m.inputs[0], "BGR", (image.shape[1], image.shape[0]), **DIGIT_PRE)(image))[0]
            scores = dequantize(out, m.outputs[0]) if m.outputs[0].quant else out
            preds.append(int(np.argsort(-scores.ravel(), kind="stable")[0]))
    return np.array(preds), labels


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_a_float_onnx_is_quantised_to_qdq_int8(digits, tmp_path, method):
    out, report = tmp_path / "dig_int8.onnx", tmp_path / "r.json"
    assert _run(digits / "dig_fp32.onnx", "--calibration", digits / "cal", "--out", out, "--validation",
                digits / "val", "--report", report, "--latency-frames", 3, "--quiet", "--method", method,
                "--max-drop", 100, "--max-class-drop", 100) == 0
    result = json.loads(report.read_text())
    import onnx

    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    card = json.loads(out.with_suffix(".json").read_text())
    q = card["quantization"]
    assert q["format"] == "QDQ" and q["method"] == method and q["granularity"] == "per-channel"
    assert q["calibration"]["used"] == 100 and card["input_shape"] == [1, 1, 8, 8]
    with edgert.load(out) as m:  # batch fixed in the file: loads without input_shape
        assert m.inputs[0].dtype == np.int8 and m.inputs[0].quant is not None  # quantized_io: the int8 inside
    assert result["report"]["backend"] == "onnx" and result["report"]["latency"]["int8"]["frames"] == 3
    acc = result["report"]["accuracy"]
    f_pred, labels = _predictions(digits / "dig_fp32.onnx", digits / "val")
    q_pred, _ = _predictions(out, digits / "val")
    assert acc["float"]["top1"] == pytest.approx(accuracy_score(labels, f_pred))
    assert acc["int8"]["top1"] == pytest.approx(accuracy_score(labels, q_pred))
    assert acc["agreement"] == pytest.approx(np.mean(f_pred == q_pred))
    recall = recall_score(labels, q_pred, labels=range(10), average=None)
    assert [acc["per_class"][c]["int8_top1"] for c in DIGITS] == pytest.approx(list(recall))
    assert acc["float"]["top1"] > 0.9 and acc["agreement"] > 0.95, f"seed {SEED}"


def test_the_calibration_reader_gives_onnx_the_preprocessors_tensors(digits, monkeypatch):
    seen = []
    real = onnx_quant._reader

    def spy(quantization, input_name, samples, progress):
        reader = real(quantization, input_name, samples, progress)
        get_next = reader.get_next

        def record():
            item = get_next()
            if item is not None:
                seen.append(item[input_name].copy())
            return item

        reader.get_next = record
        return reader

    monkeypatch.setattr(onnx_quant, "_reader", spy)
    out = digits / "spy_int8.onnx"
    assert _run(digits / "dig_fp32.onnx", "--calibration", digits / "cal", "--out", out, "--samples", 20,
                "--latency-frames", 0, "--quiet") == 0
    with edgert.load(digits / "dig_fp32.onnx", input_shape=(1, 1, 8, 8)) as m:
        spec = m.inputs[0]
    expected = list(calibration_set(spec, digits / "cal", 20, DIGIT_PRE, 10))
    assert len(seen) == 20 and all(a.shape == (1, 1, 8, 8) and a.dtype == np.float32 for a in seen)
    for a, b in zip(seen, expected):
        np.testing.assert_array_equal(a, b)


def _bad(tmp_path, capsys, model, cal, *extra, out=None):
    out = out or tmp_path / "out" / "q.onnx"
    out.parent.mkdir(exist_ok=True)
    rc = _run(model, "--calibration", cal, "--out", out, "--latency-frames", 0, "--quiet", *extra)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("edgert: "), err
    assert [p.name for p in out.parent.iterdir()] == []
    return err


def test_rknn_target_without_the_toolkit_says_what_to_install(digits, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "rknn", None)  # as on a host without rknn-toolkit2
    monkeypatch.setitem(sys.modules, "rknn.api", None)  # even where another test imported it
    err = _bad(tmp_path, capsys, digits / "dig_fp32.onnx", digits / "cal", "--target", "rknn", "--soc", "rk3588",
               out=tmp_path / "out" / "q.rknn")
    assert "--target rknn needs rknn-toolkit2, which is not installed: pip install rknn-toolkit2" in err
    assert "--soc rk9999: expected one of rk3588" in _bad(tmp_path, capsys, digits / "dig_fp32.onnx", digits / "cal",
                                                          "--target", "rknn", "--soc", "rk9999",
                                                          out=tmp_path / "out" / "q.rknn")


def test_bad_onnx_input(digits, tmp_path, capsys):
    model = digits / "dig_fp32.onnx"
    q = tmp_path / "already_int8.onnx"
    assert _run(model, "--calibration", digits / "cal", "--out", q, "--latency-frames", 0, "--quiet") == 0
    assert "already quantised (DequantizeLinear, QuantizeLinear operators)" in _bad(tmp_path, capsys, q, digits / "cal")
    assert "entropy and percentile are for .onnx models" in _bad(
        tmp_path, capsys, DATA / "digits_fp32.tflite", digits / "cal", "--method", "entropy",
        out=tmp_path / "out" / "q.tflite")
    assert "--method moving-average: .onnx models calibrate with minmax, entropy, percentile" in _bad(
        tmp_path, capsys, model, digits / "cal", "--method", "moving-average")
    assert "ONNX QDQ models keep float32 edges" in _bad(tmp_path, capsys, model, digits / "cal", "--input-type", "uint8")
    assert "expected a .onnx file name" in _bad(tmp_path, capsys, model, digits / "cal", out=tmp_path / "out" / "q.tflite")
