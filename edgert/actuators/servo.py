"""`ServoActuator`: a flap on a hobby servo, turned to one angle per bin (gpiozero `AngularServo`)."""
from __future__ import annotations

import threading

from edgert.actuators.base import Actuator
from edgert.actuators.config import ServoConfig
from edgert.core.errors import ActuatorError


class ServoActuator(Actuator):
    """Turns a servo to the angle of the bin, then back to the safe angle after ``hold_s`` (if set).

    The servo is at its safe angle from construction on.

    Args:
        config: The servo's settings.
        pin_factory: The gpiozero pin factory to open the pin on (it must support PWM).

    Raises:
        ActuatorError: The pin cannot be opened or has no PWM.
    """

    def __init__(self, config: ServoConfig, pin_factory):
        from gpiozero import AngularServo

        self.config = config
        self.name = config.label
        self.bins = frozenset(config.angles)
        self._lock = threading.Lock()
        self._return_timer: threading.Timer | None = None
        try:
            self._servo = AngularServo(
                config.pin, initial_angle=config.safe_angle, min_angle=config.min_angle, max_angle=config.max_angle,
                min_pulse_width=config.min_pulse_width_s, max_pulse_width=config.max_pulse_width_s,
                frame_width=config.frame_width_s, pin_factory=pin_factory)
        except Exception as exc:
            hint = " (this pin factory has no PWM; use lgpio or pigpio)" if "PWM" in type(exc).__name__ else ""
            raise ActuatorError(f"{self.name}: cannot open servo pin {config.pin}: "
                                f"{type(exc).__name__}: {exc}{hint}") from exc

    @property
    def angle(self) -> float | None:
        """The angle the servo is driven to (None when detached)."""
        return self._servo.angle

    def _fire(self, bin: str) -> str:
        angle = self.config.angles[bin]
        with self._lock:
            self._cancel_return()
            self._servo.angle = angle
            if self.config.hold_s is not None:
                self._return_timer = threading.Timer(self.config.hold_s, self._return_to_safe)
                self._return_timer.daemon = True
                self._return_timer.name = f"edgert-servo-{self.config.pin}"
                self._return_timer.start()
        return f"servo {self.config.pin} {angle:.1f}deg"

    def _return_to_safe(self) -> None:
        with self._lock:
            if self._return_timer is threading.current_thread() and not self._closed:
                self._servo.angle = self.config.safe_angle
                self._return_timer = None

    def _cancel_return(self) -> None:
        timer, self._return_timer = self._return_timer, None
        if timer is not None:
            timer.cancel()

    def safe(self) -> None:
        """Cancel a pending return and turn to the safe angle now."""
        with self._lock:
            self._cancel_return()
            if not self._closed:
                self._servo.angle = self.config.safe_angle

    def _release(self) -> None:
        self._servo.close()
