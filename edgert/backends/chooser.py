"""The one place that decides which backend runs a model: for `edgert.load`, bundle variants and `edgert bench`.

"auto" means: ``EDGERT_BACKEND`` when it is set, else the highest-priority registered backend that
runs the file's kind and whose `probe` finds what it needs on this machine (CPU last). Backends with
``AUTOMATIC = False`` (the simulated device) run only when asked for by name.
"""
from __future__ import annotations

import os
from typing import NamedTuple

from edgert.backends.registry import backend_class, backend_classes
from edgert.core.errors import BackendUnavailable, ConfigError


class Candidate(NamedTuple):
    """A backend considered for a request.

    Attributes:
        cls: The backend class.
        reason: Why it cannot serve the request here (wrong file kind, SDK or device missing), or None.
    """

    cls: type
    reason: str | None

    @property
    def key(self) -> str:
        return self.cls.KEY


def requested_backend(requested: str) -> tuple[str, str]:
    """``(key or "auto" or "all", where it came from)``: ``EDGERT_BACKEND`` stands in for an "auto" request."""
    if requested == "auto":
        env = os.environ.get("EDGERT_BACKEND", "").strip()
        if env and env != "auto":
            return env, "EDGERT_BACKEND"
    return requested, "backend"


def candidates(requested: str, hardware, kind: str | None = None) -> list[Candidate]:
    """The backends a request names, best first, each with why it cannot serve it (None: it can).

    Args:
        requested: "auto", "all" (every registered backend) or a backend key (``EDGERT_BACKEND``
            replaces "auto").
        hardware: This machine's `edgert.core.hardware.Hardware`, or a callable returning it (called
            only when a probe is needed).
        kind: The model file's kind, or None when any kind will do (bundle variants).

    Raises:
        ConfigError: an unknown backend key.
    """
    key, source = requested_backend(requested)
    if key in ("auto", "all"):
        classes = [c for c in backend_classes().values() if key == "all" or c.AUTOMATIC]
        classes.sort(key=lambda c: (-c.PRIORITY, c.KEY))
    else:
        classes = [backend_class(key, source)]
    found = []
    for cls in classes:
        if kind is not None and kind not in cls.KINDS:
            found.append(Candidate(cls, f"runs {', '.join(cls.KINDS)} models, not {kind}"))
            continue
        if callable(hardware):
            hardware = hardware()
        found.append(Candidate(cls, cls.probe(hardware)))
    return found


def choose(kind: str, requested: str, hardware) -> type:
    """The backend class to run a model file of `kind`.

    A backend named explicitly is returned without probing (opening it says what is missing); an
    automatic choice takes the first candidate that can run here.

    Raises:
        ConfigError: unknown backend, or one that does not run this kind of file.
        BackendUnavailable: no backend for the file can run here; says why for each.
    """
    key, source = requested_backend(requested)
    if key != "auto":
        cls = backend_class(key, source)
        if kind not in cls.KINDS:
            raise ConfigError(f"{source}: {key!r} cannot run a {kind} model (it runs {', '.join(cls.KINDS)})")
        return cls
    # Probe only the backends that run this kind: loading a .tflite never imports the Hailo SDK.
    fitting = [c for c in candidates("auto", hardware, kind) if kind in c.cls.KINDS]
    if not fitting:
        raise BackendUnavailable(f"no backend runs {kind} models")
    for candidate in fitting:
        if candidate.reason is None:
            return candidate.cls
    raise BackendUnavailable(f"cannot run this {kind} model here: "
                             + "; ".join(f"{c.key}: {c.reason}" for c in fitting))


def usable(requested: str, hardware) -> list[str]:
    """Keys of the backends a request names that can run on `hardware`, best first."""
    return [c.key for c in candidates(requested, hardware) if c.reason is None]
