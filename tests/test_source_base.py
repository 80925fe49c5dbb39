"""The Source base: reconnect with backoff, health, and giving up only after consecutive failures."""
from __future__ import annotations

import time

import numpy as np
import pytest

from edgert.core.errors import ClosedError, SourceError
from edgert.core.frame import Frame
from edgert.sources.base import Backoff, Source


class Flaky(Source):
    """Opens every time; delivers a frame only while `ok` says so (a cable out still 'opens')."""

    name = "flaky camera"

    def __init__(self, ok, **kw):
        super().__init__(Backoff(0.001, 0.004), **kw)
        self.ok = ok  # ok(read number) -> bool
        self.reads = self.opens = self.closes = 0

    def _open(self):
        self.opens += 1

    def _close(self):
        self.closes += 1

    def _read(self, timeout):
        self.reads += 1
        if not self.ok(self.reads):
            raise TimeoutError("no frame")
        seq, gen = self._next_stamps("GRAY", (4, 4))
        return Frame(np.zeros((4, 4), np.uint8), "GRAY", (4, 4), 4, time.monotonic_ns(), seq, gen)


def test_opening_without_frames_is_still_a_failure():
    src = Flaky(lambda n: False, max_failures=4)
    with pytest.raises(SourceError, match="flaky camera: gave up after 4 failed attempts: no frame"):
        src.read()
    assert src.opens == 4 and src.health.state == "reconnecting" and src.health.reconnects == 0


def test_a_frame_after_failures_counts_one_reconnect():
    src = Flaky(lambda n: n == 1 or n >= 4)
    assert src.read().seq == 0 and src.health.state == "ok"
    frame = src.read()  # reads 2 and 3 fail, 4 delivers
    assert frame.seq == 1
    h = src.health
    assert (h.state, h.reconnects, h.failures, h.last_error) == ("ok", 1, 0, "no frame")
    assert src.closes == 2  # closed after each failure before reopening


def test_backoff_grows_and_is_capped():
    b = Backoff(0.5, 4.0, 2.0)
    assert [b.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]


def test_closed_source_refuses_reads():
    src = Flaky(lambda n: True)
    src.close()
    with pytest.raises(ClosedError):
        src.read()
