"""`edgert.load`: open a model file on the backend the chooser picks."""
from __future__ import annotations

from pydantic import ValidationError

from edgert.backends import chooser
from edgert.core import hardware as hw
from edgert.core.errors import ConfigError
from edgert.core.model import Model
from edgert.core.model_files import identify


def load(path, backend: str = "auto", **options) -> Model:
    """Load a model file on a backend.

    Args:
        path: A .tflite (LiteRT CPU, or Coral when compiled for the Edge TPU), .onnx (ONNX
            Runtime), .hef (Hailo) or .rknn (RK NPU) file.
        backend: "auto" (by file kind and the hardware present; ``EDGERT_BACKEND`` overrides it)
            or a backend key.
        **options: The backend's options (its ``Config``); unknown ones are refused.

    Raises:
        ModelError: the file is missing, empty, corrupted or not a model.
        ConfigError: unknown backend or option.
        BackendUnavailable: the backend's SDK or device is missing (says what to install or plug in).
    """
    model_file = identify(path)
    cls = chooser.choose(model_file.kind, backend, hw.detect)
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
