"""Child process of the events' kill -9 test: journals events until it is killed.

Usage: ``python event_writer.py DB``. Prints ``ready`` once the journal is open, then ``<row id> <i>`` for
event ``i`` only after `EventLog.record` returned: every printed row must survive the kill, whole.
"""
from __future__ import annotations

import sys

from edgert.journal import EventLog


def expected_event(i: int) -> tuple[str, str, dict]:
    """Event number `i` (kind, message, details): every field a function of `i`, a long one among them."""
    details = {"camera": f"cam{i % 3}", "track_id": i, "cls": ("person", "car")[i % 2], "t": 1.7e9 + i / 8,
               "zone": "door" if i % 2 else None, "line": None if i % 2 else "gate", "direction": "in",
               "box": [i, i + 1, i + 50, i + 80], "padding": "x" * (i % 5000)}
    return ("zone_enter" if i % 2 else "line_cross"), f"event {i}", details


def main() -> None:
    events = EventLog(sys.argv[1])
    print("ready", flush=True)
    i = 0
    while True:
        kind, message, details = expected_event(i)
        row_id = events.record(kind, message, details)
        print(row_id, i, flush=True)
        i += 1


if __name__ == "__main__":
    main()
