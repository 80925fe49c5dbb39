"""scikit-image's bundled photos, with and without faces, and the exact transforms that make test frames of them.

A frame is described by a list of operations applied in order (JSON-friendly, so the reference
detections in ``tests/data/blazeface_mediapipe.json`` say exactly which pixels MediaPipe saw):

* ``["photo", name]``: start from ``skimage.data.<name>()`` (gray photos become 3 equal channels);
* ``["crop", x0, y0, x1, y1]``: keep columns x0..x1-1 and rows y0..y1-1;
* ``["flip"]``: mirror left-right;
* ``["every", k]``: keep every k-th row and column (a plain decimation, no filter);
* ``["pad", left, top, right, bottom, value]``: add borders of one gray level;
* ``["hstack", ops_a, ops_b, ...]``: frames made by each list of operations, side by side (equal heights).

The benchmarks' reference generator (``benchmarks/models/blazeface_reference.py``) imports `FRAMES`
and `make_frame` from here, so the test and the reference are built from the same pixels.
"""
from __future__ import annotations

import numpy as np

_FACE = [["photo", "astronaut"], ["crop", 100, 0, 400, 300]]

#: name -> operations. Faces: the astronaut (square, mirrored, decimated, letterboxed both ways, twice
#: side by side) and the cameraman (gray); no face: the cat, the coffee cup and the rocket.
FRAMES = {
    "astronaut": [["photo", "astronaut"]],
    "astronaut_flipped": [["photo", "astronaut"], ["flip"]],
    "astronaut_256": [["photo", "astronaut"], ["every", 2]],
    "astronaut_640x300": [["photo", "astronaut"], ["crop", 0, 0, 512, 300], ["pad", 64, 0, 64, 0, 0]],
    "astronaut_300x640": [*_FACE, ["pad", 0, 170, 0, 170, 0]],
    "astronaut_511x301": [["photo", "astronaut"], ["crop", 0, 0, 511, 301]],
    "two_astronauts_600x300": [["hstack", _FACE, [*_FACE, ["flip"]]]],
    "camera": [["photo", "camera"]],
    "chelsea": [["photo", "chelsea"]],
    "coffee": [["photo", "coffee"]],
    "rocket": [["photo", "rocket"]],
}


def _photo(name: str) -> np.ndarray:
    import skimage.data

    img = np.asarray(getattr(skimage.data, name)())
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return img[:, :, :3].astype(np.uint8)


def make_frame(ops) -> np.ndarray:
    """The C-contiguous uint8 RGB ``(H, W, 3)`` frame the operations describe."""
    img = None
    for op in ops:
        kind, args = op[0], op[1:]
        if kind == "photo":
            img = _photo(args[0])
        elif kind == "crop":
            x0, y0, x1, y1 = args
            img = img[y0:y1, x0:x1]
        elif kind == "flip":
            img = img[:, ::-1]
        elif kind == "every":
            img = img[:: args[0], :: args[0]]
        elif kind == "pad":
            left, top, right, bottom, value = args
            img = np.pad(img, ((top, bottom), (left, right), (0, 0)), constant_values=value)
        elif kind == "hstack":
            img = np.concatenate([make_frame(part) for part in args], axis=1)
        else:
            raise ValueError(f"unknown frame operation {kind!r}")
    return np.ascontiguousarray(img)
