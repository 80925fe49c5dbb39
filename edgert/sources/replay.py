"""`ReplaySource`: frames held in memory, replayed in order (benchmarks, tests, offline evaluation)."""
from __future__ import annotations

import time

from edgert.core.errors import ConfigError
from edgert.core.frame import Frame
from edgert.sources.base import Source


class ReplaySource(Source):
    """Replays arrays as frames, cycling through them.

    Args:
        frames: Pixel arrays, all of one format and size.
        format: Their source format (``"BGR"``, ``"NV12"``, ...).
        size: ``(width, height)``; default the array's (packed formats only).
        count: Frames to give before the stream ends (default: one pass over `frames`).
        live: Whether it behaves like a camera (the pipeline then drops frames it cannot keep up
            with) or like a file (every frame is processed).
        meta: Optional per-array meta dicts (e.g. ground-truth labels).
        fps: Deliver frames on a fixed clock at this rate, as a camera does (None: as fast as read).
    """

    name = "replay"

    def __init__(self, frames, format: str = "BGR", size=None, count: int | None = None, live: bool = False,
                 meta=None, fps: float | None = None):
        super().__init__()
        if not frames:
            raise ConfigError("replay: no frames given")
        self.frames = list(frames)
        self.format = format
        self.size = tuple(size) if size is not None else (self.frames[0].shape[1], self.frames[0].shape[0])
        self.count = len(self.frames) if count is None else count
        self.live = live
        self.meta = list(meta) if meta is not None else [{}] * len(self.frames)
        if fps is not None and not fps > 0:
            raise ConfigError(f"replay: fps must be > 0, got {fps!r}")
        self.period_ns = None if fps is None else int(1e9 / fps)
        self._due_ns = 0

    def _open(self) -> None:
        pass

    def _close(self) -> None:
        pass

    def _read(self, timeout: float) -> Frame | None:
        if self._seq >= self.count:
            return None
        i = self._seq % len(self.frames)
        pixels = self.frames[i]
        if self.period_ns is not None:
            now = time.monotonic_ns()
            self._due_ns = max(self._due_ns + self.period_ns, now - self.period_ns) if self._due_ns else now
            if self._due_ns > now and self._stop.wait((self._due_ns - now) / 1e9):
                return None
        seq, generation = self._next_stamps(self.format, self.size)
        return Frame(pixels, self.format, self.size, pixels.strides[0], time.monotonic_ns(), seq, generation,
                     self.meta[i])
