"""Train the int8 vehicle type classifier (car / bus / motorbike) on crops of the synthetic street (dev-only).

Three steps, in two environments (TensorFlow stays out of edgert's own venv):

    /work/venv-second/bin/python  benchmarks/models/train_vehicle_type.py data      # crops -> /tmp/vehicle_type.npz
    /work/tfvenv-second/bin/python benchmarks/models/train_vehicle_type.py train    # train, quantize -> edgert/models/
    /work/venv-second/bin/python  benchmarks/models/train_vehicle_type.py evaluate  # held-out accuracy -> the card

`data` renders `edgert.sources.street.StreetSource` frames of every camera over the training seeds
(>= 1000) and the held-out ones (0-5, never trained on), and cuts every vehicle that
`edgert.sources.street.detectable` accepts out of the 1280x720 frame with the pipeline's own region
kernel (`Preprocessor.regions`, stretch, bilinear, half-pixel centres: what the surveillance app's
`CropStage` does with a tracked box), as uint8 RGB 64x64. Training boxes are jittered (each side moved
by up to 8% of the box, seeded) since a tracker's box is a detector's, not the drawn extent; held-out
boxes are the ground truth's, unjittered.

`train` fits a small CNN (four conv blocks, global average pooling, softmax) with class-balanced
sampling and writes a full-integer int8 model (int8 input and output) calibrated on training crops.
`evaluate` loads it with ``edgert.load(..., backend="cpu")`` and writes the held-out accuracy and the
confusion matrix into ``edgert/models/vehicle_type.json``. Everything is seeded.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = Path("/tmp/vehicle_type.npz")
INFO = Path("/tmp/vehicle_type_train.json")
INT8 = ROOT / "edgert" / "models" / "vehicle_type_int8.tflite"
CARD = ROOT / "edgert" / "models" / "vehicle_type.json"

SIZE = 64
CLASSES = ("car", "bus", "motorbike")
PREPROCESS = {"resize": "stretch", "interpolation": "bilinear", "mean": [127.5] * 3, "std": [127.5] * 3,
              "channel_order": "RGB"}
TRAIN_SEEDS = range(1000, 1040)
TEST_SEEDS = range(0, 6)
CAMERAS = (0, 1, 2)
FRAMES = 12  # frames 0, STEP, 2 STEP... of each (seed, camera)
STEP = 25
JITTER = 0.08
EPOCHS = 25
SEED = 0


def crops(seeds, jitter: float, seed: int):
    """uint8 RGB ``(N, 64, 64, 3)`` crops of detectable vehicles and their class indices."""
    import cv2

    import edgert
    from edgert.preprocess import Preprocessor
    from edgert.sources.street import StreetConfig, StreetScene, detectable

    rng = np.random.default_rng(seed)
    spec = edgert.TensorSpec("pixels", (1, SIZE, SIZE, 3), np.uint8, None)
    xs, ys = [], []
    for s in seeds:
        for camera in CAMERAS:
            config = StreetConfig(fps=0, seed=s, camera=camera)
            scene = StreetScene(config, cv2)
            pre = Preprocessor(spec, "BGR", config.size, **{**PREPROCESS, "mean": 0.0, "std": 1.0})
            for i in range(FRAMES):
                img, meta = scene.render(i * STEP)
                boxes, labels = [], []
                for o in meta["objects"]:
                    if o["class"] in CLASSES and detectable(o, config.size[1]):
                        b = np.asarray(o["box"], np.float64)
                        w, h = b[2] - b[0], b[3] - b[1]
                        b += rng.uniform(-jitter, jitter, 4) * np.array([w, h, w, h])
                        boxes.append(b)
                        labels.append(CLASSES.index(o["class"]))
                if boxes:
                    xs.append(pre.regions(img, np.asarray(boxes)).copy())
                    ys += labels
    return np.concatenate(xs), np.asarray(ys, np.int64)


def make_data() -> None:
    t0 = time.perf_counter()
    x_train, y_train = crops(TRAIN_SEEDS, JITTER, SEED)
    x_test, y_test = crops(TEST_SEEDS, 0.0, SEED + 1)
    np.savez_compressed(DATA, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    print(f"{len(x_train)} training crops {np.bincount(y_train, minlength=3)}, {len(x_test)} held-out "
          f"{np.bincount(y_test, minlength=3)} in {time.perf_counter() - t0:.0f} s -> {DATA}")


def build_model(tf):
    layers = tf.keras.layers
    inp = tf.keras.Input((SIZE, SIZE, 3))
    x = inp
    for filters in (16, 32, 48, 64):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(len(CLASSES), activation="softmax")(x)
    return tf.keras.Model(inp, out)


def train() -> None:
    import tensorflow as tf

    tf.random.set_seed(SEED)
    tf.config.threading.set_intra_op_parallelism_threads(2)
    d = np.load(DATA)
    x = (d["x_train"].astype(np.float32) - 127.5) / 127.5
    y = d["y_train"]
    rng = np.random.default_rng(SEED)
    counts = np.bincount(y, minlength=len(CLASSES))
    weight = {k: float(len(y) / (len(CLASSES) * max(1, c))) for k, c in enumerate(counts)}
    flip = rng.random(len(x)) < 0.5
    x[flip] = x[flip, :, ::-1]
    model = build_model(tf)
    model.compile(tf.keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    t0 = time.perf_counter()
    hist = model.fit(x, y, batch_size=64, epochs=EPOCHS, class_weight=weight, shuffle=True, verbose=2,
                     validation_split=0.1)
    train_s = time.perf_counter() - t0
    rep = x[rng.choice(len(x), min(300, len(x)), replace=False)]
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([r[None]] for r in rep)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    INT8.write_bytes(conv.convert())
    info = {"tensorflow": tf.__version__, "epochs": EPOCHS, "train_crops": int(len(x)),
            "train_per_class": dict(zip(CLASSES, counts.tolist())), "train_seconds": round(train_s),
            "parameters": int(model.count_params()),
            "val_accuracy": round(float(hist.history["val_accuracy"][-1]), 4)}
    INFO.write_text(json.dumps(info, indent=2))
    print(json.dumps(info), f"\nwrote {INT8} ({INT8.stat().st_size} bytes)")


#: The street world's paints (BGR, before its +-15% per-channel jitter) and the colour a person would name.
PAINT_NAMES = {(235, 235, 235): "white", (30, 30, 30): "black", (160, 160, 165): "grey", (40, 40, 170): "red",
               (150, 60, 20): "blue", (60, 110, 60): "green", (20, 140, 220): "orange", (90, 90, 100): "grey",
               (200, 200, 60): "blue", (30, 60, 120): "orange", (40, 160, 230): "orange", (60, 60, 200): "red",
               (200, 200, 200): "white", (60, 140, 60): "green"}


def colour_agreement(seeds=range(0, 3)) -> dict:
    """The colour rule (`edgert.apps.surveillance.attributes`) against the nearest named paint, on cars and buses
    at least 80% visible (a motorbike's box is mostly its rider), every 50th frame of 300, every camera."""
    import cv2

    from edgert.apps.surveillance.attributes import dominant_colour
    from edgert.sources.street import StreetConfig, StreetScene, detectable

    keys = np.array(list(PAINT_NAMES), np.float64)
    right = total = 0
    for s in seeds:
        for camera in CAMERAS:
            config = StreetConfig(fps=0, seed=s, camera=camera)
            scene = StreetScene(config, cv2)
            for i in range(0, 300, 50):
                img, meta = scene.render(i)
                agents = {a.id: a for a in scene.world.agents}
                for o in meta["objects"]:
                    if o["class"] in ("car", "bus") and detectable(o, config.size[1]) and o["visible"] > 0.8:
                        paint = np.asarray(agents[o["id"]].look["paint"])
                        want = PAINT_NAMES[tuple(int(v) for v in keys[np.argmin(((keys - paint) ** 2).sum(1))])]
                        right += dominant_colour(img, o["box"])[0] == want
                        total += 1
    return {"seeds": [seeds.start, seeds.stop - 1], "vehicles": total, "agreement": round(right / max(1, total), 4)}


def evaluate() -> None:
    import edgert

    d = np.load(DATA)
    info = json.loads(INFO.read_text())
    confusion = np.zeros((len(CLASSES), len(CLASSES)), np.int64)
    with edgert.load(INT8, backend="cpu") as model:
        spec = model.inputs[0]
        for img, label in zip(d["x_test"], d["y_test"]):
            x = spec.quant.quantize((img[None].astype(np.float32) - 127.5) / 127.5, spec.dtype)
            confusion[label, int(np.argmax(model.run(x)[0]))] += 1
    accuracy = float(np.trace(confusion) / confusion.sum())
    per_class = {c: round(float(confusion[k, k] / max(1, confusion[k].sum())), 4) for k, c in enumerate(CLASSES)}
    card = {
        "model": INT8.name, "name": "vehicle_type", "version": "street-1", "task": "attributes",
        "classes": list(CLASSES),
        "input": {"shape": [1, SIZE, SIZE, 3], "dtype": "int8", "layout": "NHWC"},
        "output": "int8 (1, 3): softmax over car, bus, motorbike",
        "preprocess": PREPROCESS,
        "pixel_centres": "half-pixel (edgert Preprocessor.regions, as OpenCV resize)",
        "training": {**info, "seeds": [TRAIN_SEEDS.start, TRAIN_SEEDS.stop - 1], "cameras": list(CAMERAS),
                     "frames_per_stream": FRAMES, "frame_step": STEP, "box_jitter": JITTER,
                     "script": "benchmarks/models/train_vehicle_type.py"},
        "evaluation": {"held_out_seeds": list(TEST_SEEDS), "crops": int(confusion.sum()),
                       "accuracy": round(accuracy, 4), "per_class_recall": per_class,
                       "confusion_rows_truth_cols_predicted": confusion.tolist(),
                       "measured_with": "edgert.load(backend='cpu') on ground-truth boxes, int8"},
        "colour_rule": colour_agreement(),
        "limits": "Trained on the synthetic street only (shaded boxes for cars and buses, a rider on a frame for "
                  "motorbikes): a stand-in for the plumbing, not a model of real vehicles. Colour is not this "
                  "model's: it is the HSV rule of edgert.apps.surveillance.attributes.",
    }
    CARD.write_text(json.dumps(card, indent=2) + "\n")
    print(f"held-out accuracy {accuracy:.4f} {per_class}\n{confusion}\nwrote {CARD}")


if __name__ == "__main__":
    {"data": make_data, "train": train, "evaluate": evaluate}[sys.argv[1]]()
