"""The ``fleet:`` config section: which MQTT broker, as whom, over what, under which topics."""
from __future__ import annotations

import socket
from pathlib import Path

from pydantic import Field, model_validator

from edgert.core.errors import ConfigError
from edgert.core.settings import Section

_TOPIC_PART = r"^[^/#+\s]+$"


class TlsConfig(Section):
    """``fleet.tls``: MQTT over TLS (port 8883 as a rule)."""

    ca_file: Path | None = Field(None, description="PEM file of the CAs that sign the broker's certificate "
                                 "(default: the system's CAs)")
    cert_file: Path | None = Field(None, description="Client certificate (PEM) for brokers that require one")
    key_file: Path | None = Field(None, description="Private key (PEM) of the client certificate")
    insecure: bool = Field(False, description="Skip the check of the broker's host name (testing only)")

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class FleetConfig(Section):
    """The ``fleet:`` section: the device's MQTT link to the fleet server.

    Topics: commands on ``<topic_prefix>/<device_id>/cmd``, retained state on ``.../state``, events on
    ``.../events``.
    """

    enabled: bool = Field(False, description="Connect to the fleet broker")
    host: str = Field("localhost", min_length=1, description="Broker host name or address")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (1883 plain, 8883 TLS as a rule)")
    device_id: str | None = Field(None, pattern=_TOPIC_PART, max_length=64,
                                  description="This device's name in topics and its MQTT client id "
                                  "(default: the host name)")
    username: str | None = Field(None, min_length=1, description="MQTT user name")
    password: str | None = Field(None, description="MQTT password (or password_file)")
    password_file: Path | None = Field(None, description="File holding the MQTT password (keeps it out of "
                                       "the config file)")
    tls: TlsConfig | None = Field(None, description="Use TLS (absent: plain MQTT)")
    keepalive_s: int = Field(60, ge=5, le=3600, description="MQTT keepalive; the broker declares the device "
                             "offline after 1.5 times this without traffic")
    topic_prefix: str = Field("edgert", pattern=r"^[^#+\s]+$", description="First part of every topic")
    qos: int = Field(1, ge=0, le=2, description="QoS of subscriptions and publications")
    persistent_session: bool = Field(True, description="The broker keeps the subscription and queues "
                                     "commands while the device is offline")
    reconnect_min_s: float = Field(1.0, gt=0, description="First wait before reconnecting; doubles per failure")
    reconnect_max_s: float = Field(60.0, gt=0, description="Longest wait between reconnect attempts")
    connect_timeout_s: float = Field(10.0, gt=0, description="How long the first connection may take")

    @model_validator(mode="after")
    def _consistent(self) -> FleetConfig:
        if self.password is not None and self.password_file is not None:
            raise ValueError("password and password_file exclude each other")
        if (self.password is not None or self.password_file is not None) and self.username is None:
            raise ValueError("a password needs a username")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s is below reconnect_min_s")
        if self.topic_prefix.startswith("/") or self.topic_prefix.endswith("/"):
            raise ValueError("topic_prefix starts or ends with '/'")
        return self

    @property
    def device(self) -> str:
        """`device_id`, or the host name when unset."""
        return self.device_id or socket.gethostname().split(".")[0]

    def topic(self, kind: str) -> str:
        """``<topic_prefix>/<device>/<kind>`` (kind: cmd, state, events)."""
        return f"{self.topic_prefix}/{self.device}/{kind}"

    def read_password(self) -> str | None:
        """`password`, or the first line of `password_file`; ConfigError when that file cannot be read."""
        if self.password_file is None:
            return self.password
        try:
            lines = self.password_file.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise ConfigError(f"fleet.password_file: cannot read {self.password_file}: {e.strerror}") from None
        return lines[0] if lines else ""
