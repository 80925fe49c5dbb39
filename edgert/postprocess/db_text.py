"""DB text detection decoding (PP-OCR's detector): a text probability map -> rotated text quads.

    decoder = DbTextDecoder(model.outputs[0], threshold=0.3, box_threshold=0.5, unclip_ratio=1.6)
    boxes = decoder(outputs[0], to_source=pre.to_source)     # -> TextBoxes(quads (N, 4, 2), scores (N,))

Steps, as DB's post-processing: the map is binarised at `threshold`; each connected region's outer
contour (``cv2.findContours``) gives its minimum-area rotated rectangle; regions with a side under
`min_size` map pixels are dropped; the box score is the mean probability over the rectangle's pixels
(``cv2.fillPoly`` mask) and boxes under `box_threshold` are dropped; the rectangle is then grown back
("unclipped": DB's map marks text shrunk by ``D = area * (1 - r^2) / perimeter``) by the distance
``area * unclip_ratio / perimeter`` on every side, and one whose shorter side is still under
``min_size + 2`` is dropped. Quads are in map pixels (pixel centres at integers) until `to_source` maps
them (e.g. the detector's `Preprocessor.to_source`, which takes xyxy boxes: corners are mapped as
degenerate boxes); order: top-left, top-right, bottom-right, bottom-left; best score first.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from edgert.core.errors import ConfigError, DecodeError
from edgert.core.tensor import TensorSpec
from edgert.postprocess import kernels

CARD_KEYS = ("threshold", "box_threshold", "unclip_ratio", "min_size", "max_candidates")


class TextBoxes(NamedTuple):
    """Text regions found.

    Attributes:
        quads: float32 ``(N, 4, 2)`` corners (x, y): top-left, top-right, bottom-right, bottom-left.
        scores: float32 ``(N,)`` mean text probability inside each region's shrunk rectangle.
    """

    quads: np.ndarray
    scores: np.ndarray


def order_corners(points: np.ndarray) -> np.ndarray:
    """Four points as top-left, top-right, bottom-right, bottom-left (by x + y and y - x)."""
    p = np.asarray(points, np.float32).reshape(4, 2)
    s, d = p.sum(1), p[:, 1] - p[:, 0]
    out = np.empty((4, 2), np.float32)
    out[0], out[2] = p[np.argmin(s)], p[np.argmax(s)]
    out[1], out[3] = p[np.argmin(d)], p[np.argmax(d)]
    if len({tuple(v) for v in out.tolist()}) < 4:  # a 45-degree rectangle: fall back to angle order
        c = p.mean(0)
        order = np.argsort(np.arctan2(p[:, 1] - c[1], p[:, 0] - c[0]))
        out = p[np.roll(order, -int(np.argmin(s[order])))]
    return out


class DbTextDecoder:
    """Decoder of a DB text probability map ``(1, 1, H, W)``, ``(1, H, W)`` or ``(H, W)``.

    Args:
        spec: The output's `TensorSpec` (float32 probabilities, or quantized ones dequantized here).
        threshold: Binarisation threshold on the probability.
        box_threshold: Minimum mean probability of a region.
        unclip_ratio: How far a region is grown back (DB's r; PP-OCR uses 1.5-2.0).
        min_size: Shorter side a region needs, in map pixels.
        max_candidates: Most regions looked at (largest first).

    Raises:
        ConfigError: an unusable spec or setting.
    """

    def __init__(self, spec: TensorSpec, threshold: float = 0.3, box_threshold: float = 0.5,
                 unclip_ratio: float = 1.6, min_size: float = 3.0, max_candidates: int = 1000):
        if not isinstance(spec, TensorSpec):
            raise ConfigError(f"spec: expected an edgert.TensorSpec, got {type(spec).__name__}")
        shape = tuple(spec.shape)
        if len(shape) < 2 or any(v != 1 for v in shape[:-2]) or min(shape[-2:]) < 1:
            raise ConfigError(f"spec {spec.name!r}: expected a (1, 1, H, W) probability map, got shape {shape}")
        if spec.dtype != np.float32 and spec.quant is None:
            raise ConfigError(f"spec {spec.name!r}: {spec.dtype} map without quantization")
        for name, v, lo, hi in (("threshold", threshold, 0, 1), ("box_threshold", box_threshold, 0, 1),
                                ("unclip_ratio", unclip_ratio, 0, 10), ("min_size", min_size, 0, 1e4)):
            if not isinstance(v, (int, float)) or not lo <= v <= hi:
                raise ConfigError(f"{name}: expected a number in [{lo}, {hi}], got {v!r}")
        if not isinstance(max_candidates, int) or max_candidates < 1:
            raise ConfigError(f"max_candidates: expected an integer >= 1, got {max_candidates!r}")
        self.spec, self.size = spec, shape[-2:]
        self.threshold, self.box_threshold = float(threshold), float(box_threshold)
        self.unclip_ratio, self.min_size, self.max_candidates = float(unclip_ratio), float(min_size), max_candidates

    @classmethod
    def from_card(cls, spec: TensorSpec, settings: dict, **overrides) -> "DbTextDecoder":
        """The decoder a model card's ``{"kind": "db", ...}`` decoder object describes."""
        if not isinstance(settings, dict) or settings.get("kind") != "db":
            kind = settings.get("kind") if isinstance(settings, dict) else settings
            raise ConfigError(f"decoder: the model card names decoder {kind!r}, not 'db'")
        unknown = sorted(set(settings) - {"kind", *CARD_KEYS})
        if unknown:
            raise ConfigError(f"decoder: unknown key(s) {', '.join(unknown)}; expected kind, {', '.join(CARD_KEYS)}")
        return cls(spec, **{**{k: settings[k] for k in CARD_KEYS if k in settings}, **overrides})

    def probabilities(self, output: np.ndarray) -> np.ndarray:
        """The ``(H, W)`` float32 map of a raw output (dequantized when quantized)."""
        if not isinstance(output, np.ndarray):
            raise DecodeError(f"db: expected a numpy.ndarray, got {type(output).__name__}")
        if output.dtype != self.spec.dtype or output.size != self.size[0] * self.size[1]:
            raise DecodeError(f"db: output {output.dtype} {output.shape} does not fit spec {self.spec.dtype} "
                              f"{self.spec.shape}")
        m = output.reshape(self.size)
        m = kernels.dequantize(m, self.spec.quant) if self.spec.dtype != np.float32 else m
        if not np.isfinite(m).all():
            raise DecodeError(f"db: output {self.spec.name!r} holds NaN or inf")
        return np.ascontiguousarray(m, np.float32)

    def __call__(self, output: np.ndarray, to_source=None) -> TextBoxes:
        """Text quads of one raw output; `to_source` maps ``(N, 4)`` xyxy map boxes to source pixels."""
        import cv2

        prob = self.probabilities(output)
        binary = (prob > self.threshold).astype(np.uint8)
        contours, _ = cv2.findContours(binary, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        contours = sorted(contours, key=cv2.contourArea, reverse=True)[:self.max_candidates]
        quads, scores = [], []
        for contour in contours:
            (cx, cy), (w, h), angle = cv2.minAreaRect(contour)
            if min(w, h) < self.min_size:
                continue
            score = self._box_score(prob, cv2.boxPoints(((cx, cy), (w, h), angle)))
            if score < self.box_threshold:
                continue
            grow = w * h * self.unclip_ratio / (2 * (w + h))
            w2, h2 = w + 2 * grow, h + 2 * grow
            if min(w2, h2) < self.min_size + 2:
                continue
            quads.append(order_corners(cv2.boxPoints(((cx, cy), (w2, h2), angle))))
            scores.append(score)
        q = np.array(quads, np.float32).reshape(-1, 4, 2)
        s = np.array(scores, np.float32)
        order = np.argsort(-s, kind="stable")
        q, s = q[order], s[order]
        if to_source is not None and len(q):
            pts = q.reshape(-1, 2)
            mapped = np.asarray(to_source(np.concatenate([pts, pts], 1)), np.float32)[:, :2]
            q = mapped.reshape(-1, 4, 2)
        return TextBoxes(q, s)

    @staticmethod
    def _box_score(prob: np.ndarray, corners: np.ndarray) -> float:
        """Mean probability over the pixels a polygon covers (its bounding box cut out first)."""
        import cv2

        h, w = prob.shape
        x0, y0 = np.clip(np.floor(corners.min(0)).astype(int), 0, [w - 1, h - 1])
        x1, y1 = np.clip(np.ceil(corners.max(0)).astype(int), 0, [w - 1, h - 1])
        mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
        cv2.fillPoly(mask, [np.round(corners - (x0, y0)).astype(np.int32)], 1)
        return float(cv2.mean(prob[y0:y1 + 1, x0:x1 + 1], mask)[0])
