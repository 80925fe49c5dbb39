"""Issue 12, benchmark 3: memory and threads of the surveillance app over many frames and 50 reloads.

Four cameras (720p BGR file-like streams: every frame processed) and four detector slots, each a
simulated device (`edgert.backends.simulated`, 1 ms per frame) serving all four cameras, whose
outputs cycle so that objects keep appearing, crossing a zone and a line, and vanishing (tracks
start and end all the time). Every camera has a zone and a counting line.

Measured: resident memory (VmRSS) after a warm-up and at the end (target <= 300 MB, growth < 2 MB),
and the thread count after each of 50 reloads spread over the run (a reload swaps one detector's
model, as `edgert` does when a config's model changes: target constant).

    python benchmarks/surveillance_memory.py [--frames 100000] [--json benchmarks/results/surveillance_memory.json]
"""
from __future__ import annotations

import argparse
import gc
import json
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import sys  # noqa: E402

# Measure the process as systemd/edgert.service runs it: its Environment=MALLOC_ARENA_MAX=2 is read by
# glibc at start-up, so the script re-executes itself with it (``--default-malloc`` to compare).
if __name__ == "__main__" and "MALLOC_ARENA_MAX" not in os.environ and "--default-malloc" not in sys.argv:
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "MALLOC_ARENA_MAX": "2"})
import platform
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import edgert
from edgert.apps.surveillance.app import Surveillance
from edgert.backends.simulated import SimulatedBackend
from edgert.core.model import Model
from edgert.models.loaded import LoadedModel
from edgert.pipeline.app import AppContext
from edgert.service.config import parse_config
from edgert.sources.replay import ReplaySource

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "tests" / "data" / "yolov8_int8.tflite"
CAMERAS = ("cam0", "cam1", "cam2", "cam3")
DETECTORS = ("det0", "det1", "det2", "det3")
LABELS = ("red", "green", "blue")
PREPROCESS = {"resize": "letterbox", "mean": 0.0, "std": 255.0, "channel_order": "RGB", "pad_value": 0.0}
STEPS = 60  # frames an object takes to cross the picture


class CyclingDevice(SimulatedBackend):
    """A simulated device whose outputs go round a fixed cycle (objects that move, leave and come back)."""

    def start(self, inputs, cycle, output_specs, device_ms: float = 1.0) -> None:
        self._cycle = cycle  # shared by every device of the run (each frame gets copies)
        self._k = 0
        super().start(inputs, cycle[0], output_specs, device_ms)

    @property
    def _results(self):
        self._k += 1
        return self._cycle[self._k % len(self._cycle)]

    @_results.setter
    def _results(self, value):
        pass


def output_cycle(spec) -> list:
    """YOLOv8 outputs of STEPS + 10 frames: two objects crossing the picture, then 10 empty frames."""
    q = spec.quant
    cycle = []
    for step in range(STEPS + 10):
        real = np.zeros(spec.shape, np.float32)
        if step < STEPS:
            x = 0.1 + 0.8 * step / STEPS
            real[0, :4, 50] = (x, 0.6, 0.1, 0.2)
            real[0, 4, 50] = 0.9
            real[0, :4, 900] = (1 - x, 0.3, 0.08, 0.1)
            real[0, 5, 900] = 0.8
        cycle.append([np.clip(np.round(real / q.scale) + q.zero_point, -128, 127).astype(spec.dtype)])
    return cycle


class Loader:
    """The context's ``load_model``: a new cycling simulated detector per call (each with its device thread)."""

    def __init__(self, device_ms: float):
        with edgert.load(MODEL, backend="simulated", device_ms=device_ms) as probe:
            self.inputs, self.outputs = probe.inputs, probe.outputs
        self.cycle = output_cycle(self.outputs[0])
        self.device_ms = device_ms
        self.loaded = 0

    def __call__(self, model_config, task=None, check=None, at_start=False):
        device = CyclingDevice()
        device.start(self.inputs, self.cycle, self.outputs, self.device_ms)
        self.loaded += 1
        entry = LoadedModel(Model(device, "simulated"), "cycling", str(self.loaded), LABELS, dict(PREPROCESS), "detect")
        if check is not None:
            check(entry)
        return entry


def config_text(version: int = 1) -> str:
    cams = "".join(f"""\
  - id: {c}
    source: {{kind: folder, path: /nonexistent}}
    fps: 30
    frame_size: [1280, 720]
    zones: [{{id: middle, polygon: [[400, 100], [880, 100], [880, 700], [400, 700]], loiter_s: 1, intrusion: [red]}}]
    lines: [{{id: kerb, points: [[640, 0], [640, 719]], interval_s: 5}}]
""" for c in CAMERAS)
    dets = "".join(f"  {d}: {{path: {MODEL}, backend: simulated, version: '{version if d == 'det0' else 1}', "
                   f"conf: 0.5, options: {{device_ms: 1}}}}\n" for d in DETECTORS)
    return f"app: surveillance\ncameras:\n{cams}detectors:\n{dets}tracking: {{tracker: {{max_missed: 5}}}}\n"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def camera_frames(seed: int) -> list:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (720, 1280, 3), np.uint8) for _ in range(2)]


def run(frames: int, reloads: int, device_ms: float) -> dict:
    loader = Loader(device_ms)
    per_camera = frames // len(CAMERAS)
    sources = {c: ReplaySource(camera_frames(i), count=per_camera) for i, c in enumerate(CAMERAS)}
    events = {"n": 0}
    with tempfile.TemporaryDirectory() as tmp:
        ctx = AppContext(Path(tmp), 2, loader)
        ctx.events.subscribe(lambda e: events.__setitem__("n", events["n"] + 1))
        app = Surveillance(parse_config(config_text()), ctx, sources=sources)
        app.start()
        t_start = time.monotonic()
        cams = [s for s in app.graph.stages if s.name.startswith("capture-")]

        def captured() -> int:
            return sum(s.processed for s in cams)

        while captured() < frames * 0.1 and app.graph.running:
            time.sleep(0.2)
        gc.collect()
        warm_rss, warm_at = rss_mb(), captured()
        threads, rss_trace, version = [], [], 1
        step = (frames - warm_at) / (reloads + 1)
        while app.graph.running:
            time.sleep(0.1)
            if len(threads) < reloads and captured() >= warm_at + step * (len(threads) + 1):
                version += 1
                assert app.reconfigure(parse_config(config_text(version))), "a model change must swap in place"
                time.sleep(0.3)  # the retired model closes at the next frame of the new one
                threads.append(threading.active_count())
                rss_trace.append(round(rss_mb(), 1))
        elapsed = time.monotonic() - t_start
        gc.collect()
        end_rss = rss_mb()
        stats = app.stats()
        app.close()
    return {"camera_frames": captured(), "detector_frames": stats["frames"], "elapsed_s": elapsed,
            "rss_warm_mb": warm_rss, "rss_end_mb": end_rss, "rss_peak_mb": max([warm_rss, end_rss] + rss_trace),
            "growth_mb": end_rss - warm_rss, "reloads": len(threads), "threads_after_reloads": sorted(set(threads)),
            "rss_after_reloads_mb": rss_trace, "events": events["n"], "errors": stats["errors"],
            "models_loaded": loader.loaded}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100_000, help="Camera frames in all (split over 4 cameras).")
    parser.add_argument("--reloads", type=int, default=50)
    parser.add_argument("--default-malloc", action="store_true",
                        help="Keep glibc's default arenas (the unit sets MALLOC_ARENA_MAX=2).")
    parser.add_argument("--device-ms", type=float, default=1.0)
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "surveillance_memory.json"))
    args = parser.parse_args(argv)
    r = run(args.frames, args.reloads, args.device_ms)
    print(f"{r['camera_frames']} camera frames ({r['detector_frames']} detector frames, 4 cameras x 4 detectors) "
          f"in {r['elapsed_s']:.0f} s, {r['events']} events, {r['errors']} errors")
    print(f"RSS after warm-up {r['rss_warm_mb']:.1f} MB, at the end {r['rss_end_mb']:.1f} MB, peak "
          f"{r['rss_peak_mb']:.1f} MB (target <= 300), growth {r['growth_mb']:+.2f} MB (target < 2)")
    print(f"threads after each of {r['reloads']} reloads: {r['threads_after_reloads']} (target: one value); "
          f"RSS over the reloads {min(r['rss_after_reloads_mb'], default=0):.1f}..{max(r['rss_after_reloads_mb'], default=0):.1f} MB")
    r["checks"] = {"rss <= 300 MB": r["rss_peak_mb"] <= 300, "growth < 2 MB": r["growth_mb"] < 2,
                   "threads constant": len(r["threads_after_reloads"]) == 1}
    for what, ok in r["checks"].items():
        print(f"  {'ok ' if ok else 'MISS'} {what}")
    r["machine"] = {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "glibc default")}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(r, indent=2, default=str))
    print(f"saved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
