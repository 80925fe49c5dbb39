"""JPEG snapshots kept under a size bound, oldest first: `SnapshotStore` for the decisions' rows and
`SnapshotWriter` for the apps' events (the box drawn, returns a path relative to the state directory).

Files are named ``<row id, 10 digits>-<decision wall time ns>.jpg`` so that the name sorts in row order
(oldest first) and still tells a file of this journal from a stale one of an earlier journal whose row ids
were the same. The store does no threading and knows nothing of SQLite: `edgert.journal` calls it from its
writer thread and keeps the rows in step.
"""
from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from edgert.core import durable
from edgert.core.errors import ConfigError, FrameError, JournalError

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{10})-(\d+)\.jpg$")
_EVENT_NAME = re.compile(r"^(\d{19})-[A-Za-z0-9_.-]{1,80}\.jpg$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
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


class _Quota:
    """Files of one directory by key, oldest first, with their summed size kept at or under a bound."""

    def __init__(self, directory: Path, max_bytes: int):
        self.directory = directory
        self.max_bytes = int(max_bytes)
        self.files: OrderedDict = OrderedDict()  # key -> (name, bytes), oldest first
        self.total = 0
        self.lock = threading.Lock()

    def adopt(self, files: dict) -> None:
        """Start from existing files ``{key: (name, bytes)}`` (sorted by key: oldest first)."""
        with self.lock:
            self.files = OrderedDict(sorted(files.items()))
            self.total = sum(size for _, size in self.files.values())

    def add(self, key, name: str, size: int) -> None:
        with self.lock:
            old = self.files.pop(key, None)
            self.total += size - (old[1] if old else 0)
            self.files[key] = (name, size)

    def evict(self) -> list:
        """Delete the oldest files until the total is at or under the bound; returns ``(key, name)``s."""
        evicted = []
        while True:
            with self.lock:
                if self.total <= self.max_bytes or not self.files:
                    break
                key, (name, size) = self.files.popitem(last=False)
                self.total -= size
            _unlink_quietly(self.directory / name)
            evicted.append((key, name))
        return evicted

    def discard(self, key) -> None:
        with self.lock:
            entry = self.files.pop(key, None)
            if entry is None:
                return
            self.total -= entry[1]
        _unlink_quietly(self.directory / entry[0])


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
        self._quota = _Quota(self.directory, max_bytes)  # row id -> (name, bytes)
        _prepare_directory(self.directory)

    @property
    def count(self) -> int:
        """Number of snapshot files kept."""
        return len(self._quota.files)

    @property
    def total_bytes(self) -> int:
        """Summed size of the snapshot files kept."""
        return self._quota.total

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
        self._quota.adopt(files)
        return self.evict()

    def encode(self, image: np.ndarray) -> bytes:
        """JPEG bytes of a BGR or gray image."""
        return _encode_jpeg(self._cv2, image, self.quality)

    def write(self, row_id: int, time_ns: int, jpeg: bytes) -> str:
        """Write `jpeg` atomically (temp file, fsync, rename, fsync of the directory) and account for it.

        Returns:
            The file name. Call `evict` afterwards to restore the bound.

        Raises:
            OSError: The write failed (disk full, I/O error); nothing is left behind.
        """
        name = snapshot_name(row_id, time_ns)
        durable.write_bytes(self.directory / name, jpeg, make_parents=False)  # nothing left on failure
        self._quota.add(row_id, name, len(jpeg))
        return name

    def evict(self) -> list[tuple[int, str]]:
        """Delete the oldest files until the total is at or under the bound; returns ``(row id, name)``s."""
        return self._quota.evict()

    def discard(self, row_id: int) -> None:
        """Delete the snapshot of `row_id`, if there is one (its row was pruned)."""
        self._quota.discard(row_id)


class SnapshotWriter:
    """JPEG snapshots of events, the object's box drawn, in one directory under a size bound (oldest go first).

    `write` is the callable the apps are given: it never raises for a full disk or a full quota (it
    returns None and counts it), and snapshots resume by themselves once space is back. Files are named
    ``<time ns, 19 digits>-<name>.jpg``: they sort oldest first, and a restart adopts what is there.
    Safe to call from any thread (writes are serialised).

    Args:
        state_dir: The service's state directory; `write` returns paths relative to it.
        directory: The snapshot directory, relative to `state_dir` (or absolute inside it).
        max_bytes: Bound on the summed size of the JPEG files.
        quality: JPEG quality, 1-100.
        colour: BGR colour of the box.

    Raises:
        ConfigError: A bad bound or quality, a directory outside the state directory, or no OpenCV.
        JournalError: The directory cannot be created or written.
    """

    def __init__(self, state_dir: Path, directory: Path = Path("snapshots/events"), max_bytes: int = 200 * 2**20,
                 quality: int = 85, colour: tuple[int, int, int] = (0, 255, 0)):
        if max_bytes <= 0:
            raise ConfigError(f"journal: snapshot size bound must be positive, got {max_bytes} bytes")
        if not 1 <= quality <= 100:
            raise ConfigError(f"journal: JPEG quality must be 1-100, got {quality}")
        self.state_dir = Path(state_dir)
        self.directory = self.state_dir / directory
        try:
            self.directory.relative_to(self.state_dir)
        except ValueError:
            raise ConfigError(f"journal: snapshot directory {directory} is outside the state directory "
                              f"{state_dir}") from None
        self._cv2 = _load_cv2()
        self.quality = int(quality)
        self.colour = tuple(int(c) for c in colour)
        self.written = self.errors = self.over_quota = self.evicted = 0
        self._write_lock = threading.Lock()
        self._failing = False
        self._last_ns = 0
        _prepare_directory(self.directory)
        self._quota = _Quota(self.directory, max_bytes)  # name -> (name, bytes); names sort oldest first
        self._quota.adopt(self._scan())
        self.evicted += len(self._quota.evict())

    @property
    def count(self) -> int:
        """Snapshot files kept."""
        return len(self._quota.files)

    @property
    def total_bytes(self) -> int:
        """Summed size of the snapshot files kept."""
        return self._quota.total

    def stats(self) -> dict:
        """``{"files", "bytes", "written", "errors", "over_quota", "evicted"}``."""
        return {"files": self.count, "bytes": self.total_bytes, "written": self.written, "errors": self.errors,
                "over_quota": self.over_quota, "evicted": self.evicted}

    def write(self, frame_bgr: np.ndarray, box, name: str) -> str | None:
        """Draw `box` (``[x1, y1, x2, y2]`` frame pixels, or None) on a copy of `frame_bgr` and keep it as JPEG.

        Returns:
            The file's path relative to the state directory, or None when the disk is full (or another
            write error) or the one picture is larger than the whole quota.

        Raises:
            FrameError: `frame_bgr` is not a uint8 BGR/gray picture, or `box` is not four numbers.
        """
        image = _with_box(self._cv2, check_snapshot_image(frame_bgr), box, self.colour)
        jpeg = _encode_jpeg(self._cv2, image, self.quality)
        if len(jpeg) > self._quota.max_bytes:
            self.over_quota += 1
            return None
        with self._write_lock:
            file_name = f"{self._next_ns():019d}-{_safe_name(name)}.jpg"
            try:
                durable.write_bytes(self.directory / file_name, jpeg, make_parents=False)
            except OSError as exc:
                self._failed(exc)
                return None
            self._quota.add(file_name, file_name, len(jpeg))
            self.written += 1
            if self._failing:
                self._failing = False
                log.info("journal: event snapshots are written again")
            self.evicted += len(self._quota.evict())
        return str((self.directory / file_name).relative_to(self.state_dir))

    def _next_ns(self) -> int:
        now = max(time.time_ns(), self._last_ns + 1)  # unique and increasing, also within one clock tick
        self._last_ns = now
        return now

    def _failed(self, exc: OSError) -> None:
        self.errors += 1
        if not self._failing:
            self._failing = True
            log.error("journal: event snapshot not written (%s); counting further failures silently until one "
                      "succeeds", exc.strerror or exc)

    def _scan(self) -> dict[str, tuple[str, int]]:
        found = {}
        for entry in os.scandir(self.directory):
            if entry.name.endswith(_TMP_SUFFIX) and entry.name.startswith("."):
                _unlink_quietly(Path(entry.path))  # a write cut short by a crash
            elif _EVENT_NAME.match(entry.name) and entry.is_file(follow_symlinks=False):
                found[entry.name] = (entry.name, entry.stat(follow_symlinks=False).st_size)
        return found


def _safe_name(name: str) -> str:
    return _UNSAFE.sub("_", str(name)).strip("._")[:80] or "snapshot"


def _with_box(cv2, image: np.ndarray, box, colour) -> np.ndarray:
    """A BGR copy of `image` with `box` drawn (clipped to the picture; a non-finite box is not drawn)."""
    if image.ndim == 2 or image.shape[2] == 1:
        out = cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    else:
        out = np.array(image, order="C", copy=True)
    if box is None:
        return out
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise FrameError(f"journal: a snapshot box must be four numbers [x1, y1, x2, y2], got {box!r}") from None
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return out
    h, w = out.shape[:2]
    thickness = max(2, round(min(h, w) / 200))
    p1 = (int(min(max(x1, 0), w - 1)), int(min(max(y1, 0), h - 1)))
    p2 = (int(min(max(x2, 0), w - 1)), int(min(max(y2, 0), h - 1)))
    cv2.rectangle(out, p1, p2, colour, thickness)
    return out


def _prepare_directory(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".probe-{os.getpid()}{_TMP_SUFFIX}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise JournalError(f"journal: snapshot directory {directory} is not writable: "
                           f"{exc.strerror or exc}") from exc


def _encode_jpeg(cv2, image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise JournalError(f"journal: OpenCV could not encode a {image.shape} snapshot as JPEG")
    return buf.tobytes()


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
