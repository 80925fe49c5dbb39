"""`EventRecorder`: the service journals every event of its app's `Events` stream, for any app.

The one way events reach the journal: the daemon subscribes the recorder before it builds the app (so
the events of the start are kept too), the fleet's outbox (`edgert.fleet.outbox`) delivers from the rows
it writes, and the metrics count what it recorded. A failing write is counted and logged once per streak;
it never reaches the publisher, which never waits for the disk either.
"""
from __future__ import annotations

import logging
import queue
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
_FIRST_PRUNE_S = 60.0  # after the start's burst of work
_BATCH = 500  # events committed in one transaction at most
_STOP = object()


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

    `publish` only queues the event (the app's thread never waits for a disk); one writer thread commits
    what is queued in one transaction per batch (one fsync per batch, not per event) and then calls the
    `on_recorded` listeners. A kill -9 never leaves a half-written row; it loses at most the events of
    the last moments that were still queued. A full queue drops and counts (`dropped`, in `errors`).

    Args:
        path: The journal's SQLite file.
        events: The app's event stream.
        keep_days: Delivered events older than this are deleted hourly (first a minute after the start)
            by the writer thread; None keeps all. Events the broker has not acknowledged are always kept.
        queue_size: Events waiting for the writer at most.

    Raises:
        JournalError: The journal cannot be opened (the service refuses to start).
    """

    def __init__(self, path: Path, events: Events, keep_days: float | None = None, queue_size: int = 10_000):
        self.log = EventLog(path)
        self.keep_days = keep_days
        self.errors = 0
        self.dropped = 0
        self.recorded: Counter = Counter()  # kind -> events journaled
        self._listeners: list[Callable[[int, Event], None]] = []
        self._lock = threading.Lock()
        self._failing = False
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._writer = threading.Thread(target=self._write_loop, name="edgert-events", daemon=True)
        self._writer.start()
        self._unsubscribe = events.subscribe(self._enqueue)
        self._closed = False

    def on_recorded(self, callback: Callable[[int, Event], None]) -> Callable[[], None]:
        """Call ``callback(row_id, event)`` after each committed row; returns the function that stops it."""
        with self._lock:
            self._listeners.append(callback)
        return lambda: self._remove(callback)

    def _remove(self, callback) -> None:
        with self._lock:
            if callback in self._listeners:
                self._listeners.remove(callback)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event queued so far is committed (or failed); False if `timeout` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._queue.all_tasks_done.wait(remaining)
        return True

    def prune(self, now_ns: int | None = None) -> int:
        """Delete the delivered events older than `keep_days` now; returns how many went."""
        if self.keep_days is None:
            return 0
        now = time.time_ns() if now_ns is None else now_ns
        return self.log.prune(now - int(self.keep_days * _NS_PER_DAY))

    def close(self) -> None:
        """Stop recording, commit what is queued, and close the journal. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._unsubscribe()
        self._queue.put(_STOP)
        self._writer.join()
        self.log.close()

    # -- the writer thread ---------------------------------------------------------------------------

    def _enqueue(self, event: Event) -> None:
        try:
            self._queue.put_nowait((event, time.time_ns()))
        except queue.Full:
            self._failed(f"journal: {self.log.path}: the event queue is full ({event.kind} event dropped)", 1)
            with self._lock:
                self.dropped += 1

    def _write_loop(self) -> None:
        next_prune = time.monotonic() + _FIRST_PRUNE_S if self.keep_days is not None else None
        while True:
            timeout = None if next_prune is None else max(0.0, next_prune - time.monotonic())
            try:
                first = self._queue.get(timeout=timeout)
            except queue.Empty:
                first = None
            batch = [] if first is None else [first]
            while batch and batch[-1] is not _STOP and len(batch) < _BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = bool(batch) and batch[-1] is _STOP
            items = [item for item in batch if item is not _STOP]
            try:
                if items:
                    self._commit(items)
            finally:
                for _ in batch:
                    self._queue.task_done()
            if stop:
                return
            if next_prune is not None and time.monotonic() >= next_prune:
                self._prune_quietly()
                next_prune = time.monotonic() + _PRUNE_INTERVAL_S

    def _commit(self, items: list[tuple[Event, int]]) -> None:
        try:
            ids = self.log.record_many([(e.kind, e.message, e.details, t) for e, t in items])
        except EdgertError as exc:
            self._failed(str(exc), len(items))
            return
        with self._lock:
            for event, _ in items:
                self.recorded[event.kind] += 1
            if self._failing:
                self._failing = False
                log.info("journal: events are journaled again")
            listeners = list(self._listeners)
        for row_id, (event, _) in zip(ids, items):
            for callback in listeners:
                try:
                    callback(row_id, event)
                except Exception:  # noqa: BLE001 - a listener's trouble is not the journal's
                    log.exception("journal: an event listener failed")

    def _failed(self, text: str, count: int) -> None:
        with self._lock:
            self.errors += count
            first = not self._failing
            self._failing = True
        if first:
            log.error("%s; counting further failures silently until one succeeds", text)

    def _prune_quietly(self) -> None:
        try:
            removed = self.prune()
            if removed:
                log.info("journal: %d old event(s) pruned", removed)
        except EdgertError as exc:
            log.error("journal: pruning events failed: %s", exc)
