"""Durable file writes: a file is either its old content or its whole new content, even after a power cut.

The one way edgert replaces a file: write to a unique temporary file in the same directory, fsync it,
rename it over the target (atomic on POSIX filesystems), then fsync the directory so the rename itself
survives. A crash before the rename leaves the old file untouched (and at most a ``.NAME.*.tmp`` file,
which `remove_leftovers` clears); a crash after it leaves the new one.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

#: Suffix of the temporary files written here (`remove_leftovers` looks for it).
TEMP_SUFFIX = ".tmp"


def fsync_dir(path) -> None:
    """Flush `path`'s directory entries (the renames and unlinks made in it) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path, mode: int = 0o644, *, replace: bool = True, text: bool = False, make_parents: bool = True):
    """Open a temporary file that becomes `path` when the block ends without an exception.

    Args:
        path: The file to write.
        mode: Its permission bits (set before it becomes visible).
        replace: False: an existing `path` wins, and `FileExistsError` is raised (nothing is replaced).
        text: Yield a UTF-8 text handle instead of a binary one.
        make_parents: Create missing parent directories (False: the parent must exist).

    Yields:
        The open temporary file.

    Raises:
        OSError: the write, fsync or rename failed (disk full, read-only); the temporary file is
            removed and `path` is as it was. (Only the last step, the directory's fsync, can fail
            after the rename: `path` then holds the new content, which a power cut may still undo.)
    """
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "w" if text else "wb", **({"encoding": "utf-8", "newline": ""} if text else {})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if the file exists: never clobbers
    finally:
        Path(tmp).unlink(missing_ok=True)
    fsync_dir(path.parent)


def write_bytes(path, data: bytes, mode: int = 0o644, *, replace: bool = True, make_parents: bool = True) -> Path:
    """Write `data` to `path` durably (see `atomic_file`); returns the path."""
    with atomic_file(path, mode, replace=replace, make_parents=make_parents) as handle:
        handle.write(data)
    return Path(path)


def write_text(path, text: str, mode: int = 0o644, *, replace: bool = True, make_parents: bool = True) -> Path:
    """Write `text` (UTF-8) to `path` durably (see `atomic_file`); returns the path."""
    return write_bytes(path, text.encode("utf-8"), mode, replace=replace, make_parents=make_parents)


def move(src, dest) -> None:
    """Rename `src` over `dest` (same filesystem) and fsync the directories involved."""
    src, dest = Path(src), Path(dest)
    os.replace(src, dest)
    fsync_dir(dest.parent)
    if src.parent != dest.parent:
        fsync_dir(src.parent)


def remove_leftovers(directory) -> list[Path]:
    """Delete the temporary files a crash left in `directory` mid-write; returns what was removed."""
    removed = []
    for entry in Path(directory).glob(f".*{TEMP_SUFFIX}"):
        if entry.is_file() and not entry.is_symlink():
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed
