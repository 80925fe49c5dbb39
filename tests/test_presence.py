"""Presence triggers: frame differences on synthetic scenes (BGR, NV12, ...) and a beam break on mock pins."""
from __future__ import annotations

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin
from pydantic import ValidationError

from edgert.apps.kiosk.presence import (
    BeamBreakPresence,
    FrameDiffPresence,
    PresenceConfig,
    make_presence,
)
from edgert.core.errors import ActuatorError, FrameError
from edgert.core.frame import Frame

W, H = 320, 240
FRAME_NS = 33_000_000


class Scene:
    """A textured belt seen by a noisy camera, with optional item and global lighting offset."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:H, 0:W]
        self.belt = 60 + 40 * np.sin(xx / 9.0) * np.cos(yy / 13.0) + 0.1 * xx  # fixed texture
        self.seq = 0

    def luma(self, item: tuple | None = None, light: float = 0.0) -> np.ndarray:
        y = self.belt + light + self.rng.normal(0, 2.5, self.belt.shape)
        if item is not None:
            x0, y0, size = item
            y[y0:y0 + size, x0:x0 + size] = 200 + light
        return np.clip(y, 0, 255).astype(np.uint8)

    def frame(self, fmt: str, item=None, light: float = 0.0, size=(W, H)) -> Frame:
        y = self.luma(item, light)
        if size != (W, H):
            y = np.resize(y, (size[1], size[0]))
        h, w = y.shape
        if fmt == "BGR":
            pixels = np.ascontiguousarray(np.stack([y // 2, y, y // 3], axis=-1))
        elif fmt == "XRGB8888":
            pixels = np.ascontiguousarray(np.stack([y // 2, y, y // 3, np.zeros_like(y)], axis=-1))
        elif fmt == "GRAY":
            pixels = y
        elif fmt in ("NV12", "YUV420"):
            stride = w + 64  # row padding as camera stacks add it
            pixels = np.full((h * 3 // 2, stride), 128, dtype=np.uint8)
            pixels[:h, :w] = y
        else:
            raise AssertionError(fmt)
        frame = Frame(pixels, fmt, (w, h), pixels.strides[0], self.seq * FRAME_NS, self.seq)
        self.seq += 1
        return frame


@pytest.mark.parametrize("fmt", ["BGR", "NV12", "XRGB8888", "GRAY", "YUV420"])
def test_item_enters_and_leaves_with_hysteresis(fmt):
    presence = FrameDiffPresence(PresenceConfig(rise_frames=2, fall_frames=3, min_area=0.02))
    scene = Scene()
    quiet = [presence.update(scene.frame(fmt)) for _ in range(10)]
    assert not any(quiet), "camera noise alone is not an item"
    item = (100, 80, 60)  # 60x60 of 320x240: about 5% of the view
    entering = [presence.update(scene.frame(fmt, item)) for _ in range(6)]
    assert entering == [False, True, True, True, True, True], "rises on the 2nd changed frame"
    leaving = [presence.update(scene.frame(fmt)) for _ in range(5)]
    assert leaving == [True, True, False, False, False], "falls on the 3rd unchanged frame"
    again = [presence.update(scene.frame(fmt, (10, 10, 60))) for _ in range(2)]
    assert again == [False, True], "the next item is seen the same way"


@pytest.mark.parametrize("fmt", ["BGR", "NV12"])
def test_slow_lighting_drift_is_not_an_item(fmt):
    presence = FrameDiffPresence(PresenceConfig(diff_threshold=20, background_rate=0.05))
    scene = Scene(1)
    # 80 levels brighter over 400 frames (13 s at 30 fps): four times the threshold in total.
    seen = [presence.update(scene.frame(fmt, light=0.2 * i)) for i in range(400)]
    assert not any(seen)
    # ...while the background it followed still tells an item apart.
    assert [presence.update(scene.frame(fmt, (50, 50, 70), light=80)) for _ in range(3)][-1]


def test_background_does_not_learn_an_item_that_stays():
    presence = FrameDiffPresence(PresenceConfig(background_rate=0.5, relearn_after_s=None))
    scene = Scene(2)
    for _ in range(5):
        presence.update(scene.frame("BGR"))
    seen = [presence.update(scene.frame("BGR", (40, 40, 80))) for _ in range(60)]
    assert all(seen[1:]), "a fast background rate must not absorb an item while it is present"


def test_stuck_item_is_relearned_after_the_configured_time():
    presence = FrameDiffPresence(PresenceConfig(relearn_after_s=1.0))  # about 30 frames
    scene = Scene(3)
    presence.update(scene.frame("NV12"))
    seen = [presence.update(scene.frame("NV12", (40, 40, 80))) for _ in range(45)]
    assert seen[1] and seen[30] and not seen[40], "held presence ends once the stuck item became the background"
    # The scene with the item is now the background: taking it away is a change again.
    assert [presence.update(scene.frame("NV12")) for _ in range(2)] == [False, True]


def test_a_new_frame_size_relearns_instead_of_failing():
    presence = FrameDiffPresence(PresenceConfig())
    scene = Scene(4)
    for _ in range(3):
        presence.update(scene.frame("BGR"))
    assert presence.update(scene.frame("BGR", size=(160, 120))) is False
    assert presence.update(scene.frame("BGR", size=(160, 120))) is False


def test_frames_that_do_not_match_their_format_are_refused():
    presence = FrameDiffPresence(PresenceConfig())
    good = Scene().frame("BGR")
    with pytest.raises(FrameError, match="not BGR 320x240"):
        presence.update(Frame(good.pixels[:100], "BGR", (W, H), good.stride, 0, 0))
    with pytest.raises(FrameError, match="NV12 320x240"):
        presence.update(Frame(np.zeros((H, W), np.uint8), "NV12", (W, H), W, 0, 0))
    with pytest.raises(FrameError, match="uint8"):
        presence.update(Frame(good.pixels.astype(np.float32), "BGR", (W, H), good.stride, 0, 0))


@pytest.fixture
def mock_factory():
    factory = MockFactory(pin_class=MockPWMPin)
    yield factory
    factory.close()


def test_beam_break_active_low_with_pull_up(mock_factory):
    presence = make_presence(PresenceConfig(kind="beam_break", pin=22), mock_factory)
    assert isinstance(presence, BeamBreakPresence)
    pin = mock_factory.pin(22)
    assert pin.state == 1, "pulled up: the beam is whole"
    assert presence.update(None) is False
    pin.drive_low()
    assert presence.update(None) is True
    pin.drive_high()
    assert presence.update(None) is False
    presence.close()
    assert mock_factory.pin(22).state == 1


def test_beam_break_between_two_frames_is_not_lost(mock_factory):
    presence = BeamBreakPresence(PresenceConfig(kind="beam_break", pin=5), mock_factory)
    pin = mock_factory.pin(5)
    pin.drive_low()
    pin.drive_high()
    assert presence.update(None) is True, "the short break is latched until the next frame"
    assert presence.update(None) is False
    presence.close()


@pytest.mark.parametrize("pull_up, active_low, broken_level", [
    (True, False, "high"), (False, False, "high"), (False, True, "low"), (None, True, "low"), (None, False, "high")])
def test_beam_break_levels(mock_factory, pull_up, active_low, broken_level):
    config = PresenceConfig(kind="beam_break", pin=6, pull_up=pull_up, active_low=active_low)
    presence = BeamBreakPresence(config, mock_factory)
    pin = mock_factory.pin(6)
    broken, whole = (pin.drive_high, pin.drive_low) if broken_level == "high" else (pin.drive_low, pin.drive_high)
    whole()
    assert presence.update(None) is False
    broken()
    assert presence.update(None) is True
    whole()
    presence.update(None)  # consumes a latched edge, if any
    assert presence.update(None) is False
    presence.close()


def test_beam_break_pin_in_use_is_an_actuator_error(mock_factory):
    first = BeamBreakPresence(PresenceConfig(kind="beam_break", pin=9), mock_factory)
    with pytest.raises(ActuatorError, match="pin 9"):
        BeamBreakPresence(PresenceConfig(kind="beam_break", pin=9), mock_factory)
    first.close()


@pytest.mark.parametrize("fields, fragment", [
    ({"kind": "beam_break"}, "needs the input pin"),
    ({"kind": "frame_diff", "pin": 4}, "pin do not apply"),
    ({"kind": "beam_break", "pin": 4, "min_area": 0.1}, "min_area do not apply"),
    ({"kind": "ultrasonic"}, "kind"),
    ({"min_area": 0}, "min_area"),
    ({"step": 0}, "step"),
    ({"treshold": 3}, "treshold"),
])
def test_presence_config_validation(fields, fragment):
    with pytest.raises(ValidationError, match=fragment):
        PresenceConfig(**fields)
