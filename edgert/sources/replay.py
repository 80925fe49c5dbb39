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
    """

    name = "replay"

    def __init__(self, frames, format: str = "BGR", size=None, count: int | None = None, live: bool = False,
                 meta=None):
        super().__init__()
        if not frames:
            raise ConfigError("replay: no frames given")
        self.frames = list(frames)
        self.format = format
        self.size = tuple(size) if size is not None else (self.frames[0].shape[1], self.frames[0].shape[0])
        self.count = len(self.frames) if count is None else count
        self.live = live
        self.meta = list(meta) if meta is not None else [{}] * len(self.frames)

    def _open(self) -> None:
        pass

    def _close(self) -> None:
        pass

    def _read(self, timeout: float) -> Frame | None:
        if self._seq >= self.count:
            return None
        i = self._seq % len(self.frames)
        pixels = self.frames[i]
        seq, generation = self._next_stamps(self.format, self.size)
        return Frame(pixels, self.format, self.size, pixels.strides[0], time.monotonic_ns(), seq, generation,
                     self.meta[i])
