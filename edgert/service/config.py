"""The service's config file: the app's sections (``app: kiosk`` by default) plus service, store, probation, fleet.

```yaml
app:       kiosk                        # which product runs (`APPS`)
service:   {state_dir: /var/lib/edgert, infer_depth: 2, status_interval_s: 5}
store:     {path: models, keep: 3, trusted_keys: /etc/edgert/trusted-keys}     # model: {path: "store:waste"}
probation: {frames: 200, max_errors: 0, latency_factor: 2.0, confidence_drop: 0.15}
fleet:     {enabled: true, host: broker.example, device_id: kiosk-17, ...}
metrics:   {port: 9100, host: 0.0.0.0}    # Prometheus endpoint (absent: off)
```
"""
from __future__ import annotations

from functools import cache
from importlib import import_module
from pathlib import Path
from typing import Literal

from pydantic import Field

from edgert.bundles.store import StoreConfig
from edgert.core.config_file import load_file, parse_text
from edgert.core.errors import ConfigError
from edgert.core.settings import Section
from edgert.fleet.config import FleetConfig
from edgert.models.probation import ProbationConfig
from edgert.service.metrics import MetricsConfig

#: The apps the service can run: ``app:`` value -> the module:attribute of its `AppSpec` (imported when used).
APPS = {"kiosk": "edgert.apps.kiosk.service:APP", "surveillance": "edgert.apps.surveillance.service:APP"}
DEFAULT_APP = "kiosk"


class ServiceSettings(Section):
    """How the daemon runs."""

    state_dir: Path = Field(Path("/var/lib/edgert"), description="Journal, snapshots and models live here.")
    infer_depth: int = Field(2, ge=1, le=8, description="Frames kept in flight on the accelerator.")
    status_interval_s: float = Field(5.0, gt=0, description="How often STATUS= and the log line are updated.")
    stall_timeout_s: float = Field(10.0, gt=0, description="No frame decided for this long: actuators go safe.")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level on stderr.")


class ServiceSections(Section):
    """The sections every config file has besides its app's."""

    app: Literal[tuple(APPS)] = Field(DEFAULT_APP, description="Which product the service runs.")
    service: ServiceSettings = Field(default_factory=ServiceSettings, description="Daemon settings.")
    store: StoreConfig = Field(default_factory=StoreConfig, description="Signed model bundles on this device.")
    probation: ProbationConfig = Field(default_factory=ProbationConfig,
                                       description="How a newly activated store model is watched before it is trusted.")
    fleet: FleetConfig = Field(default_factory=FleetConfig, description="Fleet delivery over MQTT (off by default).")
    metrics: MetricsConfig | None = Field(None, description="Prometheus endpoint (absent: off).")


@cache
def app_spec(name: str):
    """The `AppSpec` of an app name.

    Raises:
        ConfigError: an app edgert does not have.
    """
    if name not in APPS:
        raise ConfigError(f"app: unknown app {name!r}; expected one of {', '.join(APPS)}")
    module, attribute = APPS[name].split(":")
    return getattr(import_module(module), attribute)


@cache
def file_model(name: str = DEFAULT_APP) -> type:
    """The config model of a whole file running app `name`: the app's sections and the service's."""
    spec = app_spec(name)
    return type(f"{spec.config.__name__}File", (spec.config, ServiceSections),
                {"__doc__": f"A config file of the {name} service.", "__module__": __name__})


def _model_for(data: dict) -> type:
    name = data.get("app", DEFAULT_APP)
    return file_model(name if isinstance(name, str) else str(name))


def load_config(path):
    """Read and validate a service config file (the app chosen by its ``app:`` key).

    Raises:
        ConfigError: one line naming file, line, key path and what was expected.
    """
    return load_file(Path(path), _model_for)


def parse_config(text: str, source: str = "<config>"):
    """`load_config` for YAML text."""
    return parse_text(text, _model_for, source)
