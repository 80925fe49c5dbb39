"""Time `Model.run` against the raw interpreter calls a user would otherwise make, in one process.

    python benchmarks/backends.py [--model tests/data/mobilenetv2_int8.tflite] [--calls 300]

CPU backend: ``set_tensor`` + ``invoke`` + ``get_tensor`` on the same LiteRT interpreter settings
(1 thread, XNNPACK) versus ``edgert.load(...).run``; the overhead edgert adds must stay <= 3%.
Medians over interleaved rounds; results printed and saved as JSON. Also the infer p50 that
``edgert bench`` reports (its runner on 640x480 frames) against the raw median measured just before
and after it: the two must agree within 15%.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

import edgert  # noqa: E402
from edgert.bench.frames import load_frames  # noqa: E402
from edgert.bench.runner import BenchSettings, run_backend  # noqa: E402

HERE = Path(__file__).resolve().parent


def race(fns: dict, calls: int, rounds: int = 10) -> dict:
    """Median ms of each function, interleaved in rounds so machine noise hits all alike."""
    for fn in fns.values():
        for _ in range(10):
            fn()
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(max(1, calls // rounds)):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return {k: float(np.median(v) * 1e3) for k, v in times.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(HERE.parent / "tests/data/mobilenetv2_int8.tflite"))
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--json", default=str(HERE / "results/backends.json"))
    args = ap.parse_args(argv)
    model = edgert.load(args.model, backend="cpu", num_threads=1)
    raw = Interpreter(model_path=args.model, num_threads=1)
    raw.allocate_tensors()
    i, o = raw.get_input_details()[0]["index"], raw.get_output_details()[0]["index"]
    x = np.random.default_rng(0).integers(0, 256, model.inputs[0].shape).astype(model.inputs[0].dtype)
    np.testing.assert_array_equal(model.run(x)[0], (raw.set_tensor(i, x), raw.invoke(), raw.get_tensor(o))[2])

    def raw_run():
        raw.set_tensor(i, x)
        raw.invoke()
        return raw.get_tensor(o)

    t = race({"raw interpreter": raw_run, "edgert Model.run": lambda: model.run(x)}, args.calls)
    overhead = t["edgert Model.run"] / t["raw interpreter"] - 1
    print(f"{Path(args.model).name} on the cpu backend, 1 thread")
    for k, v in t.items():
        print(f"  {k:<20} {v:8.3f} ms (median)")
    print(f"  overhead of Model.run: {overhead * 100:+.2f}% (target <= 3%)"
          + ("  ok" if overhead <= 0.03 else "  ABOVE TARGET"))

    raw_p50 = [race({"raw": raw_run}, args.calls)["raw"]]
    frames = load_frames("synthetic", (640, 480), "BGR", count=4)
    run = run_backend(args.model, "cpu", frames, BenchSettings(frames=args.calls, warmup=10, src_size=(640, 480)))
    if run.status != "ok":
        raise SystemExit(f"edgert bench runner: {run.status}: {run.reason}")
    raw_p50.append(race({"raw": raw_run}, args.calls)["raw"])
    bench_ratio = run.stages["infer"].p50 / float(np.median(raw_p50))
    print(f"  edgert bench infer p50 {run.stages['infer'].p50:8.3f} ms: {bench_ratio:.3f}x the raw median "
          "(target 0.85-1.15)" + ("  ok" if 0.85 <= bench_ratio <= 1.15 else "  OUTSIDE TARGET"))
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"model": Path(args.model).name, "ms": t, "overhead": overhead,
                                "bench_infer_p50_ms": run.stages["infer"].p50, "bench_ratio": bench_ratio},
                               indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
