"""Actuators: GPIO servos and relays that send items to bins, and the scheduler that fires them on time."""
from __future__ import annotations

from edgert.actuators.base import Actuator, DeviceConfig
from edgert.actuators.config import (
    ACTUATORS,
    ActuatorConfig,
    ActuatorsConfig,
    actuator_bins,
    actuator_pins,
    available_pin_factories,
)
from edgert.actuators.devices import build_actuators, open_actuators
from edgert.actuators.firing import CANCELLED, NO_ACTUATOR, FiringScheduler
from edgert.actuators.pins import make_pin_factory
from edgert.actuators.relay import RelayActuator, RelayChannel, RelayConfig
from edgert.actuators.servo import ServoActuator, ServoConfig

__all__ = ["ACTUATORS", "CANCELLED", "NO_ACTUATOR", "Actuator", "ActuatorConfig", "ActuatorsConfig", "DeviceConfig",
           "FiringScheduler", "RelayActuator", "RelayChannel", "RelayConfig", "ServoActuator", "ServoConfig",
           "actuator_bins", "actuator_pins", "available_pin_factories", "build_actuators", "make_pin_factory",
           "open_actuators"]
