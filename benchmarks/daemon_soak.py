"""Soak the daemon as systemd runs it: memory over many frames, threads over many reloads.

Starts ``edgert run`` in a child process (CPU backend, MobileNetV2 1.0 int8, the synthetic conveyor
rendering unpaced so every frame is classified, mock GPIO), listening on its notify socket like
systemd does, and reports:
  * RSS after warm-up and after ``--frames`` frames (VmRSS from /proc), and the growth between;
  * threads before and after ``--reloads`` SIGHUP reloads that each rebuild the loop.

    python benchmarks/daemon_soak.py [--frames 100000] [--reloads 100] [--json benchmarks/results/soak.json]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import edgert

# The child imports the edgert this script imports (installed, or the checkout in a dev venv).
EDGERT_PATH = str(Path(edgert.__file__).resolve().parent.parent)
ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "tests" / "data" / "mobilenetv2_1.0_int8.tflite"

CONFIG = """
source: {{kind: conveyor, fps: 0, seed: 7}}
model:
  path: {model}
  backend: cpu
  options: {{num_threads: 1}}
  labels: [{labels}]
  preprocess: {{mean: 127.5, std: 127.5}}
presence: {{kind: frame_diff}}
policy:
  bins: {{"0": a, "1": b, "2": c}}
  votes: 5
  min_confidence: 0.0
  cooldown_s: {cooldown}
actuators:
  pin_factory: mock
  conveyor_delay_s: 0.3
  devices:
    - {{kind: servo, pin: 18, angles: {{a: -45, b: 0, c: 45, reject: 80}}, safe_angle: 0}}
journal: {{snapshots: false}}
service: {{state_dir: {state}, status_interval_s: 1.0}}
"""


def proc_status(pid: int) -> dict:
    text = Path(f"/proc/{pid}/status").read_text()
    return {k: int(re.search(rf"^{k}:\s+(\d+)", text, re.MULTILINE).group(1)) for k in ("VmRSS", "Threads")}


class Notify:
    """systemd's side of sd_notify: a datagram socket the child writes to."""

    def __init__(self, path: Path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.path = path
        self.last_status = ""

    def wait(self, predicate, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                msg = self.sock.recv(4096).decode()
            except TimeoutError:
                break
            if msg.startswith("STATUS="):
                self.last_status = msg
            if predicate(msg):
                return msg
        raise TimeoutError(f"no such notification within {timeout} s (last: {self.last_status})")


def frames_done(status: str) -> int:
    m = re.search(r"(\d+) frames", status)
    return int(m.group(1)) if m else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--reloads", type=int, default=100)
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "soak.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="edgert-soak-") as tmp:
        tmp = Path(tmp)
        labels = ", ".join(f'"{i}"' for i in range(1000))
        configs = [CONFIG.format(model=MODEL, labels=labels, state=tmp / "state", cooldown=c) for c in (0.0, 0.05)]
        config = tmp / "edgert.yaml"
        config.write_text(configs[0])
        notify = Notify(tmp / "notify.sock")
        env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "PYTHONPATH": EDGERT_PATH,
               "OPENBLAS_NUM_THREADS": "1"}
        child = subprocess.Popen([sys.executable, "-m", "edgert.cli", "run", "--config", str(config),
                                  "--log-level", "warning"], env=env, cwd=tmp)
        result = {}
        try:
            notify.wait(lambda m: m == "READY=1", 120)
            warm = notify.wait(lambda m: frames_done(m) >= 2000, 300)
            start = proc_status(child.pid)
            start_frames, t0 = frames_done(warm), time.monotonic()
            print(f"warm: {start_frames} frames, RSS {start['VmRSS'] / 1024:.1f} MB, {start['Threads']} threads")
            status = warm
            while frames_done(status) < start_frames + args.frames:
                status = notify.wait(lambda m: m.startswith("STATUS="), 60)
            end = proc_status(child.pid)
            n = frames_done(status) - start_frames
            print(f"after {n} more frames ({n / (time.monotonic() - t0):.0f} fps): RSS {end['VmRSS'] / 1024:.1f} MB, "
                  f"growth {(end['VmRSS'] - start['VmRSS']) / 1024:+.2f} MB")
            result.update(frames=n, rss_start_mb=start["VmRSS"] / 1024, rss_end_mb=end["VmRSS"] / 1024,
                          rss_growth_mb=(end["VmRSS"] - start["VmRSS"]) / 1024)

            threads_before = proc_status(child.pid)["Threads"]
            for i in range(args.reloads):
                config.write_text(configs[(i + 1) % 2])  # every reload rebuilds the loop
                child.send_signal(signal.SIGHUP)
                notify.wait(lambda m: m.startswith("RELOADING=1"), 60)
                notify.wait(lambda m: m == "READY=1", 60)
                if (i + 1) % max(1, args.reloads // 5) == 0:
                    now = proc_status(child.pid)
                    print(f"  after {i + 1} reloads: RSS {now['VmRSS'] / 1024:.1f} MB, {now['Threads']} threads")
            time.sleep(2.0)  # servo hold timers of the last items
            after = proc_status(child.pid)
            print(f"threads: {threads_before} before {args.reloads} reloads, {after['Threads']} after; "
                  f"RSS {after['VmRSS'] / 1024:.1f} MB")
            result.update(reloads=args.reloads, threads_before=threads_before, threads_after=after["Threads"],
                          rss_after_reloads_mb=after["VmRSS"] / 1024)
        finally:
            child.send_signal(signal.SIGTERM)
            code = child.wait(30)
            print(f"exit code {code}")
        result["exit_code"] = code
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(f"saved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
