"""`edgert bench`'s runner: stage timings that agree with an independent loop, skips, frames, decoders."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

import edgert
from edgert.bench.frames import load_frames
from edgert.bench.runner import BenchSettings, make_decoder, run_backend
from edgert.cli.bench import plan_backends
from edgert.core.errors import ConfigError

DATA = Path(__file__).parent / "data"
MOBILENET = DATA / "mobilenetv2_int8.tflite"


def raw_interpreter_p50(path: Path, n: int) -> float:
    """Median ms of set_tensor + invoke + get_tensor on the raw LiteRT interpreter (no edgert in the loop)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    x = np.random.default_rng(0).integers(0, 256, inp["shape"], dtype=np.uint8).astype(inp["dtype"])
    times = []
    for i in range(n + 10):
        t0 = time.perf_counter_ns()
        it.set_tensor(inp["index"], x)
        it.invoke()
        it.get_tensor(out["index"])
        if i >= 10:
            times.append((time.perf_counter_ns() - t0) / 1e6)
    return float(np.median(times))


def test_bench_inference_p50_agrees_with_a_raw_interpreter_loop():
    frames = load_frames("synthetic", (640, 480), "BGR", count=4)
    settings = BenchSettings(frames=150, warmup=10, src_size=(640, 480))
    # interleave: raw, bench, raw; the bench median must sit within 15% of the raw medians
    raw = [raw_interpreter_p50(MOBILENET, 150)]
    run = run_backend(MOBILENET, "cpu", frames, settings)
    raw.append(raw_interpreter_p50(MOBILENET, 150))
    assert run.status == "ok", run.reason
    ratio = run.stages["infer"].p50 / float(np.median(raw))
    assert 0.85 <= ratio <= 1.15, (run.stages["infer"].p50, raw)


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
