"""`Actuator`: the small interface every output device of the kiosk implements."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self

from pydantic import Field

from edgert.core.errors import ActuatorError, ClosedError
from edgert.core.settings import Section


class DeviceConfig(Section):
    """Base of a device's config section: what the actuators section checks across devices.

    A subclass has a ``kind`` literal (the name its actuator is registered under in
    `edgert.actuators.ACTUATORS`) and a ``name``, and says which pins it uses and which bins it serves.
    """

    name: str | None = Field(None, description="Name used in logs and messages.")

    @property
    def label(self) -> str:
        """How messages name this device."""
        return self.name or self.kind

    def used_pins(self) -> list[tuple[int, str]]:
        """``[(BCM pin, description of its user), ...]``."""
        raise NotImplementedError

    def served_bins(self) -> list[str]:
        """The bins this device serves."""
        raise NotImplementedError


class Actuator(ABC):
    """An output device that sends items to bins.

    A subclass must implement `_fire`, `safe` and `_release`, and set `name` and `bins` in its
    constructor; it may override `close`. Calls come from one thread at a time (the
    `edgert.actuators.firing.FiringScheduler` serialises them); devices with timers of their own keep
    those consistent with `safe`.

    A registered device type (see `edgert.actuators.ACTUATORS`) also sets ``Config``, its
    `DeviceConfig` subclass, and is built as ``cls(config, pin_factory)``.

    Attributes:
        name: How logs and messages name the device.
        bins: The bins this device serves.
    """

    name: str
    bins: frozenset[str]
    _closed: bool = False

    def fire(self, bin: str) -> str:
        """Drive the outputs for `bin`; return a short result such as ``"relay 17 pulse 0.20s"``.

        Raises:
            ActuatorError: The device does not serve `bin` or could not be driven.
            ClosedError: The device was closed.
        """
        if self._closed:
            raise ClosedError(f"{self.name}: fired after close()")
        if bin not in self.bins:
            raise ActuatorError(f"{self.name}: does not serve bin {bin!r}; it serves {', '.join(sorted(self.bins))}")
        try:
            return self._fire(bin)
        except ActuatorError:
            raise
        except Exception as exc:  # gpiozero raises its own hierarchy; callers see one
            raise ActuatorError(f"{self.name}: firing for bin {bin!r} failed: {type(exc).__name__}: {exc}") from exc

    @abstractmethod
    def _fire(self, bin: str) -> str:
        """Drive the outputs for a bin this device serves."""

    @abstractmethod
    def safe(self) -> None:
        """Go to the fail-safe state at once (servo at its safe angle, relays off), cancelling timers."""

    @abstractmethod
    def _release(self) -> None:
        """Release the pins."""

    def close(self) -> None:
        """Go to the safe state, then release the pins. Idempotent."""
        if self._closed:
            return
        try:
            self.safe()
        finally:
            self._closed = True
            self._release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
