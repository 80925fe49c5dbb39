"""`edgert quantize --target rknn --soc rk3588` measured for real with rknn-toolkit2 (dev-only venv: benchmarks/models/
requirements-rknn.txt). Three models, one process:

* the digits perceptron of tests/onnx_builder.py (float .onnx, dynamic batch): `edgert quantize` to a ``.rknn``
  with its simulator report on the 450 held-out digits (tests/data/digits_test.npz; 45 a class, one image is
  2.2 pt of a class), beside `edgert quantize` to an int8 QDQ ``.onnx`` of the same model and calibration (the
  onnx target, ONNX Runtime);
* a small CNN (32x32 RGB, a stem and three depthwise-separable blocks with BatchNorm and ReLU6, trained here with
  torch on benchmarks/quantize_vs_tf.py's training split), the same two targets on the same 450 held-out digits;
* the PP-OCRv4 text detector (edgert/models/ppocr, 4.7 MB float, 320x320): converted and quantised on 40 rendered
  plates (tests/plate_renderer.py, seeds 1000..1039), then float ONNX against the simulator on 30 other plates
  (seeds 0..29): plates whose rows the DB decoder finds (as tests/test_postprocess_db_text.py checks), the mean
  absolute difference of the text maps and the IoU of their text pixels (p > the card's threshold).

    /work/venv-rknn/bin/python benchmarks/quantize_rknn.py /tmp/qrknn [--out benchmarks/quantize_rknn.json]

Conversion time is the toolkit session (load_onnx, build with calibration, export) on this machine's 2 shared
cores; the simulator's inference time says nothing of the NPU's and is not reported.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "benchmarks")]



def _timed_quantise():
    """Wrap `Conversion.quantise` to record each toolkit session's seconds."""
    from edgert.quantize import rknn

    seconds = []
    real = rknn.Conversion.quantise

    def quantise(self, samples, progress=None):
        samples = list(samples)  # calibration images read and preprocessed outside the timed part
        t0 = time.perf_counter()
        try:
            return real(self, samples, progress)
        finally:
            seconds.append(time.perf_counter() - t0)

    rknn.Conversion.quantise = quantise
    return seconds


def _digits_data(root: Path) -> None:
    from onnx_builder import digits_job

    digits_job(root, 0)


def _classify_summary(result: dict) -> dict:
    rep = result["report"]
    acc = rep["accuracy"]
    return {"float_bytes": rep["sizes"]["float_bytes"], "int8_bytes": rep["sizes"]["int8_bytes"],
            "ratio": round(rep["sizes"]["ratio"], 4), "float_top1": acc["float"]["top1"],
            "int8_top1": acc["int8"]["top1"], "delta_top1_pt": round(acc["delta_top1_pt"], 2),
            "agreement": acc["agreement"], "largest_drops": acc["largest_drops"],
            "per_class_int8_top1": {c: r["int8_top1"] for c, r in acc["per_class"].items()},
            "verdict": rep["verdict"]["passed"], "tool": result["quantization"]["tool"]}


def digits(root: Path, seconds: list) -> dict:
    from edgert.quantize.job import QuantizeOptions, run

    root.mkdir(parents=True, exist_ok=True)
    _digits_data(root)
    common = dict(calibration=str(root / "cal"), validation=str(root / "val"), latency_frames=0)
    t0 = time.perf_counter()
    rk = run(QuantizeOptions(str(root / "dig_fp32.onnx"), out=str(root / "dig_rk3588.rknn"), target="rknn",
                             soc="rk3588", **common))
    total = time.perf_counter() - t0
    qdq = run(QuantizeOptions(str(root / "dig_fp32.onnx"), out=str(root / "dig_int8.onnx"), **common))
    return {"rknn_rk3588": {**_classify_summary(rk), "conversion_s": round(seconds[-1], 2),
                            "command_s": round(total, 2)},
            "onnx_qdq": _classify_summary(qdq)}


CNN_PRE = {"resize": "stretch", "interpolation": "bilinear", "mean": 127.5, "std": 127.5, "channel_order": "RGB"}


def _cnn(torch):
    """A small MobileNet-style classifier: a stride-2 stem, three depthwise-separable blocks, global pooling."""
    nn = torch.nn

    def block(cin, cout, stride):
        return [nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU6(),
                nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6()]

    return nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(),
                         *block(16, 32, 1), *block(32, 64, 2), *block(64, 96, 2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(96, 10))


def cnn(root: Path, seconds: list, size: int = 32, epochs: int = 30) -> dict:
    """The digits at 32x32 RGB (as benchmarks/quantize_vs_tf.py splits them) through a CNN trained here with torch
    (the toolkit needs it anyway) on edgert's Preprocessor tensors, exported as ONNX; then --target rknn and the
    onnx target, 200 calibration images from the training split, the 450 held-out digits as validation."""
    import cv2
    import torch
    from quantize_vs_tf import _split

    import edgert
    from edgert.preprocess import Preprocessor
    from edgert.quantize.job import QuantizeOptions, run

    torch.manual_seed(0)
    xtr, xte, ytr, yte = _split()
    for name, x, y in (("cal", xtr[:200], ytr[:200]), ("val", xte, yte)):
        for i, (image, label) in enumerate(zip(x, y)):
            (root / name / str(label)).mkdir(parents=True, exist_ok=True)
            gray = np.round(image[..., 0] * 255).astype(np.uint8)
            cv2.imwrite(str(root / name / str(label) / f"{i:04d}.png"), cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    pre = Preprocessor(edgert.TensorSpec("image", (1, 3, size, size), np.float32), "BGR", (8, 8), **CNN_PRE)
    tx = np.concatenate([pre(cv2.cvtColor(np.round(i[..., 0] * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)).copy()
                         for i in xtr])  # a Preprocessor reuses its output buffer
    net = _cnn(torch)
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    t0 = time.perf_counter()
    for _ in range(epochs):
        net.train()
        for b in torch.randperm(len(tx)).split(64):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(tx[b.numpy()])),
                                                     torch.from_numpy(ytr[b.numpy()]).long())
            loss.backward()
            opt.step()
    train_s = time.perf_counter() - t0
    net.eval()
    torch.onnx.export(net, torch.from_numpy(tx[:1]), str(root / "cnn_fp32.onnx"), input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=17)
    from onnx_builder import DIGITS

    (root / "cnn.json").write_text(json.dumps({"name": "cnn", "classes": DIGITS, "preprocess": CNN_PRE}))
    common = dict(calibration=str(root / "cal"), validation=str(root / "val"), latency_frames=0)
    rk = run(QuantizeOptions(str(root / "cnn_fp32.onnx"), out=str(root / "cnn_rk3588.rknn"), target="rknn",
                             soc="rk3588", **common))
    conversion_s = seconds[-1]
    qdq = run(QuantizeOptions(str(root / "cnn_fp32.onnx"), out=str(root / "cnn_int8.onnx"), **common))
    return {"model": f"{size}x{size} RGB, stem + 3 depthwise-separable blocks (BN, ReLU6), trained {epochs} epochs "
                     f"on the 1347 training digits in {train_s:.0f} s",
            "rknn_rk3588": {**_classify_summary(rk), "conversion_s": round(conversion_s, 2)},
            "onnx_qdq": _classify_summary(qdq)}


def _plates_found(decoder, outputs, pre, case) -> bool:
    found = decoder(outputs[0], to_source=pre.to_source)
    if len(found.quads) != len(case.rows):
        return False
    lo, hi = case.quad.min(0) - 8, case.quad.max(0) + 8
    centres = found.quads.mean(1)
    return bool(((centres > lo) & (centres < hi)).all())


def ppocr(root: Path, seconds: list, calibration: int = 40, validation: int = 30) -> dict:
    import cv2
    from plate_renderer import render_case

    import edgert
    from edgert.backends import onnx_graph
    from edgert.models.cards import read_card
    from edgert.postprocess.db_text import DbTextDecoder
    from edgert.preprocess import Preprocessor
    from edgert.quantize import rknn
    from edgert.quantize.calibration import calibration_set
    from edgert.quantize.onnx import import_onnx, inspect_float

    path = ROOT / "edgert" / "models" / "ppocr" / "ch_PP-OCRv4_det_infer.onnx"
    card = read_card(path)
    cal = root / "cal"
    cal.mkdir(parents=True, exist_ok=True)
    for s in range(1000, 1000 + calibration):
        cv2.imwrite(str(cal / f"{s}.png"), render_case(s).frame)
    proto, shape = inspect_float(import_onnx()[0], path, card.input_spec.get("input_shape"))
    conv = rknn.Conversion(path, onnx_graph.graph_inputs(proto.graph)[0].name, shape, card.preprocess, "rk3588",
                           simulate=True)
    with edgert.load(path, backend="onnx", input_shape=shape) as m:
        spec = m.inputs[0]
    reader = calibration_set(spec, cal, None, {**card.preprocess, "mean": 0.0, "std": 1.0})
    q = conv.quantise(reader)
    (root / "det.rknn").write_bytes(q.data)
    found = {"float": 0, "int8": 0}
    mad, iou = [], []
    with conv.open(path) as f, conv.open(root / "det.rknn") as s:
        decoder = DbTextDecoder.from_card(f.outputs[0], card.decoder)
        threshold = card.decoder.get("threshold", 0.3)
        for seed in range(validation):
            case = render_case(seed)
            pre = Preprocessor(spec, "BGR", (case.frame.shape[1], case.frame.shape[0]), **card.preprocess)
            x = pre(case.frame)
            fo, so = f.run(x), s.run(x)
            found["float"] += _plates_found(decoder, fo, pre, case)
            found["int8"] += _plates_found(decoder, [so[0].reshape(fo[0].shape)], pre, case)
            a, b = fo[0].ravel() > threshold, so[0].ravel() > threshold
            mad.append(float(np.abs(fo[0].ravel() - so[0].ravel()).mean()))
            iou.append(float((a & b).sum() / max((a | b).sum(), 1)))
    size = path.stat().st_size
    return {"float_bytes": size, "int8_bytes": len(q.data), "ratio": round(len(q.data) / size, 4),
            "input_shape": list(shape), "calibration_images": calibration, "validation_plates": validation,
            "plates_found_float": found["float"], "plates_found_int8": found["int8"],
            "map_mean_abs_diff": round(float(np.mean(mad)), 5), "text_pixel_iou_mean": round(float(np.mean(iou)), 4),
            "text_pixel_iou_min": round(float(np.min(iou)), 4), "conversion_s": round(seconds[-1], 2),
            "tool": q.tool}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("work", type=Path, help="scratch folder")
    ap.add_argument("--out", type=Path, help="write the figures as JSON")
    args = ap.parse_args()
    seconds = _timed_quantise()
    result = {"what": "edgert quantize --target rknn --soc rk3588 with rknn-toolkit2 (w8a8, normal algorithm, "
                      "per-channel), int8 figures from the toolkit's simulator",
              "versions": {p: metadata.version(p) for p in ("rknn-toolkit2", "torch", "onnx", "onnxruntime", "numpy")},
              "machine": "x86_64, 2 shared cores: conversion times are indicative only",
              "digits": digits(args.work / "digits", seconds),
              "cnn": cnn(args.work / "cnn", seconds),
              "ppocr_det": ppocr(args.work / "ppocr", seconds)}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
