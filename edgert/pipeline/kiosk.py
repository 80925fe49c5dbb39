"""The waste-sorting kiosk: source -> preprocess -> infer -> decode -> decide, then actuators and journal.

`Kiosk` builds the stage graph from a validated `KioskConfig`, owns every device it opened (camera,
model, GPIO, journal) and puts the actuators in their safe state on start, on stop, on a stage
error, on a stall and on a model swap.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import edgert
from edgert.actuators import CANCELLED, build_actuators, make_pin_factory
from edgert.decisions import Policy, make_presence
from edgert.errors import ConfigError, JournalError
from edgert.journal import DecisionRecord, open_journal
from edgert.model_cards import read_card, resolve
from edgert.pipeline.graph import ChainStage, Graph, SourceStage
from edgert.pipeline.ground_truth import GroundTruth
from edgert.pipeline.inference import (
    InferStage,
    LoadedModel,
    ModelSlot,
    PreprocessStage,
)
from edgert.postprocess import classify
from edgert.sources import make_source

log = logging.getLogger(__name__)

STAGES = ("capture", "preprocess", "infer", "decode", "decide", "actuate")


def load_model(config, *, depth: int = 2) -> LoadedModel:
    """Load the model a `ModelConfig` names, with labels and preprocessing from its card and config.

    Raises:
        ModelError, BackendUnavailable, ConfigError: as `edgert.load` does, or when labels do not
            match the model's output.
    """
    path = resolve(config.path)
    card = read_card(path)
    model = edgert.load(path, backend=config.backend, **config.options)
    labels = tuple(config.labels) if config.labels is not None else card.labels
    classes = model.outputs[0].shape[-1]
    if labels and len(labels) != classes:
        model.close()
        raise ConfigError(f"model.labels: {len(labels)} names for a model with {classes} classes ({path})")
    if not labels:
        labels = tuple(str(i) for i in range(classes))
    preprocess = {**card.preprocess, **config.preprocess.arguments()}
    return LoadedModel(model, config.name or card.name, config.version or card.version, labels, preprocess)


@dataclass(frozen=True)
class ItemOutcome:
    """One decided item, for listeners (the demo's live output).

    Attributes:
        decision: The `edgert.decisions.Decision`.
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
        config: A validated `edgert.config.schema.KioskConfig`.
        listener: Optional ``listener(ItemOutcome)`` called on the decide thread after each item.
        pin_factory: A gpiozero pin factory to use instead of the one the config names (tests).
    """

    def __init__(self, config, listener=None, pin_factory=None):
        self.config = config
        self.listener = listener
        self.errors = 0
        self.journal_errors = 0
        self.frames_decided = 0
        self.items = 0
        self.fired = 0
        self.last_progress_ns = 0
        self.progress_hooks: list = []
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
        cfg = self.config
        state_dir = cfg.service.state_dir
        self.slot = ModelSlot(cfg.service.infer_depth)
        self._opened.append(self.slot.close)
        entry = load_model(cfg.model, depth=cfg.service.infer_depth)
        self.slot.install(entry)
        self.policy = Policy(cfg.policy, entry.labels)
        needs_pins = cfg.presence.kind == "beam_break" or cfg.actuators.devices
        if pin_factory is None and needs_pins:
            pin_factory = make_pin_factory(cfg.actuators.pin_factory)
            self._opened.append(pin_factory.close)
        self.presence = make_presence(cfg.presence, pin_factory)
        self._opened.append(self.presence.close)
        self.journal = open_journal(cfg.journal, state_dir)
        self._opened.append(self.journal.close)
        self.firing = build_actuators(cfg.actuators, self._on_fired, pin_factory=pin_factory)
        self._opened.append(self.firing.close)
        self.source = make_source(cfg.source)
        self._opened.append(self.source.close)
        self.graph = self._build_graph()

    def _build_graph(self) -> Graph:
        g = Graph(on_error=self._on_stage_error, extra_timings=("actuate",))
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
        if job.generation != self.slot.current.generation:
            return  # inferred by a model swapped out meanwhile: its classes may differ
        frame = job.frame
        present = self.presence.update(frame)
        self.truth.observe(frame)
        decision = self.policy.observe(present, job.result, frame.seq, frame.timestamp_ns)
        self.frames_decided += 1
        self.last_progress_ns = time.monotonic_ns()
        for hook in self.progress_hooks:
            hook()
        if decision is not None:
            self._act(job, decision)
        return

    def _act(self, job, decision) -> None:
        entry = job.entry
        self.items += 1
        latency = {k: v / 1e6 for k, v in job.times.items() if k != "decide"}
        truth_item = self.truth.item_between(decision.first_seq, decision.last_seq)
        truth = (self.truth.label_of(truth_item) if truth_item is not None
                 else self.truth.label_between(decision.first_seq, decision.last_seq))
        top = tuple((entry.labels[i], round(float(s), 4)) for i, s in job.result)
        snapshot = self._snapshot(job.frame) if self.journal.snapshots_enabled else None
        record = DecisionRecord(decision.item, job.frame.seq, time.time_ns(), entry.name, entry.version,
                                decision.label, top, decision.bin, decision.reason, latency, truth, snapshot)
        row = None
        try:
            row = self.journal.record(record)
        except JournalError as exc:  # the item is still sorted; the error is reported
            self.journal_errors += 1
            log.error("%s", exc)
        self.firing.schedule(decision.bin, decision.capture_ns, token=row)
        if self.listener is not None:
            self.listener(ItemOutcome(decision, truth, latency, row, truth_item))

    @staticmethod
    def _snapshot(frame):
        if frame.format in ("BGR", "RGB888"):
            return frame.pixels
        import cv2  # only when snapshots are on; the journal already required it

        codes = {"RGB": cv2.COLOR_RGB2BGR, "BGR888": cv2.COLOR_RGB2BGR, "NV12": cv2.COLOR_YUV2BGR_NV12,
                 "NV21": cv2.COLOR_YUV2BGR_NV21, "YUV420": cv2.COLOR_YUV2BGR_I420, "I420": cv2.COLOR_YUV2BGR_I420,
                 "GRAY": None}
        code = codes.get(frame.format, cv2.COLOR_BGRA2BGR)
        if code is None:
            return frame.pixels
        w, h = frame.size
        pixels = frame.pixels if frame.format not in ("NV12", "NV21") else frame.pixels[:, :w]
        return cv2.cvtColor(pixels, code)[:h, :w]

    def _on_fired(self, token, bin_, result, late_ms, error) -> None:
        self.graph.times.add("actuate", int(max(late_ms, 0.0) * 1e6))
        if error is None:
            self.fired += 1
        elif result != CANCELLED:
            self.errors += 1
            log.error("actuator for bin %s: %s", bin_, error)
        if token is not None:
            try:
                self.journal.set_actuation(token, result if error is None else f"error: {error}")
            except JournalError as exc:
                self.journal_errors += 1
                log.error("%s", exc)

    def _on_stage_error(self, stage, exc, item) -> None:
        self.errors += 1
        self.safe(f"{stage.name} failed")

    # -- control --------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the stage threads (actuators are already in their safe state)."""
        self.graph.start()

    def safe(self, reason: str) -> None:
        """Cancel pending firings and put every actuator in its safe state."""
        cancelled = self.firing.safe_all(reason)
        if cancelled:
            log.warning("safe state (%s): %d pending firing(s) cancelled", reason, cancelled)

    def swap_model(self, model_config) -> None:
        """Load a new model and make it current; frames prepared for the old one are dropped.

        Raises:
            EdgertError: the new model cannot be loaded (the old one keeps running).
        """
        entry = load_model(model_config, depth=self.config.service.infer_depth)
        try:
            policy = Policy(self.config.policy, entry.labels, first_item=self.policy.next_item)
        except ConfigError:
            entry.model.close()
            raise
        self.safe("model swap")
        self.slot.install(entry)
        self.policy = policy  # the decide thread picks it up at its next frame: no half-voted item
        log.info("model swapped to %s %s (generation %d)", entry.name, entry.version, entry.generation)

    def stop(self, timeout: float = 10.0) -> bool:
        """Drain in-flight frames, put actuators in the safe state; True if every stage ended."""
        drained = self.graph.stop(timeout)
        self.safe("stop")
        return drained

    def close(self) -> None:
        """Stop if running and free every device, in reverse opening order."""
        graph = getattr(self, "graph", None)
        if graph is not None and graph.running:
            self.stop()
        while self._opened:
            closer = self._opened.pop()
            try:
                closer()
            except Exception:  # noqa: BLE001 - free the rest regardless
                log.exception("closing %s failed", getattr(closer, "__qualname__", closer))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- reporting ------------------------------------------------------------------------------
    @property
    def model(self) -> LoadedModel:
        return self.slot.current

    def stats(self) -> dict:
        stats = self.graph.stats()
        stats.update(frames_decided=self.frames_decided, items=self.items, fired=self.fired, errors=self.errors,
                     journal_errors=self.journal_errors,
                     source=self.source.health, pending_firings=self.firing.pending())
        return stats

