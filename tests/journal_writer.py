"""Child process of the journal's kill -9 test: records decisions until it is killed.

Usage: ``python journal_writer.py DB SNAPSHOT_DIR|-``. Prints ``ready`` once the journal is open, then
``<row id> <i>`` for decision ``i`` only after both `Journal.record` and `Journal.set_actuation` returned:
every printed row must survive the kill.
"""
from __future__ import annotations

import sys

import numpy as np

from edgert.journal import DecisionRecord, Journal

BASE_TIME_NS = 1_700_000_000_000_000_000


def expected_decision(i: int, snapshot: np.ndarray | None = None) -> DecisionRecord:
    """Decision number `i`: every field is a function of `i`, so the parent can check the row."""
    return DecisionRecord(item=i, frame_seq=3 * i + 1, time_ns=BASE_TIME_NS + i * 1_000_000, model="waste-net",
                          model_version=f"v{i % 7}", label=("can", "bottle", None)[i % 3],
                          top=(("can", 0.5 + (i % 50) / 100), ("bottle", 0.25)), bin=f"bin{i % 4}",
                          reason="vote", latency_ms={"infer": float(i % 13), "decide": 0.25}, truth="can",
                          snapshot=snapshot)


def expected_actuation(i: int) -> str:
    return f"ok {i}"


def main() -> None:
    db, snapshot_dir = sys.argv[1], sys.argv[2]
    journal = Journal(db, snapshot_dir=None if snapshot_dir == "-" else snapshot_dir,
                      snapshot_max_bytes=400_000)
    image = np.random.default_rng(1).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    print("ready", flush=True)
    i = 0
    while True:
        row_id = journal.record(expected_decision(i, image))
        journal.set_actuation(row_id, expected_actuation(i))
        print(row_id, i, flush=True)
        i += 1


if __name__ == "__main__":
    main()
