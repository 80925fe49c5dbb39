"""`RelayActuator`: relays or solenoids, one output per bin, pulsed on firing (gpiozero `DigitalOutputDevice`)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgert.actuators.base import Actuator, DeviceConfig
from edgert.core.errors import ActuatorError
from edgert.core.settings import Section


class RelayChannel(Section):
    """One relay or solenoid output: the pin it switches and how long it pulses."""

    pin: int = Field(..., ge=0, strict=True, description="BCM number of the output pin.")
    pulse_s: float = Field(0.2, gt=0.0, le=60.0, description="Seconds the output stays on per firing.")


class RelayConfig(DeviceConfig):
    """Relays or solenoids (gpiozero `DigitalOutputDevice`), one output per bin, pulsed on firing."""

    kind: Literal["relay"] = Field(..., description="Device type.")
    name: str | None = Field(None, description="Name used in logs and messages (default: 'relay').")
    active_high: bool = Field(True, description="False for relay boards that switch on a low input.")
    channels: dict[str, RelayChannel] = Field(..., min_length=1, description="Bin name -> output pin and pulse.")

    @property
    def label(self) -> str:
        """How messages name this device."""
        return self.name or "relay"

    def used_pins(self) -> list[tuple[int, str]]:
        return [(channel.pin, f"{self.label!r} bin {bin_!r}") for bin_, channel in self.channels.items()]

    def served_bins(self) -> list[str]:
        return list(self.channels)


class RelayActuator(Actuator):
    """Switches the bin's output on for its pulse length; the switch-off runs on gpiozero's blink thread.

    `fire` returns as soon as the output is on. Every output is off from construction on.

    Args:
        config: The relay settings.
        pin_factory: The gpiozero pin factory to open the pins on.

    Raises:
        ActuatorError: A pin cannot be opened (the ones already opened are released).
    """

    Config = RelayConfig

    def __init__(self, config: RelayConfig, pin_factory):
        from gpiozero import DigitalOutputDevice

        self.config = config
        self.name = config.label
        self.bins = frozenset(config.channels)
        self._outputs = {}
        for bin_, channel in config.channels.items():
            try:
                self._outputs[bin_] = DigitalOutputDevice(channel.pin, active_high=config.active_high,
                                                          initial_value=False, pin_factory=pin_factory)
            except Exception as exc:
                self._release()
                raise ActuatorError(f"{self.name}: cannot open output pin {channel.pin} of bin {bin_!r}: "
                                    f"{type(exc).__name__}: {exc}") from exc

    def is_on(self, bin: str) -> bool:
        """Whether the output of `bin` is switched on."""
        return bool(self._outputs[bin].value)

    def _fire(self, bin: str) -> str:
        channel = self.config.channels[bin]
        # One on/off cycle in the background; a new pulse on the same output restarts it.
        self._outputs[bin].blink(on_time=channel.pulse_s, off_time=0, n=1, background=True)
        return f"relay {channel.pin} pulse {channel.pulse_s:.2f}s"

    def safe(self) -> None:
        """Switch every output off now, cutting pulses short."""
        if self._closed:
            return
        errors = []
        for bin_, output in self._outputs.items():
            try:
                output.off()
            except Exception as exc:  # noqa: BLE001 - keep switching the others off
                errors.append(f"bin {bin_!r}: {type(exc).__name__}: {exc}")
        if errors:
            raise ActuatorError(f"{self.name}: could not switch off {'; '.join(errors)}")

    def _release(self) -> None:
        for output in self._outputs.values():
            output.close()
