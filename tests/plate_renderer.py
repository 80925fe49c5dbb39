"""Rendered plates for plate-reader tests and benchmarks: seeded text, Hershey fonts, sizes, blur, perspective.

`render_case(seed)` draws one plate (a Vietnamese car plate ``51F-123.45`` or a two-row motorbike plate
``59-X1`` / ``234.56``) flat with OpenCV, warps it by a random perspective into a noisy street-grey frame,
blurs it, and returns the frame, the plate's quad there (pixel centres at integers, top-left first,
clockwise) and the plate text as the format writes it.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edgert.cli.demo_scoring import char_accuracy  # noqa: F401  (the tests' and benchmarks' scorer)

FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX,
         cv2.FONT_HERSHEY_PLAIN)
LETTERS = "ABCDEFGHKLMNPSTUVXYZ"  # the series letters Vietnamese plates use (no I, O, Q, W, J, R)


@dataclass(frozen=True)
class RenderedPlate:
    """One rendered case: `frame` (BGR uint8), `quad` ``(4, 2)``, `text`, and how it was drawn."""

    frame: np.ndarray
    quad: np.ndarray
    text: str
    rows: tuple
    font: int
    height: float
    blur: float


def plate_text(rng: np.random.Generator, two_row: bool) -> tuple:
    """Random Vietnamese plate rows."""
    d = lambda n: "".join(str(v) for v in rng.integers(0, 10, n))  # noqa: E731
    province = f"{rng.integers(11, 100)}"
    if two_row:
        return (f"{province}-{LETTERS[rng.integers(len(LETTERS))]}{rng.integers(1, 10)}", f"{d(3)}.{d(2)}")
    return (f"{province}{LETTERS[rng.integers(len(LETTERS))]}-{d(3)}.{d(2)}",)


def flat_plate(rows: tuple, font: int) -> np.ndarray:
    """The plate drawn flat: white, a black border, black text rows centred (520x110 or 380x280 px)."""
    size = (110, 520) if len(rows) == 1 else (280, 380)
    img = np.full((*size, 3), 238, np.uint8)
    cv2.rectangle(img, (4, 4), (size[1] - 5, size[0] - 5), (15, 15, 15), 5)
    row_h = size[0] / len(rows)
    for i, text in enumerate(rows):
        scale, thick = 1.0, 2
        (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
        scale = min((size[1] - 40) / tw, row_h * 0.62 / th)
        thick = max(2, int(round(scale * 2.2)))
        (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
        org = (int((size[1] - tw) / 2), int(row_h * i + (row_h + th) / 2))
        cv2.putText(img, text, org, font, scale, (20, 20, 20), thick, cv2.LINE_AA)
    return img


def render_case(seed: int, frame_size=(640, 360), hard: bool = False, rows: tuple | None = None) -> RenderedPlate:
    """One seeded plate in a frame (see the module docstring); `hard`: smaller (12..24 px rows) and blurrier;
    `rows` draws that text instead of a random one."""
    rng = np.random.default_rng(seed)
    two_row = bool(rng.uniform() < 0.35)
    rows = plate_text(rng, two_row) if rows is None else tuple(rows)
    two_row = len(rows) == 2
    font = int(FONTS[rng.integers(len(FONTS))])
    flat = flat_plate(rows, font)
    fh, fw = flat.shape[:2]
    # Plate height in the frame: 22..60 px (hard: 12..24) for one row, 1.9 times that for two rows.
    height = float(rng.uniform(*((12, 24) if hard else (22, 60))) * (1.9 if two_row else 1.0))
    width = height * fw / fh
    cx, cy = rng.uniform(width / 2 + 10, frame_size[0] - width / 2 - 10), rng.uniform(height, frame_size[1] - height)
    angle = np.deg2rad(rng.uniform(-8, 8))
    skew = rng.uniform(-0.12, 0.12) * height  # perspective: one side taller than the other
    corners = np.array([[-width / 2, -height / 2 - skew / 2], [width / 2, -height / 2 + skew / 2],
                        [width / 2, height / 2 - skew / 2], [-width / 2, height / 2 + skew / 2]])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    quad = corners @ rot.T + (cx, cy)
    frame = rng.normal(110, 25, (frame_size[1], frame_size[0], 3)).clip(0, 255).astype(np.uint8)
    frame = cv2.GaussianBlur(frame, (0, 0), 3)
    src = np.array([[-0.5, -0.5], [fw - 0.5, -0.5], [fw - 0.5, fh - 0.5], [-0.5, fh - 0.5]], np.float32)
    m = cv2.getPerspectiveTransform(src, quad.astype(np.float32))
    warped = cv2.warpPerspective(flat, m, frame_size, flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.full((fh, fw), 255, np.uint8), m, frame_size, flags=cv2.INTER_AREA)
    alpha = (mask.astype(np.float32) / 255)[..., None]
    frame = (warped * alpha + frame * (1 - alpha)).astype(np.uint8)
    blur = float(rng.uniform(*((0.6, 1.8) if hard else (0.0, 1.2))))
    if blur > 0.3:
        frame = cv2.GaussianBlur(frame, (0, 0), blur)
    return RenderedPlate(frame, quad, " ".join(rows), rows, font, height, blur)


