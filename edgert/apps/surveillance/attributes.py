"""Vehicle attributes from a crop: type (a classifier's top-1) and colour (a documented HSV histogram rule).

Colour rule (`dominant_colour`), on the body of the vehicle (`BODY`: the box's middle 70% of width,
45% to 80% of its height, below the windows and above the wheels, so glass, road, sky and neighbours
weigh little), each pixel in HSV (H in degrees 0..360, S and V in 0..1) is given one name:

* ``black``  when V < 0.22;
* ``white``  when S < 0.25 and V >= 0.60;
* ``grey``   when S < 0.25 otherwise (silver included);
* else by hue: ``red`` H < 15 or H >= 340, ``orange`` 15..40, ``yellow`` 40..70, ``green`` 70..170,
  ``blue`` 170..260, ``purple`` 260..340.

The colour is the most frequent name; ``colour_share`` is its fraction of the pixels counted. Ties
go to the earlier name of `COLOURS`.
"""
from __future__ import annotations

import numpy as np

from edgert.core.errors import ConfigError
from edgert.core.frame import frame_as_bgr

#: The part of a vehicle's box whose pixels are counted, as fractions (x0, y0, x1, y1) of the box: below
#: the windows and above the wheels, away from the sides.
BODY = (0.15, 0.45, 0.85, 0.80)
COLOURS = ("black", "white", "grey", "red", "orange", "yellow", "green", "blue", "purple")
_HUE_EDGES = np.array([15.0, 40.0, 70.0, 170.0, 260.0, 340.0])
_HUE_NAMES = np.array([COLOURS.index(n) for n in ("red", "orange", "yellow", "green", "blue", "purple", "red")])


def hsv_of(bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """H (degrees), S, V (0..1) of uint8 BGR pixels ``(..., 3)``."""
    px = bgr.astype(np.float32) / 255.0
    b, g, r = px[..., 0], px[..., 1], px[..., 2]
    v = px.max(-1)
    c = v - px.min(-1)
    s = np.where(v > 0, c / np.maximum(v, 1e-6), 0.0)
    safe = np.maximum(c, 1e-6)
    h = np.where(v == r, ((g - b) / safe) % 6.0, np.where(v == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    return np.where(c > 0, h * 60.0, 0.0), s, v


def colour_names(bgr: np.ndarray) -> np.ndarray:
    """Index into `COLOURS` of each uint8 BGR pixel ``(..., 3)``, by the rule of the module docstring."""
    h, s, v = hsv_of(bgr)
    names = _HUE_NAMES[np.digitize(h, _HUE_EDGES)]
    grey = s < 0.25
    names[grey] = COLOURS.index("grey")
    names[grey & (v >= 0.60)] = COLOURS.index("white")
    names[v < 0.22] = COLOURS.index("black")
    return names


def dominant_colour(frame_bgr: np.ndarray, box) -> tuple[str, float]:
    """``(colour, share)`` of the middle of `box` (frame pixels) of a BGR frame.

    Raises:
        ConfigError: the box holds no pixel of the frame.
    """
    h, w = frame_bgr.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    bw, bh = x1 - x0, y1 - y0
    fx0, fy0, fx1, fy1 = BODY
    cx0, cy0 = max(0, int(round(x0 + fx0 * bw))), max(0, int(round(y0 + fy0 * bh)))
    cx1, cy1 = min(w, int(round(x0 + fx1 * bw))), min(h, int(round(y0 + fy1 * bh)))
    if cx1 <= cx0 or cy1 <= cy0:
        raise ConfigError(f"box {[round(v, 1) for v in (x0, y0, x1, y1)]}: no pixel of the {w}x{h} frame in its middle")
    patch = frame_bgr[cy0:cy1, cx0:cx1]
    step = max(1, int(np.sqrt(patch.shape[0] * patch.shape[1] / 4096)))  # about 4k pixels counted
    counts = np.bincount(colour_names(patch[::step, ::step]).ravel(), minlength=len(COLOURS))
    best = int(np.argmax(counts))
    return COLOURS[best], round(float(counts[best] / counts.sum()), 3)


def class_scores(entry, outputs) -> np.ndarray:
    """A classifier's scores of one crop (dequantised; a softmax when they are not probabilities already)."""
    out = outputs[0]
    spec = entry.model.outputs[0]
    q = getattr(spec, "quant", None)
    x = (q.dequantize(out) if q is not None and out.dtype.kind in "iu" else out.astype(np.float32)).reshape(-1)
    if x.min() < 0 or x.max() > 1.0001 or abs(float(x.sum()) - 1.0) > 0.05:
        e = np.exp(x - x.max())
        x = e / e.sum()
    return x


class AttributeReader:
    """Type and colour of one vehicle crop.

    Args:
        labels: The type classifier's class names (its model card's).

    Raises:
        ConfigError: the model has no labels.
    """

    def __init__(self, labels):
        if not labels:
            raise ConfigError("attributes model: its card names no classes (the vehicle types)")
        self.labels = tuple(labels)

    def read(self, entry, outputs, frame, box) -> dict:
        """``{type, type_score, colour, colour_share}`` of the crop `box` of `frame`."""
        scores = class_scores(entry, outputs)
        if scores.shape[0] != len(self.labels):
            raise ConfigError(f"attributes model: {scores.shape[0]} scores for {len(self.labels)} classes")
        top = int(np.argmax(scores))
        colour, share = dominant_colour(frame_as_bgr(frame), box)
        return {"type": self.labels[top], "type_score": round(float(scores[top]), 4), "colour": colour,
                "colour_share": share}
