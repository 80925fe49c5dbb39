"""`edgert.load` and `edgert.Model`: one API over every backend."""
from __future__ import annotations

import weakref
from concurrent.futures import Future

import numpy as np
from pydantic import ValidationError

from edgert import hardware as hw
from edgert.backends import registry
from edgert.backends.base import Backend
from edgert.errors import ConfigError, FrameError
from edgert.model_files import identify


class Model:
    """A loaded model on one backend.

    Attributes:
        backend: The backend key ("cpu", "coral", "hailo", "rknn").
        inputs: Input `TensorSpec` tuple.
        outputs: Output `TensorSpec` tuple.
        path: The model file.
    """

    def __init__(self, impl: Backend, path):
        self._impl = impl
        # A model dropped without close() still frees its device (a Hailo VDevice share, an Edge TPU).
        self._finalizer = weakref.finalize(self, impl.close)
        self.backend = impl.KEY
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


def load(path, backend: str = "auto", **options) -> Model:
    """Load a model file on a backend.

    Args:
        path: A .tflite (LiteRT CPU, or Coral when compiled for the Edge TPU), .hef (Hailo) or
            .rknn (RK NPU) file.
        backend: "auto" (by file kind and the hardware present; ``EDGERT_BACKEND`` overrides it)
            or a backend key.
        **options: The backend's options (its ``Config``); unknown ones are refused.

    Raises:
        ModelError: the file is missing, empty, corrupted or not a model.
        ConfigError: unknown backend or option.
        BackendUnavailable: the backend's SDK or device is missing (says what to install or plug in).
    """
    model_file = identify(path)
    cls = registry.choose(model_file.kind, backend, hw.detect)
    config = backend_config(cls, options)
    impl = cls()
    impl.open(model_file, config)
    return Model(impl, model_file.path)


def backend_config(cls, options: dict):
    """`cls.Config` from `options`.

    Raises:
        ConfigError: an unknown or invalid option, named (e.g. "rknn backend option input_shape: ...").
    """
    try:
        return cls.Config(**options)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "options"
        msg = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{cls.KEY} backend option {where}: {msg}") from None
