"""Time edgert's fused kernels against the OpenCV/NumPy chains a user would otherwise write.

Every case runs edgert and its baselines in this one process on the same frame, interleaved in rounds
so that machine noise hits all of them alike, and reports medians and the ratio baseline / edgert.
Results go to stdout and to a JSON file.

Each baseline is measured at its best:
  * threads: edgert's kernels run on one thread, so OpenCV does too (``cv2.setNumThreads(1)``): like
    for like. (With its default pool on this small a job OpenCV gains little and takes every core.)
  * allocator: a long-running process has had glibc raise its mmap threshold, so the NumPy and
    OpenCV temporaries (150-600 KB) come from the heap, not from a fresh mmap and its page faults on
    every call. A fresh process has not, so the script re-executes itself once with
    ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` set (the state of a warmed-up process)
    unless they are already set, and prints what was in force.

    python benchmarks/kernels.py [--calls 300] [--json benchmarks/results/kernels.json] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os

# The cases are single-threaded; an idle OpenBLAS pool that spins after NumPy calls would steal a
# core from them on a small board (seen: 10% of samples on this 2-core machine).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import sys

#: glibc's malloc as a warmed-up process has it: temporaries below 32 MiB from the heap, kept.
WARM_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "67108864"}
if __name__ == "__main__" and not all(name in os.environ for name in WARM_MALLOC):
    # The variables are read once, at the first malloc: only a new process picks them up.
    os.execve(sys.executable, [sys.executable, *sys.argv],
              {**WARM_MALLOC, **os.environ, "EDGERT_KERNELS_MALLOC": "set by benchmarks/kernels.py (re-exec)"})
import platform
import time
import tracemalloc
from pathlib import Path

import numpy as np

import edgert
from edgert.postprocess import YoloDecoder
from edgert.preprocess import Preprocessor

try:
    import cv2
except ImportError:  # pragma: no cover - the bench extra installs it
    sys.exit("benchmarks/kernels.py needs OpenCV: pip install 'edgert[bench]'")


def median_ms(samples) -> float:
    return float(np.median(samples) * 1e3)


def race(fns: dict, calls: int, rounds: int = 10) -> dict:
    """Median time (ms) of each function, interleaved in `rounds` so noise spreads evenly."""
    for fn in fns.values():
        for _ in range(5):
            fn()
    times = {name: [] for name in fns}
    per_round = max(1, calls // rounds)
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(per_round):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return {name: median_ms(t) for name, t in times.items()}


def int8_table() -> np.ndarray:
    """The 256-entry table a skilled user builds for mean=std=127.5, scale 1/128, zero point -1."""
    v = (np.arange(256) - 127.5) / 127.5 / 0.0078125
    q = np.sign(v) * np.floor(np.abs(v) + 0.5) - 1
    return np.clip(q, -128, 127).astype(np.int8)


def case_bilinear(calls: int, rng) -> dict:
    """1920x1080 BGR -> 224x224 RGB int8 (mean=std=127.5, scale 1/128, zp -1), bilinear."""
    frame = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    spec = edgert.TensorSpec("input", (1, 224, 224, 3), np.int8, edgert.Quantization(0.0078125, -1))
    pre = Preprocessor(spec, "BGR", (1920, 1080), "stretch", "bilinear", mean=127.5, std=127.5)
    lut = np.dstack([int8_table().view(np.uint8)] * 3).reshape(1, 256, 3)

    def numpy_chain():
        rgb = cv2.cvtColor(cv2.resize(frame, (224, 224), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
        x = (rgb.astype(np.float32) - 127.5) / 127.5
        q = np.round(x / 0.0078125) - 1
        return np.clip(q, -128, 127).astype(np.int8)[None]

    def lut_chain():
        rgb = cv2.cvtColor(cv2.resize(frame, (224, 224), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
        return cv2.LUT(rgb, lut).view(np.int8)[None]

    def resize_only():  # informational: the floor of any cv2 chain
        return cv2.resize(frame, (224, 224), interpolation=cv2.INTER_LINEAR)

    t = race({"edgert": lambda: pre(frame), "cv2+numpy": numpy_chain, "cv2+LUT": lut_chain,
              "cv2 resize alone": resize_only}, calls)
    return {"case": "1080p BGR -> 224 RGB int8, bilinear", "ms": t,
            "speedup": {"vs cv2+numpy (target 3x)": t["cv2+numpy"] / t["edgert"],
                        "vs cv2+LUT (target 1.5x)": t["cv2+LUT"] / t["edgert"]},
            "targets": {"vs cv2+numpy (target 3x)": 3.0, "vs cv2+LUT (target 1.5x)": 1.5}}


def case_area(calls: int, rng) -> dict:
    """The same with area averaging (an 8.6x downscale)."""
    frame = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    spec = edgert.TensorSpec("input", (1, 224, 224, 3), np.int8, edgert.Quantization(0.0078125, -1))
    pre = Preprocessor(spec, "BGR", (1920, 1080), "stretch", "area", mean=127.5, std=127.5)
    lut = np.dstack([int8_table().view(np.uint8)] * 3).reshape(1, 256, 3)

    def lut_chain():
        rgb = cv2.cvtColor(cv2.resize(frame, (224, 224), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        return cv2.LUT(rgb, lut).view(np.int8)[None]

    t = race({"edgert": lambda: pre(frame), "cv2 INTER_AREA+LUT": lut_chain}, max(40, calls // 4))
    return {"case": "1080p BGR -> 224 RGB int8, area", "ms": t,
            "speedup": {"vs cv2 INTER_AREA+LUT (target 4x)": t["cv2 INTER_AREA+LUT"] / t["edgert"]},
            "targets": {"vs cv2 INTER_AREA+LUT (target 4x)": 4.0}}


def case_nv12_letterbox(calls: int, rng) -> dict:
    """1280x720 NV12 -> 640x640 letterboxed RGB uint8 (pad 114), bilinear."""
    frame = rng.integers(0, 256, (1080, 1280), dtype=np.uint8)
    spec = edgert.TensorSpec("images", (1, 640, 640, 3), np.uint8)
    pre = Preprocessor(spec, "NV12", (1280, 720), "letterbox", "bilinear", pad_value=114)

    def cv2_chain():
        rgb = cv2.cvtColor(frame, cv2.COLOR_YUV2RGB_NV12)
        small = cv2.resize(rgb, (640, 360), interpolation=cv2.INTER_LINEAR)
        return cv2.copyMakeBorder(small, 140, 140, 0, 0, cv2.BORDER_CONSTANT, value=(114, 114, 114))[None]

    out = np.empty(spec.shape, np.uint8)
    t = race({"edgert": lambda: pre(frame), "edgert out=": lambda: pre(frame, out=out), "cv2 chain": cv2_chain},
             calls)
    return {"case": "720p NV12 -> 640x640 letterbox RGB uint8, bilinear", "ms": t,
            "speedup": {"vs cv2 cvtColor+resize+copyMakeBorder (target 3x)": t["cv2 chain"] / t["edgert"],
                        "out= (pads every call) vs cv2 chain": t["cv2 chain"] / t["edgert out="]},
            "targets": {"vs cv2 cvtColor+resize+copyMakeBorder (target 3x)": 3.0}}


def case_nv12_general(calls: int, rng) -> dict:
    """1920x1080 NV12 -> 640x640 letterbox: a 3x downscale, so the general (non 2:1) sampling loops."""
    frame = rng.integers(0, 256, (1620, 1920), dtype=np.uint8)
    spec = edgert.TensorSpec("images", (1, 640, 640, 3), np.uint8)
    pre = Preprocessor(spec, "NV12", (1920, 1080), "letterbox", "bilinear", pad_value=114)

    def cv2_chain():
        rgb = cv2.cvtColor(frame, cv2.COLOR_YUV2RGB_NV12)
        small = cv2.resize(rgb, (640, 360), interpolation=cv2.INTER_LINEAR)
        return cv2.copyMakeBorder(small, 140, 140, 0, 0, cv2.BORDER_CONSTANT, value=(114, 114, 114))[None]

    t = race({"edgert": lambda: pre(frame), "cv2 chain": cv2_chain}, calls)
    return {"case": "1080p NV12 -> 640x640 letterbox RGB uint8, bilinear (informational)", "ms": t,
            "speedup": {"vs cv2 cvtColor+resize+copyMakeBorder": t["cv2 chain"] / t["edgert"]}, "targets": {}}


def case_blazeface_corner(calls: int, rng) -> dict:
    """1920x1080 RGB -> 128x128 float32 in [-1, 1], letterbox, corner pixel centres: BlazeFace's input as
    MediaPipe's CPU ImageToTensor makes it (warpAffine with the plain scale/offset matrix, black border,
    then x * 2/255 - 1)."""
    frame = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    spec = edgert.TensorSpec("input", (1, 128, 128, 3), np.float32)
    pre = Preprocessor(spec, "RGB", (1920, 1080), "letterbox", "bilinear", mean=127.5, std=127.5, pad_value=0,
                       pixel_centers="corner")
    s = 1920 / 128
    inverse = np.array([[s, 0, 0], [0, s, 540 - 960]])

    def mediapipe_chain():
        warped = cv2.warpAffine(frame, inverse, (128, 128), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return (warped.astype(np.float32) * np.float32(2 / 255) - np.float32(1))[None]

    t = race({"edgert": lambda: pre(frame), "cv2 warpAffine+scale": mediapipe_chain}, calls)
    return {"case": "1080p RGB -> 128x128 float32 letterbox, bilinear, corner pixel centres (BlazeFace, informational)",
            "ms": t, "speedup": {"vs cv2 warpAffine + x*2/255-1": t["cv2 warpAffine+scale"] / t["edgert"]},
            "targets": {}}


def yolov8_int8_output(rng, objects: int = 50):
    """A realistic YOLOv8 1x84x8400 int8 output: `objects` confident anchors, the rest near the zero point."""
    quant = edgert.Quantization(0.0052, -128)  # ~0..1.33: normalised boxes and class probabilities
    x = rng.integers(-128, -120, (1, 84, 8400)).astype(np.int8)
    for k, i in enumerate(rng.choice(8400, objects, replace=False)):
        cx, cy = rng.uniform(0.1, 0.9, 2)
        w, h = rng.uniform(0.03, 0.2, 2)
        for row, v in enumerate((cx, cy, w, h)):
            x[0, row, i] = int(round(v / 0.0052)) - 128
        x[0, 4 + k % 80, i] = int(round(rng.uniform(0.5, 0.95) / 0.0052)) - 128
        x[0, 4 + (k + 7) % 80, i] = int(round(0.2 / 0.0052)) - 128  # a runner-up class
    return x, edgert.TensorSpec("output0", (1, 84, 8400), np.int8, quant)


def numpy_nms(boxes, scores, iou):
    """The vectorised greedy NMS of the usual NumPy examples."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
        ovr = inter / (area(boxes[i]) + area(boxes[rest]) - inter)
        order = rest[ovr <= iou]
    return np.array(keep, np.intp)


def case_yolov8_decode(calls: int, rng) -> dict:
    """YOLOv8 1x84x8400 int8 -> NMS'd detections, conf 0.25, iou 0.45, class-agnostic NMS."""
    x, spec = yolov8_int8_output(rng)
    scale, zp = float(spec.quant.scale), int(spec.quant.zero_point)
    size = np.array([640, 640, 640, 640], np.float32)
    dec = YoloDecoder([spec], conf=0.25, iou=0.45, class_aware=False, input_size=(640, 640), normalized=True)

    def finish(xywh, scores, classes):
        boxes = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1) * size
        keep = numpy_nms(boxes, scores, 0.45)
        return boxes[keep], scores[keep], classes[keep]

    def dequantize_all():  # rknn_model_zoo / Ultralytics example style
        f = (x[0].astype(np.float32) - zp) * scale
        cls = f[4:]
        best = cls.max(0)
        m = best >= 0.25
        return finish(f[:4, m].T, best[m], cls[:, m].argmax(0))

    thr = int(np.ceil(0.25 / scale + zp))

    def integer_first():  # threshold the raw integers, dequantise only candidates
        q = x[0]
        best = q[4:].max(0)
        idx = np.flatnonzero(best >= thr)
        scores = (best[idx].astype(np.float32) - zp) * scale
        xywh = (q[:4, idx].T.astype(np.float32) - zp) * scale
        return finish(xywh, scores, q[4:, idx].argmax(0))

    ours, ref = dec([x]), dequantize_all()
    if len(ours) != len(ref[1]):
        raise SystemExit(f"yolov8 case: edgert found {len(ours)} detections, the NumPy baseline {len(ref[1])}")
    t = race({"edgert": lambda: dec([x]), "numpy dequantize-all": dequantize_all,
              "numpy integer-first": integer_first, "numpy x.max()": lambda: x.max(),
              "numpy class max (axis)": lambda: x[0, 4:].max(0)}, calls)
    return {"case": f"YOLOv8 1x84x8400 int8 -> {len(ours)} detections (NMS)", "ms": t,
            "speedup": {"vs NumPy dequantize-all (target 50x)": t["numpy dequantize-all"] / t["edgert"],
                        "vs NumPy integer-first (target 1.5x)": t["numpy integer-first"] / t["edgert"],
                        "one NumPy x.max() pass / edgert (target >= 1/3)": t["numpy x.max()"] / t["edgert"],
                        "NumPy class-axis max / edgert": t["numpy class max (axis)"] / t["edgert"]},
            "targets": {"vs NumPy dequantize-all (target 50x)": 50.0, "vs NumPy integer-first (target 1.5x)": 1.5,
                        "one NumPy x.max() pass / edgert (target >= 1/3)": 1 / 3}}


def case_allocations(rng, calls: int = 1000) -> dict:
    """Bytes traced by tracemalloc over `calls` steady-state calls with a reused output buffer."""
    frame = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    spec = edgert.TensorSpec("input", (1, 224, 224, 3), np.int8, edgert.Quantization(0.0078125, -1))
    pre = Preprocessor(spec, "BGR", (1920, 1080), "letterbox", "bilinear", mean=127.5, std=127.5)
    out = np.empty(spec.shape, np.int8)
    for _ in range(10):
        pre(frame, out=out)
        pre(frame)
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    for _ in range(calls):
        pre(frame, out=out)
        pre(frame)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"case": f"allocations over {calls} x 2 calls", "retained_bytes": current - base,
            "peak_bytes_above_start": peak - base, "output_bytes": out.nbytes}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=300, help="timed calls per function (>=200 for the figures)")
    ap.add_argument("--json", default="benchmarks/results/kernels.json", help="where to save results")
    ap.add_argument("--quick", action="store_true", help="few calls: a smoke run, not a measurement")
    args = ap.parse_args(argv)
    calls = 20 if args.quick else args.calls
    cv2.setNumThreads(1)
    malloc = {name: os.environ.get(name) for name in WARM_MALLOC}
    print(f"threads: edgert 1, OpenCV {cv2.getNumThreads()} (cv2.setNumThreads(1): like for like)")
    print("allocator: " + " ".join(f"{k}={v}" for k, v in malloc.items())
          + f" (a warmed-up process's glibc malloc; {os.environ.get('EDGERT_KERNELS_MALLOC', 'given by the caller')})")
    rng = np.random.default_rng(0)
    results = [case_bilinear(calls, rng), case_area(calls, rng), case_nv12_letterbox(calls, rng),
               case_nv12_general(calls, rng), case_blazeface_corner(calls, rng), case_yolov8_decode(calls, rng)]
    alloc = case_allocations(rng, 100 if args.quick else 1000)
    missed = []
    for r in results:
        print(f"\n{r['case']}")
        for name, ms in r["ms"].items():
            print(f"  {name:<28} {ms:8.3f} ms (median)")
        for name, ratio in r["speedup"].items():
            target = r["targets"].get(name)
            mark = "" if target is None else ("  ok" if ratio >= target else "  BELOW TARGET")
            if target is not None and ratio < target:
                missed.append(name)
            print(f"  speedup {name:<52} {ratio:6.2f}x{mark}")
    print(f"\n{alloc['case']}: retained {alloc['retained_bytes']} B, peak {alloc['peak_bytes_above_start']} B "
          f"above start (one output is {alloc['output_bytes']} B)")
    report = {"machine": {"python": sys.version.split()[0], "machine": platform.machine(),
                          "processor": platform.processor(), "cpus": os.cpu_count(),
                          "numpy": np.__version__, "opencv": cv2.__version__, "edgert": edgert.__version__},
              "calls": calls, "opencv_threads": cv2.getNumThreads(), "malloc_env": malloc,
              "results": results, "allocations": alloc}
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(f"\nsaved {path}" + (f"; below target: {', '.join(missed)}" if missed else "; all targets met"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
