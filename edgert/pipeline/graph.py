"""A small graph of stages in threads, joined by channels.

A `Stage` takes items from its inbox, processes them and hands the result to every stage
connected after it. A `SourceStage` reads frames from a `Source`. Several sources may feed one
stage (several streams into one detector) and one stage may feed several (a detector's crops into
secondary models): the kiosk and the surveillance pipeline are both built with `Graph.connect`.

Stopping drains: sources stop, every stage finishes what its inbox already holds, then passes the
end on. A stage whose `process` raises drops that item, counts the error and calls the graph's
``on_error`` hook (the kiosk puts its actuators in the safe state there); it keeps running.
"""
from __future__ import annotations

import logging
import threading
import time

from edgert.core.errors import one_line
from edgert.pipeline.channels import END, Channel, LatestSlot
from edgert.pipeline.job import Job
from edgert.pipeline.timing import StageTimes

log = logging.getLogger(__name__)


class Stage:
    """One step of the pipeline, run in its own thread.

    Args:
        name: Stage name (used for timing, stats and the thread name).
        fn: ``fn(item) -> item | None``; ``None`` drops the item. Subclasses may override
            `process` instead.
    """

    def __init__(self, name: str, fn=None):
        self.name = name
        self.fn = fn
        self.inbox: Channel | None = None
        self.outputs: list[Stage] = []
        self.processed = 0
        self.errors = 0
        self.last_error = ""
        self._upstreams = 0
        self._upstreams_left = 0
        self._graph: Graph | None = None
        self._thread: threading.Thread | None = None
        self._up_lock = threading.Lock()

    @property
    def timing_names(self) -> tuple:
        """The timing rows this stage fills (its own name; a `ChainStage` one per step)."""
        return (self.name,)

    def process(self, item):
        """Process one item; return what goes downstream, or ``None`` to drop it."""
        return self.fn(item)

    # -- plumbing -------------------------------------------------------------------------------
    def emit(self, item) -> None:
        """Hand an item to every downstream stage."""
        for out in self.outputs:
            out.inbox.put(item)

    def upstream_done(self) -> None:
        """Called by each upstream stage when it ends; the inbox ends with the last of them."""
        with self._up_lock:
            self._upstreams_left -= 1
            last = self._upstreams_left <= 0
        if last:
            self.inbox.end()

    def _finish(self) -> None:
        for out in self.outputs:
            out.upstream_done()

    def _handle(self, item) -> None:
        t0 = time.perf_counter_ns()
        try:
            result = self.process(item)
        except Exception as exc:  # noqa: BLE001 - one bad frame must not stop the service
            self._failed(item, exc)
            return
        dt = time.perf_counter_ns() - t0
        self.processed += 1
        if isinstance(item, Job):
            item.times[self.name] = dt
        self._graph.times.add(self.name, dt)
        if result is None:
            _free(item)
        else:
            self.emit(result)

    def _failed(self, item, exc: BaseException) -> None:
        self.errors += 1
        message = one_line(exc)
        if message != self.last_error:
            log.error("%s: %s", self.name, message, exc_info=not _is_expected(exc))
        self.last_error = message
        _free(item)
        self._graph.report_error(self, exc, item)

    def run(self) -> None:
        """The thread body: process items until the inbox ends."""
        while True:
            item = self.inbox.get()
            if item is END:
                break
            if item is not None:
                self._handle(item)

    def _main(self) -> None:
        try:
            self.run()
        finally:
            self._finish()


class ChainStage(Stage):
    """Several short steps run one after another in one thread, each timed under its own name.

    Light steps (decoding a classifier's top-k, a voting policy) cost less than the hand-off between
    two threads would; chaining them keeps the GIL free for the stages that feed the accelerator.

    Args:
        name: Thread name.
        steps: ``[(step_name, fn), ...]``; each ``fn(item) -> item | None`` (``None`` ends the chain).
    """

    def __init__(self, name: str, steps):
        super().__init__(name)
        self.steps = tuple(steps)

    @property
    def timing_names(self) -> tuple:
        return tuple(step for step, _ in self.steps)

    def _handle(self, item) -> None:
        times = self._graph.times
        is_job = isinstance(item, Job)
        for step, fn in self.steps:
            t0 = time.perf_counter_ns()
            try:
                result = fn(item)
            except Exception as exc:  # noqa: BLE001 - one bad frame must not stop the service
                self._failed(item, exc)
                return
            dt = time.perf_counter_ns() - t0
            if is_job:
                item.times[step] = dt
            times.add(step, dt)
            if result is None:
                self.processed += 1
                _free(item)
                return
            item = result
        self.processed += 1
        self.emit(item)


class SourceStage(Stage):
    """Reads frames from a `Source` and sends each downstream as a `Job`.

    Its timing is the frame's age when it enters the pipeline (from the frame's timestamp, which is
    the sensor's where the camera gives one), falling back to the read time for other clocks.

    Args:
        name: Stage name.
        source: An `edgert.sources.base.Source`.
        read_timeout: Seconds a read may take before the source counts as failed.
    """

    def __init__(self, name: str, source, read_timeout: float = 2.0):
        super().__init__(name)
        self.source = source
        self.read_timeout = read_timeout
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()
        self.source.stop()

    def run(self) -> None:
        times = self._graph.times
        while not self._stop.is_set():
            t0 = time.perf_counter_ns()
            try:
                frame = self.source.read(self.read_timeout)
            except Exception as exc:  # noqa: BLE001 - a source that gave up ends the stream
                self._failed(None, exc)
                return
            if frame is None:
                return
            # Capture latency is the frame's age on entering the pipeline (sensor timestamp to now),
            # not how long read() waited for it: a paced camera spends most of a frame period waiting.
            age = time.monotonic_ns() - frame.timestamp_ns
            dt = age if 0 <= age < 10_000_000_000 else time.perf_counter_ns() - t0
            times.add(self.name, dt)
            self.processed += 1
            self.emit(Job(frame, dt))


class Graph:
    """Stages wired together, started and stopped as one.

    Args:
        on_error: ``on_error(stage, exc, item)`` called after a stage dropped an item it failed on.
        window: Durations kept per stage for the latency percentiles.
        extra_timings: Names of timings that are not stages (filled by other threads, e.g. "actuate").
    """

    def __init__(self, on_error=None, window: int = 8192, extra_timings=()):
        self.stages: list[Stage] = []
        self.on_error = on_error
        self.times: StageTimes | None = None
        self._window = window
        self._extra_timings = tuple(extra_timings)
        self._started_ns = 0
        self._stopped_ns = 0

    def add(self, stage: Stage) -> Stage:
        """Add a stage (in the order timing reports list them) and return it."""
        stage._graph = self
        self.stages.append(stage)
        return stage

    def connect(self, upstream: Stage, downstream: Stage, *, latest: bool = False, maxsize: int = 2) -> None:
        """Send `upstream`'s items to `downstream`.

        Args:
            latest: A one-item channel where the newest item wins (between capture and inference).
            maxsize: Capacity of a FIFO channel (back-pressure beyond it).
        """
        if downstream.inbox is None:
            downstream.inbox = (LatestSlot(downstream.name, on_drop=_free) if latest
                                else Channel(maxsize, downstream.name, on_drop=_free))
        elif isinstance(downstream.inbox, LatestSlot) != latest:
            raise ValueError(f"stage {downstream.name!r} already has a {type(downstream.inbox).__name__} inbox")
        upstream.outputs.append(downstream)
        downstream._upstreams += 1

    def report_error(self, stage: Stage, exc: BaseException, item) -> None:
        if self.on_error is not None:
            try:
                self.on_error(stage, exc, item)
            except Exception:  # noqa: BLE001 - the hook must not kill the stage
                log.exception("on_error hook failed")

    def start(self) -> None:
        """Start every stage's thread."""
        for stage in self.stages:
            if not isinstance(stage, SourceStage) and stage._upstreams == 0:
                raise ValueError(f"stage {stage.name!r} has no upstream")
        names = [name for s in self.stages for name in s.timing_names] + list(self._extra_timings)
        self.times = StageTimes(names, self._window)
        for stage in self.stages:
            stage._upstreams_left = stage._upstreams
        self._started_ns = time.monotonic_ns()
        for stage in self.stages:
            stage._thread = threading.Thread(target=stage._main, name=f"edgert-{stage.name}", daemon=True)
            stage._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the sources and drain every stage; True if all threads ended within `timeout`."""
        for stage in self.stages:
            if isinstance(stage, SourceStage):
                stage.stop()
        return self.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for every stage to end (sources ending by themselves); True if all did."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for stage in self.stages:
            if stage._thread is not None:
                stage._thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        alive = [s.name for s in self.stages if s._thread is not None and s._thread.is_alive()]
        if alive:
            log.error("stages still running after stop: %s", ", ".join(alive))
        elif not self._stopped_ns:
            self._stopped_ns = time.monotonic_ns()
        return not alive

    @property
    def running(self) -> bool:
        return any(s._thread is not None and s._thread.is_alive() for s in self.stages)

    def stats(self) -> dict:
        """Counts per stage, drops per channel, elapsed seconds, latency percentiles and histograms."""
        end = self._stopped_ns or time.monotonic_ns()
        return {
            "elapsed_s": (end - self._started_ns) / 1e9 if self._started_ns else 0.0,
            "stages": {s.name: {"processed": s.processed, "errors": s.errors,
                                "dropped": s.inbox.dropped if s.inbox is not None else 0} for s in self.stages},
            "latency_ms": self.times.summary() if self.times is not None else {},
            "latency_histogram": self.times.histogram() if self.times is not None else {},
        }


def _free(item) -> None:
    if isinstance(item, Job):
        item.free()


def _is_expected(exc: BaseException) -> bool:
    from edgert.core.errors import EdgertError
    return isinstance(exc, EdgertError)
