"""`EventRecorder`: the service journals every event of its app's `Events` stream, for any app.

The one way events reach the journal: the daemon subscribes the recorder before it builds the app (so
the events of the start are kept too), the fleet's outbox (`edgert.fleet.outbox`) delivers from the rows
it writes, and the metrics count what it recorded. A failing write is counted and logged once per streak;
it never reaches the publisher.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from edgert.core.errors import EdgertError
from edgert.journal import EventLog, JournalConfig
from edgert.pipeline.app import Event, Events

log = logging.getLogger(__name__)


_NS_PER_DAY = 86_400 * 10**9
_PRUNE_INTERVAL_S = 3600.0


def events_journal(config) -> JournalConfig:
    """The ``journal:`` section the events of `config`'s app follow: the app's own when it has one (the
    kiosk's: events beside its decisions, pruned with them), else the defaults (``journal.sqlite3``)."""
    journal = getattr(config, "journal", None)
    return journal if isinstance(journal, JournalConfig) else JournalConfig()


def events_journal_path(config) -> Path:
    """The journal file the events of `config`'s app go to, in the service's state directory."""
    return Path(config.service.state_dir) / events_journal(config).path


class EventRecorder:
    """Journals every event published on `events` into the journal at `path`.

    Args:
        path: The journal's SQLite file.
        events: The app's event stream.
        keep_days: Delivered events older than this are deleted, hourly, by a background thread (None:
            keep all; events the broker has not acknowledged are always kept).

    Raises:
        JournalError: The journal cannot be opened (the service refuses to start).
    """

    def __init__(self, path: Path, events: Events, keep_days: float | None = None):
        self.log = EventLog(path)
        self.keep_days = keep_days
        self._stop = threading.Event()
        self._pruner = None
        if keep_days is not None:
            self._pruner = threading.Thread(target=self._prune_loop, name="edgert-events-prune", daemon=True)
            self._pruner.start()
        self.errors = 0
        self.recorded: Counter = Counter()  # kind -> events journaled
        self._listeners: list[Callable[[int, Event], None]] = []
        self._lock = threading.Lock()
        self._failing = False
        self._unsubscribe = events.subscribe(self._record)

    def on_recorded(self, callback: Callable[[int, Event], None]) -> Callable[[], None]:
        """Call ``callback(row_id, event)`` after each committed row; returns the function that stops it."""
        with self._lock:
            self._listeners.append(callback)
        return lambda: self._remove(callback)

    def _remove(self, callback) -> None:
        with self._lock:
            if callback in self._listeners:
                self._listeners.remove(callback)

    def _record(self, event: Event) -> None:
        try:
            row_id = self.log.record(event.kind, event.message, event.details)
        except EdgertError as exc:
            with self._lock:
                self.errors += 1
                first = not self._failing
                self._failing = True
            if first:
                log.error("%s; counting further failures silently until one succeeds", exc)
            return
        with self._lock:
            self.recorded[event.kind] += 1
            if self._failing:
                self._failing = False
                log.info("journal: events are journaled again")
            listeners = list(self._listeners)
        for callback in listeners:
            callback(row_id, event)

    def prune(self, now_ns: int | None = None) -> int:
        """Delete the delivered events older than `keep_days` now; returns how many went."""
        if self.keep_days is None:
            return 0
        now = time.time_ns() if now_ns is None else now_ns
        return self.log.prune(now - int(self.keep_days * _NS_PER_DAY))

    def _prune_loop(self) -> None:
        while not self._stop.is_set():
            try:
                removed = self.prune()
                if removed:
                    log.info("journal: %d old event(s) pruned", removed)
            except EdgertError as exc:
                log.error("journal: pruning events failed: %s", exc)
            self._stop.wait(_PRUNE_INTERVAL_S)

    def close(self) -> None:
        """Stop recording and pruning, and close the journal. Idempotent."""
        self._unsubscribe()
        self._stop.set()
        if self._pruner is not None:
            self._pruner.join(10)
        self.log.close()
