"""Which backends exist: the ``edgert.backends`` entry-point group.

Backends register in setup.py's ``edgert.backends`` entry-point group, so a board package can add
its own without touching edgert. Which one runs a model is `edgert.backends.chooser`'s decision.
"""
from __future__ import annotations

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
