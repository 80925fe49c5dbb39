"""Following the model store: hot swap to a newly activated version, probation, automatic rollback.

The kiosk config names a store model (``model: {path: "store:waste"}``). Whoever activates a version
(``edgert model install|activate|rollback`` on the device, or a fleet command over MQTT) only
switches the store's ``current`` link; the running daemon notices at its next poll, loads and warms
the new version beside the old one and switches at a frame boundary. A probation window then
watches the new model's errors, latency and confidence against the old one's; if it fails, the
store rolls back to ``previous`` by itself, the service follows, and the journal says why.
"""
from __future__ import annotations

import logging
from pathlib import Path

from pydantic import Field

import edgert
from edgert.config.section import Section
from edgert.errors import ConfigError, EdgertError, JournalError
from edgert.pipeline.inference import LoadedModel

log = logging.getLogger(__name__)

STORE_PREFIX = "store:"


class ProbationConfig(Section):
    """How a newly activated model is watched before it is trusted."""

    frames: int = Field(200, ge=1, description="Frames the new model must decide before it passes.")
    max_errors: int = Field(0, ge=0, description="Stage errors tolerated during probation.")
    latency_factor: float = Field(2.0, gt=1.0, description="Fail when the new model's inference p50 exceeds the "
                                                           "old one's by this factor (or the bundle's budget).")
    confidence_drop: float = Field(0.2, ge=0.0, le=1.0, description="Fail when the mean top-1 probability falls "
                                                                    "this far below the old model's (0..1).")


def store_model_name(path: str) -> str | None:
    """The store model a config path names (``"store:waste"`` -> ``"waste"``), else None."""
    return path[len(STORE_PREFIX):] if path.startswith(STORE_PREFIX) else None


def load_installed(installed, backend: str = "auto", options: dict | None = None) -> LoadedModel:
    """Load an installed bundle version on the variant this device runs.

    Raises:
        BundleError: no variant fits this device. ModelError/BackendUnavailable: it does not load.
    """
    variant, path = installed.choose_variant(backend)
    model = edgert.load(path, backend=variant.backend, **{**variant.options, **(options or {})})
    m = installed.manifest
    classes = model.outputs[0].shape[-1]
    if m.task == "classification" and len(m.labels) != classes:
        model.close()
        raise ConfigError(f"{m.name} {m.version}: {len(m.labels)} labels for a model with {classes} classes")
    return LoadedModel(model, m.name, m.version, tuple(m.labels), m.input.preprocess_kwargs())


def load_current(store, name: str, backend: str = "auto", options: dict | None = None) -> LoadedModel:
    """Load the store's current version of `name`.

    Raises:
        ConfigError: nothing of `name` is installed (says how to install it).
    """
    installed = store.current(name)
    if installed is None:
        raise ConfigError(f"model: no version of {name!r} is installed in {store.root}; "
                          f"install one with `edgert model install BUNDLE`")
    return load_installed(installed, backend, options)


class ModelUpdates:
    """Keeps a running kiosk on the store's current version of its model.

    Args:
        kiosk: A callable returning the running `Kiosk` (the daemon may rebuild it).
        store: The `ModelStore`.
        name: The store model the kiosk runs.
        probation: `ProbationConfig`.
        backend, options: As in the model config.
        on_event: ``on_event(kind, message, **details)`` (journal and fleet events).
    """

    def __init__(self, kiosk, store, name: str, probation: ProbationConfig, backend: str = "auto",
                 options: dict | None = None, on_event=None):
        self._kiosk = kiosk
        self.store = store
        self.name = name
        self.probation = probation
        self.backend = backend
        self.options = options or {}
        self.on_event = on_event
        self._link = Path(store.root) / name / "current"
        self._seen = self._link_target()
        self._trial = None  # (new entry, old entry's health summary) while on probation
        self._rolled_back_from: str | None = None

    def _link_target(self) -> str | None:
        try:
            return str(self._link.readlink())
        except OSError:
            return None

    def poll(self) -> None:
        """Follow a newly activated version, and judge the one on probation (call it often; it is cheap)."""
        target = self._link_target()
        if target is not None and target != self._seen:
            self._seen = target
            self._follow()
        elif self._trial is not None:
            self._judge()

    def _follow(self) -> None:
        installed = self.store.current(self.name)
        kiosk = self._kiosk()
        if installed is None or installed.version == kiosk.model.version:
            return
        old = kiosk.model
        baseline = kiosk.health[old.generation].summary() if old.generation in kiosk.health else None
        try:
            entry = kiosk.swap_model(load_installed(installed, self.backend, self.options))
        except EdgertError as exc:
            self._event("model_swap_failed", f"{self.name} {installed.version} did not start: {exc}",
                        version=installed.version)
            self._rollback(f"{installed.version} did not start")
            return
        self._event("model_swap", f"{self.name} {old.version} -> {entry.version}", old=old.version, new=entry.version)
        if installed.version == self._rolled_back_from:
            self._rolled_back_from = None
        budget = installed.manifest.golden.latency_budget_ms if installed.manifest.golden else None
        rollback_target = self._rolled_back_from is None  # a version we rolled back to is not on trial
        self._trial = (entry, baseline, budget) if rollback_target else None

    def _judge(self) -> None:
        entry, baseline, budget = self._trial
        kiosk = self._kiosk()
        health = kiosk.health.get(entry.generation)
        if health is None or kiosk.model is not entry:
            self._trial = None
            return
        now = health.summary()
        reasons = []
        if now["errors"] > self.probation.max_errors:
            reasons.append(f"{now['errors']} stage errors")
        if now["frames"] >= self.probation.frames:
            limit = budget
            if baseline and baseline["infer_p50_ms"]:
                limit = min(limit or float("inf"), baseline["infer_p50_ms"] * self.probation.latency_factor)
            if limit and now["infer_p50_ms"] and now["infer_p50_ms"] > limit:
                reasons.append(f"inference p50 {now['infer_p50_ms']:.1f} ms over {limit:.1f} ms")
            if baseline and baseline["mean_top1"] is not None and now["mean_top1"] is not None and \
                    now["mean_top1"] < baseline["mean_top1"] - self.probation.confidence_drop:
                reasons.append(f"mean top-1 {now['mean_top1']:.2f} fell from {baseline['mean_top1']:.2f}")
        if reasons:
            self._trial = None
            self._rollback("; ".join(reasons), **now)
        elif now["frames"] >= self.probation.frames:
            self._trial = None
            self._event("model_trusted", f"{self.name} {entry.version} passed probation over {now['frames']} frames",
                        version=entry.version, **now)

    def _rollback(self, why: str, **details) -> None:
        failed = self.store.current(self.name)
        try:
            back = self.store.rollback(self.name)
        except EdgertError as exc:
            self._event("model_rollback_failed", f"{self.name}: cannot roll back ({exc}) after: {why}")
            return
        self._rolled_back_from = failed.version if failed else None
        self._event("model_rollback", f"{self.name} {failed.version if failed else '?'} rolled back to "
                    f"{back.version}: {why}", failed=failed.version if failed else None, to=back.version, **details)
        self._seen = None  # the link changed: follow it at once
        self.poll()

    def _event(self, kind: str, message: str, **details) -> None:
        (log.warning if "rollback" in kind or "failed" in kind else log.info)("%s", message)
        if self.on_event is not None:
            try:
                self.on_event(kind, message, **details)
            except (EdgertError, JournalError, OSError) as exc:
                log.error("could not record %s event: %s", kind, exc)
