"""gpiozero pin factories by name, built explicitly (the global ``Device.pin_factory`` is left alone)."""
from __future__ import annotations

import os
import warnings
from importlib.metadata import entry_points

from edgert.core.errors import ActuatorError, one_line

#: gpiozero's default order when no factory is named.
DEFAULT_ORDER = ("lgpio", "rpigpio", "pigpio", "native")

_DRY_RUN_HINT = "set actuators.pin_factory: mock for a dry run without GPIO"


def _load(name: str):
    if name == "mock":
        from gpiozero.pins.mock import MockFactory, MockPWMPin

        return MockFactory(pin_class=MockPWMPin)
    found = [ep for ep in entry_points(group="gpiozero_pin_factories") if ep.name == name]
    if not found:
        names = sorted({ep.name for ep in entry_points(group="gpiozero_pin_factories")} | {"mock"})
        raise ActuatorError(f"unknown gpiozero pin factory {name!r}; installed: {', '.join(names)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gpiozero warns on fallbacks; the error below says it once
        return found[0].load()()


def make_pin_factory(name: str | None):
    """A new gpiozero pin factory.

    Args:
        name: ``"lgpio"``, ``"rpigpio"``, ``"pigpio"``, ``"native"``, ``"mock"`` (a `MockFactory` with
            PWM-capable `MockPWMPin` pins) or another installed factory's entry-point name. None takes
            ``$GPIOZERO_PIN_FACTORY`` if set, else the first of gpiozero's default order that loads.

    Raises:
        ActuatorError: The factory is unknown or cannot load here (no GPIO, library missing).
    """
    if name is None:
        name = os.environ.get("GPIOZERO_PIN_FACTORY") or None
    if name is not None:
        try:
            return _load(name.lower())
        except ActuatorError:
            raise
        except Exception as exc:
            raise ActuatorError(f"gpiozero pin factory {name!r} cannot load here ({type(exc).__name__}: {one_line(exc)[:120]}); "
                                f"{_DRY_RUN_HINT}") from exc
    failures = []
    for candidate in DEFAULT_ORDER:
        try:
            return _load(candidate)
        except Exception as exc:  # noqa: BLE001 - each failure is listed in the error
            failures.append(f"{candidate}: {type(exc).__name__}: {one_line(exc)[:120]}")
    raise ActuatorError(f"no gpiozero pin factory loads here ({'; '.join(failures)}); {_DRY_RUN_HINT}")
