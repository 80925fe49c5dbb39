"""Test helpers for a full disk: a real tmpfs of a given size (root only, else the test skips) and `fill`."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a real tmpfs of a given size (root only); unmounted at teardown."""
    mounts = []

    def mount(size: str, *options: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root; the disk-full path is covered by the max_page_count test")
        where = tmp_path / f"tmpfs{len(mounts)}"
        where.mkdir()
        opts = ",".join((f"size={size}",) + options)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], check=False,
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'})")
        mounts.append(where)
        return where

    yield mount
    for where in reversed(mounts):
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)


def fill(directory: Path) -> Path:
    """Fill the filesystem of `directory` to the last byte with one file; returns that file."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        for chunk in (65536, 4096, 512, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError:
                pass
    return filler
