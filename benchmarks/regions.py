"""Time the region and alignment kernels against the OpenCV chains a skilled user would write, in one run.

Cases (medians over interleaved rounds, after warm-up; ratio = baseline / edgert):
  * 20 boxes (60-250 px, fixed seed) of a 1920x1080 BGR frame -> a 20x112x112x3 int8 batch
    (mean = std = 127.5, scale 1/128, zero point -1). edgert: `Preprocessor.regions`, one call.
    Baseline, per box: slice, ``cv2.resize`` (INTER_LINEAR), ``cv2.cvtColor`` (BGR2RGB), ``cv2.LUT``
    with a prebuilt int8 table, each into a preallocated ``dst=`` buffer (no allocation per box), and
    the int8 view of the batch. Target 3x.
  * one aligned 112x112 face from 5 keypoints: edgert `Aligner` (estimate + warp + tables in one
    call) against ``cv2.estimateAffinePartial2D`` + ``cv2.warpAffine`` + ``cv2.LUT`` (preallocated
    ``dst=``). Target 2x. Also with ``method=cv2.LMEDS`` (no RANSAC loop), for information.
  * informational: 20 faces aligned in one call against 20 rounds of the baseline.
  * one plate quad (4 corners in perspective, ~230x60 px) of a 1920x1080 BGR frame -> a 1x3x48x320
    float32 input (BGR, ``x / 127.5 - 1``, PP-OCR's recogniser). edgert: `Warper.quads` (homography +
    warp + tables in one call, into ``out=``). Baseline: ``cv2.getPerspectiveTransform`` +
    ``cv2.warpPerspective`` (INTER_LINEAR, ``dst=``) + normalisation, the faster of
    ``cv2.dnn.blobFromImage`` and NumPy ufuncs into a preallocated input.

Single-threaded like for like (``cv2.setNumThreads(1)``), glibc malloc as a warmed-up process has it
(see benchmarks/kernels.py). Each call is timed in thread CPU time (``time.thread_time_ns``) by
default: on a shared, oversubscribed machine wall time mostly measures the scheduler;
``--clock wall`` uses ``time.perf_counter`` as benchmarks/kernels.py does.

    python benchmarks/regions.py [--calls 200] [--json benchmarks/results/regions.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kernels  # noqa: E402  (re-executes with the warm malloc settings when run as a script)

if __name__ == "__main__" and not all(name in os.environ for name in kernels.WARM_MALLOC):
    os.execve(sys.executable, [sys.executable, *sys.argv],
              {**kernels.WARM_MALLOC, **os.environ, "EDGERT_KERNELS_MALLOC": "set by benchmarks/regions.py (re-exec)"})

import time  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import edgert  # noqa: E402
from edgert.alignment import ARCFACE_112, Aligner  # noqa: E402
from edgert.preprocess import Preprocessor  # noqa: E402
from edgert.warp import Warper  # noqa: E402

SPEC = edgert.TensorSpec("input", (1, 112, 112, 3), np.int8, edgert.Quantization(0.0078125, -1))


CLOCK = {"cpu": time.thread_time_ns, "wall": time.perf_counter_ns}
_clock = CLOCK["cpu"]


def race(fns: dict, calls: int, rounds: int = 10) -> dict:
    """Median time (ms) of each function, interleaved in `rounds` after a warm-up, on `_clock`."""
    for fn in fns.values():
        for _ in range(5):
            fn()
    times = {name: [] for name in fns}
    per_round = max(1, calls // rounds)
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(per_round):
                t0 = _clock()
                fn()
                times[name].append(_clock() - t0)
    return {name: float(np.median(t)) / 1e6 for name, t in times.items()}


def _lut3() -> np.ndarray:
    return np.dstack([kernels.int8_table().view(np.uint8)] * 3).reshape(1, 256, 3)


def case_regions(calls: int, rng) -> dict:
    frame = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    side = rng.integers(60, 251, 20)
    x0, y0 = rng.integers(0, 1920 - side), rng.integers(0, 1080 - side)
    boxes = np.stack([x0, y0, x0 + side, y0 + side], 1)
    pre = Preprocessor(SPEC, "BGR", (1920, 1080), "stretch", "bilinear", mean=127.5, std=127.5)
    lut = _lut3()
    batch = np.empty((20, 112, 112, 3), np.uint8)
    small, rgb = np.empty((112, 112, 3), np.uint8), np.empty((112, 112, 3), np.uint8)

    def baseline():
        for k, (a, b, c, d) in enumerate(boxes):
            cv2.resize(frame[b:d, a:c], (112, 112), dst=small, interpolation=cv2.INTER_LINEAR)
            cv2.cvtColor(small, cv2.COLOR_BGR2RGB, dst=rgb)
            cv2.LUT(rgb, lut, dst=batch[k])
        return batch.view(np.int8)

    fboxes = boxes.astype(np.float64)
    diff = np.abs(pre.regions(frame, fboxes).astype(int) - baseline().astype(int))
    t = race({"edgert": lambda: pre.regions(frame, fboxes), "cv2 per box": baseline}, calls)
    return {"case": "20 boxes of 1080p BGR -> 20x112x112x3 int8", "ms": t,
            "speedup": {"vs cv2 per box (target 3x)": t["cv2 per box"] / t["edgert"]},
            "targets": {"vs cv2 per box (target 3x)": 3.0},
            "max |edgert - cv2| (int8 units)": int(diff.max())}


def _face(rng, frame_size=(1920, 1080)):
    angle, scale = rng.uniform(-0.4, 0.4), rng.uniform(1.2, 2.5)
    a = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) * scale
    centre = rng.uniform(300, min(frame_size) - 300, 2)
    return (ARCFACE_112 - 56) @ a.T + centre + rng.normal(0, 1.0, (5, 2))


def case_align(calls: int, rng) -> dict:
    frame = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    kp = _face(rng)
    kp32, tmpl32 = kp.astype(np.float32), ARCFACE_112.astype(np.float32)
    aligner = Aligner(SPEC, "BGR", (1920, 1080), mean=127.5, std=127.5, channel_order="BGR")
    lut = _lut3()
    warped, out = np.empty((112, 112, 3), np.uint8), np.empty((112, 112, 3), np.uint8)

    def baseline(method=cv2.RANSAC):
        m, _ = cv2.estimateAffinePartial2D(kp32, tmpl32, method=method)
        cv2.warpAffine(frame, m, (112, 112), dst=warped, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        cv2.LUT(warped, lut, dst=out)
        return out.view(np.int8)

    faces = np.stack([_face(rng) for _ in range(20)])
    faces32 = faces.astype(np.float32)

    def baseline20():
        for f in faces32:
            m, _ = cv2.estimateAffinePartial2D(f, tmpl32)
            cv2.warpAffine(frame, m, (112, 112), dst=warped, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            cv2.LUT(warped, lut, dst=out)

    t = race({"edgert": lambda: aligner(frame, kp[None]), "cv2 RANSAC": baseline,
                      "cv2 LMEDS": lambda: baseline(cv2.LMEDS), "edgert 20 faces": lambda: aligner(frame, faces),
                      "cv2 20 faces": baseline20}, calls)
    return {"case": "aligned 112x112 int8 face from 5 keypoints", "ms": t,
            "speedup": {"vs estimateAffinePartial2D+warpAffine+LUT (target 2x)": t["cv2 RANSAC"] / t["edgert"],
                        "vs the same with LMEDS": t["cv2 LMEDS"] / t["edgert"],
                        "20 faces, one call vs 20 chains": t["cv2 20 faces"] / t["edgert 20 faces"]},
            "targets": {"vs estimateAffinePartial2D+warpAffine+LUT (target 2x)": 2.0}}


def case_quads(calls: int, rng) -> dict:
    frame = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    w, h = 320, 48
    quad = np.array([[800, 500], [1030, 470], [1040, 535], [805, 560]], np.float64) + rng.uniform(-5, 5, (4, 2))
    spec = edgert.TensorSpec("x", (1, 3, h, w), np.float32)
    warper = Warper(spec, "BGR", (1920, 1080), mean=127.5, std=127.5, channel_order="BGR")
    out = np.empty(spec.shape, np.float32)
    src = np.float32(quad - 0.5)  # the same "half" pixel-centre convention on both sides
    dst = np.float32([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])
    warped, blob = np.empty((h, w, 3), np.uint8), np.empty(spec.shape, np.float32)

    def warp():
        m = cv2.getPerspectiveTransform(src, dst)
        return cv2.warpPerspective(frame, m, (w, h), dst=warped, flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT)

    def baseline_dnn():
        return cv2.dnn.blobFromImage(warp(), 1 / 127.5, mean=(127.5, 127.5, 127.5))

    def baseline_numpy():
        np.multiply(warp().transpose(2, 0, 1), np.float32(1 / 127.5), out=blob[0], dtype=np.float32)
        return np.subtract(blob, np.float32(1.0), out=blob)

    diff = np.abs(warper.quads(frame, quad, out=out) - baseline_numpy()) * 127.5
    t = race({"edgert": lambda: warper.quads(frame, quad, out=out), "cv2 + blobFromImage": baseline_dnn,
              "cv2 + numpy": baseline_numpy}, calls)
    best = min(t["cv2 + blobFromImage"], t["cv2 + numpy"])
    return {"case": "one plate quad of 1080p BGR -> 1x3x48x320 float32", "ms": t,
            "speedup": {"vs getPerspectiveTransform+warpPerspective+normalise (best)": best / t["edgert"]},
            "max |edgert - cv2| (8-bit levels)": float(diff.max()),
            "mean |edgert - cv2| (8-bit levels)": float(diff.mean())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--json", default="benchmarks/results/regions.json")
    ap.add_argument("--clock", choices=sorted(CLOCK), default="cpu")
    args = ap.parse_args(argv)
    global _clock
    _clock = CLOCK[args.clock]
    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    results = [case_regions(args.calls, rng), case_align(args.calls, rng), case_quads(args.calls, rng)]
    for r in results:
        print(r["case"])
        for name, ms in r["ms"].items():
            print(f"  {name:>16}: {ms:8.3f} ms")
        for name, ratio in r["speedup"].items():
            print(f"  {ratio:6.2f}x  {name}")
    env = {"clock": args.clock, "cv2": cv2.__version__, "numpy": np.__version__, "malloc": os.environ.get("EDGERT_KERNELS_MALLOC", ""),
           "load": os.getloadavg()}
    print("environment:", env)
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"results": results, "environment": env}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
