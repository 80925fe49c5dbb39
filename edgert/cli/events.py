"""`edgert events [CONFIG | --journal PATH] [--camera C] [--since T] [--type K] [--limit N] [--json]`:
the journaled events, newest first."""
from __future__ import annotations

import datetime as dt
import json
import re
import sys
import time

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def register(sub) -> None:
    """Add the `events` command to the `edgert` argument parser."""
    p = sub.add_parser("events", help="list the journaled events (zones, lines, tracks, model swaps), newest first",
                       description="Reads the events table of the journal a config file's service keeps in its "
                       "state directory, or of --journal PATH, without writing to it.")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("config", nargs="?", help="the service's config file (its state directory's journal)")
    where.add_argument("--journal", metavar="PATH", help="a journal file instead of a config")
    p.add_argument("--camera", help="only this camera's events")
    p.add_argument("--since", metavar="TIME", help="journaled at or after TIME: ISO 8601 (2026-12-01T08:00, local "
                   "time unless it names a zone) or a duration back from now (30s, 10m, 2h, 1d)")
    p.add_argument("--type", dest="kinds", action="append", metavar="KIND",
                   help="only events of this kind (repeat or comma-separate: zone_enter,line_cross)")
    p.add_argument("--limit", type=int, default=50, help="newest N events at most; 0: all (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="one JSON object per line, every column")
    p.set_defaults(func=main)


def parse_since(text: str, now: float | None = None) -> int:
    """`--since` as wall-clock nanoseconds: an ISO 8601 time or a duration (``10m``, ``2h``) back from `now`.

    Raises:
        ConfigError: Neither a duration nor an ISO time (the message says what is accepted).
    """
    from edgert.core.errors import ConfigError

    now = time.time() if now is None else now
    match = _DURATION.match(text)
    if match:
        return int((now - float(match.group(1)) * _UNIT_S[match.group(2)]) * 1e9)
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--since: {text!r} is neither a duration (30s, 10m, 2h, 1d, 1w) nor an ISO 8601 time "
                          "(2026-12-01T08:00:00)") from None
    return int(when.timestamp() * 1e9)  # a naive time is local time


def _journal_path(args):
    from pathlib import Path

    if args.journal:
        return Path(args.journal)
    from edgert.service.config import load_config
    from edgert.service.events import events_journal_path

    return events_journal_path(load_config(args.config))


def main(args) -> int:
    """Print the events that match the filters (0), or say there are none (still 0)."""
    from edgert.core.errors import ConfigError
    from edgert.journal.events import EventLog

    if args.limit < 0:
        raise ConfigError(f"--limit: expected 0 or more, got {args.limit}")
    kinds = [k.strip() for arg in args.kinds or () for k in arg.split(",") if k.strip()] or None
    since_ns = parse_since(args.since) if args.since else None
    path = _journal_path(args)
    with EventLog(path, read_only=True) as journal:
        rows = journal.query(camera=args.camera, kinds=kinds, since_ns=since_ns, limit=args.limit or None)
    out = sys.stdout
    for row in rows:
        if args.json:
            print(json.dumps(row.as_dict(), default=str), file=out)
        else:
            print(format_row(row), file=out)
    if not rows and not args.json:
        print(f"no events in {path} match", file=sys.stderr)
    return 0


def format_row(row) -> str:
    """One line for people: local time, kind, camera/track/class/zone/line where set, the message."""
    when = dt.datetime.fromtimestamp(row.time_ns / 1e9).isoformat(sep=" ", timespec="milliseconds")
    where = " ".join(f"{name}={value}" for name, value in (("camera", row.camera), ("track", row.track_id),
                     ("cls", row.cls), ("zone", row.zone), ("line", row.line)) if value is not None)
    snapshot = f" [{row.snapshot}]" if row.snapshot else ""
    return f"{when}  {row.kind:<14} {where + '  ' if where else ''}{row.message}{snapshot}  ({row.outbox})"
