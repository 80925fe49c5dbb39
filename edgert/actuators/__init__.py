"""Actuators: GPIO servos and relays that send items to bins, and the scheduler that fires them on time."""
from __future__ import annotations

from edgert.actuators.base import Actuator
from edgert.actuators.config import (
    ActuatorConfig,
    ActuatorsConfig,
    RelayChannel,
    RelayConfig,
    ServoConfig,
    actuator_bins,
    actuator_pins,
    available_pin_factories,
)
from edgert.actuators.devices import DEVICE_TYPES, build_actuators, open_actuators
from edgert.actuators.firing import CANCELLED, NO_ACTUATOR, FiringScheduler
from edgert.actuators.pins import make_pin_factory
from edgert.actuators.relay import RelayActuator
from edgert.actuators.servo import ServoActuator

__all__ = ["CANCELLED", "DEVICE_TYPES", "NO_ACTUATOR", "Actuator", "ActuatorConfig", "ActuatorsConfig",
           "FiringScheduler", "RelayActuator", "RelayChannel", "RelayConfig", "ServoActuator", "ServoConfig",
           "actuator_bins", "actuator_pins", "available_pin_factories", "build_actuators", "make_pin_factory",
           "open_actuators"]
