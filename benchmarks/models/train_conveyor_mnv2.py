"""The project's float classifier: MobileNetV2 alpha 1.0 on the synthetic conveyor scene (dev-only).

The float parent that `edgert quantize` is judged on (issue 14), with the int8 file TensorFlow's
converter makes of it for comparison. Two steps in two environments (TensorFlow stays out of
edgert's own venv):

    # edgert's venv: render, preprocess, write the calibration and validation ImageFolders + cal.npy
    python benchmarks/models/train_conveyor_mnv2.py data /tmp/cmn
    # a TensorFlow venv (pip install -r benchmarks/models/requirements-dev.txt): train from scratch,
    # write the float .tflite (+ card) and the converter's full-int8 .tflite into benchmarks/data/
    nice -n 10 /work/tfvenv/bin/python benchmarks/models/train_conveyor_mnv2.py train /tmp/cmn

`benchmarks/quantize_classifier.py` then quantises the float model with `edgert quantize` and
measures both int8 files with edgert's report code.

Frames come from `edgert.sources.conveyor.ConveyorSource` and become model input through
`edgert.preprocess.Preprocessor` with the card's preprocessing (`train_conveyor.PREPROCESS`: stretch,
area, RGB), as on the device; they are stored as the 96x96 uint8 RGB pixels before normalisation, so
that the card's preprocessing of a stored image is the device's tensor up to the rounding of the
resized pixel to a grey level (checked by the data step; the int8 input quantises to 2/255 anyway).

* Training: seeds 1000-1109, every 3rd frame (`train_conveyor.render`: empty belt -> "belt", partial
  views labelled when >= 60% visible).
* Calibration (`cal/`): `CAL_PER_CLASS` training images per class, spread evenly over the training
  frames of each class (the quantiser sees training data, as a user would give it).
* Validation (`val/`): held-out seeds `VAL_SEEDS` (< 1000, none of them the demo's test seeds 0-11,
  none used in training), every `VAL_STRIDE`-th frame, only frames whose truth is certain (an item
  fully in view, or empty belt), `VAL_PER_CLASS` images per class spread evenly over what was found
  (one image = 0.31 pt of a class).
* `cal.npy`: edgert's own calibration tensors of `cal/` (`calibration_set` with the card's preprocessing),
  the converter's representative dataset, so both quantisers see the same tensors.

Rendering is a function of the seed, so the folders are the same on every run.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_conveyor import INPUT, PREPROCESS, TRAIN_SEEDS, TRAIN_STRIDE, render  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "benchmarks" / "data"
FP32 = OUT / "conveyor_mnv2_fp32.tflite"
TF_INT8 = OUT / "conveyor_mnv2_tf_int8.tflite"
CLASSES = ("belt", "bottle", "can", "paper", "glass")
VAL_SEEDS = range(100, 140)
VAL_STRIDE = 2
VAL_PER_CLASS = 320
CAL_PER_CLASS = 60
ITEMS_PER_SEED = 12
EPOCHS = 4
BATCH = 32
SEED = 0


# -- data (edgert venv) ------------------------------------------------------------------------------
def _write_folder(folder: Path, pixels, labels, per_class: int, tag: str) -> dict:
    import cv2

    counts = {}
    for c, name in enumerate(CLASSES):
        idx = np.flatnonzero(labels == c)
        if len(idx) < per_class:
            raise SystemExit(f"{tag}: only {len(idx)} {name} frames, {per_class} wanted")
        pick = idx[np.linspace(0, len(idx) - 1, per_class).round().astype(int)]
        sub = folder / name
        sub.mkdir(parents=True, exist_ok=True)
        for i in pick:
            cv2.imwrite(str(sub / f"{tag}_{i:06d}.png"), cv2.cvtColor(pixels[i], cv2.COLOR_RGB2BGR))
        counts[name] = int(len(pick))
    return counts


def _validation_frames():
    """(pixels, class) of every `VAL_STRIDE`-th frame of the held-out seeds whose truth is certain."""
    xs, ys = [], []
    for seed in VAL_SEEDS:
        x, y, items, full = render(seed, VAL_STRIDE)
        certain = full | (items < 0)  # an item fully in view, or empty belt
        xs.append(x[certain])
        ys.append(y[certain])
    return np.concatenate(xs), np.concatenate(ys)


def _check_device_tensor(seed: int = VAL_SEEDS.start) -> float:
    """Largest difference between the float tensor of a full frame and that of its stored pixels."""
    import edgert
    from edgert.preprocess import Preprocessor
    from edgert.sources.conveyor import ConveyorConfig, ConveyorSource

    config = ConveyorConfig(fps=0, seed=seed, items=1)
    spec_f = edgert.TensorSpec("x", (1, INPUT[1], INPUT[0], 3), np.float32, None)
    spec_u = edgert.TensorSpec("x", (1, INPUT[1], INPUT[0], 3), np.uint8, None)
    device = Preprocessor(spec_f, "BGR", config.size, **PREPROCESS)
    pixels = Preprocessor(spec_u, "BGR", config.size, **{**PREPROCESS, "mean": 0.0, "std": 1.0})
    worst = 0.0
    with ConveyorSource(config) as source:
        for i, frame in enumerate(source):
            if i % 7:
                continue
            stored = np.ascontiguousarray(pixels(frame.pixels)[0][..., ::-1])  # as written: BGR 96x96
            again = Preprocessor(spec_f, "BGR", (INPUT[0], INPUT[1]), **PREPROCESS)(stored)
            worst = max(worst, float(np.abs(again - device(frame.pixels)).max()))
    return worst


def make_data(root: Path) -> None:
    from edgert.core.tensor import TensorSpec
    from edgert.quantize.calibration import calibration_set

    t0 = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    xs, ys = [], []
    for seed in TRAIN_SEEDS:
        x, y, _, _ = render(seed, TRAIN_STRIDE)
        keep = y >= 0
        xs.append(x[keep])
        ys.append(y[keep])
    x_train, y_train = np.concatenate(xs), np.concatenate(ys)
    np.savez(root / "train.npz", x=x_train, y=y_train)
    print(f"train: {len(y_train)} frames, per class {np.bincount(y_train).tolist()} "
          f"({time.perf_counter() - t0:.0f} s)")
    cal = _write_folder(root / "cal", x_train, y_train, CAL_PER_CLASS, "train")
    x_val, y_val = _validation_frames()
    print(f"validation frames found: per class {np.bincount(y_val).tolist()}")
    val = _write_folder(root / "val", x_val, y_val, VAL_PER_CLASS, "val")
    spec = TensorSpec("input", (1, INPUT[1], INPUT[0], 3), np.float32)
    reader = calibration_set(spec, root / "cal", None, PREPROCESS, len(CLASSES))
    np.save(root / "cal.npy", np.concatenate(list(reader)))
    worst = _check_device_tensor()
    info = {"train_seeds": [TRAIN_SEEDS.start, TRAIN_SEEDS.stop - 1], "train_stride": TRAIN_STRIDE,
            "train_frames": len(y_train), "train_frames_per_class": np.bincount(y_train).tolist(),
            "calibration_per_class": cal, "validation_seeds": [VAL_SEEDS.start, VAL_SEEDS.stop - 1],
            "validation_stride": VAL_STRIDE, "validation_per_class": val,
            "stored_vs_device_tensor_max_abs_diff": worst}
    (root / "data.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info), f"\nwrote {root} in {time.perf_counter() - t0:.0f} s")


# -- training (TensorFlow venv) ----------------------------------------------------------------------
def train(root: Path) -> None:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(SEED)
    tf.config.threading.set_intra_op_parallelism_threads(2)
    d = np.load(root / "train.npz")
    x, y = d["x"], d["y"].astype(np.int32)

    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(y), seed=SEED, reshuffle_each_iteration=True)
    ds = ds.batch(BATCH).map(lambda a, b: ((tf.cast(a, tf.float32) - 127.5) / 127.5, b))
    ds = ds.map(lambda a, b: (tf.image.random_flip_up_down(tf.image.random_flip_left_right(a, seed=SEED),
                                                           seed=SEED), b)).prefetch(2)
    model = tf.keras.applications.MobileNetV2(input_shape=(INPUT[1], INPUT[0], 3), alpha=1.0, weights=None,
                                              classes=len(CLASSES))
    for layer in model.layers:  # few epochs: moving statistics must follow the weights
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.momentum = 0.9
    steps = EPOCHS * ((len(y) + BATCH - 1) // BATCH)
    lr = tf.keras.optimizers.schedules.CosineDecay(2e-3, steps)
    model.compile(optimizer=tf.keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    t0 = time.perf_counter()
    history = model.fit(ds, epochs=EPOCHS, verbose=2)
    train_s = time.perf_counter() - t0

    OUT.mkdir(parents=True, exist_ok=True)
    FP32.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    rep = np.load(root / "cal.npy")
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([rep[i:i + 1]] for i in range(len(rep)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8  # edgert quantize's default edges
    TF_INT8.write_bytes(conv.convert())
    info = {"tensorflow": tf.__version__, "architecture": "keras.applications.MobileNetV2(alpha=1.0, "
            f"weights=None, input_shape=({INPUT[1]}, {INPUT[0]}, 3), classes={len(CLASSES)}), softmax output",
            "epochs": EPOCHS, "batch": BATCH, "optimizer": "Adam, cosine decay from 2e-3", "seed": SEED,
            "augmentation": "random horizontal and vertical flips", "batchnorm_momentum": 0.9,
            "train_frames": len(y), "train_seconds": round(train_s), "parameters": int(model.count_params()),
            "final_train_accuracy": round(float(history.history["accuracy"][-1]), 4)}
    card = {"name": "conveyor-mnv2", "version": "1", "model": FP32.name, "task": "classify",
            "classes": list(CLASSES), "preprocess": PREPROCESS,
            "made_by": "benchmarks/models/train_conveyor_mnv2.py (data, then train); trained from scratch "
                       "on conveyor seeds 1000-1109 (no pretrained weights)",
            "training": info, "data": json.loads((root / "data.json").read_text())}
    FP32.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(info), f"\nwrote {FP32} ({FP32.stat().st_size} bytes) and {TF_INT8} "
          f"({TF_INT8.stat().st_size} bytes)")


if __name__ == "__main__":
    steps = {"data": make_data, "train": train}
    if len(sys.argv) != 3 or sys.argv[1] not in steps:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(steps)}}} WORKDIR")
    steps[sys.argv[1]](Path(sys.argv[2]))
