"""Issue 13, scheduling benchmark: the primary detector's rate with face + plate secondaries on 20 tracks.

The surveillance app runs end to end on one live 1280x720 BGR camera delivering frames as fast as the
pipeline takes them (newest wins), with a simulated primary detector (its own simulated device,
``--primary-ms`` per frame) that reports 20 objects (10 persons, 10 cars) whose boxes grow slowly;
every object lives ``--life`` frames, then vanishes for a few frames and comes back elsewhere as a
new track, staggered, so tracks are born all the time. Two runs in the same process:

* ``alone``: the primary detector only;
* ``with secondaries``: plus a BlazeFace-shaped region detector inside person tracks (128x128x3 float32
  in, (896, 16) + (896, 1) out, BlazeFace's card decoder; one anchor fires, so ``face_detected`` events
  flow) and a PP-OCR-recogniser-shaped reader on car tracks (48x320x3 float32 in, (40, 97) out, kind
  ``ocr``), each on a simulated device of its own (``--face-ms``, ``--plate-ms`` per crop), both with a
  budget of ``--max-crops`` crops per frame (and ``--time-share`` of device time, when given).

Reported: primary frames per second in each run over the same window (after a warm-up) and their
ratio (target >= 0.90), the secondaries' crops, refusals, and for every track born in the window the
primary frames processed between its ``track_start`` and its first secondary result (target <= 3 when
the budget allows: the share of tracks meeting it, the median and the p95).

    python benchmarks/secondary.py [--seconds 12] [--json benchmarks/results/secondary.json]
"""
from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import platform
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from edgert.apps.surveillance.app import Surveillance
from edgert.backends.simulated import simulated_model
from edgert.core.tensor import TensorSpec
from edgert.models.loaded import LoadedModel
from edgert.pipeline.app import AppContext
from edgert.service.config import parse_config
from edgert.sources.replay import ReplaySource

ROOT = Path(__file__).resolve().parents[1]
W, H = 1280, 720
PREPROCESS = {"resize": "letterbox", "mean": 0.0, "std": 255.0, "channel_order": "RGB", "pad_value": 0.0}
CROP_PRE = {"resize": "stretch", "mean": 127.5, "std": 127.5, "channel_order": "RGB"}
WARMUP_S = 2.0
OBJECTS = 20


class ChurnDetector:
    """A simulated detect model (its own simulated device) whose 20 objects are born, grow and vanish.

    Object ``k`` (persons for even k, cars for odd) lives `life` frames from phase ``k * life / 20``,
    then is gone for 4 frames and comes back at another place (a new track).
    """

    backend = "simulated"
    asynchronous = True

    def __init__(self, device_ms: float, life: int):
        self.inputs = (TensorSpec("x", (1, 320, 320, 3), np.uint8, None, "NHWC"),)
        self.outputs = (TensorSpec("y", (1, 6, 2100), np.float32, None),)
        self._sim = simulated_model(self.inputs, [np.zeros((1, 6, 2100), np.float32)], self.outputs, device_ms)
        self._impl = self._sim._impl
        self.life, self.calls = life, 0
        self._lock = threading.Lock()

    def _frame_outputs(self, k_call: int) -> np.ndarray:
        out = np.zeros((1, 6, 2100), np.float32)
        scale, pad_y = 320 / W, (320 - H * 320 / W) / 2
        cycle = self.life + 4
        for k in range(OBJECTS):
            t = k_call + k * cycle // OBJECTS
            age, generation = t % cycle, t // cycle
            if age >= self.life:
                continue
            col, row = k % 5, (k // 5 + generation) % 4
            cx, cy = 128 + 256 * col, 90 + 180 * row
            half = 30 + 40 * age / self.life  # grows: better views come
            x0, y0, x1, y1 = cx - half, cy - 1.5 * half if k % 2 == 0 else cy - half, cx + half, cy + half
            out[0, :4, k] = ((x0 + x1) / 2 * scale / 320, ((y0 + y1) / 2 * scale + pad_y) / 320,
                             (x1 - x0) * scale / 320, (y1 - y0) * scale / 320)
            out[0, 4 + k % 2, k] = 0.9
        return out

    def submit(self, x) -> Future:
        with self._lock:
            k = self.calls
            self.calls += 1
        done: Future = Future()
        inner = self._sim.submit(x)
        inner.add_done_callback(lambda f: done.set_exception(f.exception()) if f.exception()
                                else done.set_result([self._frame_outputs(k)]))
        return done

    def run(self, x):
        return self.submit(x).result()

    def close(self):
        self._sim.close()


def blazeface_like(device_ms: float) -> LoadedModel:
    """BlazeFace's shapes and card decoder on a simulated device; one anchor fires at the crop's middle."""
    card = json.loads((ROOT / "edgert" / "models" / "blazeface" / "face_detection_short_range.json").read_text())
    inputs = (TensorSpec("input", (1, 128, 128, 3), np.float32, None, "NHWC"),)
    outputs = (TensorSpec("regressors", (1, 896, 16), np.float32, None),
               TensorSpec("classificators", (1, 896, 1), np.float32, None))
    reg, cls = np.zeros((1, 896, 16), np.float32), np.full((1, 896, 1), -10.0, np.float32)
    reg[0, 300, 2:4] = 30.0
    cls[0, 300, 0] = 5.0
    model = simulated_model(inputs, [reg, cls], outputs, device_ms)
    pre = {k: v for k, v in card["preprocess"].items()}
    return LoadedModel(model, "blazeface-sim", "1", ("face",), pre, "detect", decoder=card["decoder"])


def plate_reader_like(device_ms: float) -> LoadedModel:
    """A PP-OCR recogniser's shapes (48x320 in, 40 steps x 97 classes out) on a simulated device."""
    inputs = (TensorSpec("x", (1, 48, 320, 3), np.float32, None, "NHWC"),)
    outputs = (TensorSpec("y", (1, 40, 97), np.float32, None),)
    model = simulated_model(inputs, [np.zeros((1, 40, 97), np.float32)], outputs, device_ms)
    return LoadedModel(model, "ppocr-sim", "1", (), dict(CROP_PRE), "ocr")


def config(with_secondaries: bool, max_crops: int, time_share: float | None = None) -> str:
    cfg = ("app: surveillance\ncameras:\n  - id: cam\n    source: {kind: folder, path: /nonexistent}\n    fps: 240\n"
           "detectors:\n  street: {path: primary, backend: simulated, labels: [person, car], conf: 0.5}\n")
    if with_secondaries:
        share = "" if time_share is None else f", time_share: {time_share}"
        cfg += (f"  faces: {{path: faces, backend: simulated, regions: [person], "
                f"schedule: {{max_crops: {max_crops}, max_runs: 3{share}}}}}\n"
                f"secondaries:\n  plates: {{path: plates, backend: simulated, kind: ocr, regions: [car], "
                f"schedule: {{max_crops: {max_crops}, max_runs: 3{share}}}}}\n")
    return cfg + "tracking:\n  tracker: {max_missed: 2, min_hits: 2}\nsnapshots: {enabled: false}\n"


def frames(seed: int = 0, count: int = 3) -> list:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (H, W, 3), np.uint8) for _ in range(count)]


def run_app(args, with_secondaries: bool) -> dict:
    primary = ChurnDetector(args.primary_ms, args.life)
    models = {"primary": LoadedModel(primary, "churn", "1", ("person", "car"), dict(PREPROCESS), "detect"),
              "faces": blazeface_like(args.face_ms), "plates": plate_reader_like(args.plate_ms)}

    def load(model_config, task=None, check=None, at_start=False):
        entry = models[model_config.path]
        if check is not None:
            check(entry)
        return entry

    births, firsts = {}, {}
    counts = {"frames": 0}
    with tempfile.TemporaryDirectory() as tmp:
        ctx = AppContext(Path(tmp), 2, load)
        source = ReplaySource(frames(), live=True, fps=500, count=10**9)
        cfg = parse_config(config(with_secondaries, args.max_crops, args.time_share))
        app = Surveillance(cfg, ctx, sources={"cam": source})

        def on_event(event):
            if event.kind == "track_start":
                births[event.details["track_id"]] = app.frames

        def on_result(track, result):
            firsts.setdefault(track.track_id, app.frames)

        ctx.events.subscribe(on_event)
        if with_secondaries:
            app.on_crop_result("faces", on_result)
            app.on_crop_result("plates", on_result)
        app.start()
        time.sleep(WARMUP_S)
        f0, t0, born_from = app.frames, time.monotonic(), max(births.values(), default=0)
        time.sleep(args.seconds)
        f1, t1 = app.frames, time.monotonic()
        app.stop(15)
        stats = app.stats()
        app.close()
    lags = [firsts[t] - b for t, b in births.items() if b > born_from and b < f1 - 10 and t in firsts]
    missing = [t for t, b in births.items() if b > born_from and b < f1 - 10 and t not in firsts]
    result = {"primary_fps": (f1 - f0) / (t1 - t0), "errors": stats["errors"], "window_s": t1 - t0}
    if with_secondaries:
        lag = np.asarray(lags + [10**6] * len(missing), np.float64)
        result.update(secondaries=stats["secondaries"], tracks_born=len(lag),
                      first_result_within_3=float(np.mean(lag <= 3)) if len(lag) else None,
                      first_result_frames_median=float(np.median(lag)) if len(lag) else None,
                      first_result_frames_p95=float(np.percentile(lag, 95)) if len(lag) else None,
                      face_events=stats["events"].get("face_detected", 0))
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--primary-ms", type=float, default=10.0)
    p.add_argument("--face-ms", type=float, default=1.5)
    p.add_argument("--plate-ms", type=float, default=2.0)
    p.add_argument("--max-crops", type=int, default=4)
    p.add_argument("--life", type=int, default=60)
    p.add_argument("--time-share", type=float, default=None, help="each secondary's device time share (budget)")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    alone = run_app(args, False)
    both = run_app(args, True)
    ratio = both["primary_fps"] / alone["primary_fps"]
    report = {"alone": alone, "with_secondaries": both, "ratio": ratio, "target_ratio": 0.90,
              "settings": vars(args) | {"json": None}, "python": platform.python_version(), "cpus": os.cpu_count()}
    print(f"primary alone {alone['primary_fps']:.1f} fps, with face + plate secondaries {both['primary_fps']:.1f} fps:"
          f" ratio {ratio:.3f} (target >= 0.90)")
    print(f"tracks born in the window {both['tracks_born']}: first result within 3 frames for "
          f"{both['first_result_within_3']:.1%}, median {both['first_result_frames_median']}, "
          f"p95 {both['first_result_frames_p95']} frames; face_detected events {both['face_events']}")
    print(json.dumps(both["secondaries"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    sys.exit(0 if ratio >= 0.90 else 1)


if __name__ == "__main__":
    main()
