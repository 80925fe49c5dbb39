"""`edgert quantize MODEL.onnx --target rknn` against the real rknn-toolkit2: the digits perceptron converted, quantised
and reported in the toolkit's simulator, checked against the toolkit driven by hand; the calibration files and the
simulator's inputs are the device's uint8 pixels; toolkit failures in one line; nothing left behind.

These run only where rknn-toolkit2 imports (it needs torch; CI does not install it): in a venv made from
benchmarks/models/requirements-rknn.txt. Without it, tests/test_quantize_onnx.py checks the one-line refusal.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed: pip install 'edgert[onnx]'")
pytest.importorskip("onnx", reason="the onnx package is not installed: pip install 'edgert[onnx]'")
cv2 = pytest.importorskip("cv2", reason="OpenCV is not installed: pip install opencv-python-headless")
from onnx import helper  # noqa: E402
from onnx_builder import DIGIT_PRE, DIGITS, digits_job, graph_model, save  # noqa: E402
from sklearn.metrics import accuracy_score, recall_score  # noqa: E402

import edgert  # noqa: E402
from edgert.cli.main import main  # noqa: E402
from edgert.preprocess import Preprocessor  # noqa: E402
from edgert.quantize import rknn as rknn_quant  # noqa: E402

SEED = 0
DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True, scope="module")
def _toolkit():
    """Skip without rknn-toolkit2. Imported when a test runs, not at collection: importing it (and torch) then
    would leave ``rknn.api`` in sys.modules for tests that hide the toolkit."""
    pytest.importorskip("rknn.api", reason="rknn-toolkit2 is not installed: benchmarks/models/requirements-rknn.txt")


def _run(*argv) -> int:
    return main(["quantize", *map(str, argv)])


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The digits perceptron as a float .onnx (dynamic batch), its card, 100 calibration and 450 validation digits."""
    return digits_job(tmp_path_factory.mktemp("qrknn"), SEED)


@pytest.fixture()
def spied(monkeypatch, tmp_path):
    """Records the calibration .npy files the toolkit is given and the pixels the simulator runs; toolkit temp files
    go under tmp_path/tmp (to check that none are left)."""
    seen = {"dataset": [], "inference": []}
    real_dataset, real_inference = rknn_quant.Conversion._dataset, rknn_quant.Conversion.inference

    def dataset(self, samples, progress):
        path = real_dataset(self, samples, progress)
        seen["dataset"] = [np.load(p) for p in path.read_text().split()]
        return path

    def inference(self, pixels):
        seen["inference"].append(pixels.copy())
        return real_inference(self, pixels)

    monkeypatch.setattr(rknn_quant.Conversion, "_dataset", dataset)
    monkeypatch.setattr(rknn_quant.Conversion, "inference", inference)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    return seen


def _files(folder: Path):
    files = sorted(folder.glob("*/*.png"), key=lambda p: (p.parent.name, p.name))
    return files, np.array([int(p.parent.name) for p in files])


def _by_hand(digits: Path, cal_files: list, val_files: list) -> np.ndarray:
    """Top-1 of the same conversion made with the toolkit's API directly (uint8 NHWC pixels, as the device)."""
    from rknn.api import RKNN

    folder = digits / "by_hand"
    folder.mkdir(exist_ok=True)
    paths = []
    for i, p in enumerate(cal_files):
        image = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE).astype(np.float32)
        np.save(folder / f"{i}.npy", cv2.resize(image, (8, 8), interpolation=cv2.INTER_AREA)[None, None])
        paths.append(str(folder / f"{i}.npy"))
    (folder / "dataset.txt").write_text("\n".join(paths) + "\n")
    r = RKNN(verbose=False)
    try:
        assert r.config(mean_values=[[0]], std_values=[[255]], target_platform="rk3588") == 0
        assert r.load_onnx(model=str(digits / "dig_fp32.onnx"), inputs=["image"], input_size_list=[[1, 1, 8, 8]]) == 0
        assert r.build(do_quantization=True, dataset=str(folder / "dataset.txt")) == 0
        assert r.init_runtime() == 0
        preds = []
        for p in val_files:
            pixels = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)[None, :, :, None]
            preds.append(int(np.argmax(r.inference(inputs=[pixels], data_format="nhwc")[0])))
    finally:
        r.release()
    return np.array(preds)


def _float_top1(digits: Path, files) -> np.ndarray:
    preds = []
    with edgert.load(digits / "dig_fp32.onnx", input_shape=(1, 1, 8, 8)) as m:
        for p in files:
            image = cv2.imread(str(p), cv2.IMREAD_COLOR)
            x = Preprocessor(m.inputs[0], "BGR", (image.shape[1], image.shape[0]), **DIGIT_PRE)(image)
            preds.append(int(np.argmax(m.run(x)[0])))
    return np.array(preds)


def test_the_digits_onnx_becomes_an_rknn_reported_in_the_simulator(digits, tmp_path, spied, capfd):
    out, report = tmp_path / "dig.rknn", tmp_path / "r.json"
    rc = _run(digits / "dig_fp32.onnx", "--target", "rknn", "--soc", "rk3588", "--calibration", digits / "cal",
              "--validation", digits / "val", "--out", out, "--report", report, "--quiet", "--max-drop", 100,
              "--max-class-drop", 100)
    printed = capfd.readouterr()
    assert rc == 0, printed.err
    assert "rknn building" not in printed.out + printed.err  # the toolkit's chatter went to its log
    assert out.read_bytes()[:4] == b"RKNN"
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["input_shape"] == [1, 8, 8, 1] and card["input_dtype"] == "uint8"
    assert card["preprocess"]["mean"] == 0 and card["preprocess"]["std"] == 1  # the NPU normalises
    q = card["quantization"]
    assert q["tool"].startswith("rknn-toolkit2 ") and q["target"] == "rk3588" and q["algorithm"] == "normal"
    assert q["normalisation"] == {"mean": [0.0], "std": [255.0]} and q["calibration"]["used"] == 100
    result = json.loads(report.read_text())["report"]
    assert "simulator" in result["backend"] and "latency" not in result
    acc = result["accuracy"]

    val_files, labels = _files(digits / "val")
    f_pred = _float_top1(digits, val_files)
    q_pred = _by_hand(digits, sorted((digits / "cal").glob("*/*.png")), val_files)
    assert acc["images"] == len(val_files) == 450
    assert acc["float"]["top1"] == pytest.approx(accuracy_score(labels, f_pred))
    assert acc["int8"]["top1"] == pytest.approx(accuracy_score(labels, q_pred))
    assert acc["agreement"] == pytest.approx(np.mean(f_pred == q_pred))
    recall = recall_score(labels, q_pred, labels=range(10), average=None)
    assert [acc["per_class"][c]["int8_top1"] for c in DIGITS] == pytest.approx(list(recall))
    assert acc["float"]["top1"] > 0.95 and acc["agreement"] > 0.97, f"seed {SEED}"
    assert list((tmp_path / "tmp").iterdir()) == []  # the session's files went with it


def test_the_toolkit_sees_the_devices_uint8_pixels(digits, tmp_path, spied):
    assert _run(digits / "dig_fp32.onnx", "--target", "rknn", "--soc", "rk3588", "--calibration", digits / "cal",
                "--validation", digits / "val", "--samples", 20, "--out", tmp_path / "d.rknn", "--quiet",
                "--max-drop", 100, "--max-class-drop", 100) == 0
    device = edgert.TensorSpec("image", (1, 8, 8, 1), np.uint8, None)  # the .rknn's input on the board

    def pixels(path):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        size = (image.shape[1], image.shape[0])
        return Preprocessor(device, "BGR", size, resize="stretch", interpolation="area")(image)

    from edgert.quantize.calibration import list_images, select_evenly

    cal = select_evenly(list_images(digits / "cal")[1], 20)
    assert len(spied["dataset"]) == 20
    for saved, path in zip(spied["dataset"], cal):
        assert saved.shape == (1, 1, 8, 8)  # the ONNX model's layout, as the toolkit wants its .npy
        np.testing.assert_array_equal(saved, pixels(path).transpose(0, 3, 1, 2).astype(np.float32))
    val_files, _ = _files(digits / "val")
    runs = spied["inference"][1:]  # after the warm-up
    assert len(runs) == len(val_files)
    for ran, path in zip(runs, val_files):
        assert ran.dtype == np.uint8
        np.testing.assert_array_equal(ran, pixels(path))


@pytest.mark.parametrize("options, algorithm, granularity", [((), "normal", "per-channel"),
                                                           (("--method", "entropy", "--per-tensor"),
                                                            "kl_divergence", "per-tensor")])
def test_without_validation_the_session_ends_after_export(digits, tmp_path, spied, options, algorithm, granularity):
    out, report = tmp_path / "d.rknn", tmp_path / "r.json"
    assert _run(digits / "dig_fp32.onnx", "--target", "rknn", "--soc", "rk3588", "--calibration", digits / "cal",
                "--samples", 10, "--out", out, "--report", report, "--quiet", *options) == 0
    result = json.loads(report.read_text())["report"]
    assert "accuracy" not in result and "edgert bench" in result["note"] and spied["inference"] == []
    assert out.stat().st_size > 0 and list((tmp_path / "tmp").iterdir()) == []
    q = json.loads(out.with_suffix(".json").read_text())["quantization"]
    assert (q["algorithm"], q["granularity"]) == (algorithm, granularity)


def _bad(tmp_path, capsys, model, cal, *extra):
    out = tmp_path / "out" / "q.rknn"
    out.parent.mkdir(exist_ok=True)
    rc = _run(model, "--target", "rknn", "--soc", "rk3588", "--calibration", cal, "--out", out, "--quiet", *extra)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("edgert: "), err
    assert [p.name for p in out.parent.iterdir()] == []
    return err


def test_a_graph_the_toolkit_refuses_is_one_line_naming_its_reason(digits, tmp_path, capsys):
    nodes = [helper.make_node("Flatten", ["image"], ["f"], axis=0), helper.make_node("Unique", ["f"], ["y"], sorted=1)]
    save(graph_model(nodes, [("image", np.float32, [1, 1, 8, 8])], [("y", np.float32, [None])]), tmp_path / "u.onnx")
    err = _bad(tmp_path, capsys, tmp_path / "u.onnx", digits / "cal", "--task", "embed")
    assert "rknn-toolkit2 build failed" in err and "Unique" in err


def test_normalised_npy_calibration_and_unknown_methods_are_refused(digits, tmp_path, capsys):
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).random((12, 1, 8, 8), dtype=np.float32))  # 0..1, not pixels
    err = _bad(tmp_path, capsys, digits / "dig_fp32.onnx", tmp_path / "cal.npy", "--task", "embed")
    assert "calibrates on pixel values 0..255" in err
    err = _bad(tmp_path, capsys, digits / "dig_fp32.onnx", digits / "cal", "--method", "percentile")
    assert "--method percentile: rknn-toolkit2 calibrates with minmax, entropy" in err


def test_a_failed_toolkit_call_is_told_by_its_own_error_line(tmp_path, capfd):
    from rknn.api import RKNN

    log = rknn_quant.ToolkitLog(tmp_path / "toolkit.log")
    with log:
        r = RKNN(verbose=False)
        code = r.init_runtime()  # nothing loaded or built
        r.release()
    log.close()
    assert code == -1
    assert log.error() == "init_runtime: RKNN model does not exist, please load & build model first!"
    printed = capfd.readouterr()
    assert "RKNN model does not exist" not in printed.out + printed.err
