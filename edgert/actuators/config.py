"""Config sections of the actuators: servo and relay devices, the pin factory and the conveyor delay."""
from __future__ import annotations

from importlib.metadata import entry_points
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from edgert.actuators.header import boards, check_header_pins
from edgert.core.settings import Section

#: gpiozero's own pin factories; third-party ones registered under the same entry-point group also work.
BUILTIN_PIN_FACTORIES = ("lgpio", "rpigpio", "pigpio", "native", "mock")


def available_pin_factories() -> tuple[str, ...]:
    """Names of the gpiozero pin factories installed here (entry-point group ``gpiozero_pin_factories``)."""
    names = {ep.name for ep in entry_points(group="gpiozero_pin_factories")}
    return tuple(dict.fromkeys([*BUILTIN_PIN_FACTORIES, *sorted(names)]))


class ServoConfig(Section):
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


class RelayChannel(Section):
    """One relay or solenoid output: the pin it switches and how long it pulses."""

    pin: int = Field(..., ge=0, strict=True, description="BCM number of the output pin.")
    pulse_s: float = Field(0.2, gt=0.0, le=60.0, description="Seconds the output stays on per firing.")


class RelayConfig(Section):
    """Relays or solenoids (gpiozero `DigitalOutputDevice`), one output per bin, pulsed on firing."""

    kind: Literal["relay"] = Field(..., description="Device type.")
    name: str | None = Field(None, description="Name used in logs and messages (default: 'relay').")
    active_high: bool = Field(True, description="False for relay boards that switch on a low input.")
    channels: dict[str, RelayChannel] = Field(..., min_length=1, description="Bin name -> output pin and pulse.")

    @property
    def label(self) -> str:
        """How messages name this device."""
        return self.name or "relay"


ActuatorConfig = Annotated[ServoConfig | RelayConfig, Field(discriminator="kind")]


def _device_pins(device) -> list[tuple[int, str]]:
    if device.kind == "servo":
        return [(device.pin, f"{device.label!r}")]
    return [(channel.pin, f"{device.label!r} bin {bin_!r}") for bin_, channel in device.channels.items()]


def _device_bins(device) -> list[str]:
    return list(device.angles if device.kind == "servo" else device.channels)


class ActuatorsConfig(Section):
    """Every output device of the kiosk, the GPIO backend they run on and the conveyor's delay."""

    pin_factory: str | None = Field(None, description="gpiozero pin factory: lgpio, rpigpio, pigpio, native or "
                                                      "mock (dry run); None tries gpiozero's default order.")
    board: str | None = Field("rpi5", description="Board whose header map (firmware-config/<board>/pins.yaml) "
                                                  "every pin must be on; null skips the check.")
    conveyor_delay_s: float = Field(0.0, ge=0.0, le=60.0,
                                    description="Seconds from an item's first frame until it reaches the diverter.")
    devices: list[ActuatorConfig] = Field(default_factory=list, description="Servo and relay devices.")
    no_actuator: list[str] = Field(default_factory=list,
                                   description="Bins no device serves, on purpose (their items ride on); every "
                                               "other bin of the policy needs a device.")

    @field_validator("pin_factory")
    @classmethod
    def _known_factory(cls, name: str | None) -> str | None:
        if name is not None and name not in available_pin_factories():
            raise ValueError(f"unknown pin factory {name!r}; expected one of {', '.join(available_pin_factories())}")
        return name

    @field_validator("board")
    @classmethod
    def _known_board(cls, board: str | None) -> str | None:
        if board is not None and board not in boards():
            raise ValueError(f"unknown board {board!r}; boards with a pin map: {', '.join(boards())}")
        return board

    @field_validator("devices")
    @classmethod
    def _pins_on_header(cls, devices: list, info: ValidationInfo) -> list:
        if "board" in info.data:  # else the board was refused already
            check_header_pins(info.data["board"], {pin: user for d in devices for pin, user in _device_pins(d)})
        return devices

    @field_validator("no_actuator")
    @classmethod
    def _not_served(cls, bins: list[str], info: ValidationInfo) -> list[str]:
        served = {bin_: device.label for device in info.data.get("devices", []) for bin_ in _device_bins(device)}
        for bin_ in bins:
            if bin_ in served:
                raise ValueError(f"bin {bin_!r} is also served by {served[bin_]!r}")
        return bins

    @model_validator(mode="after")
    def _pins_and_bins_unique(self) -> ActuatorsConfig:
        users: dict[int, str] = {}
        for pin, user in (item for device in self.devices for item in _device_pins(device)):
            if pin in users:
                raise ValueError(f"pin {pin} is used twice: by {users[pin]} and by {user}")
            users[pin] = user
        servers: dict[str, str] = {}
        for device in self.devices:
            for bin_ in _device_bins(device):
                if bin_ in servers:
                    raise ValueError(f"bin {bin_!r} is served by two devices: {servers[bin_]!r} and {device.label!r}")
                servers[bin_] = device.label
        return self


def actuator_bins(config: ActuatorsConfig) -> dict[str, str]:
    """Every bin a device of `config` serves, mapped to that device's label."""
    return {bin_: device.label for device in config.devices for bin_ in _device_bins(device)}


def actuator_pins(config: ActuatorsConfig) -> dict[int, str]:
    """Every GPIO pin `config` uses, mapped to a description of its user (for cross-checks with input pins)."""
    return {pin: user for device in config.devices for pin, user in _device_pins(device)}
