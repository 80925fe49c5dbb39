"""Rendered synthetic identities: aligned face-like images whose identity lives in fixed features.

An identity (seeded by its number) fixes the face's shape, skin, hair, eye spacing and size, iris colour,
eyebrows, nose, mouth, glasses, beard and a few marks. Each image of it varies what a camera varies:
alignment error (rotation, scale, shift), lighting (gain, side gradient, colour cast), expression (mouth
opening), blur and noise. Images come out aligned as ArcFace crops are (the eyes, nose and mouth near
the template points scaled to the image size), RGB uint8.

Used by the tests and by ``benchmarks/models/make_face_embedder.py`` (which trains the stand-in
embedder on identities 0..N-1 and evaluates it on identities held out from training).
"""
from __future__ import annotations

import numpy as np

#: ArcFace 112x112 template (eyes image-left/right, nose tip, mouth corners), scaled to the image size.
_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                      [70.7299, 92.2041]]) / 112.0


def identity(ident: int) -> dict:
    """The fixed features of identity `ident` (in units of the image size)."""
    r = np.random.default_rng(10_000 + ident)
    return {
        "skin": r.uniform([90, 60, 40], [235, 200, 170]),
        "hair": r.uniform(0, 1) < 0.85, "hair_colour": r.uniform([10, 5, 0], [200, 160, 110]),
        "hairline": r.uniform(0.10, 0.30), "face_a": r.uniform(0.33, 0.45), "face_b": r.uniform(0.42, 0.52),
        "eye_dx": r.uniform(-0.04, 0.04), "eye_dy": r.uniform(-0.03, 0.03), "eye_r": r.uniform(0.025, 0.05),
        "iris": r.uniform([20, 20, 20], [150, 170, 200]), "brow_h": r.uniform(0.05, 0.10),
        "brow_t": r.uniform(0.008, 0.03), "brow_tilt": r.uniform(-0.04, 0.04),
        "nose_len": r.uniform(0.08, 0.16), "nose_w": r.uniform(0.02, 0.05),
        "mouth_w": r.uniform(0.08, 0.16), "mouth_dy": r.uniform(-0.03, 0.03),
        "lips": r.uniform([120, 40, 40], [230, 120, 120]), "glasses": r.uniform(0, 1) < 0.25,
        "beard": r.uniform(0, 1) < 0.25, "marks": r.uniform(0.2, 0.8, size=(r.integers(0, 4), 2)),
    }


def _ellipse(u, v, cx, cy, a, b):
    return ((u - cx) / a) ** 2 + ((v - cy) / b) ** 2 <= 1.0


def render(ident: int, sample: int, size: int = 64, difficulty: float = 1.0) -> np.ndarray:
    """One ``(size, size, 3)`` uint8 RGB image of identity `ident` (`sample` seeds the nuisances)."""
    f = identity(ident)
    r = np.random.default_rng([ident, sample, 7])
    d = difficulty
    angle = np.deg2rad(r.normal(0, 5 * d))
    scale = 1.0 + r.normal(0, 0.05 * d)
    shift = r.normal(0, 0.02 * d, size=2)
    ys, xs = (np.mgrid[0:size, 0:size] + 0.5) / size
    # Inverse jitter: image point -> canonical face point.
    cx, cy = 0.5, 0.55
    x0, y0 = xs - cx - shift[0], ys - cy - shift[1]
    c, s = np.cos(angle), np.sin(angle)
    u = (c * x0 + s * y0) / scale + cx
    v = (-s * x0 + c * y0) / scale + cy
    img = np.empty((size, size, 3))
    img[:] = r.uniform(40, 220, size=3)
    img += (xs[..., None] - 0.5) * r.uniform(-60, 60, size=3)
    eyes = _TEMPLATE[:2] + [[-f["eye_dx"], f["eye_dy"]], [f["eye_dx"], f["eye_dy"]]]
    face = _ellipse(u, v, 0.5, 0.55, f["face_a"], f["face_b"])
    if f["hair"]:
        hair = _ellipse(u, v, 0.5, 0.5, f["face_a"] + 0.05, f["face_b"] + 0.03) & (v < f["hairline"] + 0.12)
        img[hair] = f["hair_colour"]
    img[face & ~(f["hair"] & (v < f["hairline"]))] = f["skin"]
    if f["beard"]:
        img[face & (v > _TEMPLATE[2, 1] + 0.06)] = f["skin"] * 0.45
    for mx, my in f["marks"]:
        img[_ellipse(u, v, 0.3 + 0.4 * mx, 0.45 + 0.3 * my, 0.02, 0.02) & face] = f["skin"] * 0.55
    for k, (ex, ey) in enumerate(eyes):
        img[_ellipse(u, v, ex, ey, f["eye_r"] * 1.6, f["eye_r"])] = 245
        img[_ellipse(u, v, ex, ey, f["eye_r"] * 0.7, f["eye_r"] * 0.7)] = f["iris"]
        tilt = f["brow_tilt"] * (1 if k == 0 else -1)
        brow = (np.abs(v - (ey - f["brow_h"]) - tilt * (u - ex) / 0.05) < f["brow_t"]) & (np.abs(u - ex) < 0.06)
        img[brow] = f["hair_colour"] * 0.6
        if f["glasses"]:
            ring = _ellipse(u, v, ex, ey, 0.08, 0.06) & ~_ellipse(u, v, ex, ey, 0.07, 0.05)
            img[ring] = 25
    nose_tip = _TEMPLATE[2]
    nose = _ellipse(u, v, nose_tip[0], nose_tip[1] - f["nose_len"] / 2, f["nose_w"], f["nose_len"] / 2)
    img[nose] = f["skin"] * 0.8
    mouth_y = _TEMPLATE[3:, 1].mean() + f["mouth_dy"]
    opening = max(0.008, r.uniform(0.008, 0.03 * d + 0.009))
    img[_ellipse(u, v, 0.5, mouth_y, f["mouth_w"] / 2, 0.02)] = f["lips"]
    img[_ellipse(u, v, 0.5, mouth_y, f["mouth_w"] / 2.6, opening)] = 40
    # Lighting, blur, noise.
    img *= r.uniform(1 - 0.3 * d, 1 + 0.3 * d)
    img *= 1 + (xs[..., None] - 0.5) * r.uniform(-0.6 * d, 0.6 * d)
    img += r.normal(0, 12 * d, size=3)
    if r.uniform() < 0.5 * d:
        pad = np.pad(img, ((1, 1), (1, 1), (0, 0)), mode="edge")
        img = sum(pad[i:i + size, j:j + size] for i in range(3) for j in range(3)) / 9.0
    img += r.normal(0, r.uniform(2, 8 * d + 2), size=img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def render_set(identities, samples: int, size: int = 64, first_sample: int = 0, difficulty: float = 1.0):
    """``(images (N, size, size, 3) uint8, identity (N,) int64)`` of `samples` images per identity."""
    images, ids = [], []
    for ident in identities:
        for k in range(first_sample, first_sample + samples):
            images.append(render(int(ident), k, size, difficulty))
            ids.append(int(ident))
    return np.stack(images), np.asarray(ids, np.int64)
