"""What the synthetic scenes (conveyor, street) share: camera-like pacing and the read of a rendered frame."""
from __future__ import annotations

import threading
import time

from edgert.core.frame import Frame
from edgert.sources.base import Source


class Pacer:
    """Lets reads through on a fixed clock of `fps` frames per second, as a camera delivers them.

    A consumer that stalls for over a second restarts the clock rather than getting a burst of
    catch-up frames. ``fps <= 0`` is unpaced: every read goes through at once.
    """

    def __init__(self, fps: float):
        self.fps = fps
        self.restart()

    def restart(self) -> None:
        """Count frames from now."""
        self._t0, self._count = time.monotonic(), 0

    def wait(self, stop: threading.Event) -> bool:
        """Sleep until the next frame is due; True if `stop` was set meanwhile."""
        if self.fps <= 0:
            return False
        wait = self._t0 + self._count / self.fps - time.monotonic()
        if wait > 0 and stop.wait(wait):
            return True
        if wait < -1.0:
            self.restart()
        self._count += 1
        return False


class RenderedSource(Source):
    """A source whose ``self._scene.next_frame()`` renders ``(BGR pixels, meta)``, or None at its end.

    Subclasses set ``self.config`` (with an ``fps``) and ``self._scene`` in their constructor.
    """

    def _open(self) -> None:
        self._pacer = Pacer(self.config.fps)

    def _read(self, timeout: float) -> Frame | None:
        if self._pacer.wait(self._stop):
            return None
        rendered = self._scene.next_frame()
        if rendered is None:
            return None
        pixels, meta = rendered
        h, w = pixels.shape[:2]
        seq, generation = self._next_stamps("BGR", (w, h))
        return Frame(pixels, "BGR", (w, h), pixels.strides[0], time.monotonic_ns(), seq, generation, meta)

    def _close(self) -> None:
        pass
