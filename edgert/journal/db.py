"""The journal's SQLite layer: opening (WAL, durability pragmas, schema version, checks) and SQLite
errors turned into one-line `JournalError`s.

A file that is not SQLite, is corrupted, belongs to something else or to a newer edgert, or sits where
nothing can be written is refused here with one `JournalError` line naming the path, so the daemon
refuses to start rather than lose decisions later.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

from edgert.core import sqlite_files
from edgert.core.errors import JournalError, one_line

#: Stored in ``PRAGMA user_version``; bump with a migration when the table changes.
SCHEMA_VERSION = 3

_SCHEMA = """
CREATE TABLE decisions (
    id            INTEGER PRIMARY KEY,
    item          INTEGER NOT NULL,
    frame_seq     INTEGER NOT NULL,
    time_ns       INTEGER NOT NULL,              -- wall clock, time.time_ns()
    model         TEXT    NOT NULL,
    model_version TEXT    NOT NULL,
    label         TEXT,                          -- NULL: no class won
    top           TEXT    NOT NULL,              -- JSON [[label, score], ...], best first
    bin           TEXT    NOT NULL,
    reason        TEXT    NOT NULL,
    latency_ms    TEXT    NOT NULL,              -- JSON {stage: ms}
    truth         TEXT,                          -- ground truth where the source knows it
    actuation     TEXT    NOT NULL DEFAULT 'pending',
    actuated_ns   INTEGER,                       -- wall clock of the actuation result
    snapshot      TEXT                           -- JPEG file name in the snapshot directory
);
CREATE INDEX decisions_time ON decisions (time_ns);
"""

# Version 2: service events (model swaps, rollbacks and why), beside the decisions.
# Version 3: every app event (`edgert.pipeline.app.Event`) with columns for the keys of the event contract
# (camera, track, class, capture time, zone, line, snapshot), a unique id for consumers to dedupe on, and
# its outbox state (MQTT delivery from the journal, `edgert.fleet.outbox`).
_EVENTS = """
CREATE TABLE events (
    id           INTEGER PRIMARY KEY,
    time_ns      INTEGER NOT NULL,               -- wall clock of the journaling, time.time_ns()
    kind         TEXT    NOT NULL,               -- "model_swap", "zone_enter", "line_cross", ...
    message      TEXT    NOT NULL,
    details      TEXT    NOT NULL DEFAULT '{}',  -- JSON, every detail (also those with a column)
    uid          TEXT,                           -- 32 hex digits, unique across journals
    camera       TEXT,
    track_id     INTEGER,
    cls          TEXT,
    t            REAL,                           -- capture time, seconds since the epoch
    zone         TEXT,
    line         TEXT,
    snapshot     TEXT,                           -- path relative to the state directory
    outbox       TEXT    NOT NULL DEFAULT 'pending',  -- pending | published | skipped
    published_ns INTEGER                         -- wall clock of the broker's acknowledgement
)
"""

# Columns version 3 adds to a version 2 events table (ALTER TABLE keeps its rows).
_EVENT_COLUMNS_V3 = ("uid TEXT", "camera TEXT", "track_id INTEGER", "cls TEXT", "t REAL", "zone TEXT", "line TEXT",
                     "snapshot TEXT", "outbox TEXT NOT NULL DEFAULT 'pending'", "published_ns INTEGER")

_EVENT_INDEXES = """
CREATE INDEX IF NOT EXISTS events_time ON events (time_ns);
CREATE INDEX IF NOT EXISTS events_camera ON events (camera, id);
CREATE INDEX IF NOT EXISTS events_pending ON events (id) WHERE outbox = 'pending';
CREATE UNIQUE INDEX IF NOT EXISTS events_uid ON events (uid)
"""

_BUSY_TIMEOUT_MS = 5000
_MOVE_ASIDE = "move it aside to start a new journal"


def open_database(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the journal at `path`, checked and ready for writes.

    The connection is in autocommit mode (each statement its own transaction unless a ``BEGIN`` is
    issued), usable from any thread (the caller serialises access), WAL, ``synchronous=FULL``.

    Raises:
        JournalError: The directory cannot be created, the file is not SQLite or is corrupted, is not an
            edgert journal or is newer than this edgert, WAL cannot be used, or nothing can be written.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JournalError(f"journal: cannot create state directory {path.parent}: {exc.strerror or exc}") from exc
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise JournalError(f"journal: cannot open {path}: {exc}") from exc
    try:
        _configure(conn, path)
        _check_schema(conn, path)
        _check_integrity(conn, path)
    except sqlite3.Error as exc:
        conn.close()
        raise _open_error(exc, path) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _configure(conn: sqlite3.Connection, path: Path) -> None:
    mode = sqlite_files.use_wal(conn)
    if mode is not None:
        raise JournalError(f"journal: {path} cannot use WAL mode (journal_mode stays {mode!r}); "
                           f"put the state directory on a local disk")
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    # BEGIN IMMEDIATE takes the write lock: it proves the file, its WAL and the directory are writable now.
    conn.execute("BEGIN IMMEDIATE")
    try:
        version, tables = sqlite_files.schema(conn)
        if version > SCHEMA_VERSION:
            raise JournalError(f"journal: {path} has schema version {version}, newer than this edgert "
                               f"({SCHEMA_VERSION}); upgrade edgert or {_MOVE_ASIDE}")
        if version == 0 and tables:
            raise JournalError(f"journal: {path} is a SQLite database but not an edgert journal "
                               f"(tables: {', '.join(sorted(tables))}); {_MOVE_ASIDE}")
        if version >= 1 and "decisions" not in tables:
            raise JournalError(f"journal: {path} has schema version {version} but no decisions table; {_MOVE_ASIDE}")
        if version == 0:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
        _migrate_events(conn, version, "events" in tables)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _migrate_events(conn: sqlite3.Connection, version: int, has_events: bool) -> None:
    """Bring the events table to version 3 inside the caller's transaction (rows of version 2 kept)."""
    if not has_events:
        conn.execute(_EVENTS)
    elif version < 3:
        for column in _EVENT_COLUMNS_V3:
            conn.execute(f"ALTER TABLE events ADD COLUMN {column}")
        # Events of version 2 went to the fleet when they happened (the agent sent them directly): not again.
        conn.execute("UPDATE events SET outbox = 'skipped', uid = lower(hex(randomblob(16)))")
    for statement in _EVENT_INDEXES.split(";"):
        if statement.strip():
            conn.execute(statement)


def _check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    problems = sqlite_files.damage(conn)
    if problems:
        raise JournalError(f"journal: {path} is corrupted ({'; '.join(problems)}); {_MOVE_ASIDE}")


def _open_error(exc: sqlite3.Error, path: Path) -> JournalError:
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if code is not None else None
    text = one_line(exc)
    if primary in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
        return JournalError(f"journal: {path} is not a SQLite database or is corrupted ({text}); {_MOVE_ASIDE}")
    if primary == sqlite3.SQLITE_FULL:
        return JournalError(f"journal: disk full opening {path}; free space on that disk")
    if primary in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM):
        return JournalError(f"journal: {path} is not writable ({text}); check the state directory's owner and mount")
    return JournalError(f"journal: cannot open {path}: {text}")


def execute_write(conn: sqlite3.Connection, sql: str, params, path: Path, what: str) -> sqlite3.Cursor:
    """Run one write statement; on failure roll back what SQLite left open and raise `write_error`."""
    try:
        return conn.execute(sql, params)
    except sqlite3.Error as exc:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # SQLite already rolled back
        raise write_error(exc, path, what) from exc


def write_error(exc: sqlite3.Error, path: Path, what: str) -> JournalError:
    """The one-line `JournalError` for a failed write of `what` (disk full, I/O error, read-only, other)."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if code is not None else None
    if primary == sqlite3.SQLITE_FULL:
        return JournalError(f"journal: disk full writing {path} ({what} not journaled); free space on that disk")
    if primary == sqlite3.SQLITE_IOERR:
        return JournalError(f"journal: I/O error writing {path} ({what} not journaled): {one_line(exc)}")
    if primary == sqlite3.SQLITE_READONLY:
        return JournalError(f"journal: {path} is read-only ({what} not journaled)")
    return JournalError(f"journal: cannot write {path} ({what} not journaled): {one_line(exc)}")

