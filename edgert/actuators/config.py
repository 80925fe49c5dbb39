"""The actuators config section: its devices, the pin factory and the conveyor delay.

`ACTUATORS` is the registry of device types (entry-point group ``edgert.actuators``; a third party
adds one there): each entry is an `Actuator` subclass whose ``Config`` (a `DeviceConfig`) has the
``kind`` literal the entry is named by; ``devices`` is validated against the union of those.
"""
from __future__ import annotations

from importlib.metadata import entry_points

from pydantic import Field, ValidationInfo, field_validator, model_validator

from edgert.actuators.header import boards, check_header_pins
from edgert.core.plugins import Registry
from edgert.core.settings import Section

#: gpiozero's own pin factories; third-party ones registered under the same entry-point group also work.
BUILTIN_PIN_FACTORIES = ("lgpio", "rpigpio", "pigpio", "native", "mock")


def available_pin_factories() -> tuple[str, ...]:
    """Names of the gpiozero pin factories installed here (entry-point group ``gpiozero_pin_factories``)."""
    names = {ep.name for ep in entry_points(group="gpiozero_pin_factories")}
    return tuple(dict.fromkeys([*BUILTIN_PIN_FACTORIES, *sorted(names)]))


ACTUATORS = Registry("edgert.actuators", {
    "servo": "edgert.actuators.servo:ServoActuator",
    "relay": "edgert.actuators.relay:RelayActuator",
}, what="actuator")

ActuatorConfig = ACTUATORS.config_union()


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
            check_header_pins(info.data["board"], {pin: user for d in devices for pin, user in d.used_pins()})
        return devices

    @field_validator("no_actuator")
    @classmethod
    def _not_served(cls, bins: list[str], info: ValidationInfo) -> list[str]:
        served = {bin_: device.label for device in info.data.get("devices", []) for bin_ in device.served_bins()}
        for bin_ in bins:
            if bin_ in served:
                raise ValueError(f"bin {bin_!r} is also served by {served[bin_]!r}")
        return bins

    @model_validator(mode="after")
    def _pins_and_bins_unique(self) -> ActuatorsConfig:
        users: dict[int, str] = {}
        for pin, user in (item for device in self.devices for item in device.used_pins()):
            if pin in users:
                raise ValueError(f"pin {pin} is used twice: by {users[pin]} and by {user}")
            users[pin] = user
        servers: dict[str, str] = {}
        for device in self.devices:
            for bin_ in device.served_bins():
                if bin_ in servers:
                    raise ValueError(f"bin {bin_!r} is served by two devices: {servers[bin_]!r} and {device.label!r}")
                servers[bin_] = device.label
        return self


def actuator_bins(config: ActuatorsConfig) -> dict[str, str]:
    """Every bin a device of `config` serves, mapped to that device's label."""
    return {bin_: device.label for device in config.devices for bin_ in device.served_bins()}


def actuator_pins(config: ActuatorsConfig) -> dict[int, str]:
    """Every GPIO pin `config` uses, mapped to a description of its user (for cross-checks with input pins)."""
    return {pin: user for device in config.devices for pin, user in device.used_pins()}
