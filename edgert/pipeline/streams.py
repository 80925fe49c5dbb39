"""Several streams sharing one model: a fair inbox (`FairSlots`) and the stage that serves it (`SharedModelStage`).

Each stream has a one-frame slot of its own: for a live camera the newest frame wins (a slow model
never builds a backlog), for a file or folder `put` waits (every frame is processed). The model stage
takes frames by deficit round-robin weighted by each stream's target fps: a 30-fps camera and a 5-fps
one each get their share of the device, a stream with no new frame is skipped (never waited for),
and a stream whose slot is empty banks no credit. Where the model's input takes a batch (batch
dimension > 1) one device call serves up to that many streams, each frame in its own batch row.

    slots = FairSlots("detector")
    slots.add_stream("gate", fps=30); slots.add_stream("yard", fps=5)
    stage = SharedModelStage("detector", model_slot)
    stage.inbox = slots                        # before Graph.connect(camera, stage, latest=True)

Frames keep their stream id (`Job.stream_id`) and capture time (`Frame.timestamp_ns`); the job also
carries the `Preprocessor` that made its tensor (`Job.preprocessor`), to map boxes back to the frame.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from edgert.core.errors import ConfigError
from edgert.core.tensor import TensorSpec
from edgert.pipeline.channels import END, Channel, LatestSlot
from edgert.pipeline.graph import SourceStage, Stage
from edgert.pipeline.job import Job
from edgert.preprocess import Preprocessor

log = logging.getLogger(__name__)


@dataclass
class _Share:
    """One stream's place in a `FairSlots`."""

    stream_id: str
    quantum: float
    live: bool
    item: object = None
    deficit: float = 0.0
    offered: int = 0
    taken: int = 0
    dropped: int = 0


@dataclass(frozen=True)
class StreamCounts:
    """What a `FairSlots` did with one stream's frames.

    Attributes:
        offered: Frames put into the stream's slot.
        taken: Frames handed to the model.
        dropped: Frames replaced by a newer one before the model took them (newest wins).
        fps: The stream's target fps (its weight).
    """

    offered: int
    taken: int
    dropped: int
    fps: float


class FairSlots(LatestSlot):
    """The inbox of a model several streams share: one slot per stream, taken by weighted deficit round-robin.

    Args:
        name: For stats and logs.
        on_drop: Called with each frame replaced or refused (to recycle its buffers).
    """

    def __init__(self, name: str = "", on_drop=None):
        super().__init__(name, on_drop)
        self._shares: dict[str, _Share] = {}
        self._order: list[_Share] = []
        self._cursor = 0
        self._fps: dict[str, float] = {}

    def add_stream(self, stream_id: str, fps: float, live: bool = True) -> None:
        """Give a stream a slot, weighted by its target fps (before frames flow).

        Raises:
            ConfigError: a stream added twice, or an fps that is not a positive number.
        """
        if stream_id in self._shares:
            raise ConfigError(f"{self.name}: stream {stream_id!r} added twice")
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise ConfigError(f"{self.name}: stream {stream_id!r}: fps must be a positive number, got {fps!r}")
        with self._lock:
            self._fps[stream_id] = float(fps)
            share = _Share(stream_id, 1.0, bool(live))
            self._shares[stream_id] = share
            self._order.append(share)
            top = max(self._fps.values())
            for s in self._order:
                s.quantum = self._fps[s.stream_id] / top

    @property
    def streams(self) -> tuple[str, ...]:
        return tuple(s.stream_id for s in self._order)

    def put(self, item) -> None:
        """Put a stream's frame (a `Job`) in its slot: replace the unread one (live) or wait for room (files)."""
        share = self._shares.get(getattr(item, "stream_id", None))
        if share is None:
            raise ConfigError(f"{self.name}: frame of unknown stream {getattr(item, 'stream_id', None)!r}")
        old = None
        with self._lock:
            while not share.live and share.item is not None and not self._ended:
                self._not_full.wait()
            share.offered += 1
            if self._ended:
                self.dropped += 1
                share.dropped += 1
                old = item
            else:
                if share.item is not None:
                    old = share.item
                    self.dropped += 1
                    share.dropped += 1
                share.item = item
                self._not_empty.notify()
        if old is not None and self._on_drop is not None:
            self._on_drop(old)

    def get(self, timeout: float | None = None):
        """One frame, by the fair order; `END` once ended and empty; ``None`` on timeout."""
        batch = self.take(1, timeout)
        return batch if batch is END or batch is None else batch[0]

    def take(self, n: int, timeout: float | None = None):
        """Up to `n` frames of different streams, in the fair order, without waiting for more than one.

        Returns:
            A list of 1..n jobs; `END` once ended and every slot is empty; ``None`` on timeout.
        """
        with self._not_empty:
            while not any(s.item is not None for s in self._order):
                if self._ended:
                    return END
                if not self._not_empty.wait(timeout):
                    return None
            batch = []
            while len(batch) < n and (share := self._pick()) is not None:
                batch.append(share.item)
                share.item = None
                share.taken += 1
            self._not_full.notify_all()
            return batch

    def _pick(self) -> _Share | None:
        """The next stream to serve (deficit round-robin); None when no slot holds a frame."""
        ready = [s for s in self._order if s.item is not None]
        if not ready:
            return None
        for s in self._order:
            if s.item is None:
                s.deficit = 0.0  # an idle stream banks no credit
        rounds = min(max(0, math.ceil((1.0 - s.deficit) / s.quantum - 1e-9)) for s in ready)
        if rounds:
            for s in ready:
                s.deficit += rounds * s.quantum
        count = len(self._order)
        for k in range(count):
            share = self._order[(self._cursor + k) % count]
            if share.item is not None and share.deficit >= 1.0 - 1e-9:
                share.deficit -= 1.0
                self._cursor = (self._cursor + k + 1) % count
                return share
        return None  # not reached: the stream needing fewest rounds now has a whole credit

    def __len__(self) -> int:
        return sum(s.item is not None for s in self._order)

    def counts(self) -> dict[str, StreamCounts]:
        """``{stream_id: StreamCounts}``."""
        with self._lock:
            return {s.stream_id: StreamCounts(s.offered, s.taken, s.dropped, self._fps[s.stream_id])
                    for s in self._order}


class StreamStage(SourceStage):
    """A camera of a multi-stream graph: reads its source and sends each frame, with its stream id, downstream.

    Each downstream stage (one per model the camera feeds) gets a `Job` of its own for the frame, so
    two detectors can work on the same picture.

    Args:
        stream_id: The camera's id (`Job.stream_id`).
        source: Its `edgert.sources.base.Source`.
        read_timeout: Seconds a read may take before the source counts as failed (and reconnects).
    """

    def __init__(self, stream_id: str, source, read_timeout: float = 2.0):
        super().__init__(f"capture-{stream_id}", source, read_timeout)
        self.stream_id = stream_id
        self.last_frame_ns = 0

    def emit(self, item) -> None:
        self.last_frame_ns = time.monotonic_ns()
        for out in self.outputs:
            out.inbox.put(Job(item.frame, item.times.get("capture", 0), stream_id=self.stream_id))


def sample_spec(spec: TensorSpec) -> TensorSpec:
    """The spec of one batch row of `spec` (batch dimension 1)."""
    return TensorSpec(spec.name, (1,) + tuple(spec.shape[1:]), spec.dtype, spec.quant)


class SharedModelStage(Stage):
    """Serves the streams of a `FairSlots` inbox from one `ModelSlot`, batching where the model takes a batch.

    Frames are preprocessed here, after the fair choice (a frame dropped by newest-wins is never
    preprocessed), with a `Preprocessor` per stream geometry (a stream that changes resolution gets
    a new one). Up to ``depth`` device calls are kept in flight on an asynchronous backend; a second
    thread collects their results in order and sends each job, with ``outputs`` holding its own
    batch row, downstream. Every job runs on the model generation it was prepared for (a swap waits
    for the old model's calls to finish, then closes it).

    Args:
        name: Stage name.
        slot: The `edgert.pipeline.inference.ModelSlot`.
        depth: Device calls in flight (default: the slot's depth).
    """

    def __init__(self, name: str, slot, depth: int | None = None):
        super().__init__(name)
        self.slot = slot
        self.depth = depth or slot.depth
        self.calls = 0
        self.batched_frames = 0
        self._window = threading.BoundedSemaphore(self.depth)
        self._pres: dict = {}
        self._row_specs: dict = {}

    def run(self) -> None:
        inflight = Channel(self.depth + 1, self.name + "-inflight")
        collector = threading.Thread(target=self._collect, args=(inflight,), name=f"edgert-{self.name}-collect",
                                     daemon=True)
        collector.start()
        try:
            while True:
                entry = self.slot.current
                jobs = self.inbox.take(int(entry.model.inputs[0].shape[0] or 1), 0.5)
                if jobs is END:
                    break
                if jobs:
                    self._serve(jobs, inflight)
        finally:
            inflight.end()
            collector.join()

    def _serve(self, jobs: list, inflight: Channel) -> None:
        entry = self.slot.current
        if self.slot.has_retired:
            self._wait_idle()
            self.slot.close_retired(older_than=entry.generation)
            self._pres = {k: v for k, v in self._pres.items() if v[0][0] == entry.generation}
        t0 = time.perf_counter_ns()
        try:
            buf, release = entry.pool.acquire()
        except Exception as exc:  # noqa: BLE001 - a stuck device is reported per frame, the stage runs on
            for job in jobs:
                self._failed(job, exc)
            return
        ready = []
        for row, job in enumerate(jobs[: buf.shape[0]]):
            try:
                pre = self._preprocessor(entry, job)
                pre(job.frame.pixels, out=buf[row:row + 1])
            except Exception as exc:  # noqa: BLE001 - one bad frame is reported, not fatal
                self._failed(job, exc)
                continue
            job.entry, job.model_generation, job.preprocessor = entry, entry.generation, pre
            ready.append((row, job))
        self._graph.times.add(self.name + "-preprocess", time.perf_counter_ns() - t0)
        if not ready:
            release()
            return
        self._window.acquire()
        t1 = time.perf_counter_ns()
        try:
            future = entry.model.submit(buf)
        except Exception as exc:  # noqa: BLE001
            self._window.release()
            release()
            for _, job in ready:
                self._failed(job, exc)
            return
        self.calls += 1
        self.batched_frames += len(ready)
        inflight.put((ready, future, t1, release))

    def _preprocessor(self, entry, job) -> Preprocessor:
        frame = job.frame
        meta = frame.meta
        key = (entry.generation, frame.format, tuple(frame.size), meta.get("yuv_range"), meta.get("yuv_matrix"))
        cached = self._pres.get(job.stream_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        if cached is not None and cached[0][0] == key[0]:
            log.warning("%s: stream %s frames changed to %s %dx%d; preprocessing follows", self.name,
                        job.stream_id, frame.format, *frame.size)
        spec = self._row_specs.get(entry.generation)
        if spec is None:
            self._row_specs = {entry.generation: sample_spec(entry.model.inputs[0])}
            spec = self._row_specs[entry.generation]
        extra = {k: meta[k] for k in ("yuv_range", "yuv_matrix") if k in meta}
        pre = Preprocessor(spec, src_format=frame.format, src_size=tuple(frame.size), **entry.preprocess, **extra)
        self._pres[job.stream_id] = (key, pre)
        return pre

    def _wait_idle(self) -> None:
        for _ in range(self.depth):
            self._window.acquire()
        for _ in range(self.depth):
            self._window.release()

    def _collect(self, inflight: Channel) -> None:
        while (item := inflight.get()) is not END:
            ready, future, t0, release = item
            try:
                outputs = future.result()
            except Exception as exc:  # noqa: BLE001
                self._window.release()
                release()
                for _, job in ready:
                    self._failed(job, exc)
                continue
            dt = time.perf_counter_ns() - t0
            self._window.release()
            release()
            self._graph.times.add(self.name, dt)
            batched = len(ready) > 1 or (outputs and outputs[0].shape[:1] != (1,))
            for row, job in ready:
                job.outputs = [o[row:row + 1] for o in outputs] if batched else outputs
                job.times[self.name] = dt
                self.processed += 1
                self.emit(job)

    @property
    def timing_names(self) -> tuple:
        return (self.name + "-preprocess", self.name)

    def device_busy(self) -> dict:
        """What the backend says of its busy time, where it keeps count (the simulated device); {} once closed."""
        entry = self.slot.current
        impl = getattr(entry.model, "_impl", None) if entry is not None else None
        busy = getattr(impl, "busy_ns", None)
        return {} if busy is None else {"busy_ns": int(busy), "frames": int(getattr(impl, "frames", 0))}


def row_outputs(specs) -> tuple:
    """The output specs of one batch row (what a decoder of one frame's outputs is built from)."""
    return tuple(sample_spec(s) if s.shape and s.shape[0] > 1 else s for s in specs)

