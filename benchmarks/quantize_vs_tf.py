"""`edgert quantize` against TensorFlow's converter on the same float MobileNetV2 (dev-only; TensorFlow in its own venv).

Three steps, two environments (TensorFlow never enters edgert's):

    # 1. edgert's venv: the digits as PNG folders and edgert's calibration tensors (cal.npy)
    python benchmarks/quantize_vs_tf.py data /tmp/qvt --size 224 --size 96
    # 2. a TensorFlow venv (benchmarks/models/requirements-dev.txt): train MobileNetV2 (alpha 0.35 and 1.0) on
    #    upscaled digits as benchmarks/models/make_models.py does, write the float .tflite and the converter's
    #    int8 (representative dataset = the same cal.npy tensors, uint8 input/output as make_models)
    /work/tfvenv/bin/python benchmarks/quantize_vs_tf.py train /tmp/qvt --alpha 0.35
    /work/tfvenv/bin/python benchmarks/quantize_vs_tf.py train /tmp/qvt --alpha 1.0 --size 96   # weights as at 224
    # 3. edgert's venv: edgert quantize each float model on the same calibration images, then both int8
    #    files measured by edgert's own report code (CPU backend) on the 450 held-out digits
    python benchmarks/quantize_vs_tf.py compare /tmp/qvt --alpha 0.35 --samples 200
    python benchmarks/quantize_vs_tf.py compare /tmp/qvt --alpha 1.0 --size 96
    # alpha 1.0 trained longer: data --size 64, train --alpha 1.0 --size 64 --epochs 6, compare --alpha 1.0 --size 64

Step 3 prints one table per model and writes compare.json; benchmarks/quantize_vs_tf.json keeps the figures
measured here (2026-12-02).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

SEED = 0
PRE = {"resize": "stretch", "interpolation": "bilinear", "mean": 127.5, "std": 127.5, "channel_order": "RGB"}
CLASSES = [str(d) for d in range(10)]


def _split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]
    return train_test_split(x, d.target, test_size=0.25, random_state=SEED, stratify=d.target)


def _spec(size: int):
    from edgert.core.tensor import TensorSpec

    return TensorSpec("input", (1, size, size, 3), np.float32)


def _name(alpha: float, size: int) -> str:
    return f"mnv2_{alpha}" if size == 224 else f"mnv2_{alpha}_{size}"


def data_step(root: Path, cal_count: int, sizes: list) -> None:
    """PNG folders (8x8 digits as BGR, class subfolders) and cal.npy: edgert's Preprocessor tensors of cal/."""
    import cv2

    from edgert.quantize.calibration import calibration_set

    xtr, xte, ytr, yte = _split()
    for name, x, y in (("cal", xtr[:cal_count], ytr[:cal_count]), ("val", xte, yte)):
        for i, (image, label) in enumerate(zip(x, y)):
            folder = root / name / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            gray = np.round(image[..., 0] * 255).astype(np.uint8)
            cv2.imwrite(str(folder / f"{i:04d}.png"), cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    for size in sizes:
        reader = calibration_set(_spec(size), root / "cal", None, PRE, 10)
        npy = root / ("cal.npy" if size == 224 else f"cal_{size}.npy")
        np.save(npy, np.concatenate(list(reader)))
        print(f"wrote {root}/cal ({len(reader)} images), {root}/val ({len(yte)}), {npy}")


def train_step(root: Path, alphas: list, epochs: int, size: int) -> None:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(SEED)
    xtr, _xte, ytr, _yte = _split()
    up = lambda x: tf.image.resize(np.repeat(x, 3, axis=-1), (size, size)).numpy() * 2 - 1  # noqa: E731
    rep = np.load(root / ("cal.npy" if size == 224 else f"cal_{size}.npy"))
    for alpha in alphas:
        name = _name(alpha, size)
        base = tf.keras.applications.MobileNetV2((size, size, 3), alpha=alpha, weights=None, classes=10,
                                                 classifier_activation=None)
        for layer in base.layers:
            if isinstance(layer, tf.keras.layers.BatchNormalization):
                layer.momentum = 0.8
        base.compile(optimizer="adam", loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        t0 = time.time()
        base.fit(up(xtr), ytr, epochs=epochs, batch_size=32, verbose=0)
        conv = tf.lite.TFLiteConverter.from_keras_model(base)
        (root / f"{name}_fp32.tflite").write_bytes(conv.convert())
        conv = tf.lite.TFLiteConverter.from_keras_model(base)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([rep[i:i + 1]] for i in range(len(rep)))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.uint8
        (root / f"{name}_tf_int8.tflite").write_bytes(conv.convert())
        (root / f"{name}.json").write_text(json.dumps({"name": name, "classes": CLASSES, "preprocess": PRE}))
        print(f"alpha {alpha}, {size}x{size}: trained {epochs} epochs in {time.time() - t0:.0f} s; tensorflow {tf.__version__}")


def compare_step(root: Path, alphas: list, samples: int | None, size: int) -> None:
    from edgert.quantize import report as rep
    from edgert.quantize.job import QuantizeOptions, run

    results = {}
    for alpha in alphas:
        name = _name(alpha, size)
        fp32, tf_int8 = root / f"{name}_fp32.tflite", root / f"{name}_tf_int8.tflite"
        ours = run(QuantizeOptions(str(fp32), str(root / "cal"), str(root / f"{name}_edgert_int8.tflite"),
                                   str(root / "val"), samples=samples, latency_frames=50))["report"]
        theirs = {"sizes": rep.sizes(fp32, tf_int8),
                  "latency": {"float": ours["latency"]["float"], "int8": rep.latency(tf_int8, PRE, 50)},
                  "accuracy": rep.classify_accuracy(fp32, tf_int8, root / "val", CLASSES, PRE)}
        theirs["verdict"] = rep.verdict(theirs["accuracy"], 1.0, 2.0)
        results[name] = {"edgert": _summary(ours), "tensorflow": _summary(theirs)}
        print(f"\n== {name}: edgert quantize (ai-edge-quantizer) ==\n{rep.format_report(ours)}")
        print(f"\n== {name}: TensorFlow converter ==\n{rep.format_report(theirs)}")
    out = root / "compare.json"
    previous = json.loads(out.read_text()) if out.exists() else {}
    out.write_text(json.dumps({**previous, **results}, indent=2) + "\n")
    print(json.dumps(results, indent=2))


def _summary(report: dict) -> dict:
    acc = report["accuracy"]
    drops = [-r["delta_top1_pt"] for r in acc["per_class"].values() if r["delta_top1_pt"] is not None]
    return {"float_bytes": report["sizes"]["float_bytes"], "int8_bytes": report["sizes"]["int8_bytes"],
            "ratio": round(report["sizes"]["ratio"], 4), "float_top1": acc["float"]["top1"],
            "int8_top1": acc["int8"]["top1"], "delta_top1_pt": round(acc["delta_top1_pt"], 2),
            "worst_class_drop_pt": round(max(drops), 2), "agreement": acc["agreement"],
            "int8_p50_ms": report["latency"]["int8"].get("p50_ms"), "float_p50_ms": report["latency"]["float"].get("p50_ms"),
            "passed": report["verdict"]["passed"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=("data", "train", "compare"))
    ap.add_argument("root", type=Path)
    ap.add_argument("--alpha", type=float, action="append")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--cal", type=int, default=200, help="calibration images written by the data step")
    ap.add_argument("--samples", type=int, default=None, help="calibration images edgert draws (default: all)")
    ap.add_argument("--size", type=int, action="append", help="input size (default 224; the data step takes several)")
    args = ap.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    alphas = args.alpha or [0.35]
    sizes = args.size or [224]
    if args.step == "data":
        data_step(args.root, args.cal, sizes)
    elif args.step == "train":
        train_step(args.root, alphas, args.epochs, sizes[0])
    else:
        compare_step(args.root, alphas, args.samples, sizes[0])


if __name__ == "__main__":
    main()
