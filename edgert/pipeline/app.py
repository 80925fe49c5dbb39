"""The contract between the service and the product it runs (an App): start, stop, safe state, health,
status, model swap, and an event stream the journal and the fleet subscribe to.

The daemon (`edgert.service`) knows apps only through `AppSpec` and `App`; an app knows the service
only through the `AppContext` it is built with. Neither imports the other.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """Something the service or an app did that the journal and the fleet record.

    Attributes:
        kind: A short name ("model_swap", "model_rollback", ...).
        message: One line for people.
        details: JSON-able facts (versions, reasons).
    """

    kind: str
    message: str
    details: dict = field(default_factory=dict)


class Events:
    """A small publish/subscribe stream of `Event`s; a failing subscriber does not stop the others."""

    def __init__(self):
        self._subscribers: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call `callback(event)` for every event from now on; returns the function that unsubscribes."""
        with self._lock:
            self._subscribers.append(callback)
        return lambda: self._unsubscribe(callback)

    def _unsubscribe(self, callback) -> None:
        with self._lock:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

    def publish(self, kind: str, message: str, **details) -> Event:
        """Hand an event to every subscriber (in the caller's thread)."""
        event = Event(kind, message, details)
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception:  # noqa: BLE001 - one subscriber's trouble is not the publisher's
                log.exception("event subscriber failed on %s", kind)
        return event


def close_in_reverse(closers: list) -> None:
    """Call and remove each of `closers` from the last to the first; one failing does not stop the rest."""
    while closers:
        closer = closers.pop()
        try:
            closer()
        except Exception:  # noqa: BLE001 - free the rest regardless
            log.exception("closing %s failed", getattr(closer, "__qualname__", closer))


@dataclass(frozen=True)
class AppHealth:
    """What the watchdog and STATUS= need to know.

    Attributes:
        running: The app's stage threads are alive.
        frames: Frames fully processed since the start.
        last_progress_ns: ``CLOCK_MONOTONIC`` time of the last processed frame (0: none yet).
        streams: ``{name: SourceHealth}`` of every input stream.
        failed: Why the app stopped by itself when a stream gave up (None: running, or its finite
            input simply ended).
    """

    running: bool
    frames: int
    last_progress_ns: int
    streams: dict
    failed: str | None = None

    @property
    def reconnecting(self) -> list[str]:
        """Names of the streams inside their reconnect window."""
        return [name for name, h in self.streams.items() if h.state == "reconnecting"]

    @property
    def ended(self) -> bool:
        """Every stream read to its end (a file or folder source), none failed."""
        return bool(self.streams) and all(h.state == "ended" for h in self.streams.values())


@dataclass
class AppContext:
    """What the service gives an app.

    Attributes:
        state_dir: Where the app keeps its journal and snapshots.
        infer_depth: Frames kept in flight on the accelerator per model.
        load_model: ``load_model(model_config, task, check=None) -> LoadedModel``: the service's
            resolver (it owns the model store and falls back to the previous store version when the
            current one does not start; `check(entry)` raises when the app cannot use a model).
        events: The stream the app publishes to and the service (journal, fleet) follows.
        on_progress: Called after each processed frame (the watchdog).
    """

    state_dir: Path
    infer_depth: int
    load_model: Callable[..., Any]
    events: Events = field(default_factory=Events)
    on_progress: Callable[[], None] = lambda: None


class App(Protocol):
    """A product the service runs. Implementations: `edgert.apps.kiosk.app.Kiosk`, ..."""

    def start(self) -> None:
        """Start the stage threads (outputs are already in their safe state)."""

    def stop(self, timeout: float = 8.0) -> bool:
        """Drain in-flight frames and go to the safe state; True if every stage ended."""

    def close(self) -> None:
        """Stop if running and free every device."""

    def safe(self, reason: str) -> None:
        """Put every output in its safe state (a stall, a device failure)."""

    def health(self) -> AppHealth:
        """Liveness and stream health, for READY=, WATCHDOG= and STATUS=."""

    def status(self) -> str:
        """The app's part of STATUS= ("model x 1.0 on cpu, 120 frames, 3 items")."""

    def stats(self) -> dict:
        """Counters and per-stage timings."""

    def models(self) -> dict:
        """``{slot: LoadedModel}``: the model each slot runs now."""

    def model_health(self, slot: str) -> dict:
        """``{generation: ModelHealth}`` of a slot's recent models (probation compares them)."""

    def swap_model(self, slot: str, model) -> Any:
        """Load (a `ModelConfig`) or take (a `LoadedModel`) a model and switch the slot to it at a frame boundary."""

    def reconfigure(self, new_config) -> bool:
        """Apply a changed app config in place if it can (True); False asks for a rebuild."""


@dataclass(frozen=True)
class AppSpec:
    """How the service builds an app.

    Attributes:
        name: The value of the config file's ``app:`` key.
        config: The app's config model (its sections of the file).
        build: ``build(config, context, **options) -> App``.
        models: ``models(config) -> {slot: ModelConfig}``: the models the config names.
        check: ``check(config) -> str``: checks against the files the config names, beyond what
            validation sees (`edgert config check`); returns a summary of the config.
        fleet_admin: ``fleet_admin(config, state_dir) -> dict``: the app's own administration objects the
            fleet's commands reach, as keyword arguments of `edgert.fleet.handler.StoreHandler` (e.g.
            ``{"faces": FaceAdmin}``); None: the app has none.
    """

    name: str
    config: type
    build: Callable[..., App]
    models: Callable[[Any], dict]
    check: Callable[[Any], str]
    fleet_admin: Callable[[Any, Path], dict] | None = None
