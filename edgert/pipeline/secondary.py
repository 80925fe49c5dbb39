"""Secondary models on crops of tracked objects: which tracks get a crop (`CropSelector`), how many per frame
(`CropBudget`), and the stage that runs them (`CropStage`).

A secondary model (a face detector inside person boxes, an embedder, a plate reader, a vehicle
classifier) sees crops of the full-resolution frame of selected tracks only:

* a **new** track (never cropped for this model) comes first, oldest first;
* a track whose current view is **better** than the one last used (its quality, by default the box
  area, grew by ``better_by``), largest gain first;
* a track marked **confident** by whoever reads the results (a face named, a plate voted, a vehicle
  classified once) gets no more crops; nor does one that reached ``max_runs``.

A `CropBudget` bounds the crops handed out per frame (``max_crops``) and/or the share of time the
secondary model's device may spend (``time_share``: a token bucket filled at that share of the wall
clock, emptied by the measured device time of each call), so the primary detector's rate holds. The
`CropStage` takes a frame with its chosen boxes, preprocesses all boxes in one compiled pass
(`Preprocessor.regions`) into the model's batch, runs the model (in chunks of its batch size) and hands
each crop's raw outputs to a ``decode`` callable, then the results to ``deliver``. Its inbox never
blocks the caller: `CropStage.offer` refuses a request when the stage is still busy with earlier ones
(the tracks stay eligible for the next frame).

Everything here is deterministic given the calls and the clock values passed in (tests drive it with
counts and fake times).
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np

from edgert.core.errors import ConfigError
from edgert.pipeline.channels import END, Channel
from edgert.pipeline.graph import Stage
from edgert.pipeline.streams import sample_spec
from edgert.preprocess import Preprocessor
from edgert.regions import region_placement, valid_boxes

log = logging.getLogger(__name__)

#: Why a track was chosen for a crop.
REASONS = ("new", "better")


@dataclass(frozen=True)
class Candidate:
    """A tracked object in this frame that a secondary model could look at.

    Attributes:
        key: The track's key (unique while it lives: camera and track id).
        box: ``(x0, y0, x1, y1)`` frame pixels.
        quality: How good this view is (larger is better; box area by default).
        born: An ordering value of the track's birth (older first among new tracks): its first frame index or time.
    """

    key: Hashable
    box: tuple
    quality: float
    born: float = 0.0


@dataclass
class _TrackState:
    used_quality: float = 0.0
    runs: int = 0
    confident: bool = False
    pending: bool = False


class CropSelector:
    """Which tracks a secondary model crops in a frame, by the rules in the module docstring.

    Args:
        better_by: A track is cropped again when its view's quality is at least this many times the one
            last used (> 1; ``math.inf``: once per track).
        max_runs: Crops of one track at most (None: no limit).
    """

    def __init__(self, better_by: float = 1.5, max_runs: int | None = None):
        if not better_by > 1.0:
            raise ConfigError(f"better_by: must be more than 1, got {better_by}")
        if max_runs is not None and max_runs < 1:
            raise ConfigError(f"max_runs: must be at least 1, got {max_runs}")
        self.better_by = float(better_by)
        self.max_runs = max_runs
        self._tracks: dict = {}

    def reason(self, candidate: Candidate) -> str | None:
        """``"new"``, ``"better"`` or None (not wanted now)."""
        state = self._tracks.get(candidate.key)
        if state is None or (state.runs == 0 and not state.confident):
            return None if state is not None and state.pending else "new"
        if state.confident or state.pending or (self.max_runs is not None and state.runs >= self.max_runs):
            return None
        return "better" if candidate.quality >= state.used_quality * self.better_by else None

    def choose(self, candidates, allowance: int) -> list[tuple[Candidate, str]]:
        """Up to `allowance` ``(candidate, reason)``: new tracks oldest first, then better views by gain."""
        if allowance <= 0:
            return []
        new, better = [], []
        for c in candidates:
            why = self.reason(c)
            if why == "new":
                new.append(c)
            elif why == "better":
                gain = c.quality / max(self._tracks[c.key].used_quality, 1e-12)
                better.append((gain, c))
        new.sort(key=lambda c: (c.born, str(c.key)))
        better.sort(key=lambda gc: (-gc[0], gc[1].born, str(gc[1].key)))
        picked = [(c, "new") for c in new] + [(c, "better") for _, c in better]
        return picked[:allowance]

    def sent(self, key: Hashable, quality: float) -> None:
        """A crop of the track at that quality went to the model (it is not chosen again until it returns)."""
        state = self._tracks.setdefault(key, _TrackState())
        state.used_quality, state.runs, state.pending = float(quality), state.runs + 1, True

    def returned(self, key: Hashable) -> None:
        """The model's result for the track's crop is in (or the crop failed): it may be chosen again."""
        state = self._tracks.get(key)
        if state is not None:
            state.pending = False

    def dropped(self, key: Hashable) -> None:
        """A crop sent was never run (the stage was busy): undo `sent`."""
        state = self._tracks.get(key)
        if state is not None:
            state.runs, state.pending = max(0, state.runs - 1), False
            if state.runs == 0:
                state.used_quality = 0.0

    def confident(self, key: Hashable) -> None:
        """The results for the track are settled: no more crops of it."""
        self._tracks.setdefault(key, _TrackState()).confident = True

    def is_confident(self, key: Hashable) -> bool:
        state = self._tracks.get(key)
        return state is not None and state.confident

    def runs(self, key: Hashable) -> int:
        state = self._tracks.get(key)
        return 0 if state is None else state.runs

    def forget(self, key: Hashable) -> None:
        """The track ended."""
        self._tracks.pop(key, None)

    def __len__(self) -> int:
        return len(self._tracks)


class CropBudget:
    """How many crops a secondary model may take in a frame.

    Args:
        max_crops: Crops per frame at most (None: no count limit).
        time_share: Fraction of wall time the secondary's device calls may take (0 < share <= 1; None: no
            time limit). A token bucket: it fills at ``time_share`` of the time between frames (up to
            ``burst_s`` worth), each call empties it by its measured duration, and a frame gets as many
            crops as the bucket covers at the measured cost per crop (one at least when the bucket is
            positive, so the cost gets measured).
        burst_s: Seconds of wall time the bucket may bank.
    """

    def __init__(self, max_crops: int | None = 4, time_share: float | None = None, burst_s: float = 0.5):
        if max_crops is not None and max_crops < 1:
            raise ConfigError(f"max_crops: must be at least 1, got {max_crops}")
        if time_share is not None and not 0 < time_share <= 1:
            raise ConfigError(f"time_share: must be in (0, 1], got {time_share}")
        if max_crops is None and time_share is None:
            raise ConfigError("a crop budget needs max_crops or time_share (or both)")
        self.max_crops, self.time_share, self.burst_ns = max_crops, time_share, int(burst_s * 1e9)
        self.cost_ns: float | None = None  # measured device time per crop (moving average)
        self._bucket = 0.0
        self._last_ns: int | None = None
        self._lock = threading.Lock()
        self.granted = 0
        self.refused = 0

    def allowance(self, now_ns: int, wanted: int) -> int:
        """The crops this frame may take of the `wanted` ones (the refused part is counted)."""
        allowed = wanted if self.max_crops is None else min(wanted, self.max_crops)
        if self.time_share is not None:
            with self._lock:
                if self._last_ns is not None:
                    fill = self.time_share * max(0, now_ns - self._last_ns)
                    self._bucket = min(self._bucket + fill, self.time_share * self.burst_ns)
                self._last_ns = now_ns
                if self._bucket <= 0 and self._last_ns is not None and self.cost_ns is not None:
                    allowed = 0
                elif self.cost_ns:
                    allowed = min(allowed, max(1, int(self._bucket // self.cost_ns)))
        allowed = max(0, allowed)
        self.granted += allowed
        self.refused += wanted - allowed
        return allowed

    def spent(self, crops: int, device_ns: int) -> None:
        """A call over `crops` crops took `device_ns`: charge the bucket, update the cost per crop."""
        if crops <= 0:
            return
        with self._lock:
            self._bucket -= device_ns
            per = device_ns / crops
            self.cost_ns = per if self.cost_ns is None else 0.8 * self.cost_ns + 0.2 * per


@dataclass
class CropRequest:
    """One frame's crops for a secondary model.

    Attributes:
        frame: The full-resolution `Frame`.
        picked: ``[(Candidate, reason), ...]``.
        context: Whatever the caller wants back with the results (camera id, detector name...).
        boxes: ``(N, 4)`` float64 boxes actually run (set by the stage: invalid boxes are skipped).
        outputs: Per crop, the model's raw outputs of its batch row (set by the stage).
        placements: Per crop, the `edgert.geometry.Placement` of its box in the model input.
        done: Set once the request is delivered or dropped (only for requests offered with ``wait``).
        entry: The `LoadedModel` that ran it (set by the stage: a swap lands between requests, never inside one).
        infer_ns: Device time of its calls, in nanoseconds (set by the stage).
    """

    frame: object
    picked: list
    context: dict = field(default_factory=dict)
    boxes: np.ndarray | None = None
    outputs: list = field(default_factory=list)
    placements: list = field(default_factory=list)
    done: threading.Event | None = None
    entry: object = None
    infer_ns: int = 0


class CropStage(Stage):
    """Runs one secondary model over the crops of `CropRequest` items, from its own `ModelSlot`.

    The slot's model is read once per request: a swap takes effect at the next request (a crop boundary),
    and the models it retired are closed there, once none of their requests is left.

    Args:
        name: Stage name (also its timing row).
        slot: The `edgert.pipeline.inference.ModelSlot` of the secondary model.
        decode: ``decode(entry, outputs, request, k) -> result`` for crop ``k`` (``outputs``: its batch row).
        deliver: ``deliver(request, results)`` with one result per crop of ``request.picked`` (None for a
            crop that was skipped or failed).
        budget: The `CropBudget` charged with each device call, or None.
        queue: Requests waiting at most (the rest are refused by `offer`).
    """

    def __init__(self, name: str, slot, decode, deliver, budget: CropBudget | None = None, queue: int = 1):
        super().__init__(name)
        self.slot, self.decode, self.deliver, self.budget = slot, decode, deliver, budget
        self.inbox = Channel(queue, name, on_drop=_finished)  # a request put after the end is dropped
        self._pres: dict = {}
        self.crops = 0
        self.calls = 0
        self.skipped_boxes = 0
        self.refused = 0

    def offer(self, request: CropRequest, wait: bool = False) -> bool:
        """Queue a request unless the stage is busy (full inbox); False when refused (never blocks).

        With `wait`, the caller waits until the request is delivered: for streams read as fast as
        they are processed (files, folders), whose frames wait for the detector too, so that which
        tracks get crops does not depend on timing and a run is repeatable.
        """
        if wait:
            request.done = threading.Event()
            self.inbox.put(request)
            request.done.wait()
            return True
        if self.inbox.offer(request):
            return True
        self.refused += 1
        return False

    def run(self) -> None:
        while (item := self.inbox.get()) is not END:
            if item is not None:
                try:
                    self._handle(item)
                finally:
                    _finished(item)

    def process(self, request: CropRequest):
        entry = request.entry = self.slot.current
        if self.slot.has_retired:  # this thread is a slot's only runner: no request of an older model is left
            self.slot.close_retired(older_than=entry.generation)
        frame = request.frame
        boxes = np.asarray([c.box for c, _ in request.picked], np.float64).reshape(-1, 4)
        ok = valid_boxes(boxes, frame.size)
        self.skipped_boxes += int((~ok).sum())
        request.boxes = boxes
        results: list = [None] * len(boxes)
        index = np.flatnonzero(ok)
        if len(index):
            pre = self._preprocessor(entry, frame)
            batch = pre.regions(frame.pixels, boxes[index])
            rows = self._infer(entry, batch, request)
            dst = (pre.spec.shape[2], pre.spec.shape[1]) if pre.spec.shape[-1] in (1, 3, 4) else \
                (pre.spec.shape[3], pre.spec.shape[2])
            request.placements = [None] * len(boxes)
            request.outputs = [None] * len(boxes)
            for j, k in enumerate(index.tolist()):
                request.placements[k] = region_placement(boxes[k], dst, pre.resize, frame.size, pre.pixel_centers)
                request.outputs[k] = rows[j]
                results[k] = self.decode(entry, rows[j], request, k)
        self.deliver(request, results)
        return None

    def _infer(self, entry, batch: np.ndarray, request: CropRequest) -> list:
        """Run the model over the batch in chunks of its batch size; per crop, its outputs (batch rows)."""
        spec = entry.model.inputs[0]
        size = int(spec.shape[0] or 1)
        rows: list = []
        for start in range(0, len(batch), size):
            chunk = batch[start:start + size]
            n = len(chunk)
            x = chunk if n == size else np.concatenate([chunk, np.zeros((size - n, *chunk.shape[1:]), chunk.dtype)])
            t0 = time.perf_counter_ns()
            outputs = entry.model.run(np.ascontiguousarray(x))
            dt = time.perf_counter_ns() - t0
            request.infer_ns += dt
            self.calls += 1
            self.crops += n
            if self.budget is not None:
                self.budget.spent(n, dt)
            batched = size > 1
            for r in range(n):
                rows.append([o[r:r + 1] for o in outputs] if batched else list(outputs))
        return rows

    def _preprocessor(self, entry, frame) -> Preprocessor:
        meta = frame.meta
        key = (entry.generation, frame.format, tuple(frame.size), meta.get("yuv_range"), meta.get("yuv_matrix"))
        pre = self._pres.get(key)
        if pre is None:
            row = sample_spec(entry.model.inputs[0])
            extra = {k: meta[k] for k in ("yuv_range", "yuv_matrix") if k in meta}
            if len(self._pres) > 8:
                self._pres.clear()
            pre = self._pres[key] = Preprocessor(row, src_format=frame.format, src_size=tuple(frame.size),
                                                 **entry.preprocess, **extra)
        return pre

    def _failed(self, item, exc: BaseException) -> None:
        super()._failed(item, exc)
        if isinstance(item, CropRequest):
            try:
                self.deliver(item, [None] * len(item.picked))
            except Exception:  # noqa: BLE001 - the stage runs on
                log.exception("%s: delivering a failed request", self.name)


def _finished(request) -> None:
    if getattr(request, "done", None) is not None:
        request.done.set()


def quality_of(box) -> float:
    """The default view quality: the box's area in pixels (0 for an empty box)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = x1 - x0, y1 - y0
    return w * h if w > 0 and h > 0 and math.isfinite(w * h) else 0.0
