"""Following the model store: hot swap to a newly activated version, probation, automatic rollback.

An app's config names a store model (``model: {path: "store:waste"}``). Whoever activates a version
(``edgert model install|activate|rollback`` on the device, or a fleet command over MQTT) only
switches the store's ``current`` link; the running daemon notices at its next poll, loads and warms
the new version beside the old one and switches at a frame boundary. A probation window then
watches the new model's errors, latency and confidence against the old one's; if it fails, the
store rolls back to ``previous`` by itself, the service follows, and the journal says why.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from pydantic import Field

from edgert.core import durable
from edgert.core.errors import EdgertError, JournalError
from edgert.core.settings import Section
from edgert.models.resolve import resolve_installed

log = logging.getLogger(__name__)



class ProbationConfig(Section):
    """How a newly activated model is watched before it is trusted."""

    frames: int = Field(200, ge=1, description="Frames the new model must decide before it passes.")
    max_errors: int = Field(0, ge=0, description="Stage errors tolerated during probation.")
    latency_factor: float = Field(2.0, gt=1.0, description="Fail when the new model's inference p50 exceeds the "
                                                           "old one's by this factor (or the bundle's budget).")
    confidence_drop: float = Field(0.2, ge=0.0, le=1.0, description="Fail when the mean top-1 probability falls "
                                                                    "this far below the old model's (0..1).")


class ModelUpdates:
    """Keeps a slot of a running app on the store's current version of its model.

    A version is trusted once it passed a probation here, or when it was running when the service
    started without being on probation. An untrusted version that fails is rolled back (once) to the
    version that ran before it. Probation is kept in ``<store>/<name>/probation.json``, so a version
    that crashes or hangs the service (systemd restarts it) is rolled back at the second start.

    Args:
        app: A callable returning the running `edgert.pipeline.app.App` (the daemon may rebuild it).
        store: The `ModelStore`.
        name: The store model the slot runs.
        probation: `ProbationConfig`.
        backend, options: As in the model config.
        on_event: ``on_event(kind, message, **details)`` (journal and fleet events).
        slot: The app's model slot that runs `name`.
    """

    #: A version still on probation at this many service starts is rolled back (one restart is forgiven:
    #: a power cut; a crash or hang loop is not).
    MAX_STARTS_ON_PROBATION = 3
    #: Latency growth below this many ms never fails a probation (timer noise on tiny models).
    LATENCY_FLOOR_MS = 1.0

    def __init__(self, app, store, name: str, probation: ProbationConfig, backend: str = "auto",
                 options: dict | None = None, on_event=None, slot: str = "classifier"):
        self._app = app
        self.slot = slot
        self.store = store
        self.name = name
        self.probation = probation
        self.backend = backend
        self.options = options or {}
        self.on_event = on_event
        self._link = Path(store.root) / name / "current"
        self._marker = Path(store.root) / name / "probation.json"
        self._seen = None  # the first poll compares the store with what the app runs
        self._trial = None  # (entry, baseline summary or None, latency budget, version to roll back to)
        running = self._running()
        self._trusted = {running.version}
        self._resume_probation(running)

    def _running(self):
        return self._app().models()[self.slot]

    # -- probation marker -----------------------------------------------------------------------
    def _resume_probation(self, running) -> None:
        marker = self._read_marker()
        if marker is None or marker.get("version") != running.version:
            self._clear_marker()
            return
        starts = int(marker.get("starts", 1)) + 1
        self._trusted.discard(running.version)
        back_to = marker.get("back_to")
        if starts >= self.MAX_STARTS_ON_PROBATION:
            self._rollback(running.version, back_to, f"the service restarted {starts - 1} time(s) while "
                           f"{running.version} was on probation")
            return
        self._write_marker(running.version, back_to, starts)
        self._trial = (running, None, None, back_to)

    def _read_marker(self) -> dict | None:
        try:
            return json.loads(self._marker.read_text())
        except (OSError, ValueError):
            return None

    def _write_marker(self, version: str, back_to: str | None, starts: int) -> None:
        try:
            durable.write_text(self._marker, json.dumps({"version": version, "back_to": back_to, "starts": starts}))
        except OSError as exc:
            log.error("model store: cannot record the probation of %s: %s", version, exc)

    def _clear_marker(self) -> None:
        try:
            self._marker.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.error("model store: cannot clear %s: %s", self._marker, exc)

    # -- following the store ----------------------------------------------------------------------
    def _link_target(self) -> str | None:
        try:
            return str(self._link.readlink())
        except OSError:
            return None

    def poll(self) -> None:
        """Follow a newly activated version, and judge the one on probation (call it often; it is cheap).

        Never raises: a failure here is logged and, for a version on trial, counts as its failure.
        """
        try:
            target = self._link_target()
            if target != self._seen:
                self._seen = target
                self._follow()
            elif self._trial is not None:
                self._judge()
        except Exception as exc:  # noqa: BLE001 - the service must outlive a bad update
            log.exception("model update check failed")
            if self._trial is not None:
                entry, _, _, back_to = self._trial
                self._trial = None
                self._rollback(entry.version, back_to, f"update check failed: {exc}")

    def _follow(self) -> None:
        installed = self.store.current(self.name)
        app = self._app()
        old = self._running()
        if installed is None or installed.version == old.version:
            return
        if self._trial is not None:  # another version activated during a trial: the trial is over
            self._trial = None
        back_to = old.version if old.version in self._trusted else None
        health = app.model_health(self.slot)
        baseline = health[old.generation].summary() if old.generation in health else None
        trusted = installed.version in self._trusted
        if not trusted:
            self._write_marker(installed.version, back_to, 1)
        try:
            entry = app.swap_model(self.slot, resolve_installed(installed, backend=self.backend, options=self.options))
        except Exception as exc:  # noqa: BLE001 - whatever a model does, the old one keeps running
            self._event("model_swap_failed", f"{self.name} {installed.version} did not start: {exc}",
                        version=installed.version)
            if not trusted:
                self._rollback(installed.version, back_to, f"{installed.version} did not start")
            return
        self._event("model_swap", f"{self.name} {old.version} -> {entry.version}", old=old.version, new=entry.version)
        if trusted:
            self._clear_marker()
            return
        budget = installed.manifest.golden.latency_budget_ms if installed.manifest.golden else None
        self._trial = (entry, baseline if back_to else None, budget, back_to)

    def _judge(self) -> None:
        entry, baseline, budget, back_to = self._trial
        health = self._app().model_health(self.slot).get(entry.generation)
        if health is None or self._running() is not entry:
            self._trial = None
            return
        now = health.summary()
        reasons = []
        if now["errors"] > self.probation.max_errors:
            reasons.append(f"{now['errors']} stage errors")
        if now["frames"] >= self.probation.frames:
            reasons += self._slow_or_unsure(now, baseline, budget)
        if reasons:
            self._trial = None
            self._rollback(entry.version, back_to, "; ".join(reasons), **now)
        elif now["frames"] >= self.probation.frames:
            self._trial = None
            self._trusted.add(entry.version)
            self._clear_marker()
            self._event("model_trusted", f"{self.name} {entry.version} passed probation over {now['frames']} frames",
                        version=entry.version, **now)

    def _slow_or_unsure(self, now: dict, baseline: dict | None, budget: float | None) -> list[str]:
        reasons = []
        p50 = now["infer_p50_ms"]
        old_p50 = baseline["infer_p50_ms"] if baseline else None
        if p50 is not None and old_p50 and p50 > old_p50 * self.probation.latency_factor \
                and p50 - old_p50 > self.LATENCY_FLOOR_MS:
            reasons.append(f"inference p50 {p50:.2f} ms, over {self.probation.latency_factor:g}x the "
                           f"previous model's {old_p50:.2f} ms")
        if p50 is not None and budget and p50 > budget:
            reasons.append(f"inference p50 {p50:.2f} ms over the bundle's budget of {budget:g} ms")
        old_top1 = baseline["mean_top1"] if baseline else None
        if old_top1 is not None and now["mean_top1"] is not None \
                and now["mean_top1"] < old_top1 - self.probation.confidence_drop:
            reasons.append(f"mean top-1 probability {now['mean_top1']:.2f} fell from {old_top1:.2f}")
        return reasons

    def _rollback(self, failed: str, back_to: str | None, why: str, **details) -> None:
        """Make `back_to` (the version that ran before `failed`) current again, once; the next poll follows."""
        self._clear_marker()
        try:
            back = self.store.activate(self.name, back_to) if back_to else self.store.rollback(self.name)
        except Exception as exc:  # noqa: BLE001
            self._event("model_rollback_failed", f"{self.name}: cannot roll back from {failed} ({exc}) after: {why}")
            return
        self._trusted.add(back.version)
        self._event("model_rollback", f"{self.name} {failed} rolled back to {back.version}: {why}",
                    failed=failed, to=back.version, **details)

    def _event(self, kind: str, message: str, **details) -> None:
        (log.warning if "rollback" in kind or "failed" in kind else log.info)("%s", message)
        if self.on_event is not None:
            try:
                self.on_event(kind, message, **details)
            except (EdgertError, JournalError, OSError) as exc:
                log.error("could not record %s event: %s", kind, exc)
