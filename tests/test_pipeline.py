"""The stage graph, its channels, the model slot (generation stamps) and the in-flight infer stage."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edgert.backends.simulated import simulated_model
from edgert.core.tensor import Quantization, TensorSpec
from edgert.models.loaded import LoadedModel
from edgert.pipeline.channels import END, Channel, LatestSlot
from edgert.pipeline.graph import Graph, SourceStage, Stage
from edgert.pipeline.inference import (
    BufferPool,
    InferStage,
    ModelSlot,
    PreprocessStage,
)
from edgert.sources.replay import ReplaySource

IN_SPEC = TensorSpec("x", (1, 32, 32, 3), np.uint8, Quantization(1 / 255, 0), "NHWC")
OUT_SPEC = TensorSpec("y", (1, 4), np.uint8, Quantization(1 / 255, 0))


def frames(n: int, w: int = 64, h: int = 48):
    rng = np.random.default_rng(n)
    return [rng.integers(0, 256, (h, w, 3), np.uint8) for _ in range(n)]


def sim(device_ms: float = 0.5, value: int = 7):
    out = np.full((1, 4), value, np.uint8)
    return simulated_model([IN_SPEC], [out], [OUT_SPEC], device_ms)


def collect(into: list):
    def sink(job):
        into.append(job)
    return sink


def test_channel_is_fifo_with_back_pressure_and_ends_after_draining():
    ch = Channel(2)
    ch.put(1)
    ch.put(2)
    blocked = threading.Event()

    def third():
        ch.put(3)
        blocked.set()

    t = threading.Thread(target=third)
    t.start()
    assert not blocked.wait(0.1)  # full: the writer waits
    assert ch.get() == 1
    assert blocked.wait(2)
    ch.end()
    assert [ch.get(), ch.get(), ch.get()] == [2, 3, END]
    t.join()


def test_latest_slot_keeps_the_newest_and_recycles_the_rest():
    dropped = []
    slot = LatestSlot(on_drop=dropped.append)
    for i in range(5):
        slot.put(i)
    assert slot.get() == 4
    assert dropped == [0, 1, 2, 3] and slot.dropped == 4
    assert slot.get(timeout=0.01) is None
    slot.put(9)
    slot.end()
    assert slot.get() == 9 and slot.get() is END


def test_buffer_pool_recycles_a_fixed_set():
    pool = BufferPool(IN_SPEC, 2)
    a, free_a = pool.acquire()
    b, _ = pool.acquire()
    assert a is not b and pool.available == 0
    free_a()
    c, _ = pool.acquire()
    assert c is a


def _graph(source, slot, sink, depth=2, on_error=None):
    g = Graph(on_error=on_error)
    cap = g.add(SourceStage("capture", source))
    pre = g.add(PreprocessStage("preprocess", slot))
    inf = g.add(InferStage("infer", slot, depth))
    out = g.add(Stage("sink", sink))
    live = source.live
    g.connect(cap, pre, latest=live, maxsize=1)
    g.connect(pre, inf, latest=live, maxsize=1)
    g.connect(inf, out, maxsize=4)
    return g, inf


def test_every_frame_of_a_file_source_arrives_in_order_with_timings():
    slot = ModelSlot(2)
    slot.install(LoadedModel(sim(), "sim"))
    got = []
    g, _ = _graph(ReplaySource(frames(5), count=40), slot, collect(got))
    g.start()
    assert g.join(20)
    assert [j.frame.seq for j in got] == list(range(40))
    assert all(set(j.times) >= {"capture", "preprocess", "infer"} for j in got)
    assert all(j.outputs[0][0, 0] == 7 for j in got)
    stats = g.stats()
    assert stats["latency_ms"]["infer"]["n"] == 40 and stats["latency_ms"]["infer"]["p50"] >= 0.4
    assert slot.current.pool.available == slot.current.pool._buffers.__len__()  # every buffer came back
    slot.close()


def test_async_device_gets_the_next_frame_queued_while_it_works():
    slot = ModelSlot(3)
    model = sim(device_ms=3.0)
    slot.install(LoadedModel(model, "sim"))
    got = []
    g, _ = _graph(ReplaySource(frames(3), count=30), slot, collect(got), depth=3)
    g.start()
    assert g.join(20)
    assert len(got) == 30
    assert model._impl.max_queued >= 2  # frames waited on the device instead of the device on frames
    slot.close()


def test_live_source_drops_stale_frames_instead_of_queueing():
    slot = ModelSlot(1)
    slot.install(LoadedModel(sim(device_ms=5.0), "sim"))
    got = []
    g, _ = _graph(ReplaySource(frames(3), count=300, live=True), slot, collect(got), depth=1)
    g.start()
    assert g.join(30)
    assert 0 < len(got) < 300
    seqs = [j.frame.seq for j in got]
    assert seqs == sorted(seqs)
    assert g.stats()["stages"]["preprocess"]["dropped"] > 0
    slot.close()


def test_stage_error_drops_the_item_reports_it_and_goes_on():
    slot = ModelSlot(2)
    slot.install(LoadedModel(sim(), "sim"))
    errors, got = [], []

    def sink(job):
        if job.frame.seq == 3:
            raise ValueError("bad frame")
        got.append(job.frame.seq)

    g, _ = _graph(ReplaySource(frames(2), count=8), slot, sink,
                  on_error=lambda s, e, i: errors.append((s.name, str(e))))
    g.start()
    assert g.join(20)
    assert got == [0, 1, 2, 4, 5, 6, 7]
    assert errors == [("sink", "bad frame")]
    assert g.stats()["stages"]["sink"]["errors"] == 1
    slot.close()


def test_stop_drains_what_was_accepted():
    slot = ModelSlot(2)
    slot.install(LoadedModel(sim(device_ms=2.0), "sim"))
    got = []
    g, inf = _graph(ReplaySource(frames(2), count=10_000), slot, collect(got))
    g.start()
    deadline = time.monotonic() + 20
    while not got and time.monotonic() < deadline:  # stop once frames are on their way through
        time.sleep(0.01)
    assert g.stop(10)
    assert not g.running
    processed = g.stats()["stages"]["capture"]["processed"]
    assert 0 < len(got) <= processed < 10_000
    # nothing accepted by preprocess or infer was lost on the way
    assert len(got) == g.stats()["stages"]["preprocess"]["processed"]
    slot.close()


def test_fan_in_and_fan_out():
    g = Graph()
    a = g.add(SourceStage("cam-a", ReplaySource(frames(2), count=5)))
    b = g.add(SourceStage("cam-b", ReplaySource(frames(3), count=7)))
    merge = g.add(Stage("merge", lambda job: job))
    left, right = [], []
    g.connect(a, merge)
    g.connect(b, merge)
    g.connect(merge, g.add(Stage("left", collect(left))))
    g.connect(merge, g.add(Stage("right", collect(right))))
    g.start()
    assert g.join(10)
    assert len(left) == len(right) == 12


def _swap_while_held(close_old_early: bool):
    slot = ModelSlot(1)
    old = sim(value=1)
    slot.install(LoadedModel(old, "old"))
    gate, first, got = threading.Event(), threading.Event(), []

    def hold_job(job):
        first.set()
        gate.wait(10)
        return job

    g = Graph()
    cap = g.add(SourceStage("capture", ReplaySource(frames(2), count=6)))
    pre = g.add(PreprocessStage("preprocess", slot))
    hold = g.add(Stage("hold", hold_job))
    inf = g.add(InferStage("infer", slot, 1))
    out = g.add(Stage("sink", collect(got)))
    g.connect(cap, pre, maxsize=1)
    g.connect(pre, hold, maxsize=1)
    g.connect(hold, inf, maxsize=1)
    g.connect(inf, out)
    g.start()
    assert first.wait(10)  # frame 0 (and maybe 1, 2) prepared for the old model, held before inference
    new = sim(value=2)
    slot.install(LoadedModel(new, "new"))
    if close_old_early:
        old.close()
    gate.set()
    assert g.join(10)
    slot.close()
    return old, got, inf


def test_a_swap_runs_each_frame_on_the_model_it_was_prepared_for():
    old, got, inf = _swap_while_held(close_old_early=False)
    assert len(got) == 6 and inf.stale == 0  # no frame dropped
    generations = [j.model_generation for j in got]
    assert generations == sorted(generations) and generations[0] == 0 and generations[-1] == 1
    assert all(j.outputs[0][0, 0] == (1 if j.model_generation == 0 else 2) for j in got)
    assert old.closed  # retired once its last frame was through


def test_a_frame_for_a_closed_model_is_dropped_not_run_on_another():
    old, got, inf = _swap_while_held(close_old_early=True)
    assert inf.stale >= 1
    assert all(j.model_generation == 1 and j.outputs[0][0, 0] == 2 for j in got)
    assert len(got) + inf.stale == 6


def test_preprocessor_follows_a_camera_reconfigure():
    slot = ModelSlot(1)
    slot.install(LoadedModel(sim(), "sim"))
    small, large = frames(1, 64, 48)[0], frames(1, 128, 96)[0]
    got = []
    g = Graph()

    class Reconfigured(ReplaySource):
        def _read(self, timeout):
            if self._seq == 3:
                self.frames, self.size = [large], (128, 96)
            return super()._read(timeout)

    cap = g.add(SourceStage("capture", Reconfigured([small], count=6)))
    pre = g.add(PreprocessStage("preprocess", slot))
    out = g.add(Stage("sink", collect(got)))
    g.connect(cap, pre)
    g.connect(pre, out)
    g.start()
    assert g.join(10)
    assert [j.frame.generation for j in got] == [0, 0, 0, 1, 1, 1]
    assert all(j.tensor is not None for j in got)
    slot.close()


def test_graph_refuses_a_stage_without_upstream():
    g = Graph()
    g.add(Stage("orphan", lambda j: j))
    with pytest.raises(ValueError, match="orphan"):
        g.start()


def test_top1_probability_is_comparable_across_output_kinds():
    from edgert.models.health import top1_probability

    logits = np.array([[2.0, 0.0, 0.0, -1.0]], np.float32)
    expected = np.exp(2.0) / np.exp(logits).sum()
    spec = TensorSpec("y", (1, 4), np.float32, None)
    assert top1_probability(logits, spec) == pytest.approx(expected, rel=1e-5)
    probs = np.array([[0.7, 0.2, 0.1, 0.0]], np.float32)
    assert top1_probability(probs, spec) == pytest.approx(0.7)
    q = Quantization(0.5, 10)  # the same logits, int8-quantized
    raw = np.round(logits / 0.5 + 10).astype(np.uint8)
    assert top1_probability(raw, TensorSpec("y", (1, 4), np.uint8, q)) == pytest.approx(expected, rel=1e-5)


# -- regions: a detector's boxes fan out to a secondary model as child jobs -------------------------------

def _frame(pixels, fmt="BGR"):
    from edgert.core.frame import Frame

    h, w = pixels.shape[:2]
    return Frame(pixels, fmt, (w, h), pixels.strides[0], 0, 0)


def test_a_region_job_is_clipped_to_the_frame_and_maps_boxes_back():
    from edgert.core.errors import FrameError
    from edgert.pipeline.job import Job

    parent = Job(_frame(frames(1, 64, 48)[0]), stream_id="cam2")
    child = Job.for_region(parent, (-5.5, 10.2, 30.1, 60.0))
    assert child.region == (0, 10, 31, 48) and child.parent is parent and child.stream_id == "cam2"
    assert child.born_ns == parent.born_ns and child.frame is parent.frame
    assert child.to_frame([[1, 2, 3, 4]]).tolist() == [[1, 12, 3, 14]]
    assert parent.to_frame([[1, 2, 3, 4]]).tolist() == [[1, 2, 3, 4]]
    with pytest.raises(FrameError, match="outside the 64x48 frame"):
        Job.for_region(parent, (70, 0, 90, 10))


@pytest.mark.parametrize("seed", range(4))
def test_a_region_is_preprocessed_as_its_crop_would_be(seed):
    from edgert.pipeline.job import Job
    from edgert.preprocess import Preprocessor

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (120, 160, 3), np.uint8)
    slot = ModelSlot(1, name="secondary")
    slot.install(LoadedModel(sim(), "sim"))
    stage = PreprocessStage("pre", slot)
    whole = stage.process(Job(_frame(pixels)))
    assert np.array_equal(whole.tensor, Preprocessor(IN_SPEC, src_format="BGR", src_size=(160, 120))(pixels))
    for _ in range(3):
        x0, y0 = (int(v) for v in rng.integers(0, 80, 2))
        box = (x0, y0, x0 + int(rng.integers(8, 80)), y0 + int(rng.integers(8, 40)))
        job = stage.process(Job.for_region(Job(_frame(pixels)), box))
        x0, y0, x1, y1 = job.region
        crop = np.ascontiguousarray(pixels[y0:y1, x0:x1])
        expected = Preprocessor(IN_SPEC, src_format="BGR", src_size=(x1 - x0, y1 - y0))(crop)
        assert np.array_equal(job.tensor, expected), f"seed {seed}, box {job.region}"
        job.free()
    whole.free()
    slot.close()


@pytest.mark.parametrize("fmt", ["NV12", "YUV420"])
def test_a_region_of_a_planar_frame_is_preprocessed_by_the_region_kernel(fmt):
    from conftest import make_frame

    from edgert.core.frame import Frame
    from edgert.pipeline.job import Job
    from edgert.preprocess import Preprocessor

    slot = ModelSlot(1)
    slot.install(LoadedModel(sim(), "sim"))
    pixels = make_frame(fmt, 64, 48, np.random.default_rng(5))
    frame = Frame(pixels, fmt, (64, 48), pixels.strides[0], 0, 0)
    job = PreprocessStage("pre", slot).process(Job.for_region(Job(frame), (3.5, 2, 40, 30.2)))
    want = Preprocessor(IN_SPEC, src_format=fmt, src_size=(64, 48)).regions(pixels, [job.region])
    assert job.region == (3, 2, 40, 31)
    np.testing.assert_array_equal(job.tensor, want.reshape(IN_SPEC.shape))
    job.free()
    slot.close()
