"""`SnapshotStore`: JPEG snapshots of decisions in one directory, kept under a size bound.

Files are named ``<row id, 10 digits>-<decision wall time ns>.jpg`` so that the name sorts in row order
(oldest first) and still tells a file of this journal from a stale one of an earlier journal whose row ids
were the same. The store does no threading and knows nothing of SQLite: `edgert.journal` calls it from its
writer thread and keeps the rows in step.
"""
from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from edgert.core import durable
from edgert.core.errors import ConfigError, FrameError, JournalError

_NAME = re.compile(r"^(\d{10})-(\d+)\.jpg$")
_TMP_SUFFIX = ".tmp"


def snapshot_name(row_id: int, time_ns: int) -> str:
    """The file name of the snapshot of decision row `row_id` taken at wall time `time_ns`."""
    return f"{row_id:010d}-{time_ns}.jpg"


def parse_snapshot_name(name: str) -> tuple[int, int] | None:
    """``(row id, time ns)`` of a snapshot file name, or None for a name the store did not make."""
    match = _NAME.match(name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def check_snapshot_image(image: object) -> np.ndarray:
    """Return `image` if it is a picture `SnapshotStore.encode` takes (uint8 BGR ``(H, W, 3)`` or gray).

    Raises:
        FrameError: For anything else (it names what was given).
    """
    ok = (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.size > 0
          and (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3))))
    if not ok:
        what = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise FrameError(f"journal: a snapshot must be a uint8 BGR (H, W, 3) or gray (H, W) array, got {what}")
    return image


def _load_cv2():
    try:
        import cv2
    except ImportError as exc:
        raise ConfigError("journal: snapshots need OpenCV to encode JPEG; install opencv-python-headless "
                          "(the 'kiosk' extra) or turn snapshots off") from exc
    return cv2


class SnapshotStore:
    """A directory of JPEG snapshots whose total size stays at or under `max_bytes`.

    Not thread-safe for writers: one thread writes and evicts; `count` and `total_bytes` may be read
    from any thread.

    Args:
        directory: Where the JPEG files live; created if missing.
        max_bytes: Bound on the summed size of the JPEG files; the oldest go first when it is passed.
        quality: JPEG quality, 1-100.

    Raises:
        ConfigError: A bad bound or quality, or OpenCV is not installed.
        JournalError: The directory cannot be created or written.
    """

    def __init__(self, directory: Path, max_bytes: int, quality: int = 85):
        if max_bytes <= 0:
            raise ConfigError(f"journal: snapshot size bound must be positive, got {max_bytes} bytes")
        if not 1 <= quality <= 100:
            raise ConfigError(f"journal: JPEG quality must be 1-100, got {quality}")
        self._cv2 = _load_cv2()
        self.directory = Path(directory)
        self.max_bytes = int(max_bytes)
        self.quality = int(quality)
        self._files: OrderedDict[int, tuple[str, int]] = OrderedDict()  # row id -> (name, bytes), oldest first
        self._total = 0
        self._lock = threading.Lock()
        self._prepare_directory()

    @property
    def count(self) -> int:
        """Number of snapshot files kept."""
        return len(self._files)

    @property
    def total_bytes(self) -> int:
        """Summed size of the snapshot files kept."""
        return self._total

    def path_of(self, name: str) -> Path:
        """Absolute path of the snapshot file `name`."""
        return self.directory / name

    def scan(self) -> dict[int, tuple[str, int, int]]:
        """Snapshot files found on disk: ``{row id: (name, time ns, bytes)}``; leftover temp files removed."""
        found: dict[int, tuple[str, int, int]] = {}
        for entry in os.scandir(self.directory):
            if entry.name.endswith(_TMP_SUFFIX) and entry.name.startswith("."):
                _unlink_quietly(Path(entry.path))  # a write cut short by a crash
                continue
            parsed = parse_snapshot_name(entry.name)
            if parsed is not None and entry.is_file(follow_symlinks=False):
                found[parsed[0]] = (entry.name, parsed[1], entry.stat(follow_symlinks=False).st_size)
        return found

    def adopt(self, files: dict[int, tuple[str, int]]) -> list[tuple[int, str]]:
        """Start accounting from existing files ``{row id: (name, bytes)}``; returns what `evict` removed."""
        with self._lock:
            self._files = OrderedDict(sorted(files.items()))
            self._total = sum(size for _, size in self._files.values())
        return self.evict()

    def encode(self, image: np.ndarray) -> bytes:
        """JPEG bytes of a BGR or gray image."""
        ok, buf = self._cv2.imencode(".jpg", image, [self._cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise JournalError(f"journal: OpenCV could not encode a {image.shape} snapshot as JPEG")
        return buf.tobytes()

    def write(self, row_id: int, time_ns: int, jpeg: bytes) -> str:
        """Write `jpeg` atomically (temp file, fsync, rename, fsync of the directory) and account for it.

        Returns:
            The file name. Call `evict` afterwards to restore the bound.

        Raises:
            OSError: The write failed (disk full, I/O error); nothing is left behind.
        """
        name = snapshot_name(row_id, time_ns)
        durable.write_bytes(self.directory / name, jpeg, make_parents=False)  # nothing left on failure
        with self._lock:
            old = self._files.pop(row_id, None)
            self._total += len(jpeg) - (old[1] if old else 0)
            self._files[row_id] = (name, len(jpeg))
        return name

    def evict(self) -> list[tuple[int, str]]:
        """Delete the oldest files until the total is at or under the bound; returns ``(row id, name)``s."""
        evicted = []
        while True:
            with self._lock:
                if self._total <= self.max_bytes or not self._files:
                    break
                row_id, (name, size) = self._files.popitem(last=False)
                self._total -= size
            _unlink_quietly(self.directory / name)
            evicted.append((row_id, name))
        return evicted

    def discard(self, row_id: int) -> None:
        """Delete the snapshot of `row_id`, if there is one (its row was pruned)."""
        with self._lock:
            entry = self._files.pop(row_id, None)
            if entry is None:
                return
            self._total -= entry[1]
        _unlink_quietly(self.directory / entry[0])

    def _prepare_directory(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            probe = self.directory / f".probe-{os.getpid()}{_TMP_SUFFIX}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise JournalError(f"journal: snapshot directory {self.directory} is not writable: "
                               f"{exc.strerror or exc}") from exc




def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
