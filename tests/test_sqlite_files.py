"""The state files' shared SQLite steps (edgert.core.sqlite_files): WAL or the mode kept, damage, schema."""
from __future__ import annotations

import sqlite3

from edgert.core import sqlite_files


def test_wal_and_full_on_a_file_and_the_mode_kept_where_wal_cannot_be(tmp_path):
    conn = sqlite3.connect(tmp_path / "state.sqlite3")
    conn.execute("PRAGMA synchronous = OFF")
    assert sqlite_files.use_wal(conn) is None
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    memory = sqlite3.connect(":memory:")  # an in-memory database cannot use WAL
    memory.execute("PRAGMA synchronous = OFF")
    assert sqlite_files.use_wal(memory) == "memory"
    assert memory.execute("PRAGMA synchronous").fetchone()[0] == 0  # nothing set when WAL is refused


def test_damage_is_empty_for_a_sound_file_and_names_what_a_broken_page_is(tmp_path):
    path = tmp_path / "state.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE t (x TEXT); CREATE INDEX tx ON t (x);"
                       "INSERT INTO t SELECT hex(randomblob(200)) FROM (WITH RECURSIVE c(n) AS "
                       "(SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 300) SELECT n FROM c);")
    conn.commit()
    assert sqlite_files.damage(conn) == []
    conn.close()
    data = bytearray(path.read_bytes())
    page = 4096
    data[3 * page:3 * page + 64] = bytes(64)  # wipe the header of a b-tree page
    path.write_bytes(bytes(data))
    broken = sqlite3.connect(path)
    try:
        problems = sqlite_files.damage(broken)
    except sqlite3.DatabaseError:  # damage SQLite reports by raising is the callers' "corrupted" too
        problems = ["raised"]
    assert problems and all("\n" not in p for p in problems)


def test_schema_gives_the_version_and_the_tables(tmp_path):
    conn = sqlite3.connect(tmp_path / "state.sqlite3")
    assert sqlite_files.schema(conn) == (0, set())
    conn.executescript("CREATE TABLE a (x); CREATE TABLE b (y); CREATE INDEX ax ON a (x); PRAGMA user_version = 3;")
    assert sqlite_files.schema(conn) == (3, {"a", "b"})
