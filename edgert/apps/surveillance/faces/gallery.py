"""`Gallery`: enrolled people and their face embeddings in SQLite, matched by cosine similarity.

The file (``faces.sqlite3`` beside the journal by default) runs in WAL mode with ``synchronous=FULL``;
every change is one transaction. It records the embedding model it was built with (``model_id``: the
card's name and version) and the embedding size: opening it for another size or model is refused with
both named, since embeddings of two models cannot be compared. A file that is not SQLite, fails its
integrity check or holds other tables is refused (`GalleryError`) and left where it is for inspection.

Matching: all embeddings are L2-normalised when stored and kept in memory as one float32 matrix; a
query is one matrix product, each person scored by their best embedding. The best person is the answer
when its similarity reaches ``threshold`` and beats the second-best person by ``margin``; otherwise the
face is unknown (`Match.reason` says which test failed).
"""
from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from edgert.core import sqlite_files
from edgert.core.errors import GalleryError, one_line

#: Stored in ``PRAGMA user_version``.
SCHEMA_VERSION = 1
DEFAULT_THRESHOLD = 0.5
DEFAULT_MARGIN = 0.05
MAX_NAME = 128

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_ns INTEGER NOT NULL);
CREATE TABLE embeddings (
    id         INTEGER PRIMARY KEY,
    person     INTEGER NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    vector     BLOB    NOT NULL,                 -- float32 little-endian, L2-normalised, `dim` values
    source     TEXT    NOT NULL DEFAULT '',      -- image name or "import"
    created_ns INTEGER NOT NULL
);
CREATE INDEX embeddings_person ON embeddings (person);
"""
_TABLES = {"meta", "people", "embeddings"}
_LEFT = "the file is left in place for inspection; move it aside to start a new gallery"


class Match(NamedTuple):
    """The gallery's answer for one face.

    Attributes:
        name: The recognised person, or None (unknown).
        similarity: Cosine similarity of the best person (-1 for an empty gallery).
        second: The second-best person, or None.
        second_similarity: Their similarity (-1 when none).
        reason: ``"match"``, ``"below_threshold"``, ``"ambiguous"`` (margin not met) or ``"empty"``.
        best: The best person whether or not accepted (None for an empty gallery).
    """

    name: str | None
    similarity: float
    second: str | None
    second_similarity: float
    reason: str
    best: str | None


class Gallery:
    """An open face gallery. Use `Gallery.open`; close it (or use ``with``) when done.

    Attributes:
        path: The SQLite file.
        model_id: The embedding model it holds embeddings of.
        dim: The embedding size.
        threshold: Similarity a match must reach (stored in the gallery; `set_threshold`).
        margin: How far the best person must beat the second.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, model_id: str, dim: int, threshold: float,
                 margin: float):
        self._conn, self.path, self.model_id, self.dim = conn, path, model_id, dim
        self.threshold, self.margin = threshold, margin
        self._state_lock = threading.RLock()  # a refresh on one thread never shows another a half-loaded matrix
        self._load()

    # -- opening ---------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path, model_id: str, dim: int, *, create: bool = True, threshold: float | None = None,
             margin: float | None = None) -> "Gallery":
        """Open (or create) the gallery at `path` for embeddings of `model_id`, size `dim`.

        Args:
            threshold, margin: Override the stored values for this session (None: the stored ones).

        Raises:
            GalleryError: corrupted or foreign file (left in place), another model or embedding size,
                missing file when `create` is False, unwritable directory.
        """
        path = Path(path)
        if int(dim) < 1:
            raise GalleryError(f"gallery {path}: embedding size must be positive, got {dim}")
        if not create and not path.is_file():
            raise GalleryError(f"gallery {path}: no such file (enrol someone first: edgert faces enrol NAME IMAGES)")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
        except (OSError, sqlite3.Error) as exc:
            raise GalleryError(f"gallery {path}: cannot open: {one_line(exc)}") from None
        try:
            meta = _prepare(conn, path, model_id, int(dim))
        except sqlite3.Error as exc:
            conn.close()
            raise GalleryError(f"gallery {path}: not a SQLite database or corrupted ({one_line(exc)}); {_LEFT}") \
                from None
        except BaseException:
            conn.close()
            raise
        t = float(meta.get("threshold", DEFAULT_THRESHOLD)) if threshold is None else float(threshold)
        m = float(meta.get("margin", DEFAULT_MARGIN)) if margin is None else float(margin)
        return cls(conn, path, model_id, int(dim), t, m)

    def close(self) -> None:
        """Close the database (idempotent)."""
        self._conn.close()

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- changes (one transaction each) ----------------------------------------------------------------

    def add(self, name: str, embeddings, sources=None) -> int:
        """Store `embeddings` (``(K, D)`` or ``(D,)``) for `name` (created if new); returns K.

        Raises:
            GalleryError: a bad name, wrong size, NaN/inf or all-zero rows (nothing is stored then).
        """
        return self.add_many([(name, embeddings, sources)])[check_name(name)]

    def add_many(self, people) -> dict[str, int]:
        """Store ``[(name, embeddings, sources | None)]`` in one transaction; ``{name: rows added}``.

        Every name and row is checked before anything is written: one bad entry stores nothing.

        Raises:
            GalleryError: a bad name, wrong size, NaN/inf or all-zero rows (naming the person).
        """
        checked = []
        for name, embeddings, sources in people:
            name = check_name(name)
            try:
                rows = self._unit_rows(embeddings)
            except GalleryError as exc:
                raise GalleryError(f"{name!r}: {exc}") from None
            sources = [""] * len(rows) if sources is None else [str(s) for s in sources]
            if len(sources) != len(rows):
                raise GalleryError(f"gallery: {len(rows)} embeddings but {len(sources)} sources for {name!r}")
            checked.append((name, rows, sources))
        now = time.time_ns()
        added: dict[str, int] = {}
        with self._transaction() as c:
            for name, rows, sources in checked:
                c.execute("INSERT OR IGNORE INTO people (name, created_ns) VALUES (?, ?)", (name, now))
                person = c.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()[0]
                c.executemany("INSERT INTO embeddings (person, vector, source, created_ns) VALUES (?, ?, ?, ?)",
                              [(person, r.astype("<f4").tobytes(), s, now) for r, s in zip(rows, sources)])
                added[name] = added.get(name, 0) + len(rows)
        self._load()
        return added

    def remove(self, name: str) -> int:
        """Forget `name` and their embeddings; returns how many embeddings went (0: not enrolled)."""
        with self._transaction() as c:
            row = c.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            if row is None:
                return 0
            n = c.execute("DELETE FROM embeddings WHERE person = ?", (row[0],)).rowcount
            c.execute("DELETE FROM people WHERE id = ?", (row[0],))
        self._load()
        return n

    def set_threshold(self, threshold: float, margin: float | None = None) -> None:
        """Store the operating threshold (and margin) in the gallery, e.g. from an EER measurement."""
        values = {"threshold": _similarity("threshold", threshold)}
        if margin is not None:
            values["margin"] = _similarity("margin", margin, low=0.0)
        with self._transaction() as c:
            c.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                          [(k, repr(v)) for k, v in values.items()])
        self.threshold = values["threshold"]
        self.margin = values.get("margin", self.margin)

    # -- reading ---------------------------------------------------------------------------------------

    def people(self) -> list[tuple[str, int]]:
        """``[(name, embeddings)]`` of everyone enrolled, by name."""
        return [tuple(r) for r in self._conn.execute(
            "SELECT p.name, COUNT(e.id) FROM people p LEFT JOIN embeddings e ON e.person = p.id "
            "GROUP BY p.id ORDER BY p.name")]

    def entries(self) -> tuple[list[str], np.ndarray]:
        """``(names, vectors (N, D) float32)``: every embedding with its person's name (for export)."""
        with self._state_lock:
            self.refresh()
            return [self._names[i] for i in self._owner], self._vectors.copy()

    def refresh(self) -> bool:
        """Reload the embeddings if another connection committed a change (an enrolment or import by
        `edgert faces` or the fleet while the app runs); True when it did. One ``PRAGMA`` when nothing changed."""
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        if version == self._data_version:
            return False
        self._load()
        return True

    def __len__(self) -> int:
        return len(self._names)

    def match(self, embedding) -> Match:
        """The gallery's answer for one face embedding ``(D,)`` (normalised here)."""
        return self.match_many(np.asarray(embedding)[None])[0]

    def match_many(self, embeddings) -> list[Match]:
        """`match` for ``(Q, D)`` embeddings in one matrix product (after `refresh`)."""
        q = self._unit_rows(embeddings)
        with self._state_lock:
            self.refresh()
            return self._match_rows(q)

    def _match_rows(self, q: np.ndarray) -> list[Match]:
        if not self._names:
            return [Match(None, -1.0, None, -1.0, "empty", None)] * len(q)
        per_person = self.person_similarities(q)
        n = per_person.shape[1]
        top = np.argsort(-per_person, axis=1, kind="stable")[:, :2]
        out = []
        for row, (i, j) in zip(per_person, top if n > 1 else np.c_[top, top]):
            s1 = float(row[i])
            s2, second = (float(row[j]), self._names[j]) if n > 1 else (-1.0, None)
            if s1 < self.threshold:
                reason = "below_threshold"
            elif s1 - s2 < self.margin:
                reason = "ambiguous"
            else:
                reason = "match"
            out.append(Match(self._names[i] if reason == "match" else None, s1, second, s2, reason,
                             self._names[i]))
        return out

    def person_similarities(self, unit_queries: np.ndarray) -> np.ndarray:
        """``(Q, people)`` best cosine similarity of each (already normalised) query to each person."""
        sim = unit_queries @ self._vectors.T  # (Q, N), rows grouped by person
        return np.maximum.reduceat(sim, self._starts, axis=1)

    # -- internals -------------------------------------------------------------------------------------

    def _unit_rows(self, embeddings) -> np.ndarray:
        e = np.asarray(embeddings, np.float32)
        if e.ndim == 1:
            e = e[None]
        if e.ndim != 2 or e.shape[1] != self.dim:
            raise GalleryError(f"gallery {self.path}: embeddings of size {e.shape[-1] if e.ndim else 0} "
                               f"(shape {e.shape}), the gallery holds size {self.dim} ({self.model_id})")
        if not np.all(np.isfinite(e)):
            raise GalleryError("gallery: embedding holds NaN or inf")
        norms = np.linalg.norm(e, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise GalleryError("gallery: an all-zero embedding has no direction")
        return e / norms

    def _load(self) -> None:
        with self._state_lock:
            self._load_rows()

    def _load_rows(self) -> None:
        # data_version read first: a commit landing during the read is seen by the next refresh.
        self._data_version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        rows = self._conn.execute("SELECT p.name, e.vector FROM embeddings e JOIN people p ON p.id = e.person "
                                  "ORDER BY p.id, e.id").fetchall()
        names: list[str] = []
        owner = np.empty(len(rows), np.intp)
        vectors = np.empty((len(rows), self.dim), np.float32)
        for k, (name, blob) in enumerate(rows):
            if not names or names[-1] != name:
                names.append(name)
            owner[k] = len(names) - 1
            v = np.frombuffer(blob, "<f4")
            if v.size != self.dim:
                raise GalleryError(f"gallery {self.path}: an embedding of {name!r} has {v.size} values, not "
                                   f"{self.dim}; {_LEFT}")
            vectors[k] = v
        self._names, self._owner, self._vectors = names, owner, vectors
        self._starts = np.r_[0, np.flatnonzero(np.diff(owner)) + 1].astype(np.intp) if len(rows) else owner

    def _transaction(self):
        return _Transaction(self._conn, self.path)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any error, SQLite errors as `GalleryError`)."""

    def __init__(self, conn, path):
        self.conn, self.path = conn, path

    def __enter__(self):
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise GalleryError(f"gallery {self.path}: cannot write: {one_line(exc)}") from None
        return self.conn

    def __exit__(self, kind, exc, tb):
        if kind is None:
            try:
                self.conn.execute("COMMIT")
                return False
            except sqlite3.Error as e:
                exc = e
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise GalleryError(f"gallery {self.path}: write failed, nothing changed: {one_line(exc)}") from None
        return False


def check_name(name) -> str:
    """A person's name as stored: a non-empty single line of at most `MAX_NAME` characters."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME or any(c in name for c in "\r\n\0"):
        raise GalleryError(f"gallery: a name must be one non-empty line of at most {MAX_NAME} characters, "
                           f"got {name!r}")
    return name.strip()


def _similarity(what: str, value, low: float = -1.0) -> float:
    v = float(value)
    if not (low <= v <= 1.0):
        raise GalleryError(f"gallery: {what} must be a cosine similarity in [{low:g}, 1], got {value}")
    return v


def _prepare(conn: sqlite3.Connection, path: Path, model_id: str, dim: int) -> dict:
    """Pragmas, schema (created on first use), integrity and model checks; returns the meta table."""
    mode = sqlite_files.use_wal(conn)
    if mode is not None:
        raise GalleryError(f"gallery {path}: cannot use WAL mode (stays {mode!r}); put it on a local disk")
    conn.execute("PRAGMA foreign_keys = ON")
    problems = sqlite_files.damage(conn)
    if problems:
        raise GalleryError(f"gallery {path}: corrupted ({'; '.join(problems)}); {_LEFT}")
    conn.execute("BEGIN IMMEDIATE")
    try:
        version, tables = sqlite_files.schema(conn)
        if version > SCHEMA_VERSION:
            raise GalleryError(f"gallery {path}: schema version {version}, newer than this edgert's "
                               f"({SCHEMA_VERSION}); upgrade edgert")
        if version == 0 and tables:
            raise GalleryError(f"gallery {path}: a SQLite database but not a face gallery (tables: "
                               f"{', '.join(sorted(tables))}); {_LEFT}")
        if version == 0:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                             [("model_id", model_id), ("dim", str(dim))])
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif not _TABLES <= tables:
            raise GalleryError(f"gallery {path}: tables {', '.join(sorted(_TABLES - tables))} missing; {_LEFT}")
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    _check_model(meta, path, model_id, dim)
    return meta


def _check_model(meta: dict, path: Path, model_id: str, dim: int) -> None:
    stored_dim, stored_id = meta.get("dim"), meta.get("model_id")
    if stored_dim is None or stored_id is None or not str(stored_dim).isdigit():
        raise GalleryError(f"gallery {path}: its model id or embedding size is missing; {_LEFT}")
    if int(stored_dim) != dim:
        raise GalleryError(f"gallery {path}: holds embeddings of size {stored_dim} (model {stored_id}), the "
                           f"embedding model {model_id} gives size {dim}; re-enrol with this model or use "
                           f"a gallery made with it")
    if stored_id != model_id:
        raise GalleryError(f"gallery {path}: made with embedding model {stored_id}, not {model_id} (same size "
                           f"{dim}, but embeddings of two models cannot be compared); re-enrol or use that model")
