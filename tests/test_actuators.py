"""Actuators on gpiozero's MockFactory/MockPWMPin: pin states and their timing, safe states, the firing schedule."""
from __future__ import annotations

import threading
import time

import pytest
from conftest import wait_until
from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin
from pydantic import ValidationError

from edgert.actuators import (
    CANCELLED,
    NO_ACTUATOR,
    Actuator,
    ActuatorsConfig,
    FiringScheduler,
    RelayActuator,
    RelayConfig,
    ServoActuator,
    ServoConfig,
    actuator_pins,
    build_actuators,
    make_pin_factory,
    open_actuators,
)
from edgert.actuators import pins as pins_module
from edgert.core.errors import ActuatorError, ClosedError

# Devices run on real time, where the code promises only lower bounds (a pulse or hold never ends
# early; this is float slack). How late anything runs depends on the machine's load: no upper bounds.
EARLY_S = 0.002


def duty(angle: float, min_angle=-90.0, max_angle=90.0) -> float:
    """PWM duty cycle of a 1-2 ms servo pulse in a 20 ms frame at `angle`."""
    pulse = 0.001 + 0.001 * (angle - min_angle) / (max_angle - min_angle)
    return pulse / 0.02


def reported(result: str, late_ms: float) -> str:
    """The result the scheduler reports for a firing `late_ms` behind time (it marks over 2 ms as late)."""
    return result if late_ms <= 2.0 else f"{result}, late {late_ms:.1f} ms"


class FakeClock:
    """The scheduler's monotonic ns clock, moved only by the test; counts the scheduler's reads of it."""

    def __init__(self, now: int = 10**12):
        self.now = now
        self.reads = 0

    def __call__(self) -> int:
        self.reads += 1
        return self.now

    def wait_for_reads(self, n: int = 2) -> bool:
        """Whether the scheduler reads the clock `n` more times (so it has looked at the current time)."""
        target = self.reads + n
        return wait_until(lambda: self.reads >= target)


def timeline(pin) -> list[tuple[float, object]]:
    """A mock pin's state changes as (absolute monotonic seconds, state), from its `clear_states` base."""
    t, out = pin.test_base, []
    for change in list(pin.states)[1:]:
        t += change.timestamp
        out.append((t, change.state))
    return out


def clear(pin) -> None:
    """Start the pin's history now, remembering the absolute time of its start."""
    pin.clear_states()
    pin.test_base = pin._last_change  # MockPin's own monotonic() reading at clear_states: exact under load


class Recorder:
    """The on_fired callback: collects (token, bin, result, late_ms, error)."""

    def __init__(self):
        self.calls = []
        self.lock = threading.Lock()

    def __call__(self, token, bin_, result, late_ms, error):
        with self.lock:
            self.calls.append((token, bin_, result, late_ms, error))

    def by_token(self):
        with self.lock:
            return {call[0]: call for call in self.calls}


KIOSK = {
    "pin_factory": "mock",
    "conveyor_delay_s": 0.15,
    "devices": [
        {"kind": "servo", "name": "flap", "pin": 18, "angles": {"paper": 45.0, "glass": -60.0}, "safe_angle": 0.0,
         "hold_s": 0.3},
        {"kind": "relay", "name": "gates", "channels": {"plastic": {"pin": 17, "pulse_s": 0.2},
                                                        "metal": {"pin": 27, "pulse_s": 0.1}}},
    ],
}


@pytest.fixture
def factory():
    f = MockFactory(pin_class=MockPWMPin)
    yield f
    f.close()


#: KIOSK with pulses and holds no test outlasts: a pin observed after firing is still on.
LONG = {**KIOSK, "devices": [{**KIOSK["devices"][0], "hold_s": 600.0},
                             {**KIOSK["devices"][1], "channels": {"plastic": {"pin": 17, "pulse_s": 60.0},
                                                                  "metal": {"pin": 27, "pulse_s": 60.0}}}]}


@pytest.fixture
def clock():
    return FakeClock()


def scheduler_on(config: dict, recorder, factory, clock: FakeClock) -> FiringScheduler:
    """What `build_actuators` builds, on the test's clock."""
    cfg = ActuatorsConfig(**config)
    return FiringScheduler(open_actuators(cfg, factory), cfg.conveyor_delay_s, recorder, clock=clock)


@pytest.fixture
def kiosk(factory, clock):
    recorder = Recorder()
    scheduler = scheduler_on(KIOSK, recorder, factory, clock)
    yield scheduler, recorder, factory
    scheduler.close()


def test_build_puts_every_device_in_its_safe_state(kiosk):
    scheduler, _, factory = kiosk
    assert factory.pin(18).frequency == pytest.approx(50)
    assert factory.pin(18).state == pytest.approx(duty(0.0))
    assert factory.pin(17).state == 0 and factory.pin(27).state == 0
    assert scheduler.bins == {"paper", "glass", "plastic", "metal"}
    assert scheduler.pending() == 0


def test_relay_pulse_length_and_firing_delay_from_capture(kiosk, clock):
    scheduler, recorder, factory = kiosk
    pin = factory.pin(17)
    clear(pin)
    # The frame was captured 40 ms ago: 40 ms of the 150 ms conveyor delay are already spent.
    capture_ns = clock.now - 40_000_000
    due_ns = scheduler.schedule("plastic", capture_ns, token="row-1")
    assert due_ns == capture_ns + 150_000_000
    clock.now = due_ns - 1_000_000
    assert clock.wait_for_reads()
    assert timeline(pin) == [] and recorder.calls == [], "fired before its due time"
    clock.now = due_ns
    assert wait_until(lambda: len(timeline(pin)) >= 2)
    (on_t, on_state), (off_t, off_state) = timeline(pin)[:2]
    assert (on_state, off_state) == (1, 0)
    assert off_t - on_t >= 0.2 - EARLY_S, f"pulse lasted {1000 * (off_t - on_t):.1f} ms"
    assert wait_until(lambda: "row-1" in recorder.by_token())
    assert recorder.by_token()["row-1"][1:] == ("plastic", "relay 17 pulse 0.20s", 0.0, None)
    assert factory.pin(27).state == 0, "the other channel never moved"


def test_servo_turns_to_the_bin_angle_and_returns_after_hold(kiosk, clock):
    scheduler, recorder, factory = kiosk
    pin = factory.pin(18)
    clear(pin)
    scheduler.schedule("glass", clock.now - 150_000_000, token=7)  # due now
    assert wait_until(lambda: len(timeline(pin)) >= 2)
    (turn_t, turn_duty), (back_t, back_duty) = timeline(pin)[:2]
    assert turn_duty == pytest.approx(duty(-60.0))
    assert back_duty == pytest.approx(duty(0.0))
    assert back_t - turn_t >= 0.3 - EARLY_S
    assert wait_until(lambda: 7 in recorder.by_token())
    assert recorder.by_token()[7][2:] == ("servo 18 -60.0deg", 0.0, None)


def test_servo_without_hold_stays_at_the_bin_angle(factory):
    servo = ServoActuator(ServoConfig(kind="servo", pin=12, angles={"paper": 30.0}, safe_angle=-30.0,
                                      min_angle=-45, max_angle=45, hold_s=None), factory)
    assert servo.angle == pytest.approx(-30.0)
    assert servo.fire("paper") == "servo 12 30.0deg"
    assert factory.pin(12).state == pytest.approx(duty(30.0, -45, 45))
    time.sleep(0.05)
    assert servo.angle == pytest.approx(30.0)
    servo.close()
    states = [s.state for s in factory.pin(12).states]
    assert states[-2] == pytest.approx(duty(-30.0, -45, 45)), "close goes to the safe angle before releasing"
    assert factory.pin(12).frequency is None


def test_late_firing_runs_at_once_and_says_by_how_much(kiosk, clock):
    scheduler, recorder, _ = kiosk
    scheduler.schedule("metal", clock.now - 500_250_000, token="late")  # due 350.25 ms ago
    assert wait_until(lambda: "late" in recorder.by_token())
    assert recorder.by_token()["late"][1:] == ("metal", "relay 27 pulse 0.10s, late 350.2 ms", 350.25, None)


def test_firings_run_in_due_order_not_schedule_order(kiosk, clock):
    scheduler, recorder, _ = kiosk
    now = clock.now
    scheduler.schedule("metal", now - 50_000_000, token="second")   # due in 100 ms
    scheduler.schedule("paper", now - 120_000_000, token="first")   # due in 30 ms
    scheduler.schedule("reject", now - 10_000_000, token="third")   # due in 140 ms; nothing serves it
    assert scheduler.pending() == 3
    clock.now += 140_000_000  # all three are due at once
    assert wait_until(lambda: len(recorder.calls) == 3)
    assert [call[0] for call in recorder.calls] == ["first", "second", "third"]
    assert recorder.by_token()["third"][2:] == (NO_ACTUATOR, 0.0, None)
    assert scheduler.pending() == 0


def test_safe_all_cancels_pending_and_cuts_pulses(factory, clock):
    recorder = Recorder()
    scheduler = scheduler_on(LONG, recorder, factory, clock)
    now = clock.now
    scheduler.schedule("plastic", now - 150_000_000, token="on-now")
    scheduler.schedule("paper", now - 150_000_000, token="turn-now")
    scheduler.schedule("metal", now + 10**9, token="later")
    assert wait_until(lambda: len(recorder.calls) == 2)
    assert factory.pin(17).state == 1 and factory.pin(18).state == pytest.approx(duty(45.0))
    assert scheduler.safe_all("watchdog") == 1
    assert factory.pin(17).state == 0, "the running pulse is cut short"
    assert factory.pin(18).state == pytest.approx(duty(0.0))
    assert scheduler.pending() == 0
    assert recorder.by_token()["later"][1:] == ("metal", CANCELLED, 0.0, "watchdog")
    assert factory.pin(27).state == 0
    scheduler.close()


def test_close_is_safe_releases_pins_and_leaves_no_threads(factory):
    baseline = threading.active_count()
    recorder = Recorder()
    scheduler = build_actuators(ActuatorsConfig(**LONG), recorder, pin_factory=factory)
    scheduler.schedule("plastic", time.monotonic_ns() - 150_000_000, token=1)
    scheduler.schedule("paper", time.monotonic_ns() - 150_000_000, token=2)
    scheduler.schedule("glass", time.monotonic_ns() + 3600 * 10**9, token=3)
    assert wait_until(lambda: factory.pin(17).state == 1 and len(recorder.calls) == 2)
    scheduler.close()
    assert recorder.by_token()[3][2] == CANCELLED
    assert factory.pin(17).state == 0
    assert [s.state for s in factory.pin(18).states][-2] == pytest.approx(duty(0.0))
    with pytest.raises(ClosedError):
        scheduler.schedule("paper", 0)
    scheduler.close()  # idempotent
    assert wait_until(lambda: threading.active_count() <= baseline, timeout=2.0), threading.enumerate()
    # The pins are free again.
    RelayActuator(RelayConfig(kind="relay", channels={"x": {"pin": 17}}), factory).close()


def test_active_low_relay_idles_high_and_pulses_low(factory):
    relay = RelayActuator(RelayConfig(kind="relay", active_high=False, channels={"paper": {"pin": 4, "pulse_s": 0.1},
                                                                                 "glass": {"pin": 5, "pulse_s": 60}}),
                          factory)
    pin = factory.pin(4)
    assert pin.state == 1 and factory.pin(5).state == 1
    clear(pin)
    assert relay.fire("paper") == "relay 4 pulse 0.10s"
    assert wait_until(lambda: pin.state == 1)
    (low_t, low), (high_t, high) = timeline(pin)[:2]
    assert (low, high) == (0, 1)
    assert high_t - low_t >= 0.1 - EARLY_S
    relay.fire("glass")
    assert relay.is_on("glass") and factory.pin(5).state == 0, "fire returns while the pulse runs"
    relay.safe()
    assert not relay.is_on("glass") and factory.pin(5).state == 1
    relay.close()


def test_refire_during_a_pulse_restarts_it(factory):
    relay = RelayActuator(RelayConfig(kind="relay", channels={"a": {"pin": 20, "pulse_s": 0.15}}), factory)
    pin = factory.pin(20)
    for _ in range(10):
        clear(pin)
        relay.fire("a")
        time.sleep(0.05)
        second = time.monotonic()
        relay.fire("a")
        assert wait_until(lambda: pin.state == 0)
        changes = timeline(pin)
        if changes[1][0] > second:
            break  # the first pulse was still running at the second firing, as intended
        # else this thread was stalled past the whole first pulse: that tells nothing, try again
    else:
        pytest.fail("the test never fired twice within one pulse")
    assert [state for _, state in changes] == [1, 0], "no off/on flicker between the two pulses"
    assert changes[1][0] - second >= 0.15 - EARLY_S
    relay.close()


class BrokenActuator(Actuator):
    """A device whose output fails (as a disconnected driver board would)."""

    def __init__(self):
        self.name, self.bins, self.safe_calls = "broken", frozenset({"paper"}), 0

    def _fire(self, bin):
        raise OSError("I/O error on /dev/gpiochip4")

    def safe(self):
        self.safe_calls += 1

    def _release(self):
        pass


def test_a_failed_firing_reports_one_line_and_goes_safe():
    recorder, broken = Recorder(), BrokenActuator()
    scheduler = FiringScheduler([broken], 0.0, recorder)
    scheduler.schedule("paper", time.monotonic_ns(), token="x")
    assert wait_until(lambda: recorder.calls)
    _, bin_, result, _, error = recorder.calls[0]
    assert (bin_, result) == ("paper", "error")
    assert "broken" in error and "OSError" in error and "gpiochip4" in error and "\n" not in error
    assert broken.safe_calls >= 1
    scheduler.close()


def test_callback_exceptions_do_not_stop_the_scheduler(factory):
    calls = []

    def flaky(token, *rest):
        calls.append(token)
        raise RuntimeError("journal down")

    scheduler = build_actuators(ActuatorsConfig(**KIOSK), flaky, pin_factory=factory)
    scheduler.schedule("metal", time.monotonic_ns() - 150_000_000, token=1)
    scheduler.schedule("metal", time.monotonic_ns() - 100_000_000, token=2)
    assert wait_until(lambda: calls == [1, 2])
    scheduler.close()


def test_fire_checks_bin_and_closed_state(factory):
    relay = RelayActuator(RelayConfig(kind="relay", channels={"a": {"pin": 21}}), factory)
    with pytest.raises(ActuatorError, match="does not serve bin 'b'"):
        relay.fire("b")
    relay.close()
    with pytest.raises(ClosedError):
        relay.fire("a")


def test_servo_on_a_pin_without_pwm_is_an_actuator_error():
    plain = MockFactory(pin_class=MockPin)
    with pytest.raises(ActuatorError, match="no PWM"):
        ServoActuator(ServoConfig(kind="servo", pin=18, angles={"a": 10}), plain)
    plain.close()


def test_a_pin_in_use_fails_and_releases_what_was_opened(factory):
    holder = RelayActuator(RelayConfig(kind="relay", channels={"x": {"pin": 27}}), factory)
    config = ActuatorsConfig(**{**KIOSK, "pin_factory": None})
    with pytest.raises(ActuatorError, match="pin 27"):
        build_actuators(config, Recorder(), pin_factory=factory)
    holder.close()
    # The servo and the first relay channel that did open were closed again: their pins can be reused.
    build_actuators(config, Recorder(), pin_factory=factory).close()


def test_mock_factory_by_name_has_pwm_pins():
    recorder = Recorder()
    scheduler = build_actuators(ActuatorsConfig(**KIOSK), recorder)  # opens and later closes its own factory
    scheduler.schedule("paper", time.monotonic_ns() - 150_000_000, token=1)
    assert wait_until(lambda: recorder.calls)
    _, _, result, late_ms, error = recorder.calls[0]
    assert (result, error) == (reported("servo 18 45.0deg", late_ms), None)
    scheduler.close()


def test_pin_factory_that_cannot_load_is_an_actuator_error(monkeypatch):
    with pytest.raises(ActuatorError, match="unknown gpiozero pin factory 'gpio9000'.*mock"):
        make_pin_factory("gpio9000")
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "gpio9000")
    with pytest.raises(ActuatorError, match="gpio9000"):
        make_pin_factory(None)
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY")

    def no_gpio(name):  # what every factory does on a machine without GPIO
        raise OSError(f"{name}: no such device\nsecond line")

    monkeypatch.setattr(pins_module, "_load", no_gpio)
    with pytest.raises(ActuatorError) as info:
        make_pin_factory(None)
    message = str(info.value)
    assert all(name in message for name in ("lgpio", "rpigpio", "pigpio", "native"))
    assert "pin_factory: mock" in message and "\n" not in message
    with pytest.raises(ActuatorError, match="'lgpio' cannot load here .*pin_factory: mock"):
        make_pin_factory("lgpio")
    with pytest.raises(ActuatorError, match="pin_factory: mock"):
        build_actuators(ActuatorsConfig(**{**KIOSK, "pin_factory": "lgpio"}), Recorder())


def test_real_lgpio_factory_fails_cleanly_without_gpio():
    try:
        import lgpio  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("lgpio is installed: this machine may have GPIO")
    with pytest.raises(ActuatorError, match="'lgpio' cannot load here.*lgpio"):
        make_pin_factory("lgpio")


def test_actuator_pins_lists_every_user():
    pins = actuator_pins(ActuatorsConfig(**KIOSK))
    assert pins == {18: "'flap'", 17: "'gates' bin 'plastic'", 27: "'gates' bin 'metal'"}


def _with_device(**device):
    return {**KIOSK, "devices": [*KIOSK["devices"], device]}


@pytest.mark.parametrize("config, fragment", [
    (_with_device(kind="relay", name="horn", channels={"reject": {"pin": 17}}),
     r"pin 17 is used twice: by 'gates' bin 'plastic' and by 'horn' bin 'reject'"),
    (_with_device(kind="servo", pin=13, angles={"metal": 10}),
     r"bin 'metal' is served by two devices: 'gates' and 'servo 13'"),
    (_with_device(kind="servo", pin=13, angles={"x": 100}), r"angles outside \[-90.0, 90.0\]"),
    (_with_device(kind="servo", pin=13, angles={"x": 1}, max_pulse_width_s=0.0005), "min_pulse_width_s <"),
    (_with_device(kind="stepper", pin=13), "stepper"),
    (_with_device(kind="relay", channels={"x": {"pin": 5, "pulse": 1}}), "pulse"),
    ({**KIOSK, "pin_factory": "gpio9000"}, "unknown pin factory 'gpio9000'"),
    ({**KIOSK, "conveyor_delay_s": -0.1}, "conveyor_delay_s"),
])
def test_config_validation(config, fragment):
    with pytest.raises(ValidationError, match=fragment):
        ActuatorsConfig(**config)


def test_no_devices_needs_no_gpio(monkeypatch):
    def no_gpio(name):
        raise OSError("no GPIO here")

    monkeypatch.setattr(pins_module, "_load", no_gpio)
    recorder = Recorder()
    scheduler = build_actuators(ActuatorsConfig(conveyor_delay_s=0.0), recorder)
    scheduler.schedule("paper", time.monotonic_ns(), token="t")
    assert wait_until(lambda: recorder.calls)
    assert recorder.calls[0][2] == NO_ACTUATOR and recorder.calls[0][4] is None
    scheduler.close()
