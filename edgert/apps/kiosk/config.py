"""The kiosk's sections of the config file: one pydantic model per section, unknown keys refused everywhere.

The service adds its own sections (`edgert.service.config`: service, store, probation, fleet):

```yaml
source:    {kind: picamera2 | opencv | folder | conveyor, ...}
model:     {path: /var/lib/edgert/models/sorter.tflite, backend: auto, ...}
presence:  {kind: frame_diff | beam_break, ...}
policy:    {bins: {bottle: plastic, can: metal}, votes: 5, min_confidence: 0.6, ...}
actuators: {pin_factory: lgpio, board: rpi5, conveyor_delay_s: 0.8, devices: [{kind: servo, pin: 18, ...}],
           no_actuator: []}   # every policy bin (reject_bin too) has a device or is listed in no_actuator
journal:   {path: journal.sqlite3, snapshots: true, snapshot_max_mb: 200}
service:   {state_dir: /var/lib/edgert, infer_depth: 2, status_interval_s: 5}
store:     {path: models, keep: 3, trusted_keys: /etc/edgert/trusted-keys}     # model: {path: "store:waste"}
probation: {frames: 200, max_errors: 0, latency_factor: 2.0, confidence_drop: 0.15}
fleet:     {enabled: true, host: broker.example, device_id: kiosk-17, ...}
```
"""
from __future__ import annotations

from pydantic import Field, model_validator

from edgert.actuators import ActuatorsConfig, actuator_bins, actuator_pins
from edgert.actuators.header import check_header_pins
from edgert.apps.kiosk.policy import PolicyConfig
from edgert.apps.kiosk.presence import PRESENCE
from edgert.core.settings import Section
from edgert.journal import JournalConfig
from edgert.models import config as models_config
from edgert.sources import SOURCES

SourceConfig = SOURCES.config_union()
PresenceSection = PRESENCE.config_union(default="frame_diff")


class ModelConfig(models_config.ModelConfig):
    """The classifier the kiosk runs."""

    top_k: int = Field(5, ge=1, le=100, description="Classes kept per frame.")


class KioskConfig(Section):
    """The kiosk's sections of the config file (the service adds service, store, probation and fleet)."""

    source: SourceConfig = Field(description="Where frames come from.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="The classifier.")
    presence: PresenceSection = Field(description="What says an item is in view.")
    policy: PolicyConfig = Field(description="Class -> bin decisions.")
    actuators: ActuatorsConfig = Field(description="GPIO outputs that send items to bins.")
    journal: JournalConfig = Field(default_factory=JournalConfig, description="Decision journal.")

    @model_validator(mode="after")
    def _pins_used_once(self):
        beam = getattr(self.presence, "pin", None) if self.presence.kind == "beam_break" else None
        if beam is not None:
            users = actuator_pins(self.actuators)
            if beam in users:
                raise ValueError(f"presence.pin: pin {beam} is also used by {users[beam]}")
            try:
                check_header_pins(self.actuators.board, {beam: "the beam-break sensor"})
            except ValueError as exc:
                raise ValueError(f"presence.pin: {exc}") from None
        return self

    @model_validator(mode="after")
    def _bins_have_actuators(self):
        served, unserved = actuator_bins(self.actuators), set(self.actuators.no_actuator)
        chosen = [(f"policy.bins.{name}", bin_) for name, bin_ in self.policy.bins.items()]
        chosen.append(("policy.reject_bin", self.policy.reject_bin))
        for where, bin_ in chosen:
            if bin_ not in served and bin_ not in unserved:
                raise ValueError(f"{where}: bin {bin_!r} has no actuator (devices serve "
                                 f"{', '.join(map(repr, sorted(served))) or 'no bin'}); add it to a device, or list "
                                 "it in actuators.no_actuator if its items are meant to ride on")
        bins = {bin_ for _, bin_ in chosen}
        for bin_ in self.actuators.no_actuator:
            if bin_ not in bins:
                raise ValueError(f"actuators.no_actuator: {bin_!r} is not a bin of the policy (it has "
                                 f"{', '.join(map(repr, sorted(bins)))})")
        return self
