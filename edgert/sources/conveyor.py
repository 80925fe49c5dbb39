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
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from edgert.core.errors import ConfigError
from edgert.core.settings import Section
from edgert.sources.rendered import RenderedSource
from edgert.sources.conveyor_sprites import Sprite, render_sprite

CLASSES = ("belt", "bottle", "can", "paper", "glass")
"""Class names, background first: the output order of the shipped conveyor classifier."""

_SCENE_RATE = 30.0  # frames per scene-second when fps is 0 (unpaced), so motion does not depend on pacing
_RAIL = 0.08  # fraction of the frame height taken by each static side rail


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


class ConveyorSource(RenderedSource):
    """Renders the conveyor scene as BGR frames with ground-truth labels (see the module docstring).

    Args:
        config: The scene settings (defaults when None).
        **source_options: `Source` options (``backoff``, ``max_failures``).
    """

    Config = ConveyorConfig

    def __init__(self, config: ConveyorConfig | None = None, **source_options):
        super().__init__(**source_options)
        self.config = config if config is not None else ConveyorConfig()
        self.name = f"conveyor (seed {self.config.seed})"
        self.live = self.config.fps > 0  # paced like a camera; unpaced renders every frame for the pipeline
        self._scene = _Scene(self.config, _cv2())



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


__all__ = ["CLASSES", "ConveyorConfig", "ConveyorSource"]
