"""Train the stand-in face embedder on rendered synthetic identities (dev-only: needs TensorFlow).

    /work/tfvenv/bin/python benchmarks/models/make_face_embedder.py tests/data

No pretrained face embedder ships offline, so the face-recognition plumbing (alignment -> embedding ->
gallery -> voting) is tested with this one: a small CNN (64x64 RGB aligned crop -> 64-d embedding)
trained with a cosine-margin softmax (CosFace style: logits ``s * (cos - m)`` for the true identity) on
identities 0..TRAIN-1 of ``tests/synthetic_faces.py``. Identities TRAIN.. are never seen in training;
``--eval-dir`` writes a folder per held-out identity for ``edgert bench --task embedding``.

Writes ``synthetic_face_embedder_fp32.tflite`` and ``synthetic_face_embedder_int8.tflite`` (uint8 input,
int8 output, calibrated on training images) and their card ``synthetic_face_embedder.json``.
Everything is seeded; rerunning gives equivalent (not byte-identical) models.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
import synthetic_faces  # noqa: E402

SEED, SIZE, DIM = 0, 64, 64
TRAIN, SAMPLES, HELD_OUT, HELD_OUT_SAMPLES = 400, 20, 100, 10
L = tf.keras.layers


class CosineMargin(L.Layer):
    """Scaled cosine logits of the normalised embedding against normalised class weights, margin on the true class."""

    def __init__(self, classes: int, s: float = 24.0, m: float = 0.25, **kw):
        super().__init__(**kw)
        self.classes, self.s, self.m = classes, s, m

    def build(self, shape):
        self.w = self.add_weight(shape=(shape[0][-1], self.classes), initializer="glorot_uniform", name="w")

    def call(self, inputs):
        emb, labels = inputs
        cos = tf.matmul(tf.math.l2_normalize(emb, 1), tf.math.l2_normalize(self.w, 0))
        return self.s * (cos - self.m * tf.one_hot(tf.cast(labels[:, 0], tf.int32), self.classes))


def embedder() -> tf.keras.Model:
    inp = L.Input((SIZE, SIZE, 3))
    h = inp
    for filters in (24, 48, 96, 128):
        h = L.Conv2D(filters, 3, strides=2, padding="same", use_bias=False)(h)
        h = L.BatchNormalization()(h)
        h = L.ReLU()(h)
        h = L.Conv2D(filters, 3, padding="same", use_bias=False)(h)
        h = L.BatchNormalization()(h)
        h = L.ReLU()(h)
    h = L.Flatten()(h)
    return tf.keras.Model(inp, L.Dense(DIM)(h))


def normalise(images: np.ndarray) -> np.ndarray:
    return (images.astype(np.float32) - 127.5) / 127.5


def convert(model, rep: np.ndarray | None) -> bytes:
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if rep is not None:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([x[None]] for x in rep)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.uint8
        conv.inference_output_type = tf.int8
    return conv.convert()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--epochs", type=int, default=14)
    ap.add_argument("--eval-dir", help="write the held-out identities here, a folder each (PNG)")
    args = ap.parse_args()
    tf.keras.utils.set_random_seed(SEED)
    out = Path(args.out_dir)
    x, y = synthetic_faces.render_set(range(TRAIN), SAMPLES, SIZE)
    emb = embedder()
    inp, lab = L.Input((SIZE, SIZE, 3)), L.Input((1,))
    train = tf.keras.Model([inp, lab], CosineMargin(TRAIN)([emb(inp), lab]))
    train.compile(optimizer=tf.keras.optimizers.Adam(2e-3),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    xn = normalise(x)
    train.fit([xn, y[:, None]], y, epochs=args.epochs, batch_size=64, shuffle=True, verbose=2)
    (out / "synthetic_face_embedder_fp32.tflite").write_bytes(convert(emb, None))
    rep = xn[np.random.default_rng(SEED).choice(len(xn), 200, replace=False)]
    (out / "synthetic_face_embedder_int8.tflite").write_bytes(convert(emb, rep))
    card = {"name": "synthetic-face-embedder", "version": f"synthetic-{TRAIN}ids-e{args.epochs}", "task": "embed",
            "preprocess": {"resize": "stretch", "interpolation": "bilinear", "mean": [127.5] * 3,
                           "std": [127.5] * 3, "channel_order": "RGB", "pixel_centers": "corner"},
            "landmarks": "arcface5 template scaled to 64x64 (the crops are aligned by edgert.alignment)",
            "output": f"({DIM},) embedding, not normalised (L2-normalise it)",
            "training": f"identities 0..{TRAIN - 1} of tests/synthetic_faces.py, {SAMPLES} images each; "
                        f"held out: identities {TRAIN}..; benchmarks/models/make_face_embedder.py",
            "licence": "made by this project"}
    (out / "synthetic_face_embedder.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    if args.eval_dir:
        write_eval(Path(args.eval_dir))


def write_eval(root: Path) -> None:
    import cv2

    for ident in range(TRAIN, TRAIN + HELD_OUT):
        d = root / f"id{ident:04d}"
        d.mkdir(parents=True, exist_ok=True)
        for k in range(HELD_OUT_SAMPLES):
            cv2.imwrite(str(d / f"{k:02d}.png"), synthetic_faces.render(ident, k, SIZE)[:, :, ::-1])


if __name__ == "__main__":
    main()
