"""Opening the configured devices (each by its config ``kind`` in `ACTUATORS`), and `build_actuators`."""
from __future__ import annotations

from edgert.actuators.base import Actuator
from edgert.actuators.config import ACTUATORS, ActuatorsConfig
from edgert.actuators.firing import FiringScheduler, OnFired
from edgert.actuators.pins import make_pin_factory


def open_actuators(config: ActuatorsConfig, pin_factory) -> list[Actuator]:
    """Open every configured device on `pin_factory`, each in its safe state.

    Raises:
        ActuatorError: A device cannot be opened (those already opened are closed again).
    """
    opened: list[Actuator] = []
    try:
        for i, device in enumerate(config.devices):
            opened.append(ACTUATORS.load(device.kind, f"actuators.devices[{i}].kind")(device, pin_factory))
    except BaseException:
        for actuator in opened:
            actuator.close()
        raise
    for actuator in opened:
        actuator.safe()
    return opened


def build_actuators(config: ActuatorsConfig, on_fired: OnFired, pin_factory=None) -> FiringScheduler:
    """Open the devices, put them in their safe state and return the scheduler that fires them.

    Args:
        config: The actuators section.
        on_fired: The firing callback (see `FiringScheduler`).
        pin_factory: A gpiozero pin factory to share (e.g. with a beam-break input); None opens the one
            ``config.pin_factory`` names (only if there are devices), which the scheduler then closes on
            `FiringScheduler.close`.

    Raises:
        ActuatorError: The pin factory cannot load or a device cannot be opened.
    """
    owned = None
    if pin_factory is None and config.devices:  # no devices, no GPIO needed
        pin_factory = owned = make_pin_factory(config.pin_factory)
    try:
        actuators = open_actuators(config, pin_factory)
    except BaseException:
        if owned is not None:
            owned.close()
        raise
    return FiringScheduler(actuators, config.conveyor_delay_s, on_fired, pin_factory=owned)
