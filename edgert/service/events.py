"""`EventRecorder`: the service journals every event of its app's `Events` stream, for any app.

The one way events reach the journal: the daemon subscribes the recorder before it builds the app (so
the events of the start are kept too), the fleet's outbox (`edgert.fleet.outbox`) delivers from the rows
it writes, and the metrics count what it recorded. A failing write is counted and logged once per streak;
it never reaches the publisher.
"""
from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from edgert.core.errors import EdgertError
from edgert.journal import EventLog, JournalConfig
from edgert.pipeline.app import Event, Events

log = logging.getLogger(__name__)


def events_journal_path(config) -> Path:
    """The journal file the events of `config`'s app go to: its ``journal:`` section's file when the app has
    one (the kiosk's, beside its decisions), else ``journal.sqlite3``, in the service's state directory."""
    journal = getattr(config, "journal", None)
    path = journal.path if isinstance(journal, JournalConfig) else JournalConfig().path
    return Path(config.service.state_dir) / path


class EventRecorder:
    """Journals every event published on `events` into the journal at `path`.

    Args:
        path: The journal's SQLite file.
        events: The app's event stream.

    Raises:
        JournalError: The journal cannot be opened (the service refuses to start).
    """

    def __init__(self, path: Path, events: Events):
        self.log = EventLog(path)
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

    def close(self) -> None:
        """Stop recording and close the journal. Idempotent."""
        self._unsubscribe()
        self.log.close()
