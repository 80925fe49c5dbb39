"""Child process of the journal's kill -9 tests: records decisions until it is killed.

Usage: ``python journal_writer.py DB SNAPSHOT_DIR|- [CRASH_AT]``. Prints ``ready`` once the journal is
open, then ``<row id> <i>`` for decision ``i`` only after both `Journal.record` and
`Journal.set_actuation` returned: every printed row must survive the kill. With ``CRASH_AT`` the child
kills itself with SIGKILL when the snapshot store first goes over its bound, or after the ``CRASH_AT``-th
snapshot file was written, whichever is later — the moment between a snapshot's write and its eviction.
"""
from __future__ import annotations

import os
import signal
import sys

import numpy as np

from edgert.journal import DecisionRecord, Journal

BASE_TIME_NS = 1_700_000_000_000_000_000
#: The writer's bound on its snapshots; a journal reopened on its files with this bound must keep it.
SNAPSHOT_MAX_BYTES = 400_000


def expected_decision(i: int, snapshot: np.ndarray | None = None) -> DecisionRecord:
    """Decision number `i`: every field is a function of `i`, so the parent can check the row."""
    return DecisionRecord(item=i, frame_seq=3 * i + 1, time_ns=BASE_TIME_NS + i * 1_000_000, model="waste-net",
                          model_version=f"v{i % 7}", label=("can", "bottle", None)[i % 3],
                          top=(("can", 0.5 + (i % 50) / 100), ("bottle", 0.25)), bin=f"bin{i % 4}",
                          reason="vote", latency_ms={"infer": float(i % 13), "decide": 0.25}, truth="can",
                          snapshot=snapshot)


def expected_actuation(i: int) -> str:
    return f"ok {i}"


def crash_before_eviction(journal: Journal, crash_at: int) -> None:
    """Make `journal`'s store kill the process in `evict`, once it is over its bound and `crash_at` files in."""
    store, evict, written = journal._store, journal._store.evict, [0]

    def evict_or_die():
        written[0] += 1
        if written[0] >= crash_at and store.total_bytes > store.max_bytes:
            os.kill(os.getpid(), signal.SIGKILL)
        return evict()

    store.evict = evict_or_die


def main() -> None:
    db, snapshot_dir = sys.argv[1], sys.argv[2]
    journal = Journal(db, snapshot_dir=None if snapshot_dir == "-" else snapshot_dir,
                      snapshot_max_bytes=SNAPSHOT_MAX_BYTES)
    if len(sys.argv) > 3:
        crash_before_eviction(journal, int(sys.argv[3]))
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
