"""`ServoActuator`: a flap on a hobby servo, turned to one angle per bin (gpiozero `AngularServo`)."""
from __future__ import annotations

import threading
from typing import Literal

from pydantic import Field, model_validator

from edgert.actuators.base import Actuator, DeviceConfig
from edgert.core.errors import ActuatorError


class ServoConfig(DeviceConfig):
    """A hobby servo (gpiozero `AngularServo`) that turns a flap to one angle per bin."""

    kind: Literal["servo"] = Field(..., description="Device type.")
    name: str | None = Field(None, description="Name used in logs and messages (default: 'servo <pin>').")
    pin: int = Field(..., ge=0, strict=True, description="BCM number of the PWM output pin.")
    angles: dict[str, float] = Field(..., min_length=1, description="Bin name -> servo angle in degrees.")
    safe_angle: float = Field(0.0, description="Fail-safe angle: on start, stop, errors and after hold_s.")
    min_angle: float = Field(-90.0, description="Angle at min_pulse_width_s.")
    max_angle: float = Field(90.0, description="Angle at max_pulse_width_s.")
    min_pulse_width_s: float = Field(0.001, gt=0.0, description="Pulse width at min_angle, in seconds.")
    max_pulse_width_s: float = Field(0.002, gt=0.0, description="Pulse width at max_angle, in seconds.")
    frame_width_s: float = Field(0.02, gt=0.0, description="PWM period in seconds (0.02 = 50 Hz).")
    hold_s: float | None = Field(1.0, gt=0.0, description="Seconds at a bin's angle before returning to safe_angle; "
                                                          "None stays until the next firing.")

    @model_validator(mode="after")
    def _ranges(self) -> ServoConfig:
        if self.min_angle == self.max_angle:
            raise ValueError(f"min_angle and max_angle are both {self.min_angle}")
        if not self.min_pulse_width_s < self.max_pulse_width_s < self.frame_width_s:
            raise ValueError(f"pulse widths must satisfy min_pulse_width_s < max_pulse_width_s < frame_width_s, got "
                             f"{self.min_pulse_width_s} < {self.max_pulse_width_s} < {self.frame_width_s}")
        low, high = sorted((self.min_angle, self.max_angle))
        outside = {key: angle for key, angle in [("safe_angle", self.safe_angle), *self.angles.items()]
                   if not low <= angle <= high}
        if outside:
            raise ValueError(f"angles outside [{low}, {high}]: {outside}")
        return self

    @property
    def label(self) -> str:
        """How messages name this device."""
        return self.name or f"servo {self.pin}"

    def used_pins(self) -> list[tuple[int, str]]:
        return [(self.pin, f"{self.label!r}")]

    def served_bins(self) -> list[str]:
        return list(self.angles)


class ServoActuator(Actuator):
    """Turns a servo to the angle of the bin, then back to the safe angle after ``hold_s`` (if set).

    The servo is at its safe angle from construction on.

    Args:
        config: The servo's settings.
        pin_factory: The gpiozero pin factory to open the pin on (it must support PWM).

    Raises:
        ActuatorError: The pin cannot be opened or has no PWM.
    """

    Config = ServoConfig

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
