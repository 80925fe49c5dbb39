"""`edgert bench`'s runner: each stage timed around its own step, skips, frames, decoders."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

import edgert
from edgert.bench import runner
from edgert.bench.frames import load_frames
from edgert.bench.runner import BenchSettings, make_decoder, run_backend
from edgert.cli.bench import plan_backends
from edgert.core.errors import ConfigError

DATA = Path(__file__).parent / "data"
MOBILENET = DATA / "mobilenetv2_int8.tflite"


class FakeClock:
    """`time` for the runner: `perf_counter_ns` only moves when a timed step advances it."""

    def __init__(self):
        self.now = 0
        self.perf_counter = time.perf_counter
        self.process_time = time.process_time

    def perf_counter_ns(self) -> int:
        return self.now


def test_each_stage_times_exactly_its_own_step(monkeypatch):
    # Frame i (warm-up included) takes i+1 ms to preprocess, 10*(i+1) ms in model.run, 100*(i+1) ms to
    # decode, on a clock nothing else moves: each stage's samples must be exactly its own step's.
    clock = FakeClock()
    monkeypatch.setattr(runner, "time", clock)
    calls = {"pre": 0, "run": 0, "decode": 0}

    def advance(step, unit_ms):
        calls[step] += 1
        clock.now += calls[step] * unit_ms * 1_000_000

    real_preprocessor, real_resolve, real_decoder = runner.Preprocessor, runner.resolve, runner.make_decoder

    def preprocessor(*args, **kwargs):
        pre = real_preprocessor(*args, **kwargs)
        return lambda frame: (pre(frame), advance("pre", 1))[0]

    def resolve(*args, **kwargs):
        loaded = real_resolve(*args, **kwargs)
        real_run = loaded.model.run
        monkeypatch.setattr(loaded.model, "run", lambda x: (real_run(x), advance("run", 10))[0])
        return loaded

    def make_decoder(model):
        kind, decode = real_decoder(model)
        return kind, lambda outputs: (decode(outputs), advance("decode", 100))[0]

    monkeypatch.setattr(runner, "Preprocessor", preprocessor)
    monkeypatch.setattr(runner, "resolve", resolve)
    monkeypatch.setattr(runner, "make_decoder", make_decoder)
    frames = load_frames("synthetic", (640, 480), "BGR", count=4)
    run = run_backend(MOBILENET, "cpu", frames, BenchSettings(frames=7, warmup=3, src_size=(640, 480)))
    assert run.status == "ok", run.reason
    assert calls == {"pre": 10, "run": 10, "decode": 10}
    k = np.arange(4, 11, dtype=np.float64)  # the measured frames are the 4th to the 10th
    np.testing.assert_array_equal(run.samples["preprocess"], k)
    np.testing.assert_array_equal(run.samples["infer"], 10 * k)
    np.testing.assert_array_equal(run.samples["decode"], 100 * k)
    np.testing.assert_array_equal(run.samples["end_to_end"], 111 * k)
    assert run.stages["infer"].p50 == 70.0 and run.stages["infer"].max == 100.0
    assert run.fps_sync == pytest.approx(7 / (111 * k.sum() / 1e3))


def test_run_reports_every_stage_and_the_process():
    frames = load_frames("synthetic", (1280, 720), "NV12", count=3)
    settings = BenchSettings(frames=40, warmup=5, src_format="NV12", src_size=(1280, 720), pipelined=True)
    run = run_backend(MOBILENET, "cpu", frames, settings)
    assert run.status == "ok"
    assert set(run.stages) == {"preprocess", "infer", "decode", "end_to_end"}
    assert all(s.n == 40 for s in run.stages.values())
    e2e = run.stages["end_to_end"]
    assert e2e.p50 >= run.stages["infer"].p50 and e2e.max >= e2e.p99 >= e2e.p50 > 0
    assert run.fps_sync == pytest.approx(40 / (run.samples["end_to_end"].sum() / 1e3))
    assert run.fps_pipelined > 0 and run.cpu_percent > 0 and run.peak_rss_mb > 10
    assert len(run.model_sha256) == 64


def test_missing_backend_is_skipped_with_the_reason():
    frames = load_frames("synthetic", (320, 240), "BGR", count=1)
    run = run_backend(DATA / "yolov8_int8.tflite", "hailo", frames, BenchSettings(frames=2, warmup=0))
    assert run.status in ("skipped", "failed") and run.reason
    plan = dict(plan_backends(MOBILENET, "all"))
    assert plan["cpu"] is None
    assert "hef" in plan["hailo"] and "rknn" in plan["rknn"] and plan["coral"]


def test_decoders_fit_the_outputs():
    with edgert.load(MOBILENET, backend="cpu") as m:
        assert make_decoder(m)[0] == "classify"
    with edgert.load(DATA / "yolov8_int8.tflite", backend="cpu") as m:
        kind, decode = make_decoder(m)
        assert kind == "yolo"
        x = np.zeros(m.inputs[0].shape, m.inputs[0].dtype)
        dets = decode(m.run(x))
        assert dets.boxes.shape[1] == 4


@pytest.mark.parametrize("fmt,shape", [("BGR", (48, 64, 3)), ("NV12", (72, 64)), ("YUV420", (72, 64)),
                                       ("GRAY", (48, 64)), ("XRGB8888", (48, 64, 4)), ("RGB", (48, 64, 3))])
def test_synthetic_frames_in_every_format(fmt, shape):
    frames = load_frames("synthetic", (64, 48), fmt, count=3)
    assert len(frames) == 3 and all(f.shape == shape and f.dtype == np.uint8 for f in frames)
    assert not np.array_equal(frames[0], frames[1])


def test_frames_from_a_folder_and_a_video(tmp_path):
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), rng.integers(0, 256, (30, 40, 3), np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    frames = load_frames(str(tmp_path), (64, 48), "BGR")
    assert len(frames) == 3 and frames[0].shape == (48, 64, 3)
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (40, 30))
    for _ in range(5):
        writer.write(rng.integers(0, 256, (30, 40, 3), np.uint8))
    writer.release()
    assert len(load_frames(str(video), (64, 48), "NV12")) == 5
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no readable image"):
        load_frames(str(empty), (64, 48), "BGR")
    with pytest.raises(ConfigError, match="even width and height"):
        load_frames("synthetic", (63, 48), "NV12")
