"""The model side of a pipeline: the swappable model slot, input buffers, preprocess and infer stages.

`ModelSlot` holds the current `LoadedModel` and its generation. A swap bumps the generation; the
preprocess stage stamps each job with the model it prepared the tensor for, and the infer stage runs
each job on that model (convention 11: a frame prepared for one model never reaches another), so a
swap drops no frame; the retired model is closed once its last frame is through.

`InferStage` keeps up to ``depth`` frames submitted to the device (`Model.submit`), so frame N+1 is
queued on an asynchronous accelerator while frame N runs; a second thread collects results in order.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque

import numpy as np

from edgert.core.errors import DeviceError, FrameError
from edgert.models.health import ModelHealth
from edgert.models.loaded import LoadedModel
from edgert.pipeline.channels import END, Channel
from edgert.pipeline.graph import Stage
from edgert.preprocess import Preprocessor

log = logging.getLogger(__name__)

#: Formats whose chroma lives in separate planes (a box of them is not a plain array view).
PLANAR_FORMATS = ("NV12", "NV21", "YUV420", "I420")


class BufferPool:
    """A fixed set of input tensors, allocated once and recycled (no allocation per frame).

    Args:
        spec: The model input `TensorSpec`.
        count: Buffers in the pool (frames being prepared + waiting + in flight).
    """

    def __init__(self, spec, count: int):
        self._buffers = [np.empty(spec.shape, spec.dtype) for _ in range(count)]
        self._free = deque(range(count))
        self._cond = threading.Condition()

    def acquire(self, timeout: float = 10.0):
        """A free buffer and the callable that gives it back; waits while all are in use."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._free, timeout):
                raise DeviceError(f"no free input buffer within {timeout:.0f} s: inference is stuck")
            i = self._free.popleft()
        return self._buffers[i], lambda: self._give_back(i)

    def fits(self, spec, count: int) -> bool:
        """The pool holds `count` buffers of `spec`'s shape and dtype."""
        first = self._buffers[0] if self._buffers else None
        return (len(self._buffers) == count and first is not None and first.shape == tuple(spec.shape)
                and first.dtype == spec.dtype)

    def _give_back(self, i: int) -> None:
        with self._cond:
            self._free.append(i)
            self._cond.notify()

    @property
    def available(self) -> int:
        return len(self._free)


def swap_checked(slot: "ModelSlot", entry: LoadedModel, check, health: dict) -> dict:
    """Check `entry` against its role, warm it up and make it `slot`'s current model.

    Args:
        slot: The slot to switch (frames in flight finish on the old model, closed later).
        entry: The new model.
        check: ``check(entry)`` raises when `entry` cannot serve this slot.
        health: ``{generation: ModelHealth}`` of the slot so far.

    Returns:
        The slot's health history after the switch: the previous generation kept (probation compares
        against it), a fresh `ModelHealth` for the new one.

    Raises:
        Whatever `check` or the warm-up raise; `entry` is closed then and the old model keeps running.
    """
    try:
        check(entry)
        spec = entry.model.inputs[0]
        entry.model.run(np.zeros(spec.shape, spec.dtype))  # warm-up: first-run costs land here
    except Exception:
        entry.model.close()
        raise
    slot.install(entry)
    kept = {g: h for g, h in health.items() if g >= entry.generation - 1}
    kept[entry.generation] = ModelHealth(entry.generation)
    log.info("%s swapped to %s %s (generation %d)", slot.name, entry.name, entry.version, entry.generation)
    return kept


class ModelSlot:
    """The model a pipeline currently runs, swappable while frames flow; a graph may hold several.

    Args:
        depth: Frames the infer stage keeps in flight (sizes each model's buffer pool).
        name: The slot's name in its app ("classifier", "person_detector", "face_embedder", ...).
    """

    def __init__(self, depth: int = 2, name: str = "model"):
        self.depth = depth
        self.name = name
        self._lock = threading.Lock()
        self._current: LoadedModel | None = None
        self._generation = -1
        self._retired: list[LoadedModel] = []

    def install(self, entry: LoadedModel) -> LoadedModel | None:
        """Make `entry` current with a new generation; returns the model it replaced (closed later).

        A model whose input has the spec of the one it replaces shares its input buffers (a buffer
        is handed out again only once given back, whichever model it served), so a swap allocates
        no new ones.
        """
        spec = entry.model.inputs[0]
        previous = self._current
        if previous is not None and previous.pool is not None and previous.pool.fits(spec, self.depth + 3):
            entry.pool = previous.pool
        else:
            entry.pool = BufferPool(spec, self.depth + 3)
        entry.synchronous = not getattr(entry.model, "asynchronous", False)
        with self._lock:
            self._generation += 1
            entry.generation = self._generation
            old, self._current = self._current, entry
            if old is not None:
                self._retired.append(old)
        return old

    @property
    def current(self) -> LoadedModel:
        return self._current

    @property
    def has_retired(self) -> bool:
        return bool(self._retired)

    def close_retired(self, older_than: int | None = None) -> None:
        """Close models swapped out (call when none of their frames is in flight).

        Args:
            older_than: Close only those of a generation below this one (a model installed while
                the caller was deciding stays open).
        """
        with self._lock:
            keep = [e for e in self._retired if older_than is not None and e.generation >= older_than]
            retired = [e for e in self._retired if e not in keep]
            self._retired = keep
        for entry in retired:
            try:
                entry.model.close()
            except Exception:  # noqa: BLE001 - a device that fails to close must not stop the pipeline
                log.exception("closing retired model %s %s failed", entry.name, entry.version)

    def close(self) -> None:
        """Close the current and any retired model."""
        self.close_retired()
        with self._lock:
            current, self._current = self._current, None
        if current is not None:
            current.model.close()


class PreprocessStage(Stage):
    """Turns a job's frame, or its region, into the current model's input tensor (one fused kernel pass).

    A preprocessor is built per source geometry: when a camera is reconfigured and frames change
    size or format, a new one is made for them (and said in the log) instead of failing every frame.
    A region job (`Job.region`) is preprocessed from its box of the full frame by the frame's
    preprocessor (`Preprocessor.regions`: any format, NV12/YUV420 included); only models whose card
    asks for area interpolation fall back to a preprocessor per box size over a view of the box.
    """

    #: Preprocessors kept for region sizes (area interpolation only).
    REGION_CACHE = 32

    def __init__(self, name: str, slot: ModelSlot):
        super().__init__(name)
        self.slot = slot
        self._key = None
        self._pre: Preprocessor | None = None
        self._regions: dict = {}

    def _preprocessor(self, entry: LoadedModel, frame, size=None) -> Preprocessor:
        meta = frame.meta
        size = tuple(frame.size) if size is None else size
        key = (entry.generation, frame.format, size, meta.get("yuv_range"), meta.get("yuv_matrix"))
        if key == self._key:
            return self._pre
        if size != tuple(frame.size):  # a region's box
            pre = self._regions.get(key)
            if pre is None:
                if len(self._regions) >= self.REGION_CACHE:
                    self._regions.pop(next(iter(self._regions)))
                pre = self._regions[key] = self._build(entry, frame, size)
            return pre
        if self._key is not None and self._key[0] == key[0]:
            log.warning("frames changed to %s %dx%d; preprocessing follows", frame.format, *frame.size)
        self._pre, self._key = self._build(entry, frame, size), key
        return self._pre

    @staticmethod
    def _build(entry: LoadedModel, frame, size) -> Preprocessor:
        extra = {k: frame.meta[k] for k in ("yuv_range", "yuv_matrix") if k in frame.meta}
        return Preprocessor(entry.model.inputs[0], src_format=frame.format, src_size=size, **entry.preprocess, **extra)

    def process(self, job):
        entry = self.slot.current
        buf, release = entry.pool.acquire()
        job.release = release
        if job.region is None:
            self._preprocessor(entry, job.frame)(job.frame.pixels, out=buf)
        else:
            self._prepare_region(entry, job, buf)
        job.tensor, job.entry, job.model_generation = buf, entry, entry.generation
        return job

    def _prepare_region(self, entry: LoadedModel, job, buf) -> None:
        """The region's box through the region kernel of the frame's preprocessor (any format).

        Area interpolation has no region kernel: packed frames then go through a preprocessor of the
        box's size over a view of the box; planar ones are refused.
        """
        pre = self._preprocessor(entry, job.frame)
        if pre.interpolation != "area":
            pre.regions(job.frame.pixels, np.asarray([job.region], np.float64),
                        out=buf.reshape((1, *pre.spec.shape[-3:])))
            return
        if job.frame.format in PLANAR_FORMATS:
            raise FrameError(f"{self.name}: regions of {job.frame.format} frames need bilinear or nearest "
                             "interpolation (this model's card asks for area)")
        x0, y0, x1, y1 = job.region
        self._preprocessor(entry, job.frame, (x1 - x0, y1 - y0))(job.frame.pixels[y0:y1, x0:x1], out=buf)


class InferStage(Stage):
    """Runs jobs on the current model, keeping up to ``depth`` of them in flight.

    Asynchronous backends (those overriding `Backend.submit`, e.g. Hailo) get up to ``depth`` frames
    submitted while a second thread collects results in order. Synchronous ones (LiteRT on the CPU,
    which releases the GIL while it works) are run straight from this thread: a future and a
    hand-off per frame would only cost time.

    Args:
        name: Stage name.
        slot: The `ModelSlot`.
        depth: Frames submitted to the device before waiting for the oldest result.
    """

    def __init__(self, name: str, slot: ModelSlot, depth: int | None = None):
        super().__init__(name)
        self.slot = slot
        self.depth = depth or slot.depth
        self.stale = 0
        self._window = threading.BoundedSemaphore(self.depth)

    def run(self) -> None:
        inflight = Channel(self.depth + 1, self.name + "-inflight")
        collector = threading.Thread(target=self._collect, args=(inflight,), name=f"edgert-{self.name}-collect",
                                     daemon=True)
        collector.start()
        try:
            while (job := self.inbox.get()) is not END:
                current = self._current_for(job)
                if current is None:
                    continue
                if current.synchronous:
                    self._run_one(job, current)
                    continue
                self._window.acquire()
                t0 = time.perf_counter_ns()
                try:
                    future = current.model.submit(job.tensor)
                except Exception as exc:  # noqa: BLE001 - a failed frame is reported, not fatal
                    self._window.release()
                    self._failed(job, exc)
                    continue
                inflight.put((job, future, t0))
        finally:
            inflight.end()
            collector.join()

    def _current_for(self, job):
        """The model `job` was prepared for, or None when that model is closed (the job is then freed).

        Jobs arrive in order, so once a job of the current generation comes, none of a retired
        model's is left to run: the retired models are closed then.
        """
        if job is None:
            return None
        current = self.slot.current
        if job.model_generation != current.generation:
            entry = job.entry
            if entry is not None and not entry.model.closed:
                return entry  # prepared for the model just swapped out, still open: it runs there
            self.stale += 1  # prepared for a model that is gone: never run it on another
            job.free()
            return None
        if self.slot.has_retired:
            self._wait_idle()  # the retired model's last frames finish first
            self.slot.close_retired(older_than=current.generation)
        return current

    def _wait_idle(self) -> None:
        for _ in range(self.depth):
            self._window.acquire()
        for _ in range(self.depth):
            self._window.release()

    def _run_one(self, job, current) -> None:
        t0 = time.perf_counter_ns()
        try:
            outputs = current.model.run(job.tensor)
        except Exception as exc:  # noqa: BLE001
            self._failed(job, exc)
            return
        self._done(job, outputs, time.perf_counter_ns() - t0)

    def _collect(self, inflight: Channel) -> None:
        while (item := inflight.get()) is not END:
            job, future, t0 = item
            try:
                outputs = future.result()
            except Exception as exc:  # noqa: BLE001
                self._window.release()
                self._failed(job, exc)
                continue
            dt = time.perf_counter_ns() - t0
            self._window.release()
            self._done(job, outputs, dt)

    def _done(self, job, outputs, dt: int) -> None:
        job.free()
        job.outputs = outputs
        job.times[self.name] = dt
        self._graph.times.add(self.name, dt)
        self.processed += 1
        self.emit(job)
