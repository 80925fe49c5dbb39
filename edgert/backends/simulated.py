"""A simulated accelerator: fixed time per frame, outputs given up front.

It measures what the runtime around a device costs: a pipeline that keeps it busy close to 100%
adds nothing to the device's own time. It is a registered backend like the others (as gpiozero's
mock pin factory is a real factory), chosen only by name: ``edgert.load("m.tflite",
backend="simulated", device_ms=5)`` takes the model's tensor specs from the file and returns zeros;
`simulated_model` builds one with given outputs.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future

import numpy as np
from pydantic import Field

from edgert.backends.base import Backend, BackendConfig
from edgert.core.errors import ClosedError
from edgert.core.model import Model


class SimulatedConfig(BackendConfig):
    """Options of the simulated device."""

    device_ms: float = Field(2.0, gt=0, le=10_000, description="Device time per frame, in milliseconds.")


class SimulatedBackend(Backend):
    """A device that works `device_ms` per frame, one frame at a time, with a queue in front.

    Like an accelerator's hardware queue, a frame queued before the previous one finished starts the
    moment it finishes: the device's clock runs on its own, and the Python thread that plays it
    only delivers results (late, if the GIL keeps it waiting, but without idling the device).
    Opened from a model file by `edgert.load`, or given its specs and outputs by `start`.

    Attributes:
        busy_ns: Total time the device spent working.
        frames: Frames completed.
    """

    KEY = "simulated"
    KINDS = ("tflite",)
    AUTOMATIC = False
    Config = SimulatedConfig

    def __init__(self):
        super().__init__()
        self._thread = None

    def open(self, model_file, config: SimulatedConfig) -> None:
        """Take the tensor specs from the model file (through LiteRT); every frame returns zeros."""
        from edgert.backends.cpu import CpuBackend

        reader = CpuBackend()
        reader.open(model_file, CpuBackend.Config())
        try:
            inputs, outputs = reader.inputs, reader.outputs
        finally:
            reader.close()
        self.start(inputs, [np.zeros(s.shape, s.dtype) for s in outputs], outputs, config.device_ms)

    def start(self, inputs, outputs, output_specs, device_ms: float = 2.0) -> None:
        """Set the specs and per-frame outputs, and start the device thread.

        Args:
            inputs: Input `TensorSpec` tuple.
            outputs: Output arrays returned (copied) for every frame; their specs are `output_specs`.
            output_specs: Output `TensorSpec` tuple.
            device_ms: Device time per frame.
        """
        self.inputs, self.outputs = tuple(inputs), tuple(output_specs)
        self._results = [np.array(o) for o in outputs]
        self._device_ns = int(device_ms * 1e6)
        self._queue: deque = deque()
        self._cond = threading.Condition()
        self.busy_ns = 0
        self.frames = 0
        self.max_queued = 0
        self.first_start_ns = 0
        self.last_end_ns = 0
        self._thread = threading.Thread(target=self._device, name="simulated-device", daemon=True)
        self._thread.start()

    def submit(self, inputs: list) -> Future:
        future: Future = Future()
        with self._cond:
            if self._closed:
                raise ClosedError("simulated model is closed")
            self._queue.append((future, time.monotonic_ns()))
            self.max_queued = max(self.max_queued, len(self._queue))
            self._cond.notify()
        return future

    def run(self, inputs: list) -> list:
        return self.submit(inputs).result()

    def _device(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed and not self._queue:
                    return
                future, submitted = self._queue.popleft()
            start = max(submitted, self.last_end_ns)
            if not self.first_start_ns:
                self.first_start_ns = start
            end = start + self._device_ns
            while (left := end - time.monotonic_ns()) > 0:
                time.sleep(left / 1e9)
            self.busy_ns += end - start
            self.last_end_ns = end
            self.frames += 1
            future.set_result([r.copy() for r in self._results])

    def release(self) -> None:
        if self._thread is None:
            return
        with self._cond:
            self._cond.notify_all()
        self._thread.join()

    def reset_counters(self) -> None:
        """Forget the busy time and frames so far (after a warm-up)."""
        self.busy_ns = self.frames = self.first_start_ns = self.last_end_ns = 0


def simulated_model(inputs, outputs, output_specs, device_ms: float = 2.0) -> Model:
    """An `edgert.Model` on a `SimulatedBackend`."""
    backend = SimulatedBackend()
    backend.start(inputs, outputs, output_specs, device_ms)
    return Model(backend, "simulated")
