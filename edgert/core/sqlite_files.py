"""The SQLite state files' shared opening steps (journal, face gallery): WAL, durability, checks.

Each caller turns what these return into its own one-line error (`JournalError`, `GalleryError`); the
steps are the same so that every state file survives power loss and refuses damage the same way.
"""
from __future__ import annotations

import sqlite3


def use_wal(conn: sqlite3.Connection) -> str | None:
    """Put `conn` in WAL mode with ``synchronous=FULL``; None, or the journal mode SQLite kept instead
    (WAL refused: a network or read-only file system)."""
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        return str(mode)
    # FULL: in WAL mode this fsyncs the WAL at every commit, so a committed row survives power loss too.
    conn.execute("PRAGMA synchronous = FULL")
    return None


def damage(conn: sqlite3.Connection) -> list[str]:
    """What ``PRAGMA quick_check`` finds, one line each ([] for a sound file).

    quick_check reads every page once: damage is found when the file is opened, not in the middle of a run.
    """
    problems = [" ".join(str(r[0]).split()) for r in conn.execute("PRAGMA quick_check(1)")]  # may hold newlines
    return [] if problems == ["ok"] else problems


def schema(conn: sqlite3.Connection) -> tuple[int, set[str]]:
    """``(PRAGMA user_version, names of the tables)`` of the open database."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    return version, {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
