"""Crash-safe filesystem steps of the model store: symlink switches, directory moves, fsync.

Every change the store makes is one `rename(2)` (atomic on POSIX filesystems) followed by an fsync
of the directory that holds the entry, so after a power cut or a ``kill -9`` a link points either to
its old target or to its new one, never nowhere.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from edgert.core import durable
from edgert.core.durable import fsync_dir

#: Prefix of temporary link names; `recover` removes leftovers (a crash between symlink and rename).
TEMP_PREFIX = ".tmp-"


def read_link(path: Path) -> str | None:
    """The target of the symlink `path`, or None when there is no link there."""
    try:
        return os.readlink(path)
    except (FileNotFoundError, OSError):
        return None


def switch_link(path: Path, target: str) -> None:
    """Point the symlink `path` at `target` atomically (a temporary link renamed over it), then fsync.

    Args:
        path: The link to create or replace.
        target: What it points at, relative to the link's directory (e.g. a version directory name).
    """
    temp = path.parent / f"{TEMP_PREFIX}{path.name}-{secrets.token_hex(4)}"
    os.symlink(target, temp)
    try:
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def remove_link(path: Path) -> None:
    """Remove the symlink `path` if it exists, then fsync its directory."""
    if path.is_symlink():
        path.unlink()
        fsync_dir(path.parent)


def move_dir(src: Path, dest: Path) -> None:
    """Rename the directory `src` to `dest` (same filesystem) and fsync both parents."""
    durable.move(src, dest)
