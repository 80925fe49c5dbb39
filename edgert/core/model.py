"""`edgert.Model`: one API over every backend (`edgert.load`, in `edgert.backends.loader`, makes one)."""
from __future__ import annotations

import weakref
from concurrent.futures import Future

import numpy as np

from edgert.core.errors import FrameError


class Model:
    """A loaded model on one backend.

    Attributes:
        backend: The backend key ("cpu", "onnx", "coral", "hailo", "rknn").
        asynchronous: True when `submit` returns before the device is done (several frames can be in
            flight); False when it runs the inference in the caller's thread.
        inputs: Input `TensorSpec` tuple.
        outputs: Output `TensorSpec` tuple.
        path: The model file.
    """

    def __init__(self, impl, path):
        self._impl = impl
        # A model dropped without close() still frees its device (a Hailo VDevice share, an Edge TPU).
        self._finalizer = weakref.finalize(self, impl.close)
        self.backend = impl.KEY
        self.asynchronous = bool(getattr(impl, "ASYNCHRONOUS", False))
        self.inputs = impl.inputs
        self.outputs = impl.outputs
        self.path = path

    def run(self, tensor) -> list:
        """Run one inference.

        Args:
            tensor: The input array (one-input models), or a list of arrays in input order; each
                of its spec's exact dtype and shape.

        Returns:
            The raw outputs in output order (quantized dtype where quantized).

        Raises:
            FrameError: wrong number, dtype or shape of inputs.
            ClosedError: the model was closed.
            DeviceError: the device failed while running.
        """
        return self._impl.run(self._checked(tensor, "run"))

    def submit(self, tensor) -> Future:
        """Start one inference without waiting: a Future of what `run` returns.

        Backends with asynchronous devices (Hailo) keep several frames in flight, so the caller can
        prepare frame N+1 while the device works on frame N; others run at once.
        """
        return self._impl.submit(self._checked(tensor, "submit"))

    def _checked(self, tensor, what: str) -> list:
        self._impl.check_open()
        if isinstance(tensor, np.ndarray):
            inputs = [tensor]
        elif isinstance(tensor, (list, tuple)):
            inputs = list(tensor)
        else:
            raise FrameError(f"{what}: expected a numpy.ndarray or a list of them, got {type(tensor).__name__}")
        if len(inputs) != len(self.inputs):
            raise FrameError(f"{what}: model takes {len(self.inputs)} input(s), got {len(inputs)}")
        for i, (x, spec) in enumerate(zip(inputs, self.inputs)):
            if not isinstance(x, np.ndarray):
                raise FrameError(f"{what}: input {i} must be a numpy.ndarray, got {type(x).__name__}")
            if x.dtype != spec.dtype or x.shape != spec.shape:
                raise FrameError(f"{what}: input {i} ({spec.name!r}) must be {spec.dtype} {spec.shape}, "
                                 f"got {x.dtype} {x.shape}")
        return inputs

    def close(self) -> None:
        """Release the device; safe to call more than once."""
        self._finalizer()

    @property
    def closed(self) -> bool:
        return self._impl.closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self.closed else "open"
        return f"Model({str(self.path)!r}, backend={self.backend!r}, {state})"
