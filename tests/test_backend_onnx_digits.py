"""The onnx backend on a trained model: a digits classifier fitted in the test, float and int8 (quantize_static).

Outputs are compared with the NumPy forward pass and with ONNX Runtime run directly on the same file;
`edgert bench` and `edgert info` are run on the .onnx files.
"""
import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed: pip install 'edgert[onnx]'")
pytest.importorskip("onnx", reason="the onnx package is not installed: pip install 'edgert[onnx]'")
import onnxruntime as ort  # noqa: E402
from onnx_builder import digits_model, quantized, save, train_digits  # noqa: E402

import edgert  # noqa: E402
from edgert.bench.results import BenchResult  # noqa: E402
from edgert.cli.main import main  # noqa: E402
from edgert.core.errors import ConfigError  # noqa: E402
from edgert.postprocess import dequantize  # noqa: E402
from edgert.preprocess import Preprocessor  # noqa: E402

SEED = 0
SHAPE = (1, 1, 8, 8)
DIGIT_PRE = {"resize": "stretch", "interpolation": "area", "mean": 0, "std": 255}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The trained perceptron, its float .onnx (dynamic batch) and its QDQ and QOperator int8 versions."""
    root = tmp_path_factory.mktemp("onnx_digits")
    d = train_digits(SEED)
    fp32 = save(digits_model(d), root / "digits_fp32.onnx")
    return {"d": d, "fp32": fp32, "QDQ": quantized(d, fp32, root / "digits_qdq.onnx", "QDQ"),
            "QOperator": quantized(d, fp32, root / "digits_qop.onnx", "QOperator"), "root": root}


def _direct(path, x: np.ndarray) -> np.ndarray:
    """ONNX Runtime on the file as it is (float edges), one image at a time."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"image": x[i:i + 1]})[0] for i in range(len(x))])


def test_the_trained_float_model_equals_numpy_and_onnx_runtime(digits):
    d = digits["d"]
    with pytest.raises(ConfigError, match=r"input 'image' has a dynamic dimension 0 \('batch'\)"):
        edgert.load(digits["fp32"])
    with edgert.load(digits["fp32"], input_shape=SHAPE) as m:
        assert m.inputs[0].layout == "NCHW" and m.outputs[0].shape == (1, 10)
        logits = np.concatenate([m.run(x[None])[0] for x in d.test_x])
    np.testing.assert_allclose(logits, d.forward(d.test_x), rtol=1e-4, atol=1e-4, err_msg=f"seed {SEED}")
    np.testing.assert_array_equal(logits, _direct(digits["fp32"], d.test_x))
    predicted = logits.argmax(1)
    assert (predicted == d.test_y).mean() >= 0.9, f"seed {SEED}"  # chance is 0.1
    assert len(set(predicted.tolist())) == 10  # outputs differ across inputs


def test_a_whole_batch_in_one_run(digits):
    d = digits["d"]
    with edgert.load(digits["fp32"], input_shape=(len(d.test_x), 1, 8, 8)) as m:
        (logits,) = m.run(d.test_x)
    np.testing.assert_allclose(logits, d.forward(d.test_x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
def test_int8_models_take_and_give_quantized_tensors_and_agree_with_onnx_runtime(digits, fmt):
    d = digits["d"]
    with edgert.load(digits[fmt], input_shape=SHAPE) as m:
        (i,), (o,) = m.inputs, m.outputs
        assert i.dtype == np.int8 and o.dtype == np.int8 and i.quant is not None and o.quant is not None
        raw = np.concatenate([m.run(i.quant.quantize(x[None], np.int8))[0] for x in d.test_x])
    assert raw.dtype == np.int8
    ours = o.quant.dequantize(raw)
    direct = _direct(digits[fmt], d.test_x)
    lsb = float(o.quant.scale)
    # The input is quantized by edgert (halves away from zero) instead of ONNX's QuantizeLinear (halves
    # to even): the rare pixel on a half moves by 1 LSB, and the logits by about as much.
    assert np.abs(ours - direct).max() <= 2 * lsb + 1e-6, f"seed {SEED}"
    assert (ours.argmax(1) == direct.argmax(1)).mean() >= 0.99
    assert (ours.argmax(1) == d.test_y).mean() >= 0.9, f"seed {SEED}"
    assert (ours.argmax(1) == d.forward(d.test_x).argmax(1)).mean() >= 0.95  # int8 keeps the float decisions


def test_the_preprocessor_feeds_the_int8_model_from_gray_pixels(digits):
    d = digits["d"]
    pixels = np.round(d.test_x[:, 0] * 255).astype(np.uint8)
    with edgert.load(digits["QDQ"], input_shape=SHAPE) as m:
        pre = Preprocessor(m.inputs[0], "GRAY", (8, 8), **DIGIT_PRE)
        scores = np.concatenate([dequantize(m.run(pre(p))[0], m.outputs[0]) for p in pixels])
    assert (scores.argmax(1) == d.test_y).mean() >= 0.9


def _bench(path, *more) -> list:
    return ["bench", str(path), "--frames", "5", "--warmup", "1", "--src-size", "64x48", *more]


def test_bench_runs_an_onnx_model_given_its_input_shape(digits, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(_bench(digits["QDQ"], "--input-shape", "1x1x8x8", "--threads", "2", "--json", str(out))) == 0
    result = BenchResult.from_json(out.read_text())
    (run,) = result.runs
    assert (run.backend, run.status) == ("onnx", "ok") and run.stages["infer"].n == 5
    capsys.readouterr()
    assert main(_bench(digits["QDQ"])) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("edgert: ")]
    assert len(err) == 1 and "'image'" in err[0] and "input_shape" in err[0]
    assert main(_bench(digits["QDQ"], "--input-shape", "1x1x8x8", "--input-dtype", "uint8")) == 2
    assert "onnx backend reads it from the model file" in capsys.readouterr().err


def test_bench_takes_the_shape_from_the_model_card_and_measures_accuracy(digits, tmp_path):
    cv2 = pytest.importorskip("cv2")
    from test_bench_cli import digits_folder

    model = tmp_path / "digits.onnx"
    model.write_bytes(digits["QDQ"].read_bytes())
    (tmp_path / "digits.json").write_text(json.dumps({
        "name": "digits", "version": "1.0", "classes": [str(i) for i in range(10)], "preprocess": DIGIT_PRE,
        "input_shape": list(SHAPE)}))
    assert cv2 is not None
    out = tmp_path / "r.json"
    assert main(_bench(model, "--dataset", str(digits_folder(tmp_path / "ds")), "--json", str(out))) == 0
    result = BenchResult.from_json(out.read_text())
    assert result.runs[0].backend == "onnx" and result.runs[0].status == "ok"
    assert result.accuracy["images"] == 60 and result.accuracy["model"]["top1"] >= 0.8


def test_info_lists_the_onnx_backend_and_runtime(capsys, tmp_path):
    assert main(["info", "--json", "--root", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["backends"]["onnx"] == "usable"
    assert report["hardware"]["sdks"]["onnxruntime"] == ort.__version__
