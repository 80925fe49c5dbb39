"""The waste-sorting kiosk: source -> preprocess -> infer -> decode -> decide, then actuators and journal.

`Kiosk` is an `edgert.pipeline.app.App`: it builds the stage graph from a validated `KioskConfig` and
the service's `AppContext`, owns every device it opened (camera, model, GPIO, journal), journals the
service's events, and puts the actuators in their safe state on start, on stop, on a stage error,
on a stall and on a model swap.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from edgert.actuators import CANCELLED, build_actuators, make_pin_factory
from edgert.apps.kiosk.ground_truth import GroundTruth
from edgert.apps.kiosk.policy import Policy
from edgert.apps.kiosk.presence import make_presence
from edgert.core.errors import (
    ClosedError,
    ConfigError,
    DeviceError,
    JournalError,
    SourceError,
)
from edgert.core.frame import frame_as_bgr
from edgert.journal import DecisionRecord, open_journal
from edgert.models.health import ModelHealth, top1_probability
from edgert.models.loaded import LoadedModel
from edgert.pipeline.app import AppHealth, close_in_reverse
from edgert.pipeline.graph import ChainStage, Graph, SourceStage
from edgert.pipeline.inference import (
    InferStage,
    ModelSlot,
    PreprocessStage,
    swap_checked,
)
from edgert.postprocess import classify
from edgert.sources import make_source

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class ItemOutcome:
    """One decided item, for listeners (the demo's live output).

    Attributes:
        decision: The `edgert.apps.kiosk.Decision`.
        truth: Ground truth from the source (synthetic scenes), else None (also while the item has
            not been entirely in view yet: ask `Kiosk.truth.label_of(truth_item)` later).
        truth_item: The source's id of the item (synthetic scenes), else None.
        latency_ms: Milliseconds per stage of the deciding frame.
        journal_row: The journal row id, or None when the journal failed.
    """

    decision: object
    truth: str | None
    latency_ms: dict
    journal_row: int | None
    truth_item: object = None


class Kiosk:
    """The kiosk loop, built from config and run as a graph of stage threads.

    Args:
        config: A validated `edgert.apps.kiosk.config.KioskConfig` (or a whole file's config).
        context: The service's `AppContext` (state directory, model loading, events, progress).
        listener: Optional ``listener(ItemOutcome)`` called on the decide thread after each item.
        pin_factory: A gpiozero pin factory to use instead of the one the config names (tests).
    """

    #: The one model slot of the kiosk.
    SLOT = "classifier"

    def __init__(self, config, context, listener=None, pin_factory=None):
        self.config = config
        self.context = context
        self.listener = listener
        self._stopped = None
        self._snapshots = False
        self._was_present = False
        self._item_snapshot = None
        self.errors = 0
        self.journal_errors = 0
        self.frames_decided = 0
        self.items = 0
        self.fired = 0
        self.last_progress_ns = 0
        self.truth = GroundTruth()
        self._lock = threading.Lock()
        self._opened: list = []  # closers, in opening order
        try:
            self._open(pin_factory)
        except BaseException:
            self.close()
            raise

    # -- assembly -------------------------------------------------------------------------------
    def _open(self, pin_factory) -> None:
        cfg, ctx = self.config, self.context
        # Decisions; the service journals the events of ctx.events into the same file (edgert.service.events).
        self.journal = open_journal(cfg.journal, ctx.state_dir)
        self._opened.append(self.journal.close)
        unfinished = self.journal.mark_unfinished()
        if unfinished:
            log.warning("journal: %d decision(s) of an earlier run had no actuation result; marked unknown", unfinished)
        self._snapshots = self.journal.snapshots_enabled
        self.slot = ModelSlot(ctx.infer_depth)
        self._opened.append(self.slot.close)
        entry = ctx.load_model(cfg.model, "classify", check=self._fits_bins, at_start=True)
        self.slot.install(entry)
        self.policy = Policy(cfg.policy, entry.labels)
        self._policy_generation = entry.generation
        self._model_health = {entry.generation: ModelHealth(entry.generation)}
        needs_pins = cfg.presence.kind == "beam_break" or cfg.actuators.devices
        if pin_factory is None and needs_pins:
            pin_factory = make_pin_factory(cfg.actuators.pin_factory)
            self._opened.append(pin_factory.close)
        self.presence = make_presence(cfg.presence, pin_factory)
        self._opened.append(self.presence.close)
        self.firing = build_actuators(cfg.actuators, self._on_fired, pin_factory=pin_factory)
        self._opened.append(self.firing.close)
        self.source = make_source(cfg.source)
        self._opened.append(self.source.close)
        self.graph = self._build_graph()

    def _fits_bins(self, entry: LoadedModel) -> None:
        """Raise `ConfigError` when a model's classes do not fit the bin map."""
        Policy(self.config.policy, entry.labels)

    def _build_graph(self) -> Graph:
        g = Graph(on_error=self._on_stage_error, extra_timings=("journal", "actuate"))
        capture = g.add(SourceStage("capture", self.source))
        pre = g.add(PreprocessStage("preprocess", self.slot))
        infer = g.add(InferStage("infer", self.slot))
        decide = g.add(ChainStage("decide", [("decode", self._decode), ("decide", self._decide)]))
        live = getattr(self.source, "live", True)
        g.connect(capture, pre, latest=live, maxsize=1)
        g.connect(pre, infer, latest=live, maxsize=1)
        g.connect(infer, decide, maxsize=4)
        return g

    # -- stage bodies ---------------------------------------------------------------------------
    def _decode(self, job):
        entry = job.entry
        job.result = classify(job.outputs[0], entry.model.outputs[0], top_k=self.config.model.top_k)
        return job

    def _decide(self, job):
        if job.model_generation != self._policy_generation:
            self._follow_model(job.entry)
        frame = job.frame
        present = self.presence.update(frame)
        self.truth.observe(frame)
        self._track_snapshot(frame, present)
        decision = self.policy.observe(present, job.result, frame.seq, frame.timestamp_ns)
        health = self._model_health.get(job.model_generation)
        if health is not None:
            health.add(job.times.get("infer", 0), top1_probability(job.outputs[0], job.entry.model.outputs[0]))
        self.frames_decided += 1
        self.last_progress_ns = time.monotonic_ns()
        self.context.on_progress()
        if decision is not None:
            self._act(job, decision)

    def _track_snapshot(self, frame, present: bool) -> None:
        """Ask a camera with a full-size stream for one picture as each item arrives (journal snapshots)."""
        if not self._snapshots:
            return
        if present and not self._was_present:
            self._item_snapshot = None
            request = getattr(self.source, "request_snapshot", None)
            if request is not None:
                request()
        self._was_present = present
        picture = frame.meta.get("snapshot")
        if picture is not None:
            self._item_snapshot = picture

    def _follow_model(self, entry) -> None:
        """The first frame of another model generation: decide with that model's classes from here on.

        With the same classes the policy carries on, so an item half-voted across the switch is still
        decided; with other classes a new policy starts (item numbers continue).
        """
        if tuple(entry.labels) != self.policy.labels:
            self.policy = Policy(self.config.policy, entry.labels, first_item=self.policy.next_item)
        self._policy_generation = entry.generation

    def _act(self, job, decision) -> None:
        entry = job.entry
        self.items += 1
        latency = {k: v / 1e6 for k, v in job.times.items() if k != "decide"}
        truth_item = self.truth.item_between(decision.first_seq, decision.last_seq)
        truth = (self.truth.label_of(truth_item) if truth_item is not None
                 else self.truth.label_between(decision.first_seq, decision.last_seq))
        top = tuple((entry.labels[i], round(float(s), 4)) for i, s in job.result)
        snapshot = self._decision_snapshot(job.frame) if self._snapshots else None
        record = DecisionRecord(decision.item, job.frame.seq, time.time_ns(), entry.name, entry.version,
                                decision.label, top, decision.bin, decision.reason, latency, truth, snapshot)
        row = None
        t0 = time.perf_counter_ns()
        try:
            row = self.journal.record(record)
        except JournalError as exc:  # the item is still sorted; the error is reported
            self._count("journal_errors")
            log.error("%s", exc)
        self.graph.times.add("journal", time.perf_counter_ns() - t0)
        self.firing.schedule(decision.bin, decision.capture_ns, token=row)
        if self.listener is not None:
            try:
                self.listener(ItemOutcome(decision, truth, latency, row, truth_item))
            except Exception:  # noqa: BLE001 - a listener's trouble must not touch the sorting
                log.exception("item listener failed")

    def _decision_snapshot(self, frame):
        """The item's picture: the camera's full-size one if it gave one, else the frame converted."""
        if self._item_snapshot is not None:
            return self._item_snapshot
        try:
            return self._frame_as_bgr(frame)
        except Exception:  # noqa: BLE001 - no picture is better than no decision
            log.exception("snapshot conversion failed")
            return None

    _frame_as_bgr = staticmethod(frame_as_bgr)

    def _on_fired(self, token, bin_, result, late_ms, error) -> None:
        if error is None:
            self._count("fired")
            self.graph.times.add("actuate", int(max(late_ms, 0.0) * 1e6))
        elif result != CANCELLED:
            self._count("errors")
            log.error("actuator for bin %s: %s", bin_, error)
        if token is not None:
            try:
                self.journal.set_actuation(token, result if error is None else f"{result}: {error}")
            except JournalError as exc:
                self._count("journal_errors")
                log.error("%s", exc)

    def _on_stage_error(self, stage, exc, item) -> None:
        self._count("errors")
        health = self._model_health.get(getattr(item, "model_generation", None))
        if health is not None:
            health.error()
        if isinstance(exc, (DeviceError, SourceError, ClosedError)):
            self.safe(f"{stage.name} failed")  # the device or camera is in trouble, not just one frame

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    # -- control --------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the stage threads (actuators are already in their safe state)."""
        self.graph.start()

    def safe(self, reason: str) -> None:
        """Cancel pending firings and put every actuator in its safe state."""
        cancelled = self.firing.safe_all(reason)
        if cancelled:
            log.warning("safe state (%s): %d pending firing(s) cancelled", reason, cancelled)

    def swap_model(self, slot: str, model) -> LoadedModel:
        """Load a model beside the running one, warm it up, and switch to it at a frame boundary.

        Every frame runs on the model it was prepared for and is decided with that model's classes
        (generation stamps), so the switch drops no frame and loses no decision; firings already
        scheduled still happen. The old model is closed once its last frame is through.

        Args:
            slot: `SLOT` (the kiosk runs one model).
            model: A `ModelConfig`, or a `LoadedModel` already loaded.

        Returns:
            The model now current.

        Raises:
            EdgertError: the new model cannot be loaded, or its classes do not fit the bin map (the
                old one keeps running).
        """
        if slot != self.SLOT:
            if isinstance(model, LoadedModel):
                model.model.close()
            raise ConfigError(f"kiosk: no model slot {slot!r} (it has {self.SLOT!r})")
        entry = model if isinstance(model, LoadedModel) else self.context.load_model(model, "classify")
        self._model_health = swap_checked(self.slot, entry, self._fits_bins, self._model_health)
        return entry

    def stop(self, timeout: float = 8.0) -> bool:
        """Drain in-flight frames, put actuators in the safe state; True if every stage ended.

        The default drain leaves time within systemd's stop timeout (20 s) to close devices.
        """
        if self._stopped is None:
            self._stopped = self.graph.stop(timeout)
            self.safe("stop")
        return self._stopped

    def close(self) -> None:
        """Stop if running and free every device, in reverse opening order."""
        graph = getattr(self, "graph", None)
        if graph is not None and (graph.running or self._stopped is None):
            self.stop()
        if graph is not None and graph.running:
            # A stage is stuck inside a device call: closing the model under it could crash in
            # native code. Leave it to the process exit.
            log.error("stages still running after stop; the model is left open")
            self._opened = [c for c in self._opened if c != self.slot.close]
        close_in_reverse(self._opened)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- reporting ------------------------------------------------------------------------------
    @property
    def model(self) -> LoadedModel:
        return self.slot.current

    def models(self) -> dict:
        return {self.SLOT: self.slot.current}

    def model_health(self, slot: str) -> dict:
        return self._model_health if slot == self.SLOT else {}

    def health(self) -> AppHealth:
        health = self.source.health
        failed = None
        if not self.graph.running and health.state != "ended":
            failed = f"source failed: {health.last_error or 'stopped'}"
        return AppHealth(self.graph.running, self.frames_decided, self.last_progress_ns,
                         {self.source.name: health}, failed)

    def status(self) -> str:
        entry = self.slot.current
        return (f"model {entry.name} {entry.version} on {entry.model.backend}, "
                f"{self.frames_decided} frames, {self.items} items").replace("  ", " ")

    def reconfigure(self, new_config) -> bool:
        """A change of the model alone is swapped in place; anything else needs a rebuild."""
        if new_config.model_dump(exclude={"model"}) != self.config.model_dump(exclude={"model"}):
            return False
        self.swap_model(self.SLOT, new_config.model)
        self.config = new_config
        return True

    def stats(self) -> dict:
        stats = self.graph.stats()
        stats.update(frames_decided=self.frames_decided, items=self.items, fired=self.fired, errors=self.errors,
                     journal_errors=self.journal_errors,
                     source=self.source.health, pending_firings=self.firing.pending())
        return stats

