"""`edgert quantize` beyond classifiers and int8 edges: a float detector (mAP checked against pycocotools), a
float embedder (EER/AUC/Rank-1 against scikit-learn and brute force), uint8/float32 edge types, per-tensor
weights, `.npy` and video calibration sets, and their bad input."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ai_edge_quantizer", reason="ai-edge-quantizer is not installed: pip install 'edgert[quantize]'")
cv2 = pytest.importorskip("cv2", reason="OpenCV is not installed: pip install opencv-python-headless")
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.metrics import roc_auc_score, roc_curve  # noqa: E402

import edgert  # noqa: E402
from edgert.bench.detection import average_precision, box_agreement  # noqa: E402
from edgert.cli.main import main  # noqa: E402
from edgert.postprocess import dequantize  # noqa: E402
from edgert.postprocess.yolo import YoloDecoder  # noqa: E402
from edgert.preprocess import Preprocessor  # noqa: E402
from edgert.quantize.calibration import CalibrationReader  # noqa: E402

DATA = Path(__file__).parent / "data"
SQUARES = ["red", "green", "blue"]
DET_PRE = {"mean": 0, "std": 255, "channel_order": "RGB"}
DIGIT_PRE = {"resize": "stretch", "interpolation": "area", "mean": 0, "std": 255}
DIGITS = [str(d) for d in range(10)]


def _run(*argv) -> int:
    return main(["quantize", *map(str, argv)])


def squares(n: int, size: int, seed: int):
    """RGB uint8 images with 1-3 bright squares of 3 classes on dark noise, and their xyxy boxes (the
    distribution benchmarks/models/make_models.py trains the squares detector on)."""
    rng = np.random.default_rng(seed)
    images, truths = [], []
    for _ in range(n):
        x = rng.uniform(0, 0.2, (size, size, 3))
        boxes, classes = [], []
        for _ in range(rng.integers(1, 4)):
            s = int(rng.integers(size // 10, size // 4))
            x0, y0 = (int(v) for v in rng.integers(0, size - s, 2))
            c = int(rng.integers(0, 3))
            x[y0:y0 + s, x0:x0 + s, c] = 1.0
            boxes.append([x0, y0, x0 + s, y0 + s])
            classes.append(c)
        images.append(np.round(x * 255).astype(np.uint8))
        truths.append((np.array(boxes, np.float64), np.array(classes)))
    return images, truths


@pytest.fixture(scope="module")
def det(tmp_path_factory):
    """The float squares detector with its card, 24 calibration images, 40 validation images with YOLO
    labels (images/ + labels/) and the same set as COCO JSON."""
    root = tmp_path_factory.mktemp("det")
    shutil.copy(DATA / "squares_detector_fp32.tflite", root / "sq_fp32.tflite")
    (root / "sq.json").write_text(json.dumps({"name": "squares", "task": "detect", "classes": SQUARES,
                                              "preprocess": DET_PRE}))
    cal, _ = squares(24, 160, seed=100)
    (root / "cal").mkdir()
    for i, im in enumerate(cal):
        cv2.imwrite(str(root / "cal" / f"{i:03d}.png"), cv2.cvtColor(im, cv2.COLOR_RGB2BGR))
    images, truths = squares(40, 160, seed=200)
    (root / "val" / "images").mkdir(parents=True)
    (root / "val" / "labels").mkdir()
    coco = {"images": [], "annotations": [], "categories": [{"id": 10 + c, "name": n} for c, n in enumerate(SQUARES)]}
    for i, (im, (boxes, classes)) in enumerate(zip(images, truths)):
        name = f"{i:03d}.png"
        cv2.imwrite(str(root / "val" / "images" / name), cv2.cvtColor(im, cv2.COLOR_RGB2BGR))
        rows = [f"{c} {(b[0] + b[2]) / 320} {(b[1] + b[3]) / 320} {(b[2] - b[0]) / 160} {(b[3] - b[1]) / 160}"
                for b, c in zip(boxes, classes)]
        (root / "val" / "labels" / f"{i:03d}.txt").write_text("\n".join(rows) + "\n")
        coco["images"].append({"id": i + 1, "file_name": name, "width": 160, "height": 160})
        for b, c in zip(boxes, classes):
            coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": i + 1, "category_id": 10 + int(c),
                                        "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                                        "area": (b[2] - b[0]) * (b[3] - b[1]), "iscrowd": 0})
    (root / "val" / "images" / "coco.json").write_text(json.dumps(coco))
    return root, coco


@pytest.fixture(scope="module")
def det_run(det):
    root, _ = det
    out, report = root / "out" / "sq_int8.tflite", root / "out" / "report.json"
    out.parent.mkdir()
    rc = _run(root / "sq_fp32.tflite", "--calibration", root / "cal", "--out", out, "--validation", root / "val",
              "--report", report, "--latency-frames", 3, "--quiet", "--max-drop", 100, "--max-class-drop", 100,
              *(["--plot", root / "out" / "report.png"] if _has_matplotlib() else []))
    return rc, out, json.loads(report.read_text())


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def test_the_report_is_drawn(det, det_run):
    if not _has_matplotlib():
        pytest.skip("matplotlib is not installed: pip install 'edgert[plot]'")
    png = det[0] / "out" / "report.png"
    image = cv2.imread(str(png))
    assert image is not None and image.shape[1] > 3 * image.shape[0]  # three panels side by side
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 10  # bars and text, not a blank canvas


def test_plot_without_matplotlib_is_refused_before_any_work(det, tmp_path, capsys, monkeypatch):
    import sys

    for name in [n for n in sys.modules if n == "matplotlib" or n.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    root, _ = det
    err = _bad(tmp_path, capsys, root / "sq_fp32.tflite", root / "cal", "--plot", tmp_path / "r.png")
    assert "--plot needs matplotlib: pip install 'edgert[plot]'" in err


def _detections(model_path: Path, folder: Path) -> list:
    """Decoded detections (source pixels) of every validation image, run outside the report's code."""
    rows = []
    with edgert.load(model_path) as m:
        dec = YoloDecoder(m.outputs, conf=0.001, iou=0.6, max_det=100, input_size=(160, 160))
        for p in sorted(folder.glob("*.png")):
            image = cv2.imread(str(p), cv2.IMREAD_COLOR)
            pre = Preprocessor(m.inputs[0], "BGR", (image.shape[1], image.shape[0]), **DET_PRE)
            d = dec(m.run(pre(image))).to_source(pre)
            rows.append((d.boxes.astype(np.float64), d.scores.astype(np.float64), d.classes))
    return rows


def _pycocotools_map(coco: dict, rows: list) -> tuple:
    """(mAP@0.5:0.95, mAP@0.5, per-class AP@0.5) from pycocotools."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO()
    gt.dataset = json.loads(json.dumps(coco))
    gt.createIndex()
    res = [{"image_id": i + 1, "category_id": 10 + int(c), "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
            "score": float(s)} for i, (boxes, scores, classes) in enumerate(rows)
           for b, s, c in zip(boxes.tolist(), scores, classes)]
    ev = COCOeval(gt, gt.loadRes(res), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    precision = ev.eval["precision"][0, :, :, 0, 2]  # IoU 0.5, all recalls, classes, area all, 100 dets
    per_class = [float(np.mean(precision[:, k])) for k in range(precision.shape[1])]
    return ev.stats[0], ev.stats[1], per_class


def test_a_float_detector_is_quantised_and_its_map_matches_pycocotools(det, det_run):
    root, coco = det
    rc, out, result = det_run
    assert rc == 0 and result["task"] == "detect"
    with edgert.load(out) as m:
        assert m.inputs[0].dtype == np.int8 and m.outputs[0].dtype == np.int8
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["task"] == "detect" and card["classes"] == SQUARES and card["quantization"]["calibration"]["used"] == 24
    acc = result["report"]["accuracy"]
    assert acc["images"] == 40
    float_rows = _detections(root / "sq_fp32.tflite", root / "val" / "images")
    int8_rows = _detections(out, root / "val" / "images")
    for key, rows in (("float", float_rows), ("int8", int8_rows)):
        m, m50, per_class = _pycocotools_map(coco, rows)
        assert acc[key]["map"] == pytest.approx(m, abs=1e-9) and acc[key]["map50"] == pytest.approx(m50, abs=1e-9)
        for name, ap in zip(SQUARES, per_class):
            assert acc["per_class"][name][f"{key}_ap50"] == pytest.approx(ap, abs=1e-9)
    assert acc["float"]["map50"] > 0.5, "the float detector should find the squares: the test needs real boxes"
    assert acc["delta_map50_pt"] == pytest.approx(100 * (acc["int8"]["map50"] - acc["float"]["map50"]))
    keep = lambda rows: [(b[s >= 0.25], s[s >= 0.25], c[s >= 0.25]) for b, s, c in rows]  # noqa: E731
    assert acc["agreement"] == box_agreement(keep(float_rows), keep(int8_rows))
    assert acc["agreement"]["agreement"] > 0.8
    assert result["report"]["verdict"]["metric"] == "mAP@0.5"


def test_coco_json_labels_give_the_same_report_as_yolo_txt(det, det_run, tmp_path):
    root, _ = det
    _, _, yolo = det_run
    report = tmp_path / "r.json"
    assert _run(root / "sq_fp32.tflite", "--calibration", root / "cal", "--out", tmp_path / "q.tflite",
                "--validation", root / "val" / "images" / "coco.json", "--report", report, "--latency-frames", 0,
                "--quiet", "--max-drop", 100, "--max-class-drop", 100) == 0
    coco = json.loads(report.read_text())["report"]["accuracy"]
    for key in ("float", "int8"):
        assert coco[key]["map"] == pytest.approx(yolo["report"]["accuracy"][key]["map"], abs=1e-9)


@pytest.mark.parametrize("seed", range(12))
def test_average_precision_matches_pycocotools_on_random_boxes(seed):
    rng = np.random.default_rng(seed)
    truths, rows, coco = [], [], {"images": [], "annotations": [], "categories": [{"id": 10 + c, "name": str(c)}
                                                                                   for c in range(3)]}
    for i in range(6):
        n = int(rng.integers(0, 5))
        xy = rng.uniform(0, 80, (n, 2))
        g = np.c_[xy, xy + rng.uniform(5, 40, (n, 2))]
        gc = rng.integers(0, 3, n)
        truths.append((g, gc))
        coco["images"].append({"id": i + 1, "width": 128, "height": 128})
        for b, c in zip(g, gc):
            coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": i + 1, "iscrowd": 0,
                                        "category_id": 10 + int(c), "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                                        "area": float((b[2] - b[0]) * (b[3] - b[1]))})
        # near-misses at every IoU threshold: shifted and rescaled, still valid boxes
        wh = (g[:, 2:] - g[:, :2]) * rng.uniform(0.6, 1.4, (n, 2))
        xy0 = g[:, :2] + rng.normal(0, 3, (n, 2))
        jitter = np.c_[xy0, xy0 + wh]
        extra = np.c_[rng.uniform(0, 80, (3, 2)), rng.uniform(90, 120, (3, 2))]
        boxes = np.r_[jitter, extra]
        rows.append((boxes, rng.uniform(0, 1, len(boxes)), np.r_[gc, rng.integers(0, 3, 3)]))
    if not coco["annotations"]:
        pytest.skip(f"seed {seed}: no ground truth drawn")
    ours = average_precision(rows, truths, 3)
    m, m50, per_class = _pycocotools_map(coco, rows)
    assert ours["map"] == pytest.approx(m, abs=1e-9), f"seed {seed}"
    assert ours["map50"] == pytest.approx(m50, abs=1e-9), f"seed {seed}"
    for c in range(3):
        if ours["per_class"][c]["ap50"] is not None:
            assert ours["per_class"][c]["ap50"] == pytest.approx(per_class[c], abs=1e-9), f"seed {seed}"


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The float digits classifier and embedder with their cards, 100 calibration digits (class folders) and
    the 450 held-out digits (class folders)."""
    root = tmp_path_factory.mktemp("emb")
    shutil.copy(DATA / "digits_embedder_fp32.tflite", root / "emb_fp32.tflite")
    (root / "emb.json").write_text(json.dumps({"name": "digits-embedder", "task": "embed", "preprocess": DIGIT_PRE}))
    shutil.copy(DATA / "digits_fp32.tflite", root / "digits_fp32.tflite")
    (root / "digits.json").write_text(json.dumps({"name": "digits", "classes": DIGITS, "preprocess": DIGIT_PRE}))
    x, y = load_digits(return_X_y=True)
    for i in range(100):
        (root / "cal" / str(y[i])).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "cal" / str(y[i]) / f"{i:04d}.png"), (x[i].reshape(8, 8) * 255 / 16).round().astype(np.uint8))
    held = np.load(DATA / "digits_test.npz")
    for i, (image, label) in enumerate(zip(held["images"], held["labels"])):
        (root / "val" / str(label)).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "val" / str(label) / f"{i:04d}.png"), image)
    return root


def _embeddings(model_path: Path, folder: Path):
    files = sorted(folder.glob("*/*.png"), key=lambda p: (p.parent.name, p.name))
    ids = np.array([int(p.parent.name) for p in files])
    rows = []
    with edgert.load(model_path) as m:
        for p in files:
            image = cv2.imread(str(p), cv2.IMREAD_COLOR)
            out = m.run(Preprocessor(m.inputs[0], "BGR", (image.shape[1], image.shape[0]), **DIGIT_PRE)(image))[0]
            rows.append((dequantize(out, m.outputs[0]) if m.outputs[0].quant else out).astype(np.float64).ravel())
    e = np.stack(rows)
    return e / np.linalg.norm(e, axis=1, keepdims=True), ids


def test_a_float_embedder_is_quantised_and_its_metrics_match_scikit_learn(digits, tmp_path):
    report = tmp_path / "r.json"
    out = tmp_path / "emb_int8.tflite"
    assert _run(digits / "emb_fp32.tflite", "--calibration", digits / "cal", "--out", out, "--validation",
                digits / "val", "--report", report, "--latency-frames", 0, "--quiet") == 0
    result = json.loads(report.read_text())
    assert result["task"] == "embed" and json.loads(out.with_suffix(".json").read_text())["task"] == "embed"
    acc = result["report"]["accuracy"]
    for key, path in (("float", digits / "emb_fp32.tflite"), ("int8", out)):
        e, ids = _embeddings(path, digits / "val")
        i, j = np.triu_indices(len(ids), k=1)
        sim, genuine = np.einsum("ij,ij->i", e[i], e[j]), ids[i] == ids[j]
        assert acc[key]["auc"] == pytest.approx(roc_auc_score(genuine, sim), abs=1e-9)
        fpr, tpr, _ = roc_curve(genuine, sim)
        k = np.argmin(np.abs(fpr - (1 - tpr)))
        assert acc[key]["eer"] == pytest.approx((fpr[k] + 1 - tpr[k]) / 2, abs=2e-3)
        full = e @ e.T
        np.fill_diagonal(full, -np.inf)
        rank1 = np.mean(ids[np.argmax(full, axis=1)] == ids)  # brute force: the nearest other image's identity
        assert acc[key]["rank1"] == pytest.approx(rank1)
    assert acc["delta_rank1_pt"] == pytest.approx(100 * (acc["int8"]["rank1"] - acc["float"]["rank1"]))
    assert acc["float"]["rank1"] > 0.9 and result["report"]["verdict"]["metric"] == "Rank-1"


@pytest.mark.parametrize("in_type,out_type", [("uint8", "uint8"), ("float32", "float32"), ("uint8", "float32")])
def test_edge_types_keep_the_int8_core(digits, tmp_path, in_type, out_type):
    base, other = tmp_path / "int8.tflite", tmp_path / f"{in_type}_{out_type}.tflite"
    for out, extra in ((base, []), (other, ["--input-type", in_type, "--output-type", out_type])):
        assert _run(digits / "digits_fp32.tflite", "--calibration", digits / "cal", "--out", out,
                    "--latency-frames", 0, "--quiet", *extra) == 0
    card = json.loads(other.with_suffix(".json").read_text())["quantization"]
    assert (card["input_type"], card["output_type"]) == (in_type, out_type)
    images = [cv2.imread(str(p)) for p in sorted((digits / "val").glob("*/*.png"))[:40]]
    with edgert.load(base) as a, edgert.load(other) as b:
        assert b.inputs[0].dtype == np.dtype(in_type) and b.outputs[0].dtype == np.dtype(out_type)
        for image in images:
            size = (image.shape[1], image.shape[0])
            ya = dequantize(a.run(Preprocessor(a.inputs[0], "BGR", size, **DIGIT_PRE)(image))[0], a.outputs[0])
            yb = b.run(Preprocessor(b.inputs[0], "BGR", size, **DIGIT_PRE)(image))[0]
            yb = yb if out_type == "float32" else dequantize(yb, b.outputs[0])
            np.testing.assert_array_equal(ya, yb)  # same real input values, same int8 core, exact edges


def _external_buffers(path: Path) -> int:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(path.read_bytes(), 0)
    return sum(model.Buffers(i).Offset() > 1 for i in range(model.BuffersLength()))


def test_uint8_edges_on_a_model_whose_weights_follow_the_flatbuffer(tmp_path):
    # ai-edge-quantizer stores 256 KiB of weights or more after the flatbuffer; the edges must keep them
    with edgert.load(DATA / "mobilenetv2_fp32.tflite") as m:
        shape = m.inputs[0].shape
    rng = np.random.default_rng(0)
    np.save(tmp_path / "cal.npy", rng.uniform(-1, 1, (10, *shape[1:])).astype(np.float32))
    base, other = tmp_path / "int8.tflite", tmp_path / "uint8.tflite"
    for out, kind in ((base, "int8"), (other, "uint8")):
        assert _run(DATA / "mobilenetv2_fp32.tflite", "--calibration", tmp_path / "cal.npy", "--out", out,
                    "--latency-frames", 0, "--quiet", "--input-type", kind, "--output-type", kind) == 0
    assert _external_buffers(base) > 0  # the case under test
    with edgert.load(base) as a, edgert.load(other) as b:
        assert b.inputs[0].dtype == b.outputs[0].dtype == np.uint8
        for _ in range(3):
            x = rng.integers(-128, 128, shape, dtype=np.int8)
            ya = dequantize(a.run(x)[0], a.outputs[0])
            yb = dequantize(b.run((x.astype(np.int16) + 128).astype(np.uint8))[0], b.outputs[0])
            np.testing.assert_array_equal(ya, yb)


def _weight_scales(path: Path) -> list:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    sg = model.subgraphs[0]
    return [len(t.quantization.scale) for t in sg.tensors
            if t.type == schema.TensorType.INT8 and t.buffer and model.buffers[t.buffer].data is not None
            and t.quantization is not None and t.quantization.scale is not None and len(t.shape) == 4]


def test_per_tensor_weights_have_one_scale(digits, tmp_path):
    for flag, out in (("--per-channel", tmp_path / "pc.tflite"), ("--per-tensor", tmp_path / "pt.tflite")):
        assert _run(digits / "digits_fp32.tflite", "--calibration", digits / "cal", "--out", out,
                    "--latency-frames", 0, "--quiet", flag) == 0
    assert max(_weight_scales(tmp_path / "pc.tflite")) > 1 and set(_weight_scales(tmp_path / "pt.tflite")) == {1}
    assert json.loads((tmp_path / "pt.json").read_text())["quantization"]["granularity"] == "per-tensor"


def test_npy_tensors_calibrate_exactly_as_the_images_they_came_from(digits, tmp_path):
    with edgert.load(digits / "digits_fp32.tflite") as m:
        spec = m.inputs[0]
    reader = CalibrationReader(spec, digits / "cal", preprocess=DIGIT_PRE, min_samples=10)
    stack = np.concatenate([t for t in reader])  # (100, 8, 8, 1), the Preprocessor's tensors in feeding order
    np.save(tmp_path / "cal.npy", stack)
    (tmp_path / "npys").mkdir()
    np.save(tmp_path / "npys" / "a.npy", stack[:50])
    np.save(tmp_path / "npys" / "b.npy", stack[50:])
    outs = {}
    for name, cal in (("images", digits / "cal"), ("npy", tmp_path / "cal.npy"), ("npydir", tmp_path / "npys")):
        outs[name] = tmp_path / f"{name}.tflite"
        assert _run(digits / "digits_fp32.tflite", "--calibration", cal, "--out", outs[name], "--latency-frames", 0,
                    "--quiet") == 0
    assert outs["npy"].read_bytes() == outs["images"].read_bytes() == outs["npydir"].read_bytes()
    summary = json.loads((tmp_path / "npy.json").read_text())["quantization"]["calibration"]
    assert summary["kind"] == "npy" and summary["used"] == 100


def _video(path: Path, frames: int) -> None:
    x, _ = load_digits(return_X_y=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 32))
    assert writer.isOpened()
    for i in range(frames):
        big = cv2.resize((x[i].reshape(8, 8) * 255 / 16).round().astype(np.uint8), (32, 32),
                         interpolation=cv2.INTER_NEAREST)
        writer.write(cv2.cvtColor(big, cv2.COLOR_GRAY2BGR))
    writer.release()


def test_a_video_calibrates_on_evenly_spaced_frames(digits, tmp_path, caplog):
    _video(tmp_path / "cal.avi", 60)
    out = tmp_path / "v.tflite"
    assert _run(digits / "digits_fp32.tflite", "--calibration", tmp_path / "cal.avi", "--out", out,
                "--samples", 20, "--latency-frames", 0, "--quiet") == 0
    summary = json.loads((tmp_path / "v.json").read_text())["quantization"]["calibration"]
    assert summary["kind"] == "video" and summary["found"] == 60 and summary["used"] == 20
    with edgert.load(out) as m:
        assert m.inputs[0].dtype == np.int8


def _bad(tmp_path, capsys, model, cal, *extra):
    out = tmp_path / "out" / "q.tflite"
    out.parent.mkdir(exist_ok=True)
    rc = _run(model, "--calibration", cal, "--out", out, "--latency-frames", 0, "--quiet", *extra)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("edgert: "), err
    assert [p.name for p in out.parent.iterdir()] == []  # nothing written, no temp file left
    return err


def test_bad_npy_and_video_calibration(digits, tmp_path, capsys):
    model = digits / "digits_fp32.tflite"
    np.save(tmp_path / "wrong.npy", np.zeros((5, 16, 16, 1), np.float32))
    assert "tensors of shape (5, 16, 16, 1); the model takes (1, 8, 8, 1)" in _bad(tmp_path, capsys, model,
                                                                                 tmp_path / "wrong.npy")
    np.save(tmp_path / "nan.npy", np.full((12, 8, 8, 1), np.nan, np.float32))
    assert "NaN" in _bad(tmp_path, capsys, model, tmp_path / "nan.npy")
    np.save(tmp_path / "few.npy", np.zeros((3, 8, 8, 1), np.float32))
    assert "3 tensor(s) for a model of 10 classes" in _bad(tmp_path, capsys, model, tmp_path / "few.npy")
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    assert "cannot read this video" in _bad(tmp_path, capsys, model, tmp_path / "broken.mp4")
    (tmp_path / "notes.txt").write_text("hello")
    assert "expected an image folder, a video" in _bad(tmp_path, capsys, model, tmp_path / "notes.txt")


def test_bad_detection_labels(det, tmp_path, capsys):
    root, coco = det
    model = root / "sq_fp32.tflite"
    bad = json.loads(json.dumps(coco))
    bad["categories"][1]["name"] = "purple"
    (root / "val" / "images" / "bad.json").write_text(json.dumps(bad))
    err = _bad(tmp_path, capsys, model, root / "cal", "--validation", root / "val" / "images" / "bad.json")
    assert "categories not among the model's labels: purple" in err
    bad = json.loads(json.dumps(coco))
    bad["annotations"][0]["image_id"] = 999
    (root / "val" / "images" / "bad.json").write_text(json.dumps(bad))
    err = _bad(tmp_path, capsys, model, root / "cal", "--validation", root / "val" / "images" / "bad.json")
    assert "annotation 0: expected bbox [x, y, w, h] and an image_id" in err
    yolo = tmp_path / "yolo"
    (yolo / "images").mkdir(parents=True)
    (yolo / "labels").mkdir()
    shutil.copy(root / "val" / "images" / "000.png", yolo / "images" / "a.png")
    (yolo / "labels" / "a.txt").write_text("7 0.5 0.5 0.1 0.1\n")
    assert "expected 'class cx cy w h' with a class in 0..2" in _bad(tmp_path, capsys, model, root / "cal",
                                                                   "--validation", yolo)
    (yolo / "labels" / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (yolo / "classes.txt").write_text("red\nblue\ngreen\n")
    assert "do not match the model's labels" in _bad(tmp_path, capsys, model, root / "cal", "--validation", yolo)


def test_operators_the_quantiser_leaves_in_float_are_named(digits, tmp_path, capsys):
    err = _bad(tmp_path, capsys, DATA / "float_op_fp32.tflite", digits / "cal", "--task", "embed")
    assert "the quantiser cannot make these operators int8: SIN; nothing written" in err
    out = tmp_path / "kept.tflite"
    assert _run(DATA / "float_op_fp32.tflite", "--calibration", digits / "cal", "--out", out, "--task", "embed",
                "--latency-frames", 0, "--quiet", "--allow-float-ops") == 0
    assert json.loads(out.with_suffix(".json").read_text())["quantization"]["float_ops"] == ["SIN"]


def test_fewer_samples_than_asked_warns_and_goes_on(digits, tmp_path, caplog):
    out = tmp_path / "q.tflite"
    with caplog.at_level("WARNING", logger="edgert.quantize.calibration"):
        assert _run(digits / "digits_fp32.tflite", "--calibration", digits / "cal", "--out", out, "--samples", 150,
                    "--latency-frames", 0, "--quiet") == 0
    assert "150 images asked for, 100 found; calibrating with 100" in caplog.text
    summary = json.loads(out.with_suffix(".json").read_text())["quantization"]["calibration"]
    assert summary["requested"] == 150 and summary["used"] == 100
