"""`FleetAgent`: the device's MQTT link: commands in, state and events out.

Topics (``<p>`` = ``fleet.topic_prefix``, ``<d>`` = the device id):

- ``<p>/<d>/cmd``: commands (JSON, see `edgert.fleet.commands`), subscribed at the configured QoS.
- ``<p>/<d>/state``: retained ``{"online": true, **handler.state()}``, republished on every (re)connect and
  after every command; the last will (and `FleetAgent.close`) sets it to ``{"online": false}``.
- ``<p>/<d>/events``: a result per command, ``{"id", "ok": true, "action", "result"}`` or
  ``{"id", "ok": false, "error"}`` (``"id"`` is null when the payload had none), and the journaled events
  of the service and its app (``{"event", "event_id", ...}``) from the outbox (`edgert.fleet.outbox`).
- ``<p>/<d>/counts/<camera>``: retained per-camera counts (the outbox, after each delivered batch).

paho's network thread only parses and queues: valid commands run one at a time on a worker thread, so a
long download never stalls keepalives, and a malformed command is answered while another one runs.
Nothing raised by a command or a handler escapes into paho's thread (paho would stop its loop).
"""
from __future__ import annotations

import json
import logging
import queue
import ssl
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from edgert.core.errors import (
    BackendUnavailable,
    ConfigError,
    EdgertError,
    FleetError,
    one_line,
)

try:
    import paho.mqtt.client as mqtt
except ImportError:  # the optional "ota" extra
    raise BackendUnavailable("fleet: paho-mqtt is not installed (pip install 'edgert[ota]')") from None
from edgert.fleet.commands import (
    ActivateCommand,
    Command,
    FacesEnrolCommand,
    FacesExportCommand,
    FacesImportCommand,
    FacesListCommand,
    FacesRemoveCommand,
    InstallCommand,
    command_id,
    parse_command,
)
from edgert.fleet.config import FleetConfig

log = logging.getLogger(__name__)

_STOP = object()
_SEEN_IDS = 256


class FleetHandler(Protocol):
    """What the agent calls; each method returns a small JSON-able dict (the event's ``"result"``).

    Commands are called one at a time from the agent's worker thread. `state` is also called from
    paho's network thread on (re)connect, so it must answer quickly without waiting for a command.
    Raise an `EdgertError` (its one line goes into the error event) to refuse a command.
    """

    def install(self, url: str, name: str, version: str, sha256: str, size: int | None) -> dict: ...

    def activate(self, name: str, version: str) -> dict: ...

    def rollback(self, name: str) -> dict: ...

    def faces_enrol(self, name: str, images: list[tuple[str, str]]) -> dict: ...

    def faces_list(self) -> dict: ...

    def faces_remove(self, name: str) -> dict: ...

    def faces_export(self) -> dict: ...

    def faces_import(self, npz_b64: str, sha256: str, size: int) -> dict: ...

    def state(self) -> dict: ...


ClientFactory = Callable[[FleetConfig], mqtt.Client]


def paho_client(config: FleetConfig) -> mqtt.Client:
    """The default client: paho-mqtt 2.x, MQTT 3.1.1, the device id as client id."""
    return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=config.device,
                       clean_session=not config.persistent_session, protocol=mqtt.MQTTv311)


class FleetAgent:
    """Connects the device to the fleet broker and runs the commands it receives through `handler`.

    Args:
        config: The ``fleet:`` section.
        handler: Runs the commands and reports the device state (see `FleetHandler`).
        client_factory: Makes the paho client from the config (default `paho_client`); the agent sets
            the will, credentials, TLS, reconnect delays and callbacks on it.
    """

    def __init__(self, config: FleetConfig, handler: FleetHandler, *, client_factory: ClientFactory | None = None):
        self.config = config
        self.handler = handler
        self._client_factory = client_factory or paho_client
        self._client: mqtt.Client | None = None
        self._queue: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None
        self._connected = threading.Event()
        self._answered = threading.Event()
        self._refusal: str | None = None
        self._subscribe_mid: int | None = None
        self._seen_ids: deque[str] = deque(maxlen=_SEEN_IDS)
        self._closed = False

    @property
    def connected(self) -> bool:
        """Whether the broker link is up right now (paho reconnects by itself when it drops)."""
        return self._connected.is_set()

    def connect(self, timeout: float | None = None) -> None:
        """Connects, subscribes to the command topic, publishes the state; returns once subscribed.

        After this the agent keeps the link by itself: paho reconnects with a doubling delay
        (`FleetConfig.reconnect_min_s` up to `reconnect_max_s`), resubscribes and republishes the state.

        Raises:
            FleetError: One line: broker unreachable, TLS handshake failed, credentials refused, or no
                answer within `timeout` (default `FleetConfig.connect_timeout_s`).
            ConfigError: TLS files or the password file cannot be read.
        """
        cfg = self.config
        timeout = cfg.connect_timeout_s if timeout is None else timeout
        client = self._setup_client()
        where = f"{cfg.host}:{cfg.port}"
        try:
            client.connect(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
        except (OSError, ValueError) as e:
            self._client = None
            raise FleetError(f"fleet: cannot connect to broker {where}: {one_line(e)}") from None
        self._start_worker()
        client.loop_start()
        if not self._answered.wait(timeout):
            self._shutdown_client()
            self._stop_worker(timeout)
            raise FleetError(f"fleet: broker {where} did not answer within {timeout:g} s")
        if self._refusal is not None:
            self._shutdown_client()
            self._stop_worker(timeout)
            raise FleetError(f"fleet: broker {where} {self._refusal}")

    def start(self) -> None:
        """Connects in the background, retrying until the broker answers (for a service that must run
        while the broker is away). Refusals are logged and retried like network errors."""
        client = self._setup_client()
        client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive_s)
        self._start_worker()
        client.loop_start()

    def publish_event(self, kind: str, **fields: Any) -> None:
        """Publishes ``{"event": kind, **fields}`` on the events topic (e.g. the daemon's swaps and rollbacks).

        Queued by paho while the link is down and sent after the reconnect (QoS >= 1).
        """
        self._publish(self.config.topic("events"), {"event": kind, **fields})

    def send(self, kind: str, payload: dict, *, retain: bool = False,
             min_qos: int = 0) -> mqtt.MQTTMessageInfo | None:
        """Publishes `payload` on ``<p>/<d>/<kind>`` at the configured QoS (at least `min_qos`) and returns
        paho's handle (``is_published()`` turns true on the broker's PUBACK), or None while the link is down."""
        client = self._client
        if client is None or not self._connected.is_set():
            return None
        return client.publish(self.config.topic(kind), json.dumps(payload, default=str),
                              qos=max(self.config.qos, min_qos), retain=retain)

    def publish_state(self) -> None:
        """Republishes the retained state from `handler.state()` (after a change the agent did not make)."""
        state: dict[str, Any] = {"online": True}
        try:
            state.update(self.handler.state())
        except Exception as e:  # noqa: BLE001 - the state topic says what went wrong instead
            log.exception("fleet: handler.state() failed")
            state["state_error"] = one_line(e)
        state["online"] = True
        self._publish(self.config.topic("state"), state, retain=True)

    def close(self, timeout: float = 5.0) -> None:
        """Stops taking commands (queued ones are dropped, a running one may finish within `timeout`),
        publishes the offline state and disconnects cleanly. Idempotent."""
        if self._closed:
            return
        self._closed = True
        dropped = 0
        while True:
            try:
                self._queue.get_nowait()
                dropped += 1
            except queue.Empty:
                break
        if dropped:
            log.warning("fleet: closing, %d queued command(s) dropped", dropped)
        self._stop_worker(timeout)
        client = self._client
        if client is not None and self._connected.is_set():
            info = client.publish(self.config.topic("state"), json.dumps({"online": False}),
                                  qos=self.config.qos, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as e:
                log.warning("fleet: offline state not sent: %s", e)
        self._shutdown_client()

    def __enter__(self) -> FleetAgent:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- paho setup and callbacks (network thread) ---------------------------------------------------

    def _setup_client(self) -> mqtt.Client:
        if self._client is not None:
            raise FleetError("fleet: agent already connected")
        if self._closed:
            raise FleetError("fleet: agent is closed")
        cfg = self.config
        self._answered.clear()
        self._refusal = None
        client = self._client_factory(cfg)
        client.will_set(cfg.topic("state"), json.dumps({"online": False}), qos=cfg.qos, retain=True)
        if cfg.username is not None:
            client.username_pw_set(cfg.username, cfg.read_password())
        if cfg.tls is not None:
            try:
                client.tls_set(ca_certs=_str(cfg.tls.ca_file), certfile=_str(cfg.tls.cert_file),
                               keyfile=_str(cfg.tls.key_file))
            except (OSError, ssl.SSLError, ValueError) as e:
                raise ConfigError(f"fleet.tls: cannot load the TLS files: {one_line(e)}") from None
            client.tls_insecure_set(cfg.tls.insecure)
        client.reconnect_delay_set(cfg.reconnect_min_s, cfg.reconnect_max_s)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self._client = client
        return client

    def _shutdown_client(self) -> None:
        client, self._client = self._client, None
        self._connected.clear()
        if client is not None:
            client.disconnect()
            client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        try:
            if reason_code.is_failure:
                self._refusal = f"refused the connection: {reason_code} (check fleet.username and the password)"
                log.error("fleet: broker refused the connection: %s", reason_code)
                self._answered.set()
                return
            self._refusal = None
            result, self._subscribe_mid = client.subscribe(self.config.topic("cmd"), qos=self.config.qos)
            if result != mqtt.MQTT_ERR_SUCCESS:
                log.warning("fleet: subscribe not sent (%s); paho will reconnect", mqtt.error_string(result))
        except Exception:
            log.exception("fleet: on_connect failed")
            self._answered.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        # Online only once the broker has the subscription: a command sent after connect() returns
        # (or after the state says online) must not be lost.
        try:
            if mid != self._subscribe_mid:
                return
            refused = [code for code in reason_codes if code.is_failure]
            if refused:
                self._refusal = (f"refused the subscription to {self.config.topic('cmd')}: {refused[0]} "
                                 "(check the broker's ACL)")
                log.error("fleet: broker refused the subscription to %s (%s)", self.config.topic("cmd"), refused[0])
                return
            self._connected.set()
            self.publish_state()
            log.info("fleet: connected to %s:%d as %s", self.config.host, self.config.port, self.config.device)
        except Exception:
            log.exception("fleet: on_subscribe failed")
        finally:
            self._answered.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if not self._closed:
            log.warning("fleet: disconnected from the broker (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, message) -> None:
        try:
            self._receive(message.payload)
        except Exception:
            log.exception("fleet: could not handle a message on %s", message.topic)

    def _receive(self, payload: bytes) -> None:
        """Validates a command and queues it; answers a malformed one at once with an error event."""
        try:
            command = parse_command(payload)
        except ConfigError as e:
            self._publish(self.config.topic("events"), {"id": command_id(payload), "ok": False, "error": str(e)})
            return
        if command.id in self._seen_ids:
            # QoS 1 delivers at least once: a redelivered command must not run twice (a second rollback
            # would undo the first).
            log.warning("fleet: command %r received again; ignored", command.id)
            # Said on the events topic too: a fleet server that reuses ids otherwise hears nothing.
            self._publish(self.config.topic("events"), {"id": command.id, "action": command.action,
                                                        "ignored": "this command id was already received"})
            return
        self._seen_ids.append(command.id)
        if self._closed:
            return
        self._queue.put(command)

    # -- worker thread -----------------------------------------------------------------------------

    def _start_worker(self) -> None:
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="edgert-fleet-commands", daemon=True)
            self._worker.start()

    def _stop_worker(self, timeout: float) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            self._queue.put(_STOP)
            worker.join(timeout)

    def _work(self) -> None:
        while (command := self._queue.get()) is not _STOP:
            self._execute(command)

    def _execute(self, command: Command) -> None:
        event: dict[str, Any] = {"id": command.id, "action": command.action}
        try:
            result = self._dispatch(command)
            event.update(ok=True, result=result if result is not None else {})
        except EdgertError as e:
            log.warning("fleet: %s %s refused: %s", command.action, command.id, e)
            event.update(ok=False, error=str(e))
        except Exception as e:  # noqa: BLE001 - a handler bug must not kill the worker; it is reported
            log.exception("fleet: %s %s failed", command.action, command.id)
            event.update(ok=False, error=f"{type(e).__name__}: {one_line(e)}")
        self._publish(self.config.topic("events"), event)
        self.publish_state()

    def _dispatch(self, command: Command) -> dict | None:
        if isinstance(command, InstallCommand):
            return self.handler.install(command.url, command.name, command.version, command.sha256.lower(),
                                        command.size)
        if isinstance(command, ActivateCommand):
            return self.handler.activate(command.name, command.version)
        if isinstance(command, FacesEnrolCommand):
            return self.handler.faces_enrol(command.name, [(i.label, i.jpeg_b64) for i in command.images])
        if isinstance(command, FacesListCommand):
            return self.handler.faces_list()
        if isinstance(command, FacesRemoveCommand):
            return self.handler.faces_remove(command.name)
        if isinstance(command, FacesExportCommand):
            return self.handler.faces_export()
        if isinstance(command, FacesImportCommand):
            return self.handler.faces_import(command.npz_b64, command.sha256.lower(), command.size)
        return self.handler.rollback(command.name)

    def _publish(self, topic: str, payload: dict, *, retain: bool = False) -> None:
        client = self._client
        if client is None:
            log.warning("fleet: not connected, dropped a message for %s", topic)
            return
        try:
            data = json.dumps(payload, default=str)
        except ValueError as e:  # e.g. a circular structure in a handler's result
            data = json.dumps({"event": "error", "error": f"unserialisable message: {one_line(e)}"})
        client.publish(topic, data, qos=self.config.qos, retain=retain)


def _str(path) -> str | None:
    return None if path is None else str(path)
