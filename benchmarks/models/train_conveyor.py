"""Train the int8 waste classifier that `edgert demo` ships, on the synthetic conveyor scene (dev-only).

Three steps, in two environments (TensorFlow stays out of edgert's own venv):

    /tmp/venv/bin/python   benchmarks/models/train_conveyor.py data      # render + preprocess -> /tmp/conveyor_data.npz
    /tmp/tfvenv/bin/python benchmarks/models/train_conveyor.py train     # train, quantize -> edgert/models/
    /tmp/venv/bin/python   benchmarks/models/train_conveyor.py evaluate  # measure with edgert -> conveyor.json

(`/tmp/tfvenv` is made as make_models.py says: ``pip install -r benchmarks/models/requirements-dev.txt``.)

`data` renders `edgert.sources.conveyor.ConveyorSource` frames over the training seeds (>= 1000; the
source's default seed 0 and every seed below 1000 stay unseen) and turns each into the model input with
`edgert.preprocess.Preprocessor` exactly as the pipeline will (`PREPROCESS` below), stored as the uint8
RGB pixels before normalisation. Labels: the frame's ``meta["label"]``; empty belt -> "belt"; an item
partly out of view is labelled with its class when at least `PARTIAL_MIN` of it is visible, and left
out of training otherwise (what it is cannot be seen). `train` fits a small CNN (softmax output) and
writes a full-integer int8 model (int8 input and output) calibrated on training frames. `evaluate`
loads the int8 model with ``edgert.load(..., backend="cpu")``, runs held-out seeds through Preprocessor
+ `edgert.postprocess.classify`, and records frame and item (majority vote) accuracy in conveyor.json.
Everything is seeded; about 10 minutes on 2 cores in all.
"""
from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = Path("/tmp/conveyor_data.npz")
FP32 = Path("/tmp/conveyor_fp32.tflite")
INT8 = ROOT / "edgert" / "models" / "conveyor_int8.tflite"
MANIFEST = ROOT / "edgert" / "models" / "conveyor.json"

INPUT = (96, 96)  # model input (width, height)
PREPROCESS = {"resize": "stretch", "interpolation": "area", "mean": [127.5] * 3, "std": [127.5] * 3,
              "channel_order": "RGB"}
TRAIN_SEEDS = range(1000, 1110)
VAL_SEEDS = range(2000, 2006)  # for watching training only
TEST_SEEDS = range(12)  # measured once, at the end (the demo runs seed 0)
ITEMS_PER_SEED = 12
TRAIN_STRIDE = 3  # every 3rd frame of the training streams (neighbours are near copies)
PARTIAL_MIN = 0.6
EPOCHS = 14
SEED = 0


# -- data (edgert venv) ------------------------------------------------------------------------------
def render(seed: int, stride: int = 1):
    """Model-input pixels and ground truth of every `stride`-th frame of one seed's stream.

    Returns:
        (pixels uint8 (N, H, W, 3), class index or -1 for unusable partial views, item id or -1,
        fully-in-view flag)
    """
    import edgert
    from edgert.preprocess import Preprocessor
    from edgert.sources.conveyor import CLASSES, ConveyorConfig, ConveyorSource

    config = ConveyorConfig(fps=0, seed=seed, items=ITEMS_PER_SEED)
    spec = edgert.TensorSpec("pixels", (1, INPUT[1], INPUT[0], 3), np.uint8, None)
    pre = Preprocessor(spec, "BGR", config.size, **{**PREPROCESS, "mean": 0.0, "std": 1.0})
    frames, metas = [], []
    with ConveyorSource(config) as source:
        for i, frame in enumerate(source):
            if i % stride == 0:
                frames.append(pre(frame.pixels)[0].copy())
                metas.append(frame.meta)
    item_class = {m["item"]: m["label"] for m in metas if m["label"] is not None}
    y, items, full = [], [], []
    for m in metas:
        if m["item"] is None:
            y.append(0)
        elif m["label"] is not None or (m["visible"] >= PARTIAL_MIN and m["item"] in item_class):
            y.append(CLASSES.index(item_class[m["item"]]))
        else:
            y.append(-1)
        items.append(-1 if m["item"] is None else m["item"])
        full.append(m["label"] is not None)
    return np.stack(frames), np.array(y, np.int8), np.array(items, np.int32), np.array(full)


def make_data() -> None:
    t0 = time.perf_counter()
    parts = {}
    for name, seeds, stride in (("train", TRAIN_SEEDS, TRAIN_STRIDE), ("val", VAL_SEEDS, 1)):
        xs, ys = [], []
        for seed in seeds:
            x, y, _, _ = render(seed, stride)
            keep = y >= 0
            xs.append(x[keep])
            ys.append(y[keep])
        parts[f"x_{name}"], parts[f"y_{name}"] = np.concatenate(xs), np.concatenate(ys)
        print(f"{name}: {len(parts[f'y_{name}'])} frames, per class {np.bincount(parts[f'y_{name}'])}")
    np.savez(DATA, **parts)
    print(f"wrote {DATA} in {time.perf_counter() - t0:.0f} s")


# -- training (TensorFlow venv) ----------------------------------------------------------------------
def build_model(tf, classes: int):
    layers = tf.keras.layers
    inp = layers.Input((INPUT[1], INPUT[0], 3))
    x = inp
    for filters, stride in ((16, 2), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2)):
        x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    out = layers.Softmax()(layers.Dense(classes)(x))
    return tf.keras.Model(inp, out)


def train() -> None:
    import tensorflow as tf

    from_pixels = lambda u8: (u8.astype(np.float32) - 127.5) / 127.5
    tf.keras.utils.set_random_seed(SEED)
    tf.config.threading.set_intra_op_parallelism_threads(2)
    d = np.load(DATA)
    x_train, y_train, x_val, y_val = d["x_train"], d["y_train"].astype(np.int32), d["x_val"], d["y_val"]
    classes = int(max(y_train.max(), y_val.max())) + 1

    def batches(x, y, shuffle):
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if shuffle:
            ds = ds.shuffle(len(y), seed=SEED, reshuffle_each_iteration=True)
        ds = ds.batch(64).map(lambda a, b: ((tf.cast(a, tf.float32) - 127.5) / 127.5, b))
        if shuffle:  # the scene is symmetric enough: flips are free extra views
            ds = ds.map(lambda a, b: (tf.image.random_flip_up_down(tf.image.random_flip_left_right(a)), b))
        return ds.prefetch(2)

    model = build_model(tf, classes)
    steps = EPOCHS * ((len(y_train) + 63) // 64)
    lr = tf.keras.optimizers.schedules.CosineDecay(3e-3, steps)
    model.compile(optimizer=tf.keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    t0 = time.perf_counter()
    model.fit(batches(x_train, y_train, True), validation_data=batches(x_val, y_val, False), epochs=EPOCHS,
              verbose=2)
    train_s = time.perf_counter() - t0

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    FP32.write_bytes(conv.convert())
    rep = x_train[np.random.default_rng(SEED).choice(len(x_train), 300, replace=False)]
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([from_pixels(x[None])] for x in rep)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    INT8.parent.mkdir(parents=True, exist_ok=True)
    INT8.write_bytes(conv.convert())
    info = {"tensorflow": tf.__version__, "epochs": EPOCHS, "train_frames": len(y_train),
            "train_frames_per_class": np.bincount(y_train).tolist(), "train_seconds": round(train_s),
            "parameters": int(model.count_params())}
    Path("/tmp/conveyor_train.json").write_text(json.dumps(info, indent=2))
    print(json.dumps(info), f"\nwrote {FP32} and {INT8} ({INT8.stat().st_size} bytes)")


# -- evaluation (edgert venv) ------------------------------------------------------------------------
def measure(path: Path, seeds) -> dict:
    """Frame and item accuracy of a model run through edgert's own preprocess and decode on `seeds`."""
    import edgert
    from edgert.postprocess import classify
    from edgert.preprocess import Preprocessor
    from edgert.sources.conveyor import CLASSES, ConveyorConfig, ConveyorSource

    model = edgert.load(str(path), backend="cpu")
    pre = None
    full_ok = full_n = belt_ok = belt_n = items_ok = items_n = 0
    per_class = Counter()
    per_class_ok = Counter()
    times = []
    for seed in seeds:
        config = ConveyorConfig(fps=0, seed=seed, items=ITEMS_PER_SEED)
        if pre is None:
            pre = Preprocessor(model.inputs[0], "BGR", config.size, **PREPROCESS)
        votes: dict[int, list] = {}
        truth: dict[int, str] = {}
        with ConveyorSource(config) as source:
            for frame in source:
                t = time.perf_counter()
                top = classify(model.run(pre(frame.pixels))[0], model.outputs[0], top_k=1)[0][0]
                times.append(time.perf_counter() - t)
                label = frame.meta["label"]
                if label is not None:
                    full_n += 1
                    full_ok += CLASSES[top] == label
                    per_class[label] += 1
                    per_class_ok[label] += CLASSES[top] == label
                    votes.setdefault(frame.meta["item"], []).append(top)
                    truth[frame.meta["item"]] = label
                elif frame.meta["item"] is None:
                    belt_n += 1
                    belt_ok += top == 0
        for item, v in votes.items():
            items_n += 1
            items_ok += CLASSES[Counter(v).most_common(1)[0][0]] == truth[item]
    model.close()
    return {"frame_accuracy": round(full_ok / full_n, 4), "frames": full_n,
            "per_class_frame_accuracy": {c: round(per_class_ok[c] / per_class[c], 4) for c in sorted(per_class)},
            "empty_belt_accuracy": round(belt_ok / belt_n, 4), "empty_belt_frames": belt_n,
            "item_accuracy": round(items_ok / items_n, 4), "items": items_n,
            "ms_per_frame_preprocess_infer_decode_1_thread": round(1000 * float(np.median(times)), 3)}


def evaluate() -> None:
    from edgert.sources.conveyor import CLASSES, ConveyorConfig

    info = json.loads(Path("/tmp/conveyor_train.json").read_text())
    source = ConveyorConfig().model_dump(exclude={"seed", "items", "fps"})
    manifest = {
        "model": INT8.name, "classes": list(CLASSES),
        "input": {"shape": [1, INPUT[1], INPUT[0], 3], "dtype": "int8", "layout": "NHWC"},
        "output": "int8 softmax probabilities, classes in the order above",
        "preprocess": PREPROCESS,
        "source": {"kind": "conveyor", **{k: list(v) if isinstance(v, tuple) else v for k, v in source.items()}},
        "train_seeds": [TRAIN_SEEDS.start, TRAIN_SEEDS.stop - 1], "items_per_seed": ITEMS_PER_SEED,
        "train_stride": TRAIN_STRIDE, "partial_view_label_min_visible": PARTIAL_MIN,
        "validation_seeds": [VAL_SEEDS.start, VAL_SEEDS.stop - 1],
        "held_out_seeds": [TEST_SEEDS.start, TEST_SEEDS.stop - 1],
        "accuracy_note": "frame accuracy over frames with an item fully in view; item accuracy by majority vote "
                         "over those frames; measured with edgert.load(backend='cpu') + Preprocessor + classify",
        "training": info,
        "fp32": measure(FP32, TEST_SEEDS),
        "int8": measure(INT8, TEST_SEEDS),
        "size_bytes": INT8.stat().st_size,
    }
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    steps = {"data": make_data, "train": train, "evaluate": evaluate}
    if len(sys.argv) != 2 or sys.argv[1] not in steps:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(steps)}}}")
    steps[sys.argv[1]]()
