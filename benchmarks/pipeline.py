"""Time the pipeline runner against the device it feeds, in one process.

Case 1, CPU backend (LiteRT on one thread), MobileNetV2 int8 from 1920x1080 BGR frames through
preprocess -> infer -> top-5 -> policy: frames per second of
  * the interpreter alone (invoke on a ready tensor: the ceiling),
  * a serial loop a user would write with OpenCV + NumPy (resize, colour, quantize, run, argsort),
  * edgert's pipeline (stage threads, newest-wins channels off; every frame processed).
Reported as ratios to the invoke-only rate; rounds interleave the three so noise hits all alike.

Case 2, a simulated accelerator that takes a fixed 2 ms per frame (`edgert.backends.simulated`), fed
720p NV12 frames -> 640x640 letterbox -> YOLOv8 decode (84 x 8400 int8 output): how busy the
device stays (device time / wall time between its first start and last end).

    python benchmarks/pipeline.py [--frames 1500] [--rounds 5] [--json benchmarks/results/pipeline.json]
"""
from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import platform
import sys
import time
from pathlib import Path

import numpy as np

import edgert
from edgert.apps.kiosk.policy import Policy, PolicyConfig
from edgert.apps.kiosk.presence import FrameDiffPresence, PresenceConfig
from edgert.backends.simulated import simulated_model
from edgert.core.frame import Frame
from edgert.core.tensor import Quantization, TensorSpec
from edgert.models.loaded import LoadedModel
from edgert.pipeline.graph import ChainStage, Graph, SourceStage, Stage
from edgert.pipeline.inference import (
    InferStage,
    ModelSlot,
    PreprocessStage,
)
from edgert.postprocess import YoloDecoder, classify
from edgert.sources.replay import ReplaySource

try:
    import cv2
except ImportError:  # pragma: no cover - the bench extra installs it
    sys.exit("benchmarks/pipeline.py needs OpenCV: pip install 'edgert[bench]'")

ROOT = Path(__file__).resolve().parent.parent
MOBILENET = ROOT / "tests" / "data" / "mobilenetv2_1.0_int8.tflite"
LABELS = tuple(str(i) for i in range(1000))


def hd_frames(n: int = 4) -> list:
    """1080p BGR frames with real structure (gradients and blocks), not flat noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:1080, 0:1920]
    out = []
    for i in range(n):
        f = np.empty((1080, 1920, 3), np.uint8)
        f[..., 0] = (xx * 255 // 1919 + 40 * i) % 256
        f[..., 1] = (yy * 255 // 1079) % 256
        f[..., 2] = ((xx + yy) // 8 + 30 * i) % 256
        x0, y0 = rng.integers(0, 1500), rng.integers(0, 700)
        f[y0:y0 + 300, x0:x0 + 300] = rng.integers(0, 256, 3)
        out.append(f)
    return out


def policy() -> tuple:
    config = PolicyConfig(bins={label: f"bin{label}" for label in LABELS}, votes=5, min_confidence=0.0)
    return Policy(config, LABELS), FrameDiffPresence(PresenceConfig())


# -- case 1 ---------------------------------------------------------------------------------------
def invoke_only(model, n: int) -> float:
    x = np.zeros(model.inputs[0].shape, model.inputs[0].dtype)
    t0 = time.perf_counter()
    for _ in range(n):
        model.run(x)
    return n / (time.perf_counter() - t0)


def serial_baseline(model, frames, n: int) -> float:
    """What a user writes: cv2.resize + cvtColor + NumPy quantize, run, argsort top-5, policy."""
    spec = model.inputs[0]
    scale, zp = float(spec.quant.scale), int(spec.quant.zero_point)
    info = np.iinfo(spec.dtype)
    pol, presence = policy()
    out_spec = model.outputs[0]
    t0 = time.perf_counter()
    for i in range(n):
        frame = frames[i % len(frames)]
        rgb = cv2.cvtColor(cv2.resize(frame, (224, 224), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
        q = np.clip(np.round((rgb.astype(np.float32) - 127.5) / 127.5 / scale) + zp, info.min, info.max)
        y = model.run(q.astype(spec.dtype)[None])[0].reshape(-1)
        real = (y.astype(np.float32) - float(out_spec.quant.zero_point)) * float(out_spec.quant.scale)
        top = np.argsort(-real)[:5]
        present = presence.update(Frame(frame, "BGR", (1920, 1080), frame.strides[0], 0, i))
        pol.observe(present, [(int(k), float(real[k])) for k in top], i, time.monotonic_ns())
    return n / (time.perf_counter() - t0)


def edgert_pipeline(model, frames, n: int) -> float:
    slot = ModelSlot(2)
    slot.install(LoadedModel(model, "mobilenetv2", labels=LABELS, preprocess={"mean": 127.5, "std": 127.5}))
    pol, presence = policy()
    g = Graph()
    cap = g.add(SourceStage("capture", ReplaySource(frames, count=n)))
    pre = g.add(PreprocessStage("preprocess", slot))
    inf = g.add(InferStage("infer", slot))

    def decode(job):
        job.result = classify(job.outputs[0], job.entry.model.outputs[0], top_k=5)
        return job

    def decide(job):
        present = presence.update(job.frame)
        pol.observe(present, job.result, job.frame.seq, job.frame.timestamp_ns)

    out = g.add(ChainStage("decide", [("decode", decode), ("decide", decide)]))
    g.connect(cap, pre, maxsize=1)
    g.connect(pre, inf, maxsize=1)
    g.connect(inf, out, maxsize=4)
    t0 = time.perf_counter()
    g.start()
    g.join()
    fps = out.processed / (time.perf_counter() - t0)
    return fps


def case_cpu(frames_n: int, rounds: int) -> dict:
    model = edgert.load(MOBILENET, backend="cpu", num_threads=1)
    frames = hd_frames()
    invoke_only(model, 100)
    rates = {"invoke_only": [], "serial_cv2_numpy": [], "edgert_pipeline": []}
    for _ in range(rounds):
        rates["invoke_only"].append(invoke_only(model, frames_n))
        rates["serial_cv2_numpy"].append(serial_baseline(model, frames, frames_n))
        rates["edgert_pipeline"].append(edgert_pipeline(model, frames, frames_n))
    model.close()
    med = {k: float(np.median(v)) for k, v in rates.items()}
    ratio_rounds = [p / i for p, i in zip(rates["edgert_pipeline"], rates["invoke_only"])]
    return {"fps_median": med, "fps_rounds": rates,
            "ratio_pipeline_to_invoke": med["edgert_pipeline"] / med["invoke_only"],
            "ratio_pipeline_to_invoke_per_round": ratio_rounds,
            "ratio_serial_to_invoke": med["serial_cv2_numpy"] / med["invoke_only"]}


# -- case 2 ---------------------------------------------------------------------------------------
def yolo_output(rng) -> tuple:
    """A (1, 84, 8400) int8 YOLOv8 output with a few confident boxes among background scores."""
    quant = Quantization(0.0039, -128)
    q = np.full((1, 84, 8400), -128, np.int8)
    q[0, :4] = rng.integers(-100, 100, (4, 8400))
    q[0, 4:] = rng.integers(-128, -100, (80, 8400))
    hot = rng.choice(8400, 30, replace=False)
    q[0, 4 + rng.integers(0, 80, 30), hot] = 100
    return q, TensorSpec("output0", (1, 84, 8400), np.int8, quant)


def nv12_frames(n: int = 4) -> list:
    rng = np.random.default_rng(1)
    return [rng.integers(16, 235, (720 * 3 // 2, 1280), np.uint8) for _ in range(n)]


def case_busy(frames_n: int, rounds: int, device_ms: float = 2.0) -> dict:
    rng = np.random.default_rng(0)
    out, out_spec = yolo_output(rng)
    in_spec = TensorSpec("images", (1, 640, 640, 3), np.int8, Quantization(1 / 255, -128), "NHWC")
    busy, rate = [], []
    for _ in range(rounds):
        model = simulated_model([in_spec], [out], [out_spec], device_ms)
        slot = ModelSlot(2)
        slot.install(LoadedModel(model, "yolov8-sim", preprocess={"resize": "letterbox", "std": 255.0}))
        decoder = YoloDecoder(model.outputs, conf=0.25, iou=0.45, normalized=False)
        g = Graph()
        cap = g.add(SourceStage("capture", ReplaySource(nv12_frames(), "NV12", (1280, 720), count=frames_n)))
        pre = g.add(PreprocessStage("preprocess", slot))
        inf = g.add(InferStage("infer", slot))
        dets = []
        dec = g.add(Stage("decode", lambda job: dets.append(len(decoder(job.outputs).scores))))
        g.connect(cap, pre, maxsize=1)
        g.connect(pre, inf, maxsize=2)
        g.connect(inf, dec, maxsize=4)
        t0 = time.perf_counter()
        g.start()
        g.join()
        rate.append(frames_n / (time.perf_counter() - t0) * device_ms / 1000)
        impl = model._impl
        wall = impl.last_end_ns - impl.first_start_ns
        busy.append(impl.busy_ns / wall)
        assert impl.frames == frames_n and len(dets) == frames_n and dets[0] > 0
        slot.close()
    return {"device_ms": device_ms, "busy_rounds": busy, "busy_median": float(np.median(busy)),
            "throughput_vs_device_max": rate, "throughput_vs_device_max_median": float(np.median(rate))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1500, help="frames per loop and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "pipeline.json"))
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores; "
          f"{args.frames} frames x {args.rounds} rounds")
    cpu = case_cpu(args.frames, args.rounds)
    m = cpu["fps_median"]
    print("case 1: MobileNetV2 1.0 int8 (224x224, 1000 classes) on LiteRT 1 thread, 1080p BGR frames")
    print(f"  invoke only        {m['invoke_only']:8.1f} fps   1.000")
    print(f"  serial cv2+NumPy   {m['serial_cv2_numpy']:8.1f} fps   {cpu['ratio_serial_to_invoke']:.3f}")
    print(f"  edgert pipeline    {m['edgert_pipeline']:8.1f} fps   {cpu['ratio_pipeline_to_invoke']:.3f}  "
          f"(rounds: {', '.join(f'{r:.3f}' for r in cpu['ratio_pipeline_to_invoke_per_round'])})")
    busy = case_busy(args.frames, args.rounds)
    print("case 2: simulated accelerator, 2 ms per frame; 720p NV12 -> 640x640 letterbox + YOLOv8 decode")
    print(f"  device busy        {busy['busy_median']:.3%}  (rounds: "
          f"{', '.join(f'{b:.3%}' for b in busy['busy_rounds'])})")
    print(f"  frames/s vs 1/device time, start and drain included: {busy['throughput_vs_device_max_median']:.3f}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"cpu": cpu, "busy": busy, "machine": platform.machine(),
                                           "cores": os.cpu_count()}, indent=2))
    print(f"saved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
