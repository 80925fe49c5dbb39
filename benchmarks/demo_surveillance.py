"""Speed item 4 of issue 12: `edgert demo surveillance` with two cameras on the CPU backend, fps per camera.

    python benchmarks/demo_surveillance.py [--cameras 2] [--frames 450] [--seconds 30]

Two runs of the demo itself (`run_surveillance_demo`, the embedded config), in this process:

* **unpaced** (``--fps 0``): the cameras render a frame whenever the app has taken the last one, so the
  processed fps per camera is what the machine sustains (no frame dropped);
* **paced** at the config's 15 fps for ``--seconds``: processed fps per camera against the 15 offered,
  and the frames newest-wins dropped.

The machine is shared, so next to each wall-clock figure it prints the load average and this process's
CPU seconds per processed frame (what the work costs whatever else runs), the ratio to the 15-fps
target, and a baseline measured in the same process: the street cameras' rendering alone (the part a
real camera would do), per frame of one camera.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import time
from pathlib import Path

import numpy as np

from edgert.cli.demo_surveillance import run_surveillance_demo, surveillance_config
from edgert.core import durable

TARGET_FPS = 15.0


def _render_baseline(cameras: int, frames: int = 60) -> dict:
    """Median wall and CPU ms per rendered frame of each camera (30 warm-up frames first)."""
    import cv2

    from edgert.sources.street import StreetScene

    out = {}
    for cam in surveillance_config(Path("."), cameras, fps=0).cameras:  # (the state directory is not used)
        scene = StreetScene(cam.source, cv2)
        for _ in range(30):
            scene.next_frame()
        wall, cpu = [], []
        for _ in range(frames):
            t, c = time.perf_counter(), time.process_time()
            scene.next_frame()
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        out[cam.id] = {"wall_ms": round(1000 * float(np.median(wall)), 2),
                       "cpu_ms": round(1000 * float(np.median(cpu)), 2)}
    return out


def _run(label: str, **options) -> dict:
    load_before = os.getloadavg()
    cpu0 = time.process_time()
    buf = io.StringIO()
    run_surveillance_demo(as_json=True, out=buf, **options)
    cpu = time.process_time() - cpu0
    result = json.loads(buf.getvalue())
    frames = sum(c["processed"] for c in result["cameras"].values())
    result["bench"] = {"label": label, "load_before": [round(v, 2) for v in load_before],
                       "process_cpu_s": round(cpu, 2), "cpu_ms_per_frame": round(1000 * cpu / max(frames, 1), 2)}
    print(f"{label}: {result['run']['seconds']:.1f} s, load average {load_before[0]:.2f} before, "
          f"{result['run']['load_average'][0]:.2f} after, on {result['run']['cpus']} CPUs; "
          f"process CPU {result['bench']['cpu_ms_per_frame']:.1f} ms per processed frame")
    for cam_id, cam in result["cameras"].items():
        print(f"  {cam_id:12s} {cam['fps']:6.1f} fps ({cam['fps'] / TARGET_FPS:.2f}x the {TARGET_FPS:g}-fps target), "
              f"{cam['processed']} processed, {cam['dropped']} dropped")
    lat = result["latency_ms"].get("capture_to_event")
    if lat:
        print(f"  capture to event: p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=int, default=2)
    ap.add_argument("--frames", type=int, default=450, help="frames per camera of the unpaced run")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the paced run (0: skip it)")
    ap.add_argument("--json", default="benchmarks/results/demo_surveillance.json", help="where to save results")
    args = ap.parse_args()
    print(f"nice {os.nice(0)}, pid {os.getpid()}")
    baseline = _render_baseline(args.cameras)
    for cam_id, row in baseline.items():
        print(f"baseline: rendering {cam_id} alone {row['wall_ms']:.1f} ms wall, {row['cpu_ms']:.1f} ms CPU per frame")
    results = {"baseline_render": baseline,
               "unpaced": _run("unpaced", seconds=None, frames=args.frames, cameras=args.cameras, fps=0)}
    if args.seconds > 0:
        results["paced"] = _run(f"paced at {TARGET_FPS:g} fps", seconds=args.seconds, cameras=args.cameras)
    durable.write_text(Path(args.json), json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
