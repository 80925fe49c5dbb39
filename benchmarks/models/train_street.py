"""Train the int8 person/vehicle detector of the synthetic street (dev-only), as train_conveyor.py does.

Three steps, in two environments (TensorFlow stays out of edgert's own venv):

    /work/venv/bin/python   benchmarks/models/train_street.py data      # render + preprocess -> /tmp/street_data.npz
    /work/tfvenv/bin/python benchmarks/models/train_street.py train     # train, quantize -> edgert/models/
    /work/venv/bin/python   benchmarks/models/train_street.py evaluate  # measure with edgert -> street_detector.json

(the TensorFlow venv: ``pip install -r benchmarks/models/requirements-dev.txt``.)

`data` renders `edgert.sources.street.StreetSource` frames of every camera over the training seeds
(>= 1000; seeds below 1000 stay unseen), every `FRAME_STEP`-th frame (the scene jumps there exactly),
and letterboxes each into the model input with `edgert.preprocess.Preprocessor` as the pipeline will
(`PREPROCESS`), stored as uint8 RGB before normalisation, with the ground-truth boxes mapped into
model-input pixels. Objects that `edgert.sources.street.detectable` refuses (too small, or less than
half visible) are "ignore" regions: neither positives nor negatives.

`train` fits a small fully convolutional network: a stride-8 grid (40 x 24 cells at 320 x 192) whose
cells predict a per-class centre heat map (CenterNet-style: Gaussian targets, focal loss) and, near
an object's centre, its box (centre offset in cells, size in log space). The network itself assembles
YOLOv8's single output tensor ``(1, 4 + C, N)``: normalised ``cx, cy, w, h`` then the class scores, so
`edgert.postprocess.YoloDecoder` (layout v8, NMS) decodes it unchanged. It writes the float model and a
full-integer int8 one (int8 input and output) calibrated on training frames.

`evaluate` loads both with ``edgert.load(..., backend="cpu")``, runs held-out seeds (0-5, all cameras)
through Preprocessor + YoloDecoder + ``pre.to_source`` and computes COCO-style mAP (101-point
interpolated AP per class, averaged; IoU 0.5 and 0.5:0.95; detections on ignore regions dropped), and
the CPU latency, into ``edgert/models/street_detector.json``. Everything is seeded.
"""
from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = Path("/tmp/street_data.npz")
INFO = Path("/tmp/street_train.json")
FP32 = ROOT / "tests" / "data" / "street_detector_fp32.tflite"
INT8 = ROOT / "edgert" / "models" / "street_detector_int8.tflite"
MANIFEST = ROOT / "edgert" / "models" / "street_detector.json"

INPUT = (320, 192)  # model input (width, height): 1280x720 letterboxed to 320x180 + 6 rows of padding each side
STRIDE = 8
GRID = (INPUT[0] // STRIDE, INPUT[1] // STRIDE)
PREPROCESS = {"resize": "letterbox", "interpolation": "area", "mean": [127.5] * 3, "std": [127.5] * 3,
              "channel_order": "RGB", "pad_value": 114}
DECODER = {"layout": "v8", "normalized": True, "conf": 0.3, "iou": 0.5}
TRAIN_SEEDS = range(1000, 1050)
VAL_SEEDS = range(2000, 2003)
TEST_SEEDS = range(0, 6)
CAMERAS = (0, 1, 2)
FRAMES_PER_STREAM = 45  # frames 0, 10, 20, ... of each (seed, camera)
FRAME_STEP = 10
TEST_FRAMES_PER_STREAM = 30
BATCH = 16
LEARNING_RATE = 2e-3
TRAIN_BUDGET_S = 1800  # wall-clock seconds of training (a shared 2-core machine): cosine decay over this time
SEED = 0


# -- data (edgert venv) ------------------------------------------------------------------------------
def render(seed: int, camera: int, frames: int, step: int):
    """Model-input pixels and ground truth of frames 0, step, 2*step... of one (seed, camera) stream.

    Returns:
        (pixels uint8 (N, H, W, 3), list of per-frame arrays (K, 6): class, x0, y0, x1, y1 in input
        pixels, ignore flag)
    """
    import cv2

    import edgert
    from edgert.preprocess import Preprocessor
    from edgert.sources.street import CLASSES, StreetConfig, StreetScene, detectable

    config = StreetConfig(fps=0, seed=seed, camera=camera)
    scene = StreetScene(config, cv2)
    spec = edgert.TensorSpec("pixels", (1, INPUT[1], INPUT[0], 3), np.uint8, None)
    pre = Preprocessor(spec, "BGR", config.size, **{**PREPROCESS, "mean": 0.0, "std": 1.0})
    (dx, dy, dw, dh), (sw, sh) = pre.placement.dst_rect, config.size
    pixels, truth = [], []
    for i in range(frames):
        img, meta = scene.render(i * step)
        pixels.append(pre(img)[0].copy())
        rows = []
        for o in meta["objects"]:
            x0, y0, x1, y1 = o["box"]
            rows.append((CLASSES.index(o["class"]), dx + x0 * dw / sw, dy + y0 * dh / sh, dx + x1 * dw / sw,
                         dy + y1 * dh / sh, 0.0 if detectable(o, sh) else 1.0))
        truth.append(np.array(rows, np.float32).reshape(-1, 6))
    return np.stack(pixels), truth


def _render_set(seeds, frames: int):
    xs, boxes = [], []
    for seed in seeds:
        for camera in CAMERAS:
            x, t = render(seed, camera, frames, FRAME_STEP)
            xs.append(x)
            boxes += t
    counts = np.array([len(b) for b in boxes])
    flat = np.concatenate(boxes) if boxes else np.zeros((0, 6), np.float32)
    return np.concatenate(xs), flat, np.concatenate([[0], np.cumsum(counts)])


def make_data() -> None:
    t0 = time.perf_counter()
    parts = {}
    for name, seeds in (("train", TRAIN_SEEDS), ("val", VAL_SEEDS)):
        x, boxes, offsets = _render_set(seeds, FRAMES_PER_STREAM)
        parts[f"x_{name}"], parts[f"boxes_{name}"], parts[f"offsets_{name}"] = x, boxes, offsets
        kept = boxes[boxes[:, 5] == 0]
        print(f"{name}: {len(x)} frames, {len(kept)} objects (per class {np.bincount(kept[:, 0].astype(int))}), "
              f"{int(boxes[:, 5].sum())} ignored")
    np.savez(DATA, **parts)
    print(f"wrote {DATA} in {time.perf_counter() - t0:.0f} s")


# -- targets ----------------------------------------------------------------------------------------
def dense_targets(boxes: np.ndarray, classes: int) -> np.ndarray:
    """Per-cell targets ``(GH, GW, 2C + 5)``: heat (C), heat weight (C), box weight, cx, cy, w, h (normalised).

    Each kept object puts a Gaussian (sigma from its size) on its class's heat map with 1 at its
    centre cell, and its box on the 3x3 cells around that centre; an ignored object zeroes the heat
    weight of its class over its box.
    """
    gw, gh = GRID
    t = np.zeros((gh, gw, 2 * classes + 5), np.float32)
    t[..., classes:2 * classes] = 1.0
    gx, gy = np.meshgrid(np.arange(gw) + 0.5, np.arange(gh) + 0.5)
    owner = np.zeros((gh, gw), np.float32)
    for c, x0, y0, x1, y1, ignore in boxes:
        c = int(c)
        if ignore:
            cx0, cy0 = int(np.floor(x0 / STRIDE)), int(np.floor(y0 / STRIDE))
            cx1, cy1 = int(np.ceil(x1 / STRIDE)), int(np.ceil(y1 / STRIDE))
            t[max(cy0, 0):cy1, max(cx0, 0):cx1, classes + c] = 0.0
            continue
        cx, cy = (x0 + x1) / 2 / STRIDE, (y0 + y1) / 2 / STRIDE
        bw, bh = (x1 - x0) / STRIDE, (y1 - y0) / STRIDE
        sigma = max(0.5, 0.15 * min(bw, bh) + 0.25)
        g = np.exp(-((gx - cx) ** 2 + (gy - cy) ** 2) / (2 * sigma ** 2))
        ix, iy = min(int(cx), gw - 1), min(int(cy), gh - 1)
        g[iy, ix] = 1.0
        t[..., c] = np.maximum(t[..., c], g)
        for yy in range(max(iy - 1, 0), min(iy + 2, gh)):
            for xx in range(max(ix - 1, 0), min(ix + 2, gw)):
                if g[yy, xx] > owner[yy, xx]:
                    owner[yy, xx] = g[yy, xx]
                    t[yy, xx, 2 * classes] = g[yy, xx]
                    t[yy, xx, 2 * classes + 1:] = ((x0 + x1) / 2 / INPUT[0], (y0 + y1) / 2 / INPUT[1],
                                                  (x1 - x0) / INPUT[0], (y1 - y0) / INPUT[1])
    return t


# -- training (TensorFlow venv) ----------------------------------------------------------------------
def _classes() -> tuple:
    """The class names without importing edgert (the TensorFlow venv does not have it)."""
    return ("person", "car", "bus", "motorbike")  # edgert.sources.street.CLASSES; evaluate checks they agree

def build_model(tf, classes: int):
    """Backbone with strides 2..32, a top-down sum back to stride 8, and a head that writes the
    YOLOv8 single tensor (1, 4 + C, N) itself."""
    layers = tf.keras.layers

    def conv(x, filters, stride=1, k=3):
        x = layers.Conv2D(filters, k, strides=stride, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU(6.0)(x)

    inp = layers.Input((INPUT[1], INPUT[0], 3))
    x = conv(conv(inp, 16, 2), 24, 2)
    s8 = conv(conv(x, 40, 2), 40)
    s16 = conv(conv(s8, 64, 2), 64)
    s32 = conv(conv(s16, 96, 2), 96)
    up16 = layers.Add()([conv(s16, 48, k=1), layers.UpSampling2D(2)(conv(s32, 48, k=1))])
    up8 = layers.Add()([conv(s8, 32, k=1), layers.UpSampling2D(2)(conv(up16, 32, k=1))])
    h = conv(up8, 32)
    raw = layers.Conv2D(4 + classes, 1, bias_initializer=tf.keras.initializers.Constant(
        [0.0, 0.0, -2.5, -2.5] + [-4.0] * classes))(h)
    gw, gh = GRID
    grid_x = np.tile(np.arange(gw, dtype=np.float32), gh).reshape(1, gh, gw, 1)
    grid_y = np.repeat(np.arange(gh, dtype=np.float32), gw).reshape(1, gh, gw, 1)
    grid = np.concatenate([grid_x, grid_y], -1)
    scale = np.array([STRIDE / INPUT[0], STRIDE / INPUT[1]], np.float32).reshape(1, 1, 1, 2)

    def head(r):
        sig = tf.sigmoid(r)
        centre = (sig[..., :2] * 3.0 - 1.0 + grid + 0.5) * scale  # offset in [-1, 2] cells from the cell corner
        return tf.concat([centre, sig[..., 2:4], sig[..., 4:]], axis=-1)

    y = layers.Lambda(head)(raw)
    y = layers.Reshape((gw * gh, 4 + classes))(y)
    y = layers.Permute((2, 1))(y)
    return tf.keras.Model(inp, y)


def detection_loss(tf, y_pred, t, classes: int):
    """Focal loss on the heat maps plus L1 box terms near centres; y_pred ``(B, 4 + C, N)``."""
    gw, gh = GRID
    p = tf.reshape(tf.transpose(y_pred, (0, 2, 1)), (-1, gh, gw, 4 + classes))
    heat = tf.clip_by_value(p[..., 4:], 1e-4, 1 - 1e-4)
    target, weight = t[..., :classes], t[..., classes:2 * classes]
    pos = tf.cast(target >= 0.999, tf.float32)
    n_pos = tf.maximum(1.0, tf.reduce_sum(pos))
    pos_loss = -pos * tf.pow(1 - heat, 2) * tf.math.log(heat)
    neg_loss = -(1 - pos) * weight * tf.pow(1 - target, 4) * tf.pow(heat, 2) * tf.math.log(1 - heat)
    focal = (tf.reduce_sum(pos_loss) + tf.reduce_sum(neg_loss)) / n_pos
    w = t[..., 2 * classes]
    box_t = t[..., 2 * classes + 1:]
    n_box = tf.maximum(1.0, tf.reduce_sum(w))
    cells = np.array([INPUT[0] / STRIDE, INPUT[1] / STRIDE], np.float32)
    centre = tf.reduce_sum(tf.abs(p[..., :2] - box_t[..., :2]) * cells, -1)
    size = tf.reduce_sum(tf.abs(tf.math.log(p[..., 2:4] + 1e-4) - tf.math.log(box_t[..., 2:4] + 1e-4)), -1)
    box = tf.reduce_sum(w * (centre + size)) / n_box
    return focal + box, focal, box


def _targets_of(d, name: str, classes: int) -> np.ndarray:
    boxes, offsets = d[f"boxes_{name}"], d[f"offsets_{name}"]
    return np.stack([dense_targets(boxes[offsets[i]:offsets[i + 1]], classes) for i in range(len(offsets) - 1)])


def train() -> None:
    """Random batches (half of them mirrored) for `TRAIN_BUDGET_S` seconds of wall time, the learning
    rate following a cosine over that time: on a shared machine the run ends when planned, decayed."""
    import tensorflow as tf

    from_pixels = lambda u8: (u8.astype(np.float32) - 127.5) / 127.5
    tf.keras.utils.set_random_seed(SEED)
    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rng = np.random.default_rng(SEED)
    d = np.load(DATA)
    classes = len(_classes())
    x_train, x_val = d["x_train"], d["x_val"]
    t_train, t_val = _targets_of(d, "train", classes), _targets_of(d, "val", classes)
    print(f"{len(x_train)} training frames, {len(x_val)} validation frames", flush=True)
    model = build_model(tf, classes)
    opt = tf.keras.optimizers.Adam(LEARNING_RATE)

    @tf.function
    def step(a, t):
        with tf.GradientTape() as tape:
            loss, focal, box = detection_loss(tf, model(a, training=True), t, classes)
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss, focal, box

    @tf.function
    def val_step(a, t):
        return detection_loss(tf, model(a, training=False), t, classes)

    def batch(x, t, idx, flip):
        a, b = x[idx], t[idx].copy()
        if flip:
            a, b = a[:, :, ::-1], b[:, :, ::-1].copy()
            b[..., 2 * classes + 1] = 1.0 - b[..., 2 * classes + 1]
        return tf.constant(from_pixels(np.ascontiguousarray(a))), tf.constant(b)

    val_idx = np.arange(0, len(x_val), max(1, len(x_val) // 128))
    t0, steps, history, sums = time.perf_counter(), 0, [], np.zeros(3)
    while (elapsed := time.perf_counter() - t0) < TRAIN_BUDGET_S:
        opt.learning_rate = float(LEARNING_RATE * 0.5 * (1 + np.cos(np.pi * elapsed / TRAIN_BUDGET_S)))
        sums += [float(v) for v in step(*batch(x_train, t_train, rng.integers(0, len(x_train), BATCH),
                                                rng.random() < 0.5))]
        steps += 1
        if steps % 100 == 0:
            val = np.mean([[float(v) for v in val_step(*batch(x_val, t_val, val_idx[i:i + BATCH], False))]
                           for i in range(0, len(val_idx), BATCH)], axis=0)
            history.append({"step": steps, "seconds": round(elapsed), "train": np.round(sums / 100, 4).tolist(),
                            "val": np.round(val, 4).tolist()})
            print(f"step {steps} ({elapsed:.0f} s, lr {float(opt.learning_rate):.5f}): loss/focal/box {sums / 100} "
                  f"val {val}", flush=True)
            sums[:] = 0
    train_s = time.perf_counter() - t0

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    FP32.parent.mkdir(parents=True, exist_ok=True)
    FP32.write_bytes(conv.convert())
    rep = x_train[np.random.default_rng(SEED).choice(len(x_train), 300, replace=False)]
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([from_pixels(x[None])] for x in rep)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    INT8.write_bytes(conv.convert())
    info = {"tensorflow": tf.__version__, "steps": steps, "batch": BATCH, "learning_rate": LEARNING_RATE,
            "epochs_equivalent": round(steps * BATCH / len(x_train), 2), "train_frames": len(x_train),
            "train_objects": int((d["boxes_train"][:, 5] == 0).sum()), "train_seconds": round(train_s),
            "parameters": int(model.count_params()), "history": history}
    INFO.write_text(json.dumps(info, indent=2))
    print(json.dumps({k: v for k, v in info.items() if k != "history"}),
          f"\nwrote {FP32} ({FP32.stat().st_size} bytes) and {INT8} ({INT8.stat().st_size} bytes)")


# -- evaluation (edgert venv) ------------------------------------------------------------------------
def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of xyxy boxes ``(N, 4)`` x ``(M, 4)``."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=1)
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def average_precision(frames, cls: int, iou: float) -> float | None:
    """COCO-style AP (101 recall points) of one class at one IoU over ``(dets, truth)`` frames.

    ``dets``: (boxes, scores, classes); ``truth``: (boxes, classes, ignore). Detections best-matching an
    ignored object (or an already matched one, at IoU >= 0.5 with an ignored one) are dropped.
    """
    scored, n_truth = [], 0
    for (db, ds, dc), (tb, tc, ti) in frames:
        d = np.flatnonzero(dc == cls)
        d = d[np.argsort(-ds[d], kind="stable")]
        keep_t, ign_t = np.flatnonzero((tc == cls) & ~ti), np.flatnonzero((tc == cls) & ti)
        n_truth += keep_t.size
        taken = np.zeros(keep_t.size, bool)
        ious = box_iou(db[d], tb[keep_t]) if keep_t.size else np.zeros((d.size, 0))
        ign = box_iou(db[d], tb[ign_t]).max(1) if ign_t.size else np.zeros(d.size)
        for row, k in enumerate(d):
            cand = np.where(taken, -1.0, ious[row]) if keep_t.size else np.zeros(0)
            j = int(np.argmax(cand)) if cand.size else -1
            if j >= 0 and cand[j] >= iou:
                taken[j] = True
                scored.append((ds[k], 1))
            elif ign[row] < 0.5:
                scored.append((ds[k], 0))
    if n_truth == 0:
        return None
    if not scored:
        return 0.0
    scored.sort(key=lambda s: -s[0])
    hits = np.array([h for _, h in scored])
    tp, fp = np.cumsum(hits), np.cumsum(1 - hits)
    recall, precision = tp / n_truth, tp / np.maximum(tp + fp, 1e-9)
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    points = np.linspace(0, 1, 101)
    idx = np.searchsorted(recall, points, side="left")
    return float(np.mean([precision[i] if i < len(precision) else 0.0 for i in idx]))


def detect_frames(path: Path, seeds, frames_per_stream: int = TEST_FRAMES_PER_STREAM, conf: float = 0.05):
    """Run a model through edgert (CPU backend, Preprocessor, YoloDecoder) over held-out streams.

    Returns:
        (list of ((boxes, scores, classes), (truth boxes, classes, ignore)), latencies in seconds of
        preprocess + infer + decode per frame)
    """
    import cv2

    import edgert
    from edgert.postprocess import YoloDecoder
    from edgert.preprocess import Preprocessor
    from edgert.sources.street import CLASSES, StreetConfig, StreetScene, detectable

    model = edgert.load(str(path), backend="cpu")
    decoder = YoloDecoder(model.outputs, conf=conf, iou=DECODER["iou"], layout=DECODER["layout"],
                          labels=CLASSES, input_size=INPUT, normalized=True)
    pre, out, times = None, [], []
    for seed in seeds:
        for camera in CAMERAS:
            config = StreetConfig(fps=0, seed=seed, camera=camera)
            scene = StreetScene(config, cv2)
            if pre is None:
                pre = Preprocessor(model.inputs[0], "BGR", config.size, **PREPROCESS)
            for i in range(frames_per_stream):
                img, meta = scene.render(i * FRAME_STEP + 5)  # frames between the training frames' times
                t = time.perf_counter()
                dets = decoder(model.run(pre(img)))
                boxes = pre.to_source(dets.boxes) if len(dets) else np.zeros((0, 4), np.float32)
                times.append(time.perf_counter() - t)
                objs = meta["objects"]
                truth = (np.array([o["box"] for o in objs], np.float64).reshape(-1, 4),
                         np.array([CLASSES.index(o["class"]) for o in objs], np.int64),
                         np.array([not detectable(o, config.size[1]) for o in objs], bool))
                out.append(((boxes.astype(np.float64), dets.scores.copy(), dets.classes.copy()), truth))
    model.close()
    return out, times


def measure(path: Path, seeds) -> dict:
    """mAP@0.5, mAP@0.5:0.95 (per class too) and latency of one model on held-out seeds."""
    from edgert.sources.street import CLASSES

    frames, times = detect_frames(path, seeds)
    per_class = {}
    for c, name in enumerate(CLASSES):
        aps = [average_precision(frames, c, t) for t in np.arange(0.5, 0.96, 0.05)]
        if aps[0] is not None:
            per_class[name] = {"ap50": round(aps[0], 4), "ap50_95": round(float(np.mean(aps)), 4)}
    n_truth = Counter(CLASSES[int(c)] for _, (_, tc, ti) in frames for c in tc[~ti])
    return {"map50": round(float(np.mean([v["ap50"] for v in per_class.values()])), 4),
            "map50_95": round(float(np.mean([v["ap50_95"] for v in per_class.values()])), 4),
            "per_class": per_class, "frames": len(frames), "objects": dict(sorted(n_truth.items())),
            "ms_per_frame_preprocess_infer_decode_median": round(1000 * float(np.median(times)), 3)}


def infer_latency(path: Path, runs: int = 200) -> float:
    """Median milliseconds of ``model.run`` alone on the CPU backend over `runs` runs (after 20 warm-up)."""
    import edgert

    model = edgert.load(str(path), backend="cpu")
    x = np.zeros(model.inputs[0].shape, model.inputs[0].dtype)
    for _ in range(20):
        model.run(x)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        model.run(x)
        times.append(time.perf_counter() - t)
    model.close()
    return round(1000 * float(np.median(times)), 3)


def evaluate() -> None:
    from edgert.sources.street import CLASSES, MIN_BOX_HEIGHT, MIN_VISIBLE, StreetConfig

    if _classes() != CLASSES:
        raise SystemExit(f"train_street.py trains {_classes()} but the street source now has {CLASSES}")
    info = json.loads(INFO.read_text())
    source = StreetConfig().model_dump(exclude={"seed", "frames", "fps", "camera"})
    manifest = {
        "model": INT8.name, "name": "street_detector", "task": "detect", "classes": list(CLASSES),
        "input": {"shape": [1, INPUT[1], INPUT[0], 3], "dtype": "int8", "layout": "NHWC"},
        "output": f"int8 (1, {4 + len(CLASSES)}, {GRID[0] * GRID[1]}): YOLOv8 single tensor, normalised cx, cy, "
                  "w, h of the input then per-class scores (0..1), one row per cell of a stride-8 grid",
        "preprocess": PREPROCESS, "pixel_centres": "half-pixel (edgert Preprocessor, as OpenCV resize)",
        "decoder": {"kind": "yolo", **DECODER, "input_size": list(INPUT)},
        "source": {"kind": "street", **{k: list(v) if isinstance(v, tuple) else v for k, v in source.items()}},
        "train_seeds": [TRAIN_SEEDS.start, TRAIN_SEEDS.stop - 1], "cameras": list(CAMERAS),
        "train_frames_per_stream": FRAMES_PER_STREAM, "frame_step": FRAME_STEP,
        "validation_seeds": [VAL_SEEDS.start, VAL_SEEDS.stop - 1],
        "held_out_seeds": [TEST_SEEDS.start, TEST_SEEDS.stop - 1],
        "held_out_frames": f"frames 5, 15, ... ({TEST_FRAMES_PER_STREAM} per seed and camera)",
        "ground_truth": f"objects at least {MIN_BOX_HEIGHT} px tall at 720 rows and at least {MIN_VISIBLE:.0%} "
                        "visible; smaller or more hidden ones are ignore regions",
        "map_note": "COCO-style 101-point AP per class, averaged over classes, at IoU 0.5 and 0.5:0.95, "
                    "conf >= 0.05, boxes in frame pixels; measured with edgert.load(backend='cpu') + "
                    "Preprocessor + YoloDecoder + to_source",
        "training": {k: v for k, v in info.items() if k != "history"},
        "fp32": {"file": "tests/data/" + FP32.name, **measure(FP32, TEST_SEEDS), "ms_infer_median_200": infer_latency(FP32)},
        "int8": {**measure(INT8, TEST_SEEDS), "ms_infer_median_200": infer_latency(INT8)},
        "size_bytes": INT8.stat().st_size,
    }
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    steps = {"data": make_data, "train": train, "evaluate": evaluate}
    if len(sys.argv) != 2 or sys.argv[1] not in steps:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(steps)}}}")
    steps[sys.argv[1]]()
