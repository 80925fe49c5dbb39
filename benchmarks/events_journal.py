"""Journaling events: what the app's thread waits for, and how many events a second reach the disk.

    python benchmarks/events_journal.py [--events 2000] [--dir /var/lib/edgert] [--json out.json]

Baseline: what a user would write first, one committed INSERT per event on the publisher's thread
(`EventLog.record`, WAL + synchronous=FULL: one fsync each). Against it, the service's way
(`EventRecorder`: `publish` queues, one writer thread commits each backlog in one transaction). Both
in this process, on the same disk (`--dir`; its fsync cost decides everything), alternating rounds,
medians. Prints the publisher's time per event and the events committed per second, with ratios.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from edgert.journal import EventLog
from edgert.pipeline.app import Events
from edgert.service.events import EventRecorder


def details(i: int) -> dict:
    return {"camera": f"cam{i % 4}", "track_id": i, "cls": "person", "t": 1.7e9 + i / 30, "zone": "door",
            "box": [i % 640, 10, i % 640 + 40, 90], "dwell_s": i / 30}


def one_commit_per_event(path: Path, n: int) -> tuple[float, float]:
    """(publisher µs per event, events committed per second) for synchronous records."""
    with EventLog(path) as events:
        t0 = time.perf_counter()
        for i in range(n):
            events.record("zone_enter", "person entered door", details(i))
        elapsed = time.perf_counter() - t0
    return elapsed / n * 1e6, n / elapsed


def recorder(path: Path, n: int) -> tuple[float, float]:
    """(publisher µs per event, events committed per second) through the service's recorder."""
    stream = Events()
    rec = EventRecorder(path, stream, queue_size=n + 1)
    try:
        t0 = time.perf_counter()
        for i in range(n):
            stream.publish("zone_enter", "person entered door", **details(i))
        published = time.perf_counter() - t0
        assert rec.flush(600)
        committed = time.perf_counter() - t0
        assert rec.log.count() == n and rec.errors == 0
    finally:
        rec.close()
    return published / n * 1e6, n / committed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", default=None, help="directory on the disk to measure (default: a temp dir)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    results: dict[str, list] = {"baseline": [], "recorder": []}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        recorder(Path(tmp) / "warm.sqlite3", 200)  # warm-up: imports, page cache
        one_commit_per_event(Path(tmp) / "warm2.sqlite3", 200)
        for r in range(args.rounds):
            results["baseline"].append(one_commit_per_event(Path(tmp) / f"b{r}.sqlite3", args.events))
            results["recorder"].append(recorder(Path(tmp) / f"r{r}.sqlite3", args.events))
    summary = {name: {"publisher_us_per_event": statistics.median(x[0] for x in rows),
                      "committed_per_s": statistics.median(x[1] for x in rows)} for name, rows in results.items()}
    base, ours = summary["baseline"], summary["recorder"]
    summary["ratios"] = {"publisher_wait": base["publisher_us_per_event"] / ours["publisher_us_per_event"],
                         "throughput": ours["committed_per_s"] / base["committed_per_s"]}
    print(f"{args.events} events x {args.rounds} rounds, medians")
    for name in ("baseline", "recorder"):
        s = summary[name]
        print(f"  {name:<9} publisher waits {s['publisher_us_per_event']:8.1f} us/event, "
              f"{s['committed_per_s']:9.0f} events/s on disk")
    print(f"  recorder: publisher waits {summary['ratios']['publisher_wait']:.1f}x less, "
          f"{summary['ratios']['throughput']:.1f}x the events/s")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
