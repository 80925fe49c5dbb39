"""Item sprites of the synthetic conveyor: bottles, cans, paper and glass, drawn once per item.

Each item is drawn with random shape, colours and label, rotated, scaled, blurred (motion along the
belt) and given a soft shadow, into a premultiplied `Sprite` that `ConveyorSource` blends per frame.
"""
from __future__ import annotations

import math

import numpy as np

ITEM_SCALE = 1.3  # item sizes below are in pixels of a 480-row frame, times this


class Sprite:
    """An item drawn once, ready to blend: ``frame = (frame * inv + prem) >> 8``.

    Attributes:
        inv: uint16 ``(h, w, 1)``: 256 times the transparency (background weight).
        prem: uint16 ``(h, w, 3)``: 256 times the premultiplied BGR colour (shadow included).
    """

    __slots__ = ("inv", "prem")

    def __init__(self, inv: np.ndarray, prem: np.ndarray):
        self.inv, self.prem = inv, prem


class _Canvas:
    """A square drawing surface in item coordinates (origin at the centre, long axis along x)."""

    def __init__(self, size: int, cv2):
        self.cv2, self.size, self.c = cv2, size, size / 2.0
        self.bgr = np.zeros((size, size, 3), np.uint8)
        self.alpha = np.zeros((size, size), np.uint8)

    def _pts(self, pts) -> np.ndarray:
        return np.round(np.asarray(pts, np.float64) + self.c).astype(np.int32).reshape(-1, 1, 2)

    def poly(self, pts, colour, a: float = 1.0) -> None:
        p = [self._pts(pts)]
        self.cv2.fillPoly(self.bgr, p, _bgr(colour))
        self.cv2.fillPoly(self.alpha, p, round(255 * a))

    def rect(self, x0, y0, x1, y1, colour, a: float = 1.0, r: float = 0.0) -> None:
        r = max(0.0, min(r, (x1 - x0) / 2, (y1 - y0) / 2))
        if r < 1:
            self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], colour, a)
            return
        pts = []
        for cx, cy, start in ((x1 - r, y0 + r, -90), (x1 - r, y1 - r, 0), (x0 + r, y1 - r, 90), (x0 + r, y0 + r, 180)):
            for k in range(7):
                t = math.radians(start + 15 * k)
                pts.append((cx + r * math.cos(t), cy + r * math.sin(t)))
        self.poly(pts, colour, a)

    def circle(self, x, y, r, colour, a: float = 1.0, thickness: int = -1) -> None:
        centre = (round(x + self.c), round(y + self.c))
        self.cv2.circle(self.bgr, centre, max(1, round(r)), _bgr(colour), thickness)
        self.cv2.circle(self.alpha, centre, max(1, round(r)), round(255 * a), thickness)

    def line(self, x0, y0, x1, y1, colour, width: float, a: float | None = 1.0) -> None:
        """A straight stroke; with ``a=None`` it only paints over what is already drawn (a print, a fold)."""
        p0, p1 = (tuple(int(v) for v in p[0, 0]) for p in (self._pts([(x0, y0)]), self._pts([(x1, y1)])))
        t = max(1, round(width))
        self.cv2.line(self.bgr, p0, p1, _bgr(colour), t)
        if a is not None:
            self.cv2.line(self.alpha, p0, p1, round(255 * a), t)

    def shade(self, half_width: float, depth: float) -> None:
        """Cylinder shading across the item: rows darker towards +-half_width."""
        ys = (np.arange(self.size) - self.c) / max(half_width, 1.0)
        f = 1.0 - depth * np.clip(np.abs(ys), 0, 1) ** 2
        self.bgr[...] = np.clip(self.bgr * f[:, None, None], 0, 255).astype(np.uint8)


def _bgr(colour) -> tuple:
    return tuple(int(np.clip(round(v), 0, 255)) for v in colour)


def _hue_colour(rng, sat=(0.6, 1.0), val=(0.45, 0.95)) -> np.ndarray:
    """A random saturated colour (BGR floats)."""
    h, s, v = rng.uniform(0, 6), rng.uniform(*sat), rng.uniform(*val)
    i, f = int(h) % 6, h - int(h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array([b, g, r]) * 255


def _pick(rng, options):
    return np.asarray(options[int(rng.integers(len(options)))], np.float64) * rng.uniform(0.9, 1.1, 3)


def _draw_bottle(cv: _Canvas, rng, s: float) -> None:
    """A PET bottle lying down: translucent tinted body with ribs, coloured cap, often a label band."""
    length, width = rng.uniform(150, 215) * s, rng.uniform(52, 74) * s
    x0 = -length / 2
    body, shoulder, neck = x0 + 0.62 * length, x0 + 0.8 * length, x0 + 0.91 * length
    tint = _pick(rng, [(228, 230, 224), (238, 210, 165), (180, 222, 188)])
    a = rng.uniform(0.5, 0.68)
    hw = width / 2
    cv.rect(x0, -hw, body, hw, tint, a, r=width * 0.3)
    cv.poly([(body - 1, -hw), (shoulder, -width * 0.2), (shoulder, width * 0.2), (body - 1, hw)], tint, a)
    cv.rect(shoulder - 1, -width * 0.2, neck, width * 0.2, tint, a + 0.1)
    cv.rect(neck - 3 * s, -width * 0.27, neck, width * 0.27, tint * 0.8, a + 0.25)
    for k in range(int(rng.integers(3, 7))):
        rx = x0 + length * (0.08 + 0.5 * (k + rng.uniform(0.2, 0.8)) / 6)
        cv.line(rx, -hw + 2 * s, rx, hw - 2 * s, tint * 0.6, 2 * s, a + 0.2)
    if rng.random() < 0.6:
        lx = x0 + length * rng.uniform(0.15, 0.3)
        cv.rect(lx, -hw, lx + length * rng.uniform(0.18, 0.28), hw, _hue_colour(rng), 1.0)
    cv.shade(hw, 0.35)
    cap = _pick(rng, [(200, 90, 20), (240, 240, 240), (40, 40, 200), (50, 160, 40), (20, 130, 240)])
    cv.rect(neck, -width * 0.24, length / 2, width * 0.24, cap, 1.0, r=2 * s)
    cv.line(x0 + 0.08 * length, -width * 0.22, shoulder, -width * 0.2, (255, 255, 255), 3 * s, 0.85)


def _draw_glass(cv: _Canvas, rng, s: float) -> None:
    """A glass bottle lying down: dark-edged tinted glass, long neck and lip, paper label, specular streak."""
    length, width = rng.uniform(175, 240) * s, rng.uniform(62, 86) * s
    x0, hw = -length / 2, width / 2
    body, shoulder, neck = x0 + 0.55 * length, x0 + 0.72 * length, length / 2 - 0.045 * length
    colour = _pick(rng, [(30, 75, 125), (30, 75, 125), (40, 100, 45), (25, 60, 22), (200, 212, 196), (120, 62, 22)])
    clear = colour.mean() > 150  # flint glass: thick dark edges and always a paper label tell it from PET
    a = rng.uniform(0.86, 0.96)
    for grow, c in ((4 * s, colour * 0.35), (0.0, colour)):
        cv.rect(x0 - grow, -hw - grow, body, hw + grow, c, a, r=width * 0.18)
        curve = [(body - 1, -hw - grow)] + [
            (body + (shoulder - body) * t, -(hw + grow) + (hw - width * 0.17) * math.sin(t * math.pi / 2))
            for t in np.linspace(0.25, 1, 4)]
        cv.poly(curve + [(x, -y) for x, y in reversed(curve)], c, a)
        cv.rect(shoulder - 1, -width * 0.17 - grow, neck, width * 0.17 + grow, c, a)
    cv.rect(neck, -width * 0.21, length / 2, width * 0.21, colour * 0.7, a)
    if clear or rng.random() < 0.6:
        lx = x0 + length * rng.uniform(0.1, 0.2)
        paper = _pick(rng, [(225, 240, 245), (190, 220, 235), (245, 245, 245)])
        cv.rect(lx, -hw, lx + length * rng.uniform(0.22, 0.32), hw, paper, 1.0)
        cv.circle(lx + length * 0.12, 0, width * 0.18, _hue_colour(rng), 1.0)
    cv.shade(hw, 0.55)
    if rng.random() < 0.35:
        cv.rect(neck, -width * 0.22, length / 2 + 2 * s, width * 0.22, _pick(rng, [(40, 160, 200), (190, 190, 190)]))
    cv.line(x0 + 0.06 * length, -width * 0.26, body, -width * 0.26, (255, 255, 255), 4 * s, 0.9)
    cv.line(shoulder, -width * 0.09, neck, -width * 0.09, (255, 255, 255), 2 * s, 0.8)


def _draw_can(cv: _Canvas, rng, s: float) -> None:
    """An aluminium can: lying (printed cylinder, silver lids, metal shine) or standing (lid with tab)."""
    printed = _hue_colour(rng)
    if rng.random() < 0.7:
        length, width = rng.uniform(108, 138) * s, rng.uniform(58, 72) * s
        x0, hw = -length / 2, width / 2
        cv.rect(x0, -hw, -x0, hw, printed, 1.0, r=4 * s)
        logo = _hue_colour(rng) if rng.random() < 0.5 else np.array([240, 240, 240.0])
        lx = rng.uniform(-0.25, 0.05) * length
        if rng.random() < 0.5:
            cv.rect(lx, -hw * 0.6, lx + length * 0.25, hw * 0.6, logo, 1.0, r=5 * s)
        else:
            cv.circle(lx + length * 0.1, rng.uniform(-0.3, 0.3) * hw, hw * 0.5, logo, 1.0)
        lid = max(3, 7 * s)
        cv.rect(x0, -hw, x0 + lid, hw, (200, 200, 206), 1.0, r=2 * s)
        cv.rect(-x0 - lid, -hw, -x0, hw, (175, 178, 182), 1.0, r=2 * s)
        if rng.random() < 0.4:
            dx = rng.uniform(-0.3, 0.3) * length
            cv.line(dx, -hw, dx + rng.uniform(-10, 10) * s, hw * 0.3, printed * 0.4, 2 * s, None)
        cv.shade(hw, 0.6)
        cv.line(x0 + lid, -width * 0.2, -x0 - lid, -width * 0.2, (250, 250, 250), 4 * s, 0.9)
    else:
        r = rng.uniform(34, 42) * s
        cv.circle(0, 0, r + 2 * s, printed * 0.8, 1.0)
        cv.circle(0, 0, r, (192, 194, 198), 1.0)
        cv.circle(0, 0, r * 0.84, (140, 142, 146), 1.0, thickness=max(1, int(2 * s)))
        cv.rect(-0.15 * r, -0.14 * r, 0.38 * r, 0.14 * r, (165, 168, 172), 1.0, r=3 * s)
        cv.circle(0.52 * r, 0, 0.16 * r, (35, 35, 38), 1.0)
        cv.line(-0.6 * r, -0.5 * r, 0.2 * r, -0.7 * r, (250, 250, 250), 3 * s, 0.9)


def _draw_paper(cv: _Canvas, rng, s: float) -> None:
    """Flat paper or cardboard: an irregular sheet with folds, corrugation, tape or printed lines."""
    w, h = rng.uniform(130, 225) * s, rng.uniform(90, 165) * s
    corners = np.array([(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)])
    corners += rng.uniform(-0.12, 0.12, (4, 2)) * (w, h)
    cardboard = rng.random() < 0.5
    if cardboard:
        colour = np.array([rng.uniform(65, 100), rng.uniform(120, 158), rng.uniform(160, 200)])
    else:
        colour = _pick(rng, [(242, 242, 242), (205, 232, 242), (200, 200, 200), (240, 222, 200), (205, 212, 212)])
    pts = list(corners)
    if rng.random() < 0.4:  # a torn edge
        a, b = corners[1], corners[2]
        tear = [a + (b - a) * t + rng.uniform(-4, 4, 2) * s for t in np.linspace(0.1, 0.9, 9)]
        pts = [corners[0], corners[1], *tear, corners[2], corners[3]]
    cv.poly(pts, colour, 1.0)
    lo, hi = corners.min(0), corners.max(0)
    if cardboard:
        step = max(2.0, 6 * s)
        for y in np.arange(lo[1] + step, hi[1], step):
            cv.line(lo[0] + 6 * s, y, hi[0] - 6 * s, y, colour * 0.9, 1, None)
        if rng.random() < 0.5:
            ty = rng.uniform(-0.2, 0.2) * h
            cv.line(lo[0], ty, hi[0], ty, colour * 0.55 + np.array([90, 100, 105]), 18 * s, None)  # tape
    elif rng.random() < 0.65:
        for y in np.arange(lo[1] + 16 * s, hi[1] - 14 * s, 9 * s):
            x = lo[0] + 14 * s + rng.uniform(0, 10) * s
            end = hi[0] - 14 * s - rng.uniform(0, 40) * s
            cv.line(x, y, max(x + 5 * s, end), y, (70, 70, 75), 2 * s, None)
    for _ in range(int(rng.integers(1, 4))):
        p0 = lo + rng.uniform(0.1, 0.9, 2) * (hi - lo)
        d = rng.normal(size=2)
        d = d / (np.linalg.norm(d) + 1e-9) * (hi - lo).max() * 0.45
        cv.line(*(p0 - d), *(p0 + d), colour * rng.uniform(0.75, 0.9), 2 * s, None)


SPRITE_DRAWERS = {"bottle": _draw_bottle, "can": _draw_can, "paper": _draw_paper, "glass": _draw_glass}


def render_sprite(label: str, rng, scale: float, cv2) -> Sprite:
    """Draw one item of class ``label``: random shape and colours, rotated, scaled, blurred, with a shadow."""
    s = ITEM_SCALE * scale * rng.uniform(0.85, 1.15)
    size = math.ceil(330 * s) | 1
    cv = _Canvas(size, cv2)
    SPRITE_DRAWERS[label](cv, rng, s)
    a = cv.alpha.astype(np.float32) / 255.0
    layers = cv2.merge([*cv2.split(cv.bgr.astype(np.float32) * a[..., None]), a])  # premultiplied, blurs correctly
    turn = cv2.getRotationMatrix2D((size / 2, size / 2), float(rng.uniform(0, 360)), 1.0)
    layers = cv2.warpAffine(layers, turn, (size, size), flags=cv2.INTER_LINEAR)
    layers = cv2.GaussianBlur(layers, (0, 0), sigmaX=rng.uniform(0.5, 1.3) * scale + 0.2)
    smear = int(rng.integers(1, 8) * scale) | 1  # motion blur along the belt
    if smear > 1:
        layers = cv2.blur(layers, (smear, 1))
    prem, a = layers[..., :3], layers[..., 3]
    dx, dy = (round(v * scale) for v in rng.uniform(3, 9, 2))
    shadow = np.zeros_like(a)
    shadow[dy:, dx:] = a[:size - dy, :size - dx]
    shadow = cv2.GaussianBlur(shadow, (0, 0), sigmaX=5 * scale + 0.5) * rng.uniform(0.3, 0.5)
    alpha = np.clip(a + shadow * (1 - a), 0, 1)
    ys, xs = np.nonzero(alpha > 1 / 256)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    inv = np.round(256 * (1 - alpha[y0:y1, x0:x1, None])).astype(np.uint16)
    prem = np.minimum(np.round(256 * prem[y0:y1, x0:x1]), 255 * (256 - inv)).astype(np.uint16)
    return Sprite(np.ascontiguousarray(inv), np.ascontiguousarray(prem))
