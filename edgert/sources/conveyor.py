"""`ConveyorSource`: a synthetic top-down camera over a waste-sorting conveyor belt, with ground truth.

Items of the waste classes (`CLASSES`) ride a textured belt from left to right, one at a time, with
empty belt between them. Each item is drawn once when it enters (shape, colour, label, rotation,
scale, blur, shadow) into a premultiplied sprite; each frame then only scrolls a precomputed belt
texture, blends the sprite in, applies a slowly drifting lighting table and adds camera noise.

Every frame carries ground truth in ``meta``:

* ``"label"``: the class name while an item is entirely in view, else None (empty belt or an item
  entering/leaving through a frame edge).
* ``"item"``: the id (0, 1, ...) of the item with any part in view, else None.
* ``"visible"``: the fraction of that item's width inside the frame (0.0 on empty belt).

The scene is a function of the seed alone: the same config gives the same frames, paced or not.
"""
from __future__ import annotations

import math
import time
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from edgert.config.section import Section
from edgert.errors import ConfigError
from edgert.frame import Frame
from edgert.sources.base import Source

CLASSES = ("belt", "bottle", "can", "paper", "glass")
"""Class names, background first: the output order of the shipped conveyor classifier."""

_SCENE_RATE = 30.0  # frames per scene-second when fps is 0 (unpaced), so motion does not depend on pacing
_RAIL = 0.08  # fraction of the frame height taken by each static side rail
_ITEM_SCALE = 1.3  # item sizes below are in pixels of a 480-row frame, times this


class ConveyorConfig(Section):
    """Settings of the synthetic conveyor camera."""

    kind: Literal["conveyor"] = Field("conveyor", description="Source kind.")
    size: tuple[int, int] = Field((640, 480), description="Frame (width, height) in pixels; items scale with height.")
    fps: float = Field(30.0, ge=0, le=1000, description="Frames per second to pace at; 0 renders as fast as "
                                                         "possible (motion still advances as at 30 fps).")
    seed: int = Field(0, ge=0, description="Scene seed: the same seed gives the same frames. The shipped model "
                                           "was trained on seeds 1000-1109 only (models/conveyor.json).")
    classes: tuple[str, ...] = Field(CLASSES[1:], min_length=1, description="Item classes to draw, from "
                                     + ", ".join(CLASSES[1:]) + ".")
    belt_speed: float = Field(1.5, gt=0, le=20, description="Belt speed in frame widths per second.")
    item_gap_s: float = Field(0.35, gt=0, le=600, description="Mean time of empty belt between one item leaving "
                                                              "the view and the next entering (varies +-50%).")
    items: int | None = Field(None, ge=1, description="Items to send before the stream ends; None: forever.")
    noise: float = Field(2.0, ge=0, le=40, description="Camera noise, standard deviation in grey levels.")

    @field_validator("size")
    @classmethod
    def _size(cls, v):
        w, h = v
        if w < 64 or h < 48 or w > 8192 or h > 8192:
            raise ValueError(f"frame size {w}x{h} outside 64x48 .. 8192x8192")
        return v

    @field_validator("classes")
    @classmethod
    def _classes(cls, v):
        unknown = [c for c in v if c not in CLASSES[1:]]
        if unknown:
            raise ValueError(f"unknown item classes {unknown}; expected some of {list(CLASSES[1:])}")
        if len(set(v)) != len(v):
            raise ValueError(f"item classes listed twice: {list(v)}")
        return v


def _cv2():
    try:
        import cv2
    except ImportError:
        raise ConfigError("conveyor source needs OpenCV: pip install opencv-python-headless") from None
    return cv2


class _Item:
    """One item riding the belt: its sprite, id, class and where it is."""

    __slots__ = ("id", "label", "sprite", "x", "y")

    def __init__(self, sprite: Sprite, item_id: int, label: str, x: float, y: int):
        self.sprite, self.id, self.label, self.x, self.y = sprite, item_id, label, x, y


class ConveyorSource(Source):
    """Renders the conveyor scene as BGR frames with ground-truth labels (see the module docstring).

    Args:
        config: The scene settings (defaults when None).
        **source_options: `Source` options (``backoff``, ``max_failures``).
    """

    def __init__(self, config: ConveyorConfig | None = None, **source_options):
        super().__init__(**source_options)
        self.config = config if config is not None else ConveyorConfig()
        self.name = f"conveyor (seed {self.config.seed})"
        self.live = self.config.fps > 0  # paced like a camera; unpaced renders every frame for the pipeline
        self._scene = _Scene(self.config, _cv2())

    # -- Source ---------------------------------------------------------------------------------
    def _open(self) -> None:
        self._t0 = time.monotonic()
        self._paced = 0

    def _read(self, timeout: float) -> Frame | None:
        fps = self.config.fps
        if fps > 0:
            due = self._t0 + self._paced / fps
            wait = due - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return None
            if wait < -1.0:  # far behind (a stalled consumer): restart the pacing clock, no burst
                self._t0, self._paced = time.monotonic(), 0
            self._paced += 1
        rendered = self._scene.next_frame()
        if rendered is None:
            return None
        pixels, meta = rendered
        h, w = pixels.shape[:2]
        seq, generation = self._next_stamps("BGR", (w, h))
        return Frame(pixels, "BGR", (w, h), pixels.strides[0], time.monotonic_ns(), seq, generation, meta)

    def _close(self) -> None:
        pass


class _Scene:
    """The belt, the item on it and the lighting; `next_frame` advances the scene by one frame."""

    def __init__(self, config: ConveyorConfig, cv2):
        self.cv2, self.config = cv2, config
        self.rng = np.random.default_rng(config.seed)
        self.w, self.h = config.size
        self.scale = self.h / 480.0
        rate = config.fps if config.fps > 0 else _SCENE_RATE
        self.dt = 1.0 / rate
        self.step = config.belt_speed * self.w * self.dt  # pixels per frame
        self.belt, self.period = _belt_texture(self.w, self.h, self.scale, self.rng, cv2)
        self.rail_rows = max(2, round(_RAIL * self.h))
        self.rails = _rails(self.w, self.rail_rows, self.rng, cv2)
        pad = 16
        self.pad = pad
        sigma = config.noise
        noise = self.rng.normal(0.0, sigma, (self.h + pad, self.w + pad, 3)) if sigma > 0 else None
        self.noise_pos = None if noise is None else np.clip(noise, 0, 255).astype(np.uint8)
        self.noise_neg = None if noise is None else np.clip(-noise, 0, 255).astype(np.uint8)
        self.phases = self.rng.uniform(0, 2 * math.pi, 4)
        self.t = 0.0
        self.belt_pos = 0.0
        self.item: _Item | None = None
        self.sent = 0
        self.gap_left = self._gap()

    def _gap(self) -> float:
        return self.config.item_gap_s * self.rng.uniform(0.5, 1.5)

    def _spawn(self) -> None:
        label = self.config.classes[int(self.rng.integers(len(self.config.classes)))]
        sprite = render_sprite(label, self.rng, self.scale, self.cv2)
        sh, sw = sprite.inv.shape[:2]
        y = int(self.rng.integers(0, max(1, self.h - sh + 1)))
        self.item = _Item(sprite, self.sent, label, -float(sw), y)
        self.sent += 1

    def _lighting(self):
        """A 256-entry table per channel: brightness and white balance drifting over tens of seconds.

        The drift is slow enough (under 8% per second) for a background-difference presence trigger.
        """
        p, t = self.phases, self.t
        gain = 1.0 + 0.15 * math.sin(2 * math.pi * t / 20.0 + p[0]) + 0.03 * math.sin(2 * math.pi * t / 6.0 + p[1])
        warm = 0.05 * math.sin(2 * math.pi * t / 15.0 + p[2])
        gains = np.array([gain * (1 - warm), gain, gain * (1 + warm)])  # B, G, R
        lut = np.clip(np.arange(256)[:, None] * gains[None, :], 0, 255).astype(np.uint8)
        return lut.reshape(256, 1, 3)

    def next_frame(self):
        cfg, cv2 = self.config, self.cv2
        if self.item is None:
            if self.gap_left <= 0 and (cfg.items is None or self.sent < cfg.items):
                self._spawn()
            elif cfg.items is not None and self.sent >= cfg.items:
                return None
        off = int(self.belt_pos) % self.period
        frame = self.belt[:, self.period - off:self.period - off + self.w].copy()  # belt content moves right
        frame[:self.rail_rows] = self.rails[0]
        frame[self.h - self.rail_rows:] = self.rails[1]
        meta = {"label": None, "item": None, "visible": 0.0}
        item = self.item
        if item is not None:
            x = round(item.x)
            _sh, sw = item.sprite.inv.shape[:2]
            x0, x1 = max(0, x), min(self.w, x + sw)
            if x1 > x0:
                _blend(frame, item.sprite, x0, x1, x, item.y)
                meta["item"] = item.id
                meta["visible"] = (x1 - x0) / sw
                if x0 == x and x1 == x + sw:
                    meta["label"] = item.label
        frame = cv2.LUT(frame, self._lighting(), dst=frame)
        if self.noise_pos is not None:
            dy, dx = (int(v) for v in self.rng.integers(0, self.pad, 2))
            cv2.add(frame, self.noise_pos[dy:dy + self.h, dx:dx + self.w], dst=frame)
            dy, dx = (int(v) for v in self.rng.integers(0, self.pad, 2))
            cv2.subtract(frame, self.noise_neg[dy:dy + self.h, dx:dx + self.w], dst=frame)
        self._advance()
        return frame, meta

    def _advance(self) -> None:
        self.t += self.dt
        self.belt_pos += self.step
        if self.item is not None:
            self.item.x += self.step
            if self.item.x >= self.w:
                self.item = None
                self.gap_left = self._gap()
        else:
            self.gap_left -= self.dt


def _blend(frame: np.ndarray, sprite: Sprite, x0: int, x1: int, x: int, y: int) -> None:
    """Composite the visible columns ``[x0, x1)`` of a premultiplied sprite whose left edge is at ``x``."""
    sh = sprite.inv.shape[0]
    roi = frame[y:y + sh, x0:x1]
    inv = sprite.inv[:, x0 - x:x1 - x]
    prem = sprite.prem[:, x0 - x:x1 - x]
    roi[...] = ((roi * inv + prem) >> 8).astype(np.uint8)


def _belt_texture(w: int, h: int, scale: float, rng, cv2):
    """A rubber belt texture periodic along x (period, width + period) with seams and overhead lighting."""
    period = max(32, round(320 * scale))
    grain = rng.normal(0.0, 1.0, (h, period)).astype(np.float32)
    wrapped = np.tile(grain, (1, 3))  # blur a periodic copy so the texture has no seam at its period
    grain = cv2.GaussianBlur(wrapped, (0, 0), sigmaX=2.5 * scale + 0.3, sigmaY=0.6 * scale + 0.3)[:, period:2 * period]
    grain = grain / (grain.std() + 1e-6)
    fine = rng.normal(0.0, 1.0, (h, period)).astype(np.float32)
    base = 62.0 + rng.uniform(-6, 6)
    lum = base + 3.0 * grain + 1.5 * fine  # low contrast: a scrolled belt must not look like an item
    seam = int(period * rng.uniform(0.2, 0.8))
    sw = max(1, round(3 * scale))
    lum[:, seam:seam + sw] -= 9.0
    lum[:, seam + sw:seam + sw + 1] += 4.0
    ys = (np.arange(h, dtype=np.float32) - h / 2) / (h / 2)
    lum *= (1.08 - 0.16 * ys ** 2)[:, None]  # lamp over the middle of the belt
    tint = np.array([1.04, 1.0, 0.96], np.float32) * rng.uniform(0.97, 1.03, 3).astype(np.float32)
    tile = np.clip(lum[..., None] * tint, 0, 255).astype(np.uint8)
    reps = (w + period) // period + 1
    return np.ascontiguousarray(np.tile(tile, (1, reps, 1))[:, :w + period]), period


def _rails(w: int, rows: int, rng, cv2):
    """Static brushed-metal side rails (top, bottom)."""
    out = []
    for flip in (False, True):
        ramp = np.linspace(150, 95, rows, dtype=np.float32)
        if flip:
            ramp = ramp[::-1]
        streaks = cv2.GaussianBlur(rng.normal(0, 6, (rows, w)).astype(np.float32), (0, 0), sigmaX=8, sigmaY=0.5)
        rail = np.clip(ramp[:, None] + streaks, 0, 255)[..., None] * np.array([1.0, 1.0, 0.97], np.float32)
        out.append(rail.astype(np.uint8))
    return out


# -- item sprites -------------------------------------------------------------------------------------
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
    s = _ITEM_SCALE * scale * rng.uniform(0.85, 1.15)
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


__all__ = ["CLASSES", "ConveyorConfig", "ConveyorSource"]
