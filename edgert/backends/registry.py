"""Which backends exist: the ``edgert.backends`` registry.

Backends register in setup.py's ``edgert.backends`` entry-point group (the built-ins are also listed
here, so a checkout with stale package metadata finds them), so a board package can add its own
without touching edgert. Which one runs a model is `edgert.backends.chooser`'s decision.
"""
from __future__ import annotations

from edgert.core.errors import ConfigError
from edgert.core.plugins import Registry

GROUP = "edgert.backends"

BACKENDS = Registry(GROUP, {
    "cpu": "edgert.backends.cpu:CpuBackend",
    "onnx": "edgert.backends.onnx:OnnxBackend",
    "coral": "edgert.backends.coral:CoralBackend",
    "hailo": "edgert.backends.hailo:HailoBackend",
    "rknn": "edgert.backends.rknn:RknnBackend",
    "simulated": "edgert.backends.simulated:SimulatedBackend",
}, what="backend", key_attr="KEY", kind_field=None)


def backend_classes() -> dict:
    """``{key: Backend subclass}`` of every registered backend."""
    return BACKENDS.classes()


def backend_class(key: str, source: str = "backend"):
    """The backend class called `key`; `ConfigError` (naming `source`) listing the known ones otherwise."""
    known = BACKENDS.keys()
    if key not in known:
        raise ConfigError(f"{source}: unknown backend {key!r}; expected auto or one of {', '.join(sorted(known))}")
    return BACKENDS.load(key)
