"""Fake `picamera2.job`: a Job is a list of functions the event loop runs until each says done.

As in picamera2 0.3.36, a job that timed out stays queued (and later takes a request nobody will
release) until `Picamera2.cancel_all_and_flush` cancels it.
"""
from __future__ import annotations

from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout

from .fake_rig import rig

__all__ = ["CancelledError", "Job"]


class Job:
    def __init__(self, functions, signal_function=None):
        self._functions = functions
        self._future = Future()
        self._future.set_running_or_notify_cancel()
        self._signal_function = signal_function
        self._result = None
        self.calls = 0

    def execute(self) -> bool:
        assert self._functions, "Job already completed!"
        try:
            while self._functions:
                done, result = self._functions[0]()
                self.calls += 1
                if not done:
                    break
                self._functions.pop(0)
            if not self._functions:
                self._result = result
        except Exception as e:  # noqa: BLE001 - the real Job hands any failure to the waiter
            self._future.set_exception(e)
            self._functions = []
        return not self._functions

    def signal(self) -> None:
        assert not self._functions, "Job not finished!"
        if not self._future.done():
            self._future.set_result(self._result)
        if self._signal_function:
            self._signal_function(self)

    def get_result(self, timeout=None):
        """The result; ``timeout=None`` waits forever (here: until the test's hang breaker is set)."""
        if timeout is not None:
            return self._future.result(timeout=timeout)
        rig.forever_waits += 1
        while True:
            try:
                return self._future.result(timeout=0.02)
            except FutureTimeout:
                if rig.hang_breaker.is_set():
                    raise RuntimeError("fake picamera2: this call would have blocked forever") from None

    def cancel(self) -> None:
        self._future.set_exception(CancelledError())
