"""Timing one model on one backend: each stage per frame, stage after stage and through the pipeline.

Every backend gets the same frames in the same order. Times come from `time.perf_counter_ns`; the
warm-up frames are run and thrown away; nothing is filtered afterwards (slow frames show in p99,
max and the outlier count).
"""
from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgert.backends.registry import backend_class
from edgert.bench.context import file_sha256
from edgert.bench.results import BackendRun, StageStats
from edgert.core.errors import BackendUnavailable, ConfigError, EdgertError
from edgert.models.loaded import LoadedModel
from edgert.models.resolve import describe, resolve
from edgert.pipeline.graph import ChainStage, Graph, SourceStage
from edgert.pipeline.inference import (
    InferStage,
    ModelSlot,
    PreprocessStage,
)
from edgert.postprocess import YoloDecoder, classify
from edgert.preprocess import Preprocessor
from edgert.sources.replay import ReplaySource


@dataclass
class BenchSettings:
    """How to run one model.

    Attributes:
        frames: Measured frames.
        warmup: Frames run first and not measured.
        src_format: Pixel format of the frames.
        src_size: ``(width, height)`` of the frames.
        threads: Interpreter threads of the backends that take num_threads (cpu, onnx).
        pipelined: Also measure throughput through the threaded pipeline.
        preprocess: `Preprocessor` keyword arguments (default: the model card's, else stretch).
        options: Extra backend options.
    """

    frames: int = 300
    warmup: int = 20
    src_format: str = "BGR"
    src_size: tuple = (1920, 1080)
    threads: int = 1
    pipelined: bool = False
    preprocess: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)


def make_decoder(model, top_k: int = 5):
    """A decode step fitting the model's outputs: top-k for a classifier, YOLO for a detector, else none."""
    specs = model.outputs
    shape = specs[0].shape
    if len(specs) == 1 and (len(shape) == 1 or (len(shape) == 2 and shape[0] == 1)):
        k = min(top_k, shape[-1])
        return "classify", lambda outputs: classify(outputs[0], specs[0], top_k=k)
    try:
        decoder = YoloDecoder(specs, conf=0.25, iou=0.45, input_size=_input_size(model))
    except EdgertError:
        return "none", None
    return "yolo", decoder


def _input_size(model):
    shape = model.inputs[0].shape
    return (shape[2], shape[1]) if len(shape) == 4 and shape[-1] in (1, 3) else None


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_backend(model_path, backend: str, frames: list, settings: BenchSettings, progress=None) -> BackendRun:
    """Measure one model on one backend.

    Returns:
        A `BackendRun`; a backend that cannot run here comes back "skipped" with the reason, and
        one that fails while running comes back "failed" with the error, never as an exception.
    """
    path = Path(model_path)
    run = BackendRun(backend, "ok", model=str(path), model_sha256=file_sha256(path), frames=settings.frames,
                     warmup=settings.warmup)
    options = dict(settings.options)
    if "num_threads" in backend_class(backend).Config.model_fields:  # the CPU interpreters: LiteRT, ONNX Runtime
        options.setdefault("num_threads", settings.threads)
    try:
        model = resolve(path, backend=backend, options=options).model
    except BackendUnavailable as exc:
        run.status, run.reason = "skipped", str(exc)
        return run
    except EdgertError as exc:
        run.status, run.reason = "failed", str(exc)
        run.error = exc  # the caller tells a bad model file (exit 2) from a failing device; not serialised
        return run
    try:
        _measure(model, frames, settings, run, progress)
    except EdgertError as exc:
        run.status, run.reason = "failed", str(exc)
        run.error = exc
    finally:
        model.close()
    return run


def preprocess_arguments(model_path, settings: BenchSettings) -> dict:
    """`Preprocessor` arguments: the command's, else the model card's."""
    if settings.preprocess:
        return dict(settings.preprocess)
    return dict(describe(Path(model_path)).preprocess)


def _measure(model, frames, settings: BenchSettings, run: BackendRun, progress) -> None:
    pre = Preprocessor(model.inputs[0], src_format=settings.src_format, src_size=settings.src_size,
                       **preprocess_arguments(run.model, settings))
    kind, decode = make_decoder(model)
    total = settings.warmup + settings.frames
    samples = {name: np.empty(settings.frames, np.float64) for name in ("preprocess", "infer", "decode", "end_to_end")}
    clock = time.perf_counter_ns
    cpu0 = wall0 = None
    for i in range(total):
        if i == settings.warmup:
            cpu0, wall0 = time.process_time(), time.perf_counter()
        frame = frames[i % len(frames)]
        t0 = clock()
        x = pre(frame)
        t1 = clock()
        outputs = model.run(x)
        t2 = clock()
        if decode is not None:
            decode(outputs)
        t3 = clock()
        j = i - settings.warmup
        if j >= 0:
            samples["preprocess"][j] = (t1 - t0) / 1e6
            samples["infer"][j] = (t2 - t1) / 1e6
            samples["decode"][j] = (t3 - t2) / 1e6
            samples["end_to_end"][j] = (t3 - t0) / 1e6
        if progress is not None:
            progress(i + 1, total)
    wall = time.perf_counter() - wall0
    run.cpu_percent = 100.0 * (time.process_time() - cpu0) / wall
    run.stages = {name: StageStats.of(s) for name, s in samples.items() if name != "decode" or decode is not None}
    run.fps_sync = settings.frames / (samples["end_to_end"].sum() / 1e3)
    if settings.pipelined:
        run.fps_pipelined = pipelined_fps(model, frames, settings, run.model, decode)
    run.peak_rss_mb = _rss_mb()
    run.samples = samples  # raw per-frame times for plots; not serialised


def pipelined_fps(model, frames, settings: BenchSettings, model_path, decode=None) -> float:
    """Frames per second through edgert's threaded pipeline (capture, preprocess, infer, decode)."""
    slot = ModelSlot(2)
    slot.install(LoadedModel(model, Path(model_path).stem, preprocess=preprocess_arguments(model_path, settings)))
    done = []

    def decode_step(job):
        if decode is not None:
            decode(job.outputs)
        done.append(time.perf_counter())

    g = Graph()
    size = settings.src_size
    cap = g.add(SourceStage("capture", ReplaySource(frames, settings.src_format, size,
                                                    count=settings.warmup + settings.frames)))
    pre = g.add(PreprocessStage("preprocess", slot))
    inf = g.add(InferStage("infer", slot))
    out = g.add(ChainStage("decide", [("decode", decode_step)]))
    g.connect(cap, pre, maxsize=1)
    g.connect(pre, inf, maxsize=2)
    g.connect(inf, out, maxsize=4)
    g.start()
    g.join()
    if len(done) <= settings.warmup + 1:
        raise ConfigError("pipelined run processed no frames")
    measured = done[settings.warmup:]
    return (len(measured) - 1) / (measured[-1] - measured[0])
