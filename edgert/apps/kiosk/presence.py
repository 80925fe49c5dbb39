"""Presence triggers: is an item in front of the camera? From frame differences or a beam-break sensor.

`PRESENCE` is the registry of triggers (entry-point group ``edgert.presence``; a third party adds
one there): each entry is a class built as ``cls(config)``, or ``cls(config, pin_factory)`` when
its ``uses_gpio`` is true, whose ``Config`` has the ``kind`` literal the entry is named by.
"""
from __future__ import annotations

import logging
from typing import ClassVar, Literal, Protocol

import numpy as np
from pydantic import Field, model_validator

from edgert.core.errors import ActuatorError, ConfigError, FrameError
from edgert.core.frame import Frame
from edgert.core.pixel_formats import pixel_format
from edgert.core.plugins import Registry
from edgert.core.settings import Section

log = logging.getLogger(__name__)

_FRAME_DIFF_FIELDS = ("diff_threshold", "min_area", "step", "rise_frames", "fall_frames", "background_rate",
                      "relearn_after_s")
_BEAM_FIELDS = ("pin", "active_low", "pull_up", "bounce_s")


class PresenceConfig(Section):
    """The presence trigger: ``frame_diff`` (camera only) or ``beam_break`` (a GPIO input)."""

    kind: Literal["frame_diff", "beam_break"] = Field("frame_diff", description="Which trigger to use.")
    # frame_diff
    diff_threshold: float = Field(25.0, gt=0.0, le=255.0,
                                  description="frame_diff: a luma sample differing from the background by more "
                                              "than this many levels counts as changed.")
    min_area: float = Field(0.01, gt=0.0, le=1.0,
                            description="frame_diff: fraction of samples that must change for an item.")
    step: int = Field(8, ge=1, le=64, description="frame_diff: sample every step-th pixel of every step-th row.")
    rise_frames: int = Field(2, ge=1, description="frame_diff: changed frames in a row before presence rises.")
    fall_frames: int = Field(3, ge=1, description="frame_diff: unchanged frames in a row before presence falls.")
    background_rate: float = Field(0.05, gt=0.0, le=1.0,
                                   description="frame_diff: per-frame weight of the current frame in the background "
                                               "(it adapts only while no item is present, following lighting drift).")
    relearn_after_s: float | None = Field(30.0, gt=0.0,
                                          description="frame_diff: presence held this long means the scene changed "
                                                      "(a stuck item, a moved camera): the background is relearned. "
                                                      "None never relearns.")
    # beam_break
    pin: int | None = Field(None, ge=0, strict=True, description="beam_break: BCM number of the sensor's input pin.")
    active_low: bool = Field(True, description="beam_break: the input reads low while the beam is broken.")
    pull_up: bool | None = Field(True, description="beam_break: internal pull-up (True), pull-down (False) or none "
                                                   "(None: the sensor board has its own resistor).")
    bounce_s: float | None = Field(None, gt=0.0, description="beam_break: debounce time in seconds (None: none).")

    @model_validator(mode="after")
    def _fields_match_kind(self) -> PresenceConfig:
        foreign = _BEAM_FIELDS if self.kind == "frame_diff" else _FRAME_DIFF_FIELDS
        stray = [name for name in foreign if name in self.model_fields_set]
        if stray:
            raise ValueError(f"{', '.join(stray)} do not apply to kind {self.kind!r}")
        if self.kind == "beam_break" and self.pin is None:
            raise ValueError("kind 'beam_break' needs the input pin (BCM number)")
        return self


class Presence(Protocol):
    """What the decide stage calls: one `update` per frame, `close` at the end."""

    def update(self, frame: Frame) -> bool: ...

    def close(self) -> None: ...


class FrameDiffPresence:
    """Presence from the difference of a subsampled luma image to a slowly updated background.

    The first frame (and the first after a change of format or size) becomes the background. The
    background follows the scene only while no item is present, so slow lighting drift is absorbed but
    an item lingering in view is not. Per frame it touches ``(w / step) * (h / step)`` samples.
    """

    Config = PresenceConfig
    uses_gpio: ClassVar[bool] = False

    def __init__(self, config: PresenceConfig):
        if config.kind != "frame_diff":
            raise ConfigError(f"presence: FrameDiffPresence needs kind 'frame_diff', got {config.kind!r}")
        self.config = config
        self._key = None
        self._background: np.ndarray | None = None
        self.present = False
        self._changed_run = 0
        self._still_run = 0
        self._since_ns = 0
        self.changed_fraction = 0.0  #: Fraction of samples changed in the last frame (for tuning).

    def update(self, frame: Frame) -> bool:
        """Take one frame; return whether an item is present (after hysteresis)."""
        luma = self._luma_samples(frame)
        key = (frame.format, tuple(frame.size))
        if key != self._key:
            if self._key is not None:
                log.info("presence: frames changed from %s to %s; relearning the background", self._key, key)
            self._relearn(luma, key)
            return False
        cfg = self.config
        signed, magnitude, mask = self._signed, self._magnitude, self._mask
        np.subtract(luma, self._background, out=signed)
        np.abs(signed, out=magnitude)
        np.greater(magnitude, cfg.diff_threshold, out=mask)
        self.changed_fraction = np.count_nonzero(mask) / mask.size
        changed = self.changed_fraction >= cfg.min_area
        if changed:
            self._changed_run += 1
            self._still_run = 0
        else:
            self._still_run += 1
            self._changed_run = 0
        if not self.present and self._changed_run >= cfg.rise_frames:
            self.present = True
            self._since_ns = frame.timestamp_ns
        elif self.present and self._still_run >= cfg.fall_frames:
            self.present = False
        if self.present:
            if cfg.relearn_after_s is not None and frame.timestamp_ns - self._since_ns > cfg.relearn_after_s * 1e9:
                log.warning("presence: present for over %.1f s; relearning the background", cfg.relearn_after_s)
                self._relearn(luma, key)
        elif not changed:
            # Half-risen frames are not learned, or an item entering slowly would fade into the background.
            np.multiply(signed, cfg.background_rate, out=signed)
            np.add(self._background, signed, out=self._background)
        return self.present

    def close(self) -> None:
        """Nothing to release; present for symmetry with `BeamBreakPresence`."""

    def _relearn(self, luma: np.ndarray, key) -> None:
        self._key = key
        self._background = luma.astype(np.float32)
        self._signed = np.empty_like(self._background)
        self._magnitude = np.empty_like(self._background)
        self._mask = np.empty(self._background.shape, dtype=bool)
        self.present = False
        self._changed_run = self._still_run = 0

    def _luma_samples(self, frame: Frame) -> np.ndarray:
        """A strided view of every step-th luma (or green, for packed RGB) sample; no copy."""
        pixels, s = frame.pixels, self.config.step
        if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
            raise FrameError(f"presence: expected uint8 numpy pixels, got {getattr(pixels, 'dtype', type(pixels))}")
        fmt = pixel_format(frame.format)
        w, h = frame.size
        if fmt.yuv420 is not None:
            if pixels.ndim != 2 or pixels.shape[0] < h * 3 // 2 or pixels.shape[1] < w:
                raise FrameError(f"presence: {fmt.name} {w}x{h} needs a ({h * 3 // 2}, >={w}) array, "
                                 f"got {pixels.shape}")
            return pixels[:h:s, :w:s]
        if pixels.shape[:2] != (h, w):
            raise FrameError(f"presence: frame of shape {pixels.shape} is not {fmt.name} {w}x{h}")
        if pixels.ndim == 2:
            return pixels[::s, ::s]
        # Green carries most of the luma; one channel keeps this to a single strided read.
        return pixels[::s, ::s, fmt.rgb_offsets[1] if fmt.bytes_per_pixel > 1 else 0]


class BeamBreakPresence:
    """Presence from a beam-break sensor on a GPIO input (gpiozero `DigitalInputDevice`).

    A break shorter than a frame interval is not lost: a break seen by the pin's edge callback is
    reported by the next `update` even if the beam is whole again.

    Args:
        config: A ``beam_break`` presence config.
        pin_factory: The gpiozero pin factory to open the pin on (see `edgert.actuators.make_pin_factory`).

    Raises:
        ActuatorError: The pin cannot be opened.
    """

    Config = PresenceConfig
    uses_gpio: ClassVar[bool] = True  #: `make_presence` passes it a pin factory.

    def __init__(self, config: PresenceConfig, pin_factory):
        if config.kind != "beam_break":
            raise ConfigError(f"presence: BeamBreakPresence needs kind 'beam_break', got {config.kind!r}")
        from gpiozero import DigitalInputDevice

        self.config = config
        if config.pull_up is None:
            kwargs = {"pull_up": None, "active_state": not config.active_low}
            self._invert = False
        else:
            # With a pull resistor gpiozero fixes the active level (low for pull-up); flip it if needed.
            kwargs = {"pull_up": config.pull_up}
            self._invert = config.active_low != config.pull_up
        try:
            self._device = DigitalInputDevice(config.pin, bounce_time=config.bounce_s, pin_factory=pin_factory,
                                              **kwargs)
        except Exception as exc:
            raise ActuatorError(f"presence: cannot open beam-break input pin {config.pin}: "
                                f"{type(exc).__name__}: {exc}") from exc
        self._latched = False
        edge = "when_deactivated" if self._invert else "when_activated"
        setattr(self._device, edge, self._on_break)

    def _on_break(self) -> None:
        self._latched = True

    def update(self, frame: Frame | None = None) -> bool:
        """Return whether the beam is broken now or was broken since the last call (`frame` is unused)."""
        present = self._device.is_active != self._invert or self._latched
        self._latched = False
        return present

    def close(self) -> None:
        """Release the input pin."""
        self._device.close()


def make_presence(config, pin_factory=None) -> Presence:
    """Build the presence trigger `config` names (its ``kind`` picks the class in `PRESENCE`).

    Args:
        config: The presence config.
        pin_factory: A gpiozero pin factory for a trigger on a GPIO input (share the actuators' one);
            None builds gpiozero's default (see `edgert.actuators.make_pin_factory`).
    """
    cls = PRESENCE.load(config.kind, "presence.kind")
    if not getattr(cls, "uses_gpio", False):
        return cls(config)
    if pin_factory is None:
        from edgert.actuators.pins import make_pin_factory

        pin_factory = make_pin_factory(None)
    return cls(config, pin_factory)


PRESENCE = Registry("edgert.presence", {
    "frame_diff": "edgert.apps.kiosk.presence:FrameDiffPresence",
    "beam_break": "edgert.apps.kiosk.presence:BeamBreakPresence",
}, what="presence trigger")
