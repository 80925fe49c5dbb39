"""`EventLog`: the journal's events table: every `edgert.pipeline.app.Event` of the service and its app,
one committed row each, and the outbox state of its delivery to the fleet.

Each `EventLog.record` is one INSERT in its own transaction on a WAL database with ``synchronous=FULL``
(`edgert.journal.db`): when it returns the row is on disk, and a ``kill -9`` at any moment leaves either the
whole row or none. The keys of the event contract (``camera``, ``track_id``, ``cls``, ``t``, ``zone``,
``line``, ``snapshot``) get their own columns for filtering; every detail stays in the JSON ``details``.

The outbox: rows start ``pending``; `edgert.fleet.outbox` publishes them in id order and marks them
``published`` only after the broker acknowledged them (`mark_published`). Rows of a version 2 journal were
sent when they happened and are ``skipped``.
"""
from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from edgert.core.errors import ClosedError, JournalError
from edgert.journal.db import SCHEMA_VERSION, open_database, write_error

#: Detail keys of the event contract that have a column of their own, with the type the column holds.
CONTRACT_KEYS = {"camera": str, "track_id": int, "cls": str, "t": float, "zone": str, "line": str, "snapshot": str}
OUTBOX_STATES = ("pending", "published", "skipped")
#: The kinds of the surveillance event contract (track lifecycle and analytics); the service's own events
#: (``model_swap``, ``model_rollback``, ...) are the others.
ANALYTICS_KINDS = frozenset({"track_start", "track_update", "track_end", "zone_enter", "zone_exit", "loiter",
                             "crowd", "intrusion", "line_cross", "line_count"})

_COLUMNS = ("id", "uid", "time_ns", "kind", "message", "details", *CONTRACT_KEYS, "outbox", "published_ns")
_INSERT = (f"INSERT INTO events (uid, time_ns, kind, message, details, {', '.join(CONTRACT_KEYS)}) "
           f"VALUES ({', '.join('?' * (5 + len(CONTRACT_KEYS)))})")


@dataclass(frozen=True)
class EventRow:
    """One journaled event.

    Attributes:
        id: Row id (increasing: the journal's order).
        uid: 32 hex digits, unique across journals and devices: what a consumer dedupes on.
        time_ns: Wall-clock time it was journaled (``time.time_ns()``).
        kind: ``"zone_enter"``, ``"model_swap"``, ...
        message: One line for people.
        details: Every detail the publisher gave (JSON-able).
        camera, track_id, cls, t, zone, line, snapshot: The contract keys of `details` (None when absent).
        outbox: ``"pending"``, ``"published"`` or ``"skipped"``.
        published_ns: When the broker acknowledged it (None until then).
    """

    id: int
    uid: str
    time_ns: int
    kind: str
    message: str
    details: dict = field(default_factory=dict)
    camera: str | None = None
    track_id: int | None = None
    cls: str | None = None
    t: float | None = None
    zone: str | None = None
    line: str | None = None
    snapshot: str | None = None
    outbox: str = "pending"
    published_ns: int | None = None

    def payload(self) -> dict:
        """The JSON object the fleet receives: ``{"event", "event_id", "seq", "time", "message", **details}``."""
        return {**self.details, "event": self.kind, "event_id": self.uid, "seq": self.id,
                "time": self.time_ns / 1e9, "message": self.message}

    def as_dict(self) -> dict:
        """Every column, for ``edgert events --json``."""
        return {name: getattr(self, name) for name in _COLUMNS}


def contract_columns(details: dict) -> tuple:
    """The column values of the contract keys in `details` (None where absent or of the wrong type)."""
    values = []
    for key, kind in CONTRACT_KEYS.items():
        value = details.get(key)
        if isinstance(value, bool) or value is None:
            value = None
        elif kind is str:
            value = str(value)
        elif kind is int:
            value = int(value) if isinstance(value, int) or (isinstance(value, float) and value.is_integer()) else None
        else:
            value = float(value) if isinstance(value, int | float) and math.isfinite(value) else None
        values.append(value)
    return tuple(values)


def _params(kind: str, message: str, details: dict | None, time_ns: int | None) -> tuple:
    """The INSERT parameters of one event: NaN/inf become null, numpy values plain ones, anything else
    that JSON lacks (a Path) its text."""
    clean = _finite(dict(details or {}))
    return (uuid.uuid4().hex, time.time_ns() if time_ns is None else int(time_ns), str(kind), str(message),
            json.dumps(clean, default=str, allow_nan=False), *contract_columns(clean))


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0:
        return _finite(value.item())  # a numpy scalar
    if hasattr(value, "tolist") and hasattr(value, "dtype"):
        return _finite(value.tolist())  # a numpy array (a box)
    return value


class EventLog:
    """The events table of one journal file, safe to use from any thread.

    Args:
        path: The journal's SQLite file (created and migrated as `edgert.journal.db.open_database` does).
        read_only: Open an existing journal for `query` alone, writing nothing (one of an older schema is
            migrated first, which needs write access).

    Raises:
        JournalError: The file is not a journal, is corrupted, newer, or not writable.
    """

    def __init__(self, path: str | Path, *, read_only: bool = False):
        self.path = Path(path)
        self._conn = _open_read_only(self.path) if read_only else open_database(self.path)
        self._lock = threading.Lock()
        self._closed = False
        self.errors = 0

    def record(self, kind: str, message: str, details: dict | None = None, *, time_ns: int | None = None) -> int:
        """Commit one event row (outbox ``pending``); returns its id.

        Raises:
            JournalError: The row could not be committed (disk full, I/O error); nothing was written.
        """
        return self.record_many([(kind, message, details, time_ns)])[0]

    def record_many(self, events: list[tuple[str, str, dict | None, int | None]]) -> list[int]:
        """Commit ``(kind, message, details, time_ns or None)`` rows in one transaction (one fsync for all);
        returns their ids. All or none are written.

        Raises:
            JournalError: The rows could not be committed (disk full, I/O error); none was written.
        """
        rows = [_params(kind, message, details, time_ns) for kind, message, details, time_ns in events]
        what = f"{len(rows)} event(s)" if len(rows) != 1 else f"{events[0][0]} event"
        with self._lock:
            self._check_open()
            if len(rows) == 1:
                return [self._write(_INSERT, rows[0], what).lastrowid]
            self._write("BEGIN IMMEDIATE", (), what)
            try:
                ids = [self._conn.execute(_INSERT, params).lastrowid for params in rows]
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self.errors += 1
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise write_error(exc, self.path, what) from exc
            return ids

    def query(self, *, camera: str | None = None, kinds: list[str] | tuple[str, ...] | None = None,
              since_ns: int | None = None, limit: int | None = None, newest_first: bool = True,
              outbox: str | None = None, after_id: int | None = None) -> list[EventRow]:
        """Events matching every filter given: a camera, kinds, journaled at or after `since_ns`, an outbox
        state, ids above `after_id`; the newest `limit` of them (or oldest, `newest_first=False`)."""
        where, params = [], []
        if camera is not None:
            where.append("camera = ?")
            params.append(camera)
        if kinds:
            where.append(f"kind IN ({', '.join('?' * len(kinds))})")
            params.extend(kinds)
        if since_ns is not None:
            where.append("time_ns >= ?")
            params.append(int(since_ns))
        if outbox is not None:
            where.append("outbox = ?")
            params.append(outbox)
        if after_id is not None:
            where.append("id > ?")
            params.append(int(after_id))
        sql = (f"SELECT {', '.join(_COLUMNS)} FROM events" + (f" WHERE {' AND '.join(where)}" if where else "")
               + f" ORDER BY id {'DESC' if newest_first else 'ASC'}" + (" LIMIT ?" if limit is not None else ""))
        if limit is not None:
            params.append(int(limit))
        with self._lock:
            self._check_open()
            try:
                rows = self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise JournalError(f"journal: cannot read the events of {self.path}: {exc}") from exc
        return [_row(r) for r in rows]

    def count(self, outbox: str | None = None) -> int:
        """Number of event rows (in one outbox state, when given)."""
        sql, params = ("SELECT count(*) FROM events", ()) if outbox is None else (
            "SELECT count(*) FROM events WHERE outbox = ?", (outbox,))
        with self._lock:
            self._check_open()
            return self._conn.execute(sql, params).fetchone()[0]

    def prune(self, before_ns: int, batch: int = 500) -> int:
        """Delete delivered (or skipped) events journaled before `before_ns`, in batches so that a `record`
        waits for one batch at most; pending ones stay until the broker has them. Returns how many went."""
        removed = 0
        while True:
            with self._lock:
                self._check_open()
                cur = self._write("DELETE FROM events WHERE id IN (SELECT id FROM events WHERE time_ns < ? "
                                  "AND outbox != 'pending' ORDER BY id LIMIT ?)", (int(before_ns), int(batch)),
                                  "pruning of old events")
            removed += cur.rowcount
            if cur.rowcount < batch:
                return removed

    def pending(self, limit: int = 100) -> list[EventRow]:
        """The oldest `limit` events the broker has not acknowledged yet, oldest first."""
        return self.query(outbox="pending", limit=limit, newest_first=False)

    def mark_published(self, ids: list[int], when_ns: int | None = None) -> int:
        """Mark rows ``published`` (after the broker's acknowledgement) in one transaction; returns how many."""
        if not ids:
            return 0
        when = time.time_ns() if when_ns is None else int(when_ns)
        with self._lock:
            self._check_open()
            self._write("BEGIN IMMEDIATE", (), "outbox state")
            try:
                before = self._conn.total_changes
                self._conn.executemany("UPDATE events SET outbox = 'published', published_ns = ? "
                                       "WHERE id = ? AND outbox = 'pending'", [(when, int(i)) for i in ids])
                changed = self._conn.total_changes - before
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self.errors += 1
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise write_error(exc, self.path, "outbox state") from exc
        return changed

    def counts(self, camera: str) -> dict:
        """Per-camera totals for the retained counts topic: events by kind, and line crossings by line,
        direction and class (``{"events": {kind: n}, "lines": {line: {direction: {cls: n}}}}``)."""
        with self._lock:
            self._check_open()
            by_kind = self._conn.execute("SELECT kind, count(*) FROM events WHERE camera = ? GROUP BY kind",
                                         (camera,)).fetchall()
            crossings = self._conn.execute(
                "SELECT line, json_extract(details, '$.direction'), cls, count(*) FROM events "
                "WHERE camera = ? AND kind = 'line_cross' AND line IS NOT NULL GROUP BY 1, 2, 3", (camera,)).fetchall()
        lines: dict = {}
        for line, direction, cls, n in crossings:
            lines.setdefault(str(line), {}).setdefault(str(direction), {})[str(cls)] = n
        return {"events": dict(by_kind), "lines": lines}

    def close(self) -> None:
        """Close the connection. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"journal: {self.path} is closed")

    def _write(self, sql: str, params, what: str) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            self.errors += 1
            if self._conn.in_transaction:
                try:
                    self._conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # SQLite already rolled back
            raise write_error(exc, self.path, what) from exc


def _row(values: tuple) -> EventRow:
    d = dict(zip(_COLUMNS, values))
    d["details"] = json.loads(d["details"])
    return EventRow(**d)


def _open_read_only(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise JournalError(f"journal: no journal at {path}")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as exc:
        raise JournalError(f"journal: cannot read {path}: {exc}") from exc
    if version == SCHEMA_VERSION:
        return conn
    conn.close()
    if version > SCHEMA_VERSION:
        raise JournalError(f"journal: {path} has schema version {version}, newer than this edgert ({SCHEMA_VERSION})")
    return open_database(path)  # migrates (and checks) it
