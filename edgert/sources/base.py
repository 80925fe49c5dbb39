"""`Source`: the frame-source contract, with reconnect, backoff and health shared by every source.

A concrete source overrides three methods and never deals with retries:

* ``_open()`` - open the device or stream; raise `SourceError` (or any exception) if it cannot.
* ``_read(timeout)`` - return the next `Frame`, ``None`` at the end of a finite stream, or raise
  (`SourceError`, ``TimeoutError``, ``OSError``...) when the device failed or gave nothing in time.
* ``_close()`` - free the device; must be safe after a failed ``_open``.

`Source.read` turns failures into a health state, closes, waits with exponential backoff and
reopens, so a dislodged camera cable or a dropped RTSP stream comes back by itself and says so.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from edgert.core.errors import ClosedError, SourceError, one_line
from edgert.core.frame import Frame

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff between reconnect attempts.

    Attributes:
        initial: First wait in seconds.
        maximum: Longest wait in seconds.
        factor: Growth per failed attempt.
    """

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0

    def delay(self, failures: int) -> float:
        """The wait before attempt number ``failures + 1`` (``failures`` >= 1)."""
        return min(self.maximum, self.initial * self.factor ** max(0, failures - 1))


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """What a source is doing now.

    Attributes:
        state: ``"closed"``, ``"ok"``, ``"reconnecting"`` or ``"ended"``.
        reconnects: Successful reopenings after a failure, since the source was created.
        failures: Consecutive failed attempts (0 while healthy).
        last_error: The last failure as one line, or ``""``.
        since_ns: ``CLOCK_MONOTONIC`` time the state was entered.
    """

    state: str
    reconnects: int = 0
    failures: int = 0
    last_error: str = ""
    since_ns: int = 0


class Source:
    """Base class of frame sources (see the module docstring for what to override).

    Attributes:
        name: A short description for logs and STATUS (``"camera 0"``, ``"rtsp://cam/1"``).
        backoff: Reconnect schedule.
        max_failures: Consecutive failures after which `read` gives up with `SourceError`
            (``None``: retry forever, what a service wants).
        live: True for cameras and streams, which keep producing whether or not frames are read:
            the pipeline then keeps only the newest frame. False for files and folders, where every
            frame is processed and reading waits for the pipeline.
        Config: The source's config section class (a registered source: its ``kind`` literal is
            the name it is registered under in `edgert.sources.SOURCES`; it is built as ``cls(config)``).
    """

    name = "source"
    live = True

    def __init__(self, backoff: Backoff = Backoff(), max_failures: int | None = None):
        self.backoff = backoff
        self.max_failures = max_failures
        self._stop = threading.Event()
        self._opened = False
        self._closed = False
        self._seq = 0
        self._generation = 0
        self._geometry = None
        self._health = SourceHealth("closed", since_ns=time.monotonic_ns())

    # -- for subclasses -------------------------------------------------------------------------
    def _open(self) -> None:
        raise NotImplementedError

    def _read(self, timeout: float) -> Frame | None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def _next_stamps(self, fmt: str, size: tuple) -> tuple[int, int]:
        """The (seq, generation) of the next frame; the generation moves on when format or size change."""
        geometry = (fmt, tuple(size))
        if self._geometry is not None and geometry != self._geometry:
            self._generation += 1
            log.warning("%s: frames are now %s %dx%d (were %s %dx%d)", self.name, fmt, *size,
                        self._geometry[0], *self._geometry[1])
        self._geometry = geometry
        seq = self._seq
        self._seq += 1
        return seq, self._generation

    # -- public ---------------------------------------------------------------------------------
    @property
    def health(self) -> SourceHealth:
        return self._health

    def _set_health(self, state: str, **changes) -> None:
        h = self._health
        fields = {"reconnects": h.reconnects, "failures": h.failures, "last_error": h.last_error}
        fields.update(changes)
        since = h.since_ns if state == h.state else time.monotonic_ns()
        self._health = SourceHealth(state, since_ns=since, **fields)

    def open(self) -> None:
        """Open the source now (raises `SourceError` if it cannot); `read` also opens on demand."""
        if self._closed:
            raise ClosedError(f"{self.name} is closed")
        if not self._opened:
            try:
                self._open()
            except SourceError:
                self._safe_close()
                raise
            except Exception as exc:  # noqa: BLE001 - any driver failure becomes one clear error
                self._safe_close()
                raise SourceError(f"{self.name}: cannot open: {one_line(exc)}") from exc
            self._opened = True
            self._set_health("ok", failures=0)

    def read(self, timeout: float = 2.0) -> Frame | None:
        """The next frame, reconnecting with backoff after failures.

        Args:
            timeout: Seconds to wait for one frame before the device counts as failed.

        Returns:
            A `Frame`, or ``None`` when a finite stream has ended or `stop` was called.

        Raises:
            SourceError: ``max_failures`` consecutive attempts failed.
            ClosedError: the source was closed.
        """
        if self._closed:
            raise ClosedError(f"{self.name} is closed")
        while not self._stop.is_set():
            try:
                self._open_after_failure()
                frame = self._read(timeout)
            except ClosedError:
                raise
            except Exception as exc:  # noqa: BLE001 - camera drivers raise anything; we retry
                self._fail(exc)
                continue
            if frame is None:
                self._set_health("ended")
                return None
            if self._health.failures:
                # Only a frame proves the device is back: a camera with its cable out still opens,
                # and an RTSP server may accept the connection and then send nothing.
                self._set_health("ok", failures=0, reconnects=self._health.reconnects + 1)
                log.warning("%s: reconnected", self.name)
            return frame
        return None

    def _open_after_failure(self) -> None:
        """`open`, keeping the failure count (and state) until a frame arrives."""
        if self._opened:
            return
        failing = self._health
        self.open()
        if failing.failures:
            self._health = failing

    def _fail(self, exc: BaseException) -> None:
        failures = self._health.failures + 1
        message = one_line(exc)
        self._set_health("reconnecting", failures=failures, last_error=message)
        self._safe_close()
        if self.max_failures is not None and failures >= self.max_failures:
            raise SourceError(f"{self.name}: gave up after {failures} failed attempts: {message}") from exc
        wait = self.backoff.delay(failures)
        log.warning("%s: %s; retrying in %.1f s", self.name, message, wait)
        self._stop.wait(wait)

    def _safe_close(self) -> None:
        self._opened = False
        try:
            self._close()
        except Exception as exc:  # noqa: BLE001 - closing a broken device may fail too
            log.debug("%s: close failed: %s", self.name, exc)

    def stop(self) -> None:
        """Make a blocked or backing-off `read` return ``None`` soon (from another thread)."""
        self._stop.set()

    def close(self) -> None:
        """Stop and free the device; safe to call more than once."""
        self._stop.set()
        if not self._closed:
            self._closed = True
            self._safe_close()
            self._set_health("closed")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __iter__(self):
        while (frame := self.read()) is not None:
            yield frame

