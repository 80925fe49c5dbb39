"""Which backends exist (the ``edgert.backends`` entry-point group) and which one runs a model file.

Backends register in setup.py's ``edgert.backends`` entry-point group, so a board package can add
its own without touching edgert. The environment variable ``EDGERT_BACKEND`` overrides an "auto"
choice (handy on a device that has an accelerator you want to bypass).
"""
from __future__ import annotations

import os
from functools import lru_cache
from importlib.metadata import entry_points

from edgert.core.errors import BackendUnavailable, ConfigError

GROUP = "edgert.backends"


@lru_cache(maxsize=1)
def backend_classes() -> dict:
    """``{key: Backend subclass}`` of every registered backend."""
    found = {}
    for ep in entry_points(group=GROUP):
        cls = ep.load()
        if getattr(cls, "KEY", None) != ep.name:
            raise ConfigError(f"backend entry point {ep.name!r} loads {cls!r}, whose KEY is {cls.KEY!r}")
        found[ep.name] = cls
    if not found:
        raise BackendUnavailable("no edgert backends are registered: is edgert installed (pip install .)?")
    return found


def backend_class(key: str, source: str = "backend"):
    """The backend class called `key`; `ConfigError` (naming `source`) listing the known ones otherwise."""
    classes = backend_classes()
    if key not in classes:
        raise ConfigError(f"{source}: unknown backend {key!r}; expected auto or one of {', '.join(sorted(classes))}")
    return classes[key]


def choose(kind: str, requested: str, detect) -> type:
    """The backend class to run a model file of `kind`.

    Args:
        kind: The file's kind (`edgert.core.model_files.ModelFile.kind`).
        requested: A backend key, or "auto" (then ``EDGERT_BACKEND`` if set, else the
            highest-priority backend that runs `kind` and can run on this machine).
        detect: Callable returning this machine's `edgert.core.hardware.Hardware` (called only when the
            choice is automatic).

    Raises:
        ConfigError: unknown backend, or one that does not run this kind of file.
        BackendUnavailable: no backend for the file can run here; says why for each.
    """
    source = "backend"
    if requested == "auto":
        requested = os.environ.get("EDGERT_BACKEND", "auto").strip() or "auto"
        source = "EDGERT_BACKEND"
    if requested != "auto":
        cls = backend_class(requested, source)
        if kind not in cls.KINDS:
            raise ConfigError(f"{source}: {requested!r} cannot run a {kind} model (it runs {', '.join(cls.KINDS)})")
        return cls
    hardware = detect()
    fitting = sorted((c for c in backend_classes().values() if kind in c.KINDS), key=lambda c: -c.PRIORITY)
    if not fitting:
        raise BackendUnavailable(f"no backend runs {kind} models")
    reasons = []
    for cls in fitting:
        why = cls.probe(hardware)
        if why is None:
            return cls
        reasons.append(f"{cls.KEY}: {why}")
    raise BackendUnavailable(f"cannot run this {kind} model here: " + "; ".join(reasons))
