"""The decision journal: one durable SQLite row per decision, plus optional JPEG snapshots.

(The events beside the decisions, in the same file, are `edgert.journal.events`.)

Durability is two-phase so that an actuation that ran is never lost, also on ``kill -9`` or power loss:
`Journal.record` commits the row (actuation ``"pending"``) before the caller fires, and
`Journal.set_actuation` commits the result afterwards. The database runs in WAL mode with
``synchronous=FULL``, so every commit is on disk when the call returns.

Snapshots are encoded and written by one background thread fed through a small bounded queue; when it
is full the snapshot is dropped and counted, never waited for. A failing disk never raises into the
decision path through snapshots; a failing `record` raises one `JournalError` line, the transaction is
rolled back, and the next `record` succeeds once space is back.
"""
from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Self

import numpy as np
from pydantic import Field

from edgert.core.errors import ClosedError, ConfigError, JournalError, one_line
from edgert.core.settings import Section
from edgert.journal.db import open_database, write_error
from edgert.journal.snapshots import SnapshotStore, check_snapshot_image

log = logging.getLogger(__name__)

_NS_PER_DAY = 86_400 * 10**9
_PRUNE_INTERVAL_S = 3600.0
_PRUNE_BATCH = 500
_STOP = object()

_INSERT = ("INSERT INTO decisions (item, frame_seq, time_ns, model, model_version, label, top, bin, reason, "
           "latency_ms, truth) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_COLUMNS = ("id", "item", "frame_seq", "time_ns", "model", "model_version", "label", "top", "bin", "reason",
            "latency_ms", "truth", "actuation", "actuated_ns", "snapshot")


class JournalConfig(Section):
    """The ``journal:`` section: where decisions are kept and how snapshots are bounded."""

    path: Path = Field(Path("journal.sqlite3"), description="SQLite file; relative to the state directory")
    snapshots: bool = Field(False, description="Keep a JPEG snapshot of each decided item")
    snapshot_dir: Path = Field(Path("snapshots"), description="Snapshot directory; relative to the state directory")
    snapshot_max_mb: float = Field(200.0, gt=0, description="Bound on the snapshots' total size (MB); oldest go first")
    snapshot_quality: int = Field(85, ge=1, le=100, description="JPEG quality of the snapshots (1-100)")
    keep_days: float | None = Field(None, gt=0, description="Delete decision rows and delivered events older than "
                                    "this (default: keep all)")


@dataclass(frozen=True)
class DecisionRecord:
    """One decision, as the journal stores it.

    Attributes:
        item: Item number (counts items, not frames).
        frame_seq: Sequence number of the frame the decision was taken on.
        time_ns: Wall-clock time of the decision (``time.time_ns()``).
        model: Model name.
        model_version: Model version (file hash or release tag).
        label: Winning class, or None when no class won (reject).
        top: The top classes and their scores, best first.
        bin: The bin the item was sent to.
        reason: Why that bin (``"vote"``, ``"low_confidence"``, ``"disagree"``, ...).
        latency_ms: Milliseconds per pipeline stage (``{"capture": 1.2, "infer": 8.0, ...}``).
        truth: Ground-truth class when the source knows it (the demo's synthetic scene), else None.
        snapshot: BGR ``(H, W, 3)`` or gray uint8 picture to keep as JPEG, or None. It is copied by
            `Journal.record`, not stored in the row, and ignored when the journal keeps no snapshots.
    """

    item: int
    frame_seq: int
    time_ns: int
    model: str
    model_version: str
    label: str | None
    top: tuple[tuple[str, float], ...]
    bin: str
    reason: str
    latency_ms: dict[str, float]
    truth: str | None = None
    snapshot: np.ndarray | None = field(default=None, compare=False, repr=False)


class JournalStats(NamedTuple):
    """Counters of a journal.

    Attributes:
        rows: Decision rows in the database.
        snapshots: Snapshot files kept.
        bytes: Summed size of the snapshot files.
        dropped: Snapshots dropped because the writer queue was full.
        errors: Failed writes (rows, actuation results, snapshots, pruning) since the journal opened.
    """

    rows: int
    snapshots: int
    bytes: int
    dropped: int
    errors: int


class Journal:
    """The decision journal over one SQLite file (see the module docstring for its guarantees).

    `record` is called from one thread; `set_actuation`, `recent`, `count` and `stats` may come from any.

    Args:
        path: The SQLite file; its directory is created if missing.
        snapshot_dir: Directory for JPEG snapshots, or None to keep none.
        snapshot_max_bytes: Bound on the snapshots' total size.
        quality: JPEG quality, 1-100.
        keep_days: Rows older than this many days are deleted (hourly, by the writer thread); None keeps all.
        queue_size: Snapshots waiting to be written at most; more are dropped.

    Raises:
        JournalError: The file is not a journal or is corrupted, or the directory is not writable.
        ConfigError: Bad settings, or snapshots asked for without OpenCV.
    """

    def __init__(self, path: str | Path, *, snapshot_dir: str | Path | None = None,
                 snapshot_max_bytes: int = 200 * 2**20, quality: int = 85, keep_days: float | None = None,
                 queue_size: int = 4):
        if keep_days is not None and keep_days <= 0:
            raise ConfigError(f"journal: keep_days must be positive, got {keep_days}")
        if queue_size < 1:
            raise ConfigError(f"journal: queue_size must be at least 1, got {queue_size}")
        self.path = Path(path)
        self.keep_days = keep_days
        self._store = (SnapshotStore(Path(snapshot_dir), snapshot_max_bytes, quality)
                       if snapshot_dir is not None else None)
        self._conn = open_database(self.path)
        self._lock = threading.Lock()
        self._closed = False
        self._dropped = 0
        self._errors = 0
        self._failing: set[str] = set()  # background jobs whose failure was logged and has not cleared yet
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._pending = 0  # snapshots queued and not yet finished
        self._idle = threading.Condition()
        try:
            if self._store is not None:
                self._reconcile_snapshots()
        except BaseException:
            self._conn.close()
            raise
        self._writer = threading.Thread(target=self._writer_loop, name="edgert-journal", daemon=True)
        self._writer.start()

    @property
    def snapshots_enabled(self) -> bool:
        """Whether `record` keeps the snapshots it is given."""
        return self._store is not None

    def record(self, rec: DecisionRecord) -> int:
        """Commit one decision row (actuation ``"pending"``) and queue its snapshot; call before firing.

        Returns:
            The row id, for `set_actuation`.

        Raises:
            JournalError: The row could not be committed (disk full, I/O error); nothing was written.
            FrameError: `rec.snapshot` is not a picture.
        """
        self._check_open()
        image = check_snapshot_image(rec.snapshot) if rec.snapshot is not None and self._store else None
        top = json.dumps([[str(name), float(score)] for name, score in rec.top])
        latency = json.dumps({str(stage): float(ms) for stage, ms in rec.latency_ms.items()})
        params = (int(rec.item), int(rec.frame_seq), int(rec.time_ns), str(rec.model), str(rec.model_version),
                  rec.label, top, str(rec.bin), str(rec.reason), latency, rec.truth)
        with self._lock:
            row_id = self._write(_INSERT, params, f"decision of item {rec.item}").lastrowid
        if image is not None:
            self._enqueue_snapshot(row_id, int(rec.time_ns), image)
        return row_id

    def set_actuation(self, row_id: int, result: str) -> None:
        """Commit the actuator's result (``"ok"``, ``"error: ..."``) for the row `record` returned.

        Raises:
            JournalError: No such row, or the result could not be committed.
        """
        self._check_open()
        sql = "UPDATE decisions SET actuation = ?, actuated_ns = ? WHERE id = ?"
        with self._lock:
            cur = self._write(sql, (str(result), time.time_ns(), int(row_id)), f"actuation of row {row_id}")
        if cur.rowcount != 1:
            raise JournalError(f"journal: no decision row {row_id} in {self.path}")

    def mark_unfinished(self, note: str = "unknown: the service stopped before the result was written") -> int:
        """Mark rows still "pending" from an earlier run (a crash or kill -9 between record and result).

        Call at start, before any new decision: their actuators may or may not have fired.

        Returns:
            How many rows were marked.
        """
        self._check_open()
        with self._lock:
            cur = self._write("UPDATE decisions SET actuation = ? WHERE actuation = 'pending'", (note,),
                              "unfinished rows")
        return cur.rowcount

    def recent(self, n: int = 20) -> list[dict]:
        """The newest `n` decisions, newest first, as dicts of the row's columns.

        ``top`` comes back as a list of ``(label, score)`` tuples, ``latency_ms`` as a dict and ``snapshot``
        as the file's absolute path (or None).
        """
        self._check_open()
        with self._lock:
            rows = self._conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM decisions ORDER BY id DESC LIMIT ?",
                                      (int(n),)).fetchall()
        out = []
        for row in rows:
            d = dict(zip(_COLUMNS, row))
            d["top"] = [(name, score) for name, score in json.loads(d["top"])]
            d["latency_ms"] = json.loads(d["latency_ms"])
            if d["snapshot"] is not None:
                d["snapshot"] = str(self._store.path_of(d["snapshot"])) if self._store else d["snapshot"]
            out.append(d)
        return out

    def count(self) -> int:
        """Number of decision rows."""
        self._check_open()
        with self._lock:
            return self._conn.execute("SELECT count(*) FROM decisions").fetchone()[0]

    def stats(self) -> JournalStats:
        """Rows, snapshot files and bytes, dropped snapshots and failed writes."""
        store = self._store
        return JournalStats(self.count(), store.count if store else 0, store.total_bytes if store else 0,
                            self._dropped, self._errors)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued snapshot is written (or failed); False if `timeout` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def prune(self, now_ns: int | None = None) -> int:
        """Delete rows older than `keep_days` (and their snapshots) now; returns how many went."""
        self._check_open()
        if self.keep_days is None:
            return 0
        cutoff = (time.time_ns() if now_ns is None else now_ns) - int(self.keep_days * _NS_PER_DAY)
        removed = 0
        while True:  # in batches, so a record() waits for one batch at most
            with self._lock:
                ids = [r[0] for r in self._conn.execute(
                    "SELECT id FROM decisions WHERE time_ns < ? ORDER BY id LIMIT ?", (cutoff, _PRUNE_BATCH))]
                if not ids:
                    return removed
                marks = ",".join("?" * len(ids))
                self._write(f"DELETE FROM decisions WHERE id IN ({marks})", ids, "pruning of old rows")
                if self._store is not None:  # under the lock: stats() never sees a file of a deleted row
                    for row_id in ids:
                        self._store.discard(row_id)
            removed += len(ids)

    def close(self) -> None:
        """Write the queued snapshots, stop the writer thread, checkpoint the WAL and close. Idempotent."""
        if self._closed:
            return
        self._queue.put(_STOP)
        self._writer.join()
        self._closed = True
        with self._lock:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:  # the WAL stays; the next open checkpoints it
                log.warning("journal: could not checkpoint %s: %s", self.path, exc)
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"journal: {self.path} is closed")

    def _write(self, sql: str, params, what: str) -> sqlite3.Cursor:
        """Run one write statement as its own committed transaction (the caller holds the lock)."""
        try:
            return self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            self._errors += 1
            if self._conn.in_transaction:
                try:
                    self._conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # SQLite already rolled back
            raise write_error(exc, self.path, what) from exc

    def _enqueue_snapshot(self, row_id: int, time_ns: int, image: np.ndarray) -> None:
        if self._queue.full():
            self._dropped += 1
            return
        with self._idle:
            self._pending += 1
        try:
            # A copy: the caller's frame buffer is reused for the next frame long before the JPEG is encoded.
            self._queue.put_nowait((row_id, time_ns, np.array(image, order="C", copy=True)))
        except queue.Full:
            self._dropped += 1
            self._task_done()

    def _task_done(self) -> None:
        with self._idle:
            self._pending -= 1
            if self._pending == 0:
                self._idle.notify_all()

    def _writer_loop(self) -> None:
        next_prune = time.monotonic() if self.keep_days is not None else float("inf")
        while True:
            timeout = max(0.0, next_prune - time.monotonic()) if next_prune != float("inf") else None
            try:
                task = self._queue.get(timeout=timeout)
            except queue.Empty:
                task = None
            if task is _STOP:
                return
            if task is not None:
                try:
                    self._background("snapshot", self._save_snapshot, *task)
                finally:
                    self._task_done()
            if time.monotonic() >= next_prune:
                self._background("prune", self.prune)
                next_prune = time.monotonic() + _PRUNE_INTERVAL_S

    def _background(self, job: str, fn, *args) -> None:
        """Run `fn`; a failure is counted and logged once per streak, never raised."""
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - the decision path must not see background failures
            if not isinstance(exc, JournalError):  # a JournalError was counted where it was raised
                with self._lock:
                    self._errors += 1
            if job not in self._failing:
                self._failing.add(job)
                log.error("journal: %s failed (%s); counting further failures silently until one succeeds",
                          job, one_line(exc))
            return
        if job in self._failing:
            self._failing.discard(job)
            log.info("journal: %s works again", job)

    def _save_snapshot(self, row_id: int, time_ns: int, image: np.ndarray) -> None:
        store = self._store
        name = store.write(row_id, time_ns, store.encode(image))
        with self._lock:
            self._write("UPDATE decisions SET snapshot = ? WHERE id = ?", (name, row_id), "snapshot path")
        self._forget_evicted(store.evict())

    def _forget_evicted(self, evicted: list[tuple[int, str]]) -> None:
        if evicted:
            self._write_many("UPDATE decisions SET snapshot = NULL WHERE id = ? AND snapshot = ?",
                             [(row_id, name) for row_id, name in evicted], "snapshot retention")

    def _write_many(self, sql: str, seq: list, what: str) -> None:
        """Run `sql` over `seq` in one committed transaction, or roll it all back."""
        with self._lock:
            self._write("BEGIN IMMEDIATE", (), what)
            try:
                self._conn.executemany(sql, seq)
            except sqlite3.Error as exc:
                self._errors += 1
                self._conn.execute("ROLLBACK")
                raise write_error(exc, self.path, what) from exc
            self._write("COMMIT", (), what)

    def _reconcile_snapshots(self) -> None:
        """Bring files and rows back in step after a crash or an earlier journal: link, unlink, delete."""
        store = self._store
        keep, link = {}, []
        for row_id, (name, time_ns, size) in store.scan().items():
            row = self._conn.execute("SELECT time_ns, snapshot FROM decisions WHERE id = ?", (row_id,)).fetchone()
            if row is not None and row[0] == time_ns and row[1] in (None, name):
                keep[row_id] = (name, size)
                if row[1] is None:
                    link.append((name, row_id))  # written, then the process died before the row was updated
            else:
                store.path_of(name).unlink(missing_ok=True)  # its row was pruned, or another journal's file
        lost = [(row_id,) for (row_id,) in self._conn.execute("SELECT id FROM decisions WHERE snapshot IS NOT NULL")
                if row_id not in keep]
        if link:
            self._write_many("UPDATE decisions SET snapshot = ? WHERE id = ?", link, "snapshot reconciliation")
        if lost:
            self._write_many("UPDATE decisions SET snapshot = NULL WHERE id = ?", lost, "snapshot reconciliation")
        self._forget_evicted(store.adopt(keep))


def open_journal(config: JournalConfig, state_dir: Path) -> Journal:
    """Open the journal `config` describes, with relative paths taken from `state_dir`."""
    state_dir = Path(state_dir)
    return Journal(state_dir / config.path,
                   snapshot_dir=state_dir / config.snapshot_dir if config.snapshots else None,
                   snapshot_max_bytes=int(config.snapshot_max_mb * 2**20), quality=config.snapshot_quality,
                   keep_days=config.keep_days)


