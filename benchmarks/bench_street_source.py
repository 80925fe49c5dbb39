"""How fast the synthetic street renders, per camera, on one thread (target: 30 fps at 1280x720).

    python benchmarks/bench_street_source.py [--size 1280x720] [--frames 300]

Renders every frame of each camera's stream unpaced (``fps=0``: the scene still advances 1/30 s per
frame), after 30 warm-up frames, and prints the median and mean frame time, the frames per second,
the ratio to the 30-fps target, the CPU time per frame (what one core spends, whatever else the
machine runs), and the floor a frame cannot go under in the same process (copying
the background and adding the noise, nothing drawn), and saves them as JSON (``--json``).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from edgert.core import durable
from edgert.sources.street import VIEWPOINTS, StreetConfig, StreetScene


def _times(fn, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Wall and CPU (this process) seconds of each of `n` calls: on a shared machine the CPU time is
    what one core spends, whatever else runs."""
    wall, cpu = np.empty(n), np.empty(n)
    for i in range(n):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall[i], cpu[i] = time.perf_counter() - t, time.process_time() - c
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--json", default="benchmarks/results/street_source.json", help="where to save results")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    cv2.setNumThreads(1)
    results = {"size": [w, h], "frames": args.frames, "cameras": {}}
    for camera in range(len(VIEWPOINTS)):
        scene = StreetScene(StreetConfig(fps=0, seed=0, camera=camera, size=(w, h)), cv2)
        for _ in range(30):
            scene.next_frame()
        objects = []
        times, cpu = _times(lambda: objects.append(len(scene.next_frame()[1]["objects"])), args.frames)
        floor, _ = _times(lambda: scene._add_noise(scene.background.copy()), args.frames)
        med, cpu_med = float(np.median(times)), float(np.median(cpu))
        results["cameras"][camera] = {"ms_median": round(1000 * med, 3), "ms_mean": round(1000 * times.mean(), 3),
                                      "cpu_ms_median": round(1000 * cpu_med, 3), "fps": round(1 / med, 1),
                                      "fps_one_core_cpu": round(1 / cpu_med, 1),
                                      "objects_mean": round(float(np.mean(objects)), 1),
                                      "floor_ms_median": round(1000 * float(np.median(floor)), 3)}
        r = results["cameras"][camera]
        print(f"camera {camera}: {r['ms_median']:.2f} ms median wall ({r['fps']:.0f} fps, {r['fps'] / 30:.1f}x the "
              f"30-fps target), {r['cpu_ms_median']:.2f} ms CPU ({r['fps_one_core_cpu']:.0f} fps of one core), "
              f"{r['objects_mean']:.0f} objects; floor (copy + noise) {r['floor_ms_median']:.2f} ms")
    durable.write_text(Path(args.json), json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
