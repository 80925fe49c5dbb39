"""`FiringScheduler`: fires each decision's actuator when the item reaches the diverter."""
from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Self

from edgert.actuators.base import Actuator
from edgert.core.errors import ActuatorError, ClosedError

log = logging.getLogger(__name__)

#: ``on_fired(token, bin, result, late_ms, error)``; error is None when the firing ran (or had nothing to drive).
OnFired = Callable[[object, str, str, float, "str | None"], None]

NO_ACTUATOR = "no actuator"
CANCELLED = "cancelled"


class FiringScheduler:
    """Fires actuators at ``capture_ns + conveyor_delay_s`` on one background thread.

    The time already spent since capture (inference, voting) is thereby subtracted from the delay. A
    firing whose moment has passed runs at once and is reported late. The scheduler owns the
    actuators: `close` closes them.

    Args:
        actuators: The devices; each bin may be served by one of them at most.
        conveyor_delay_s: Seconds from an item's first frame until it reaches the diverter.
        on_fired: Called on the scheduler thread after each firing and for each cancelled one, as
            ``on_fired(token, bin, result, late_ms, error)``: result is the actuator's text (with
            ``", late N ms"`` appended when it ran over `late_after_ms` behind time), ``"no actuator"``
            for a bin nothing serves, ``"cancelled"`` for a firing dropped by `safe_all`/`close`;
            error is a one-line message or None. Exceptions it raises are logged and swallowed.
        clock: Monotonic nanosecond clock of the capture timestamps.
        late_after_ms: Lateness above which a result is marked late.
        pin_factory: A gpiozero pin factory to close after the actuators (one `build_actuators` opened).

    Raises:
        ActuatorError: Two actuators serve the same bin.
    """

    def __init__(self, actuators: Sequence[Actuator], conveyor_delay_s: float, on_fired: OnFired,
                 clock: Callable[[], int] = time.monotonic_ns, late_after_ms: float = 2.0, pin_factory=None):
        self._actuators = list(actuators)
        self._by_bin: dict[str, Actuator] = {}
        for actuator in self._actuators:
            for bin_ in actuator.bins:
                if bin_ in self._by_bin:
                    raise ActuatorError(f"bin {bin_!r} is served by {self._by_bin[bin_].name!r} and {actuator.name!r}")
                self._by_bin[bin_] = actuator
        self.conveyor_delay_s = float(conveyor_delay_s)
        self._delay_ns = round(conveyor_delay_s * 1e9)
        self._on_fired = on_fired
        self._clock = clock
        self._late_after_ms = late_after_ms
        self._pin_factory = pin_factory
        self._heap: list[tuple[int, int, str, object]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._device_lock = threading.Lock()  # taken before _cond; serialises firings with safe_all
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="edgert-firing", daemon=True)
        self._thread.start()

    @property
    def actuators(self) -> tuple[Actuator, ...]:
        """The devices, in config order."""
        return tuple(self._actuators)

    @property
    def bins(self) -> frozenset[str]:
        """Every bin some actuator serves."""
        return frozenset(self._by_bin)

    def schedule(self, bin: str, capture_ns: int, token=None) -> int:
        """Fire the actuator of `bin` at ``capture_ns + conveyor_delay_s``; return that due time (ns).

        Args:
            bin: The decided bin.
            capture_ns: Capture time of the item's first frame, on the scheduler's clock.
            token: Anything; handed back to `on_fired` (e.g. a journal row id).

        Raises:
            ClosedError: The scheduler was closed.
        """
        due = int(capture_ns) + self._delay_ns
        with self._cond:
            if self._closed:
                raise ClosedError("firing scheduler: schedule() after close()")
            heapq.heappush(self._heap, (due, next(self._counter), bin, token))
            self._cond.notify()
        return due

    def pending(self) -> int:
        """Firings scheduled and not yet run."""
        with self._cond:
            return len(self._heap)

    def safe_all(self, reason: str = "safe state") -> int:
        """Cancel pending firings and put every actuator in its safe state; return how many were cancelled.

        Each cancelled firing is reported to `on_fired` with result ``"cancelled"`` and error
        `reason`. Errors of single actuators are logged; the others still go safe.
        """
        with self._device_lock:
            with self._cond:
                cancelled, self._heap = self._heap, []
                self._cond.notify()
            self._all_safe()
        for _, _, bin_, token in sorted(cancelled):
            self._report(token, bin_, CANCELLED, 0.0, reason)  # the result already says "cancelled"
        return len(cancelled)

    def close(self) -> None:
        """Cancel pending firings, put the actuators in their safe state, stop the thread, release the pins."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
        self.safe_all("closing")
        self._thread.join()
        for actuator in self._actuators:
            try:
                actuator.close()
            except Exception:
                log.exception("closing %s failed", actuator.name)
        if self._pin_factory is not None:
            self._pin_factory.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _all_safe(self) -> None:
        for actuator in self._actuators:
            try:
                actuator.safe()
            except Exception:
                log.exception("%s: could not go to the safe state", actuator.name)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    wait_ns = self._heap[0][0] - self._clock() if self._heap else None
                    if wait_ns is not None and wait_ns <= 0:
                        break
                    self._cond.wait(None if wait_ns is None else wait_ns / 1e9)
                if self._closed:
                    return
            with self._device_lock:
                with self._cond:
                    # safe_all may have emptied the heap while this thread waited for the lock.
                    if not self._heap or self._heap[0][0] > self._clock():
                        continue
                    due, _, bin_, token = heapq.heappop(self._heap)
                fired = self._fire(bin_, due)
            self._report(token, bin_, *fired)

    def _fire(self, bin_: str, due: int) -> tuple[str, float, str | None]:
        actuator = self._by_bin.get(bin_)
        late_ms = max(0.0, (self._clock() - due) / 1e6)
        if actuator is None:
            return NO_ACTUATOR, late_ms, None
        try:
            result = actuator.fire(bin_)
        except Exception as exc:  # noqa: BLE001 - reported to the caller as text
            message = str(exc) if isinstance(exc, ActuatorError) else f"{type(exc).__name__}: {exc}"
            log.error("%s", message)
            try:
                actuator.safe()
            except Exception:
                log.exception("%s: could not go to the safe state after a failed firing", actuator.name)
            return "error", late_ms, message
        if late_ms > self._late_after_ms:
            result = f"{result}, late {late_ms:.1f} ms"
        return result, late_ms, None

    def _report(self, token, bin_: str, result: str, late_ms: float, error: str | None) -> None:
        try:
            self._on_fired(token, bin_, result, late_ms, error)
        except Exception:
            log.exception("on_fired callback failed for bin %r", bin_)
