"""Make the small real models the tests and benchmarks use (dev-only: needs TensorFlow).

    python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install -r benchmarks/models/requirements-dev.txt
    /tmp/tfvenv/bin/python benchmarks/models/make_models.py tests/data
    /tmp/tfvenv/bin/python benchmarks/models/make_models.py tests/data --only mobilenetv2_1.0
                                           (one model; the other entries of models.json are kept)

Writes, with a manifest (models.json) of what each is and the accuracies measured here:
  digits_fp32.tflite / digits_int8.tflite  a tiny CNN trained on scikit-learn's digits (8x8 gray);
                                           int8 with uint8 input and output; digits_test.npz holds
                                           the held-out images (uint8) and labels
  mobilenetv2_int8.tflite / _fp32.tflite   MobileNetV2 (alpha 0.35, 224x224 RGB), briefly trained on
                                           upscaled digits so its batch-norm statistics and outputs
                                           come from real data; int8 with uint8 input and output
  mobilenetv2_1.0_int8.tflite              full-size MobileNetV2 (alpha 1.0, 224x224 RGB, 1000 classes) for
                                           the pipeline benchmark (timing, not accuracy): batch-norm
                                           statistics set from crops of scikit-learn's two sample photos,
                                           head fitted to tell the crops' photo and quadrant apart; int8
                                           with uint8 input and output
  yolov8_int8.tflite                       a small detector with YOLOv8's single-tensor layout
                                           (1, 4 + C, N) at 320x320, trained briefly on synthetic
                                           squares (not accurate: for decoding and backend tests);
                                           int8 with uint8 input, int8 output
  yolov8_dfl_int8.tflite                   the same detector with split per-stride DFL heads
  squares_detector_fp32.tflite             float detector, YOLOv8 single-tensor layout (1, 7, 525) at 160x160,
                                           trained on synthetic squares (`edgert quantize --task detect`)
  float_op_fp32.tflite                     a tiny float model with a SIN between two dense layers, an operator
                                           ai-edge-quantizer leaves in float (quantize's refusal test)
  digits_embedder_fp32.tflite              float embedder (8x8 gray -> 16-d), the digits CNN trained as a
                                           classifier with the head removed (`--task embed` tests)
Everything is seeded; rerunning gives equivalent (not byte-identical) models.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import sklearn.datasets
import tensorflow as tf
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

SEED = 0
L = tf.keras.layers


def convert(model, rep_data, int8: bool, in_type=tf.uint8, out_type=tf.uint8) -> bytes:
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([x[None].astype(np.float32)] for x in rep_data)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = in_type
        conv.inference_output_type = out_type
    return conv.convert()


def tflite_accuracy(data: bytes, x: np.ndarray, y: np.ndarray) -> float:
    it = tf.lite.Interpreter(model_content=data)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    correct = 0
    for xi, yi in zip(x, y):
        v = xi[None]
        if inp["dtype"] != np.float32:
            s, z = inp["quantization"]
            v = np.clip(np.round(v / s + z), 0, 255).astype(inp["dtype"])
        it.set_tensor(inp["index"], v.astype(inp["dtype"]))
        it.invoke()
        correct += int(np.argmax(it.get_tensor(out["index"])[0]) == yi)
    return correct / len(y)


def digits():
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]  # 0..1
    return train_test_split(x, d.target, test_size=0.25, random_state=SEED, stratify=d.target)


def make_digits(out: Path, manifest: dict) -> None:
    xtr, xte, ytr, yte = digits()
    m = tf.keras.Sequential([L.Input((8, 8, 1)), L.Conv2D(16, 3, padding="same", activation="relu"),
                             L.Conv2D(32, 3, strides=2, padding="same", activation="relu"), L.Flatten(),
                             L.Dense(10)])
    m.compile(optimizer="adam", loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    m.fit(xtr, ytr, epochs=30, batch_size=32, verbose=0)
    fp32, int8 = convert(m, xtr[:200], False), convert(m, xtr[:200], True)
    (out / "digits_fp32.tflite").write_bytes(fp32)
    (out / "digits_int8.tflite").write_bytes(int8)
    # The held-out split as 8-bit gray images, for tests that measure accuracy without scikit-learn.
    np.savez_compressed(out / "digits_test.npz", images=np.round(xte[..., 0] * 255).astype(np.uint8), labels=yte)
    manifest["digits"] = {"input": "8x8 gray, 0..255 pixel = digit value * 255/16", "test_split": "25%, seed 0",
                          "fp32_accuracy": tflite_accuracy(fp32, xte, yte),
                          "int8_accuracy": tflite_accuracy(int8, xte, yte)}


def make_mobilenet(out: Path, manifest: dict) -> None:
    xtr, xte, ytr, yte = digits()
    up = lambda x: tf.image.resize(np.repeat(x, 3, axis=-1), (224, 224)).numpy() * 2 - 1  # noqa: E731
    base = tf.keras.applications.MobileNetV2((224, 224, 3), alpha=0.35, weights=None, classes=10,
                                             classifier_activation=None)
    for layer in base.layers:  # short training: let the batch-norm statistics reach the data's
        if isinstance(layer, L.BatchNormalization):
            layer.momentum = 0.8
    base.compile(optimizer="adam", loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    base.fit(up(xtr), ytr, epochs=2, batch_size=32, verbose=0)
    rep = up(xtr[:100])
    fp32, int8 = convert(base, rep, False), convert(base, rep, True)
    (out / "mobilenetv2_fp32.tflite").write_bytes(fp32)
    (out / "mobilenetv2_int8.tflite").write_bytes(int8)
    test_x, test_y = up(xte[:150]), yte[:150]
    manifest["mobilenetv2"] = {"input": "224x224 RGB, mean=std=127.5", "alpha": 0.35,
                               "note": "trained 2 epochs on upscaled digits (real BN statistics), not ImageNet",
                               "fp32_accuracy_150": tflite_accuracy(fp32, test_x, test_y),
                               "int8_accuracy_150": tflite_accuracy(int8, test_x, test_y)}


def photo_crops(n: int, size: int, rng):
    """Random square crops of scikit-learn's sample photos (china.jpg, flower.jpg), resized to size x size,
    randomly flipped and brightened, as float 0..255 RGB; labelled photo * 4 + quadrant of the crop's source.
    The JPEGs are decoded with TensorFlow (load_sample_images would need Pillow)."""
    folder = Path(sklearn.datasets.__file__).parent / "images"
    photos = [tf.io.decode_jpeg((folder / name).read_bytes()).numpy() for name in ("china.jpg", "flower.jpg")]
    x, y = np.empty((n, size, size, 3), np.float32), np.empty(n, np.int64)
    for k in range(n):
        p, q = int(rng.integers(len(photos))), int(rng.integers(4))
        img = photos[p]
        qh, qw = img.shape[0] // 2, img.shape[1] // 2
        s = int(rng.integers(min(qh, qw) // 3, min(qh, qw) + 1))
        y0 = (q // 2) * qh + int(rng.integers(0, qh - s + 1))
        x0 = (q % 2) * qw + int(rng.integers(0, qw - s + 1))
        crop = tf.image.resize(img[y0:y0 + s, x0:x0 + s].astype(np.float32), (size, size)).numpy()
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        x[k], y[k] = np.clip(crop * rng.uniform(0.8, 1.2), 0, 255), p * 4 + q
    return x, y


def make_mobilenet_full(out: Path, manifest: dict) -> None:
    """Full-size MobileNetV2 for the pipeline benchmark: ImageNet's shape and cost, not its weights (no
    download). Random convolutions with batch-norm statistics left at their initial values give nearly the
    same output for every input, so the statistics are set from real photos and the head is fitted."""
    rng = np.random.default_rng(SEED)
    x, y = photo_crops(448, 224, rng)
    x = x / 127.5 - 1  # mean=std=127.5, as mobilenetv2_int8.tflite
    base = tf.keras.applications.MobileNetV2((224, 224, 3), alpha=1.0, weights=None, classes=1000,
                                             classifier_activation=None)
    # Batch-norm statistics: forward passes in training mode (each layer normalised with its batch's
    # statistics, as it will be with the moving ones) over the crops, several times with a short momentum
    # so the moving mean/variance settle on the data's.
    for layer in base.layers:
        if isinstance(layer, L.BatchNormalization):
            layer.momentum = 0.7
    step = tf.function(lambda b: base(b, training=True))
    for _ in range(3):
        for i in range(0, len(x), 32):
            step(tf.constant(x[i:i + 32]))
    # Head: fit the 1000-way classifier on the pooled features to tell the 8 photo/quadrant labels apart,
    # so the logits depend on the content (the other 992 classes stay at their random initialisation).
    features = tf.keras.Model(base.input, base.layers[-2].output).predict(x, batch_size=32, verbose=0)
    head = tf.keras.Sequential([L.Input(features.shape[1:]), L.Dense(1000)])
    head.layers[0].set_weights(base.get_layer("predictions").get_weights())
    head.compile(optimizer=tf.keras.optimizers.Adam(1e-3), metrics=["accuracy"],
                 loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    hist = head.fit(features[:384], y[:384], epochs=60, batch_size=32, verbose=0)
    held_out = head.evaluate(features[384:], y[384:], verbose=0)[1]
    base.get_layer("predictions").set_weights(head.layers[0].get_weights())
    int8 = convert(base, x[:200], True)
    (out / "mobilenetv2_1.0_int8.tflite").write_bytes(int8)
    manifest["mobilenetv2_1.0"] = {
        "input": "224x224 RGB, mean=std=127.5", "alpha": 1.0, "classes": 1000,
        "bn_statistics": "3 passes in training mode (momentum 0.7) over 448 random crops of scikit-learn's "
                         "china.jpg and flower.jpg (random size, flip, brightness); convolutions random",
        "head": "predictions layer fitted 60 epochs on the pooled features to the crop's photo and quadrant "
                "(8 of the 1000 classes)",
        "head_train_accuracy_fp32": float(hist.history["accuracy"][-1]),
        "head_held_out_accuracy_fp32_64": float(held_out),
        "int8_accuracy_64": tflite_accuracy(int8, x[384:], y[384:]),
        "note": "for the pipeline benchmark: timing, not accuracy"}


def squares(n: int, size: int, rng):
    """Images with 1-3 bright squares of 3 classes (red, green, blue) and their boxes."""
    x = rng.uniform(0, 0.2, (n, size, size, 3)).astype(np.float32)
    boxes = []
    for i in range(n):
        items = []
        for _ in range(rng.integers(1, 4)):
            s = int(rng.integers(size // 10, size // 4))
            x0, y0 = rng.integers(0, size - s, 2)
            c = int(rng.integers(0, 3))
            x[i, y0:y0 + s, x0:x0 + s, c] = 1.0
            items.append((c, (x0 + s / 2) / size, (y0 + s / 2) / size, s / size, s / size))
        boxes.append(items)
    return x, boxes


def detector(size: int, classes: int, dfl: bool):
    inp = L.Input((size, size, 3))
    h = inp
    feats = []
    for i, ch in enumerate((16, 24, 32, 48, 64)):
        h = L.Conv2D(ch, 3, strides=2, padding="same", activation="relu")(h)
        if i >= 2:
            feats.append(h)  # strides 8, 16, 32
    outs = []
    for f in feats:
        if dfl:
            outs += [L.Conv2D(64, 1)(f), L.Conv2D(classes, 1, activation="sigmoid")(f)]
        else:
            box = L.Conv2D(4, 1, activation="sigmoid")(f)
            cls = L.Conv2D(classes, 1, activation="sigmoid")(f)
            outs.append(L.Reshape((-1, 4 + classes))(L.Concatenate()([box, cls])))
    if not dfl:
        y = L.Permute((2, 1))(L.Concatenate(axis=1)(outs))  # (4 + C, N)
        return tf.keras.Model(inp, y)
    return tf.keras.Model(inp, outs)


def yolo_targets(boxes, size: int, classes: int):
    """Dense targets for the single-tensor layout: each object assigned to the cells around its centre."""
    cells = [(size // s, s) for s in (8, 16, 32)]
    n = sum(g * g for g, _ in cells)
    t = np.zeros((len(boxes), 4 + classes, n), np.float32)
    for i, items in enumerate(boxes):
        off = 0
        for g, _ in cells:
            for c, cx, cy, w, h in items:
                gx, gy = min(int(cx * g), g - 1), min(int(cy * g), g - 1)
                k = off + gy * g + gx
                t[i, :4, k] = (cx, cy, w, h)
                t[i, 4 + c, k] = 1.0
            off += g * g
    return t


def make_yolo(out: Path, manifest: dict) -> None:
    size, classes = 320, 3
    rng = np.random.default_rng(SEED)
    x, boxes = squares(400, size, rng)
    m = detector(size, classes, dfl=False)
    t = yolo_targets(boxes, size, classes)

    def loss(y_true, y_pred):
        obj = tf.reduce_max(y_true[:, 4:], axis=1, keepdims=True)
        box = tf.reduce_sum(obj * tf.square(y_true[:, :4] - y_pred[:, :4])) / (tf.reduce_sum(obj) + 1)
        p = tf.clip_by_value(y_pred[:, 4:], 1e-6, 1 - 1e-6)
        # Few cells hold objects: weigh them up so the scores do not collapse to the background rate.
        bce = -(30.0 * y_true[:, 4:] * tf.math.log(p) + (1 - y_true[:, 4:]) * tf.math.log(1 - p))
        return 20 * box + tf.reduce_mean(bce)

    m.compile(optimizer="adam", loss=loss)
    m.fit(x, t, epochs=20, batch_size=16, verbose=0)
    data = convert(m, x[:100], True, out_type=tf.int8)
    (out / "yolov8_int8.tflite").write_bytes(data)
    dfl = detector(size, classes, dfl=True)  # same architecture family, untrained heads: layout tests only
    (out / "yolov8_dfl_int8.tflite").write_bytes(convert(dfl, x[:50], True, out_type=tf.int8))
    manifest["yolov8"] = {"input": "320x320 RGB, 0..1 (std=255)", "classes": ["red", "green", "blue"],
                          "layout": "(1, 7, 2100) normalised xywh + class scores",
                          "note": "trained 20 epochs on synthetic squares; boxes are not accurate: "
                                  "for layout, decoding and backend tests"}
    manifest["yolov8_dfl"] = {"input": "320x320 RGB, 0..1 (std=255)", "classes": 3,
                              "layout": "per stride (8, 16, 32): (1, H, W, 64) box bins, (1, H, W, 3) scores",
                              "note": "untrained heads: for layout and backend tests, not accuracy"}


def grid_detector(size: int, classes: int):
    """The single-tensor detector with YOLO's grid decode in the graph: box centres are predicted as
    offsets within their cell (a convolution cannot tell absolute position), sizes as fractions."""
    inp = L.Input((size, size, 3))
    h, feats = inp, []
    for i, ch in enumerate((16, 32, 48, 64, 64)):
        h = L.Conv2D(ch, 3, strides=2, padding="same", activation="relu")(h)
        if i >= 2:
            feats.append(h)
    outs = []
    for f, stride in zip(feats, (8, 16, 32)):
        g = size // stride
        gy, gx = np.mgrid[0:g, 0:g].astype(np.float32)
        grid = np.stack([gx, gy], -1).reshape(1, g * g, 2)
        raw = L.Reshape((g * g, 4))(L.Conv2D(4, 1, activation="sigmoid")(L.Conv2D(32, 3, padding="same",
                                                                                 activation="relu")(f)))
        xy = L.Lambda(lambda t, grid=grid, g=g: (t[..., :2] * 2 - 0.5 + grid) / g)(raw)
        wh = L.Lambda(lambda t: t[..., 2:] * 0.5)(raw)
        cls = L.Reshape((g * g, classes))(L.Conv2D(classes, 1, activation="sigmoid")(f))
        outs.append(L.Concatenate()([xy, wh, cls]))
    return tf.keras.Model(inp, L.Permute((2, 1))(L.Concatenate(axis=1)(outs)))  # (4 + C, N)


def make_squares_detector(out: Path, manifest: dict) -> None:
    size, classes = 160, 3
    x, boxes = squares(1200, size, np.random.default_rng(SEED + 1))
    m = grid_detector(size, classes)
    t = yolo_targets(boxes, size, classes)

    def loss(y_true, y_pred):
        obj = tf.reduce_max(y_true[:, 4:], axis=1, keepdims=True)
        box = tf.reduce_sum(obj * tf.square(y_true[:, :4] - y_pred[:, :4])) / (tf.reduce_sum(obj) + 1)
        p = tf.clip_by_value(y_pred[:, 4:], 1e-6, 1 - 1e-6)
        bce = -(10.0 * y_true[:, 4:] * tf.math.log(p) + (1 - y_true[:, 4:]) * tf.math.log(1 - p))
        return 100 * box + tf.reduce_mean(bce)

    m.compile(optimizer=tf.keras.optimizers.Adam(2e-3), loss=loss)
    m.fit(x, t, epochs=40, batch_size=16, verbose=0)
    (out / "squares_detector_fp32.tflite").write_bytes(convert(m, None, False))
    manifest["squares_detector"] = {"input": "160x160 RGB, 0..1 (std=255)", "classes": ["red", "green", "blue"],
                                    "layout": "(1, 7, 525) normalised xywh + class scores, grid decode in the graph",
                                    "note": "trained 40 epochs on 1200 synthetic squares (squares(), seed 1); "
                                            "float, for quantize --task detect"}


def make_digits_embedder(out: Path, manifest: dict) -> None:
    xtr, _xte, ytr, _yte = digits()
    inp = L.Input((8, 8, 1))
    h = L.Conv2D(16, 3, padding="same", activation="relu")(inp)
    h = L.Conv2D(32, 3, strides=2, padding="same", activation="relu")(h)
    emb = L.Dense(16)(L.Flatten()(h))
    clf = tf.keras.Model(inp, L.Dense(10)(L.ReLU()(emb)))
    clf.compile(optimizer="adam", loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    clf.fit(xtr, ytr, epochs=40, batch_size=32, verbose=0)
    (out / "digits_embedder_fp32.tflite").write_bytes(convert(tf.keras.Model(inp, emb), None, False))
    manifest["digits_embedder"] = {"input": "8x8 gray, as digits", "output": "16-d embedding (not normalised)",
                                   "note": "digits CNN trained 40 epochs as a classifier, head removed"}


def make_float_op(out: Path, manifest: dict) -> None:
    inp = L.Input((8, 8, 1))
    h = L.Dense(8)(L.Flatten()(inp))
    y = L.Dense(10)(L.Lambda(tf.sin)(h))
    (out / "float_op_fp32.tflite").write_bytes(convert(tf.keras.Model(inp, y), None, False))
    manifest["float_op"] = {"input": "8x8x1 float", "ops": "FULLY_CONNECTED, SIN, FULLY_CONNECTED",
                            "note": "untrained; SIN has no int8 kernel in ai-edge-quantizer"}


MAKERS = {"digits": make_digits, "mobilenetv2": make_mobilenet, "mobilenetv2_1.0": make_mobilenet_full,
          "yolov8": make_yolo, "squares_detector": make_squares_detector, "digits_embedder": make_digits_embedder,
          "float_op": make_float_op}


def main(out_dir: str, only: list[str] | None = None) -> None:
    tf.keras.utils.set_random_seed(SEED)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"tensorflow": tf.__version__}
    if only and (out / "models.json").exists():  # keep the entries of the models not remade
        manifest = {**json.loads((out / "models.json").read_text()), **manifest}
    for name in only or MAKERS:
        MAKERS[name](out, manifest)
    (out / "models.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", nargs="?", default="tests/data")
    ap.add_argument("--only", action="append", choices=list(MAKERS),
                    help="make only this model (repeatable); other models.json entries are kept")
    args = ap.parse_args()
    main(args.out_dir, args.only)
