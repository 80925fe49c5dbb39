"""The journal's events table: contract columns, filters, the outbox state, migration of the journals
today's code leaves (schema 2 with service events), kill -9 of a writer, `edgert events`, and the
service recording every app event."""
from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from event_writer import expected_event

from edgert.cli.events import parse_since
from edgert.cli.main import main as cli_main
from edgert.core.errors import ConfigError, JournalError
from edgert.journal import SCHEMA_VERSION, EventLog
from edgert.pipeline.app import Events
from edgert.service.events import EventRecorder

REPO = Path(__file__).resolve().parents[1]
WRITER = Path(__file__).with_name("event_writer.py")
KILL_SEED = int(os.environ.get("EDGERT_KILL_SEED", "20261202"))

# The schema version 2 left, written out as it was (db.py before version 3): what a device has today.
V2_SCHEMA = """
CREATE TABLE decisions (id INTEGER PRIMARY KEY, item INTEGER NOT NULL, frame_seq INTEGER NOT NULL,
    time_ns INTEGER NOT NULL, model TEXT NOT NULL, model_version TEXT NOT NULL, label TEXT, top TEXT NOT NULL,
    bin TEXT NOT NULL, reason TEXT NOT NULL, latency_ms TEXT NOT NULL, truth TEXT,
    actuation TEXT NOT NULL DEFAULT 'pending', actuated_ns INTEGER, snapshot TEXT);
CREATE INDEX decisions_time ON decisions (time_ns);
CREATE TABLE events (id INTEGER PRIMARY KEY, time_ns INTEGER NOT NULL, kind TEXT NOT NULL,
    message TEXT NOT NULL, details TEXT NOT NULL DEFAULT '{}');
"""


def make_v2_journal(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode = WAL")
        db.executescript(V2_SCHEMA)
        db.execute("INSERT INTO events (time_ns, kind, message, details) VALUES (?, 'model_swap', 'swapped', ?)",
                   (1_700_000_000_000_000_000, json.dumps({"version": "1.1"})))
        db.execute("INSERT INTO decisions (item, frame_seq, time_ns, model, model_version, top, bin, reason, "
                   "latency_ms) VALUES (0, 0, 1, 'm', '1', '[]', 'b', 'vote', '{}')")
        db.execute("PRAGMA user_version = 2")


def test_contract_keys_get_columns_and_details_keep_everything(tmp_path):
    with EventLog(tmp_path / "j.sqlite3") as events:
        first = events.record("zone_enter", "person 7 entered door", {
            "camera": "front", "track_id": 7, "cls": "person", "t": 1.7e9, "zone": "door", "dwell_s": 0.0,
            "box": [1.5, 2, 30, 40], "snapshot": "snapshots/events/x.jpg"})
        second = events.record("line_cross", "car crossed", {"camera": "gate", "track_id": 9.0, "cls": "car",
                                                              "line": "lane1", "direction": "a_to_b",
                                                              "t": float("nan"), "speed_kmh": float("inf")})
        third = events.record("model_swap", "swapped", {"version": "2"})
        rows = {r.id: r for r in events.query()}
    assert (first, second, third) == (1, 2, 3)
    a, b, c = rows[first], rows[second], rows[third]
    assert (a.camera, a.track_id, a.cls, a.t, a.zone, a.line, a.snapshot) == (
        "front", 7, "person", 1.7e9, "door", None, "snapshots/events/x.jpg")
    assert a.details["box"] == [1.5, 2, 30, 40] and a.details["dwell_s"] == 0.0
    assert (b.track_id, b.t, b.line, b.details["t"], b.details["speed_kmh"]) == (9, None, "lane1", None, None)
    assert (c.camera, c.track_id) == (None, None) and c.details == {"version": "2"}
    assert len({a.uid, b.uid, c.uid}) == 3 and all(len(r.uid) == 32 for r in rows.values())
    assert {r.outbox for r in rows.values()} == {"pending"}
    payload = a.payload()
    assert payload["event"] == "zone_enter" and payload["event_id"] == a.uid and payload["seq"] == first
    assert payload["camera"] == "front" and json.loads(json.dumps(payload)) == payload


def test_filters_and_the_outbox_state(tmp_path):
    with EventLog(tmp_path / "j.sqlite3") as events:
        for i in range(10):
            events.record("zone_enter" if i % 2 else "line_cross", f"e{i}", {"camera": f"cam{i % 3}"},
                          time_ns=1_000 + i)
        assert [r.message for r in events.query(camera="cam1")] == ["e7", "e4", "e1"]
        assert [r.message for r in events.query(kinds=["line_cross"], limit=2)] == ["e8", "e6"]
        assert [r.message for r in events.query(since_ns=1_007)] == ["e9", "e8", "e7"]
        assert [r.message for r in events.query(camera="cam0", kinds=["zone_enter"], since_ns=1_002)] == ["e9", "e3"]
        assert [r.id for r in events.pending(3)] == [1, 2, 3]
        assert events.mark_published([1, 2, 99]) == 2
        assert events.mark_published([2]) == 0  # already published: not changed again
        assert [r.id for r in events.pending(3)] == [3, 4, 5]
        assert events.query(outbox="published", newest_first=False)[0].published_ns is not None
        assert events.counts("cam1") == {"events": {"line_cross": 1, "zone_enter": 2}, "lines": {}}
        for direction, cls in (("a_to_b", "car"), ("a_to_b", "car"), ("b_to_a", "car"), ("a_to_b", "person")):
            events.record("line_cross", "x", {"camera": "cam1", "line": "lane1", "direction": direction, "cls": cls})
        assert events.counts("cam1")["lines"] == {"lane1": {"a_to_b": {"car": 2, "person": 1}, "b_to_a": {"car": 1}}}


def test_a_version_2_journal_of_todays_code_is_migrated(tmp_path):
    path = tmp_path / "j.sqlite3"
    make_v2_journal(path)
    with EventLog(path) as events:
        old, = events.query()
        new = events.record("zone_exit", "left", {"camera": "c", "zone": "z"})
        assert old.kind == "model_swap" and old.details == {"version": "1.1"} and old.camera is None
        assert old.outbox == "skipped" and len(old.uid) == 32  # sent when it happened, by the old path
        assert [r.id for r in events.pending()] == [new]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
        assert db.execute("SELECT count(*) FROM decisions").fetchone()[0] == 1
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with EventLog(path) as events:  # opening again migrates nothing twice
        assert len(events.query()) == 2


def test_a_newer_journal_and_bad_files_are_refused_in_one_line(tmp_path):
    path = tmp_path / "j.sqlite3"
    EventLog(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    for read_only in (False, True):
        with pytest.raises(JournalError, match="newer than this edgert") as err:
            EventLog(path, read_only=read_only)
        assert "\n" not in str(err.value)
    with pytest.raises(JournalError, match="no journal at"):
        EventLog(tmp_path / "missing.sqlite3", read_only=True)


def test_read_only_opening_writes_nothing(tmp_path):
    path = tmp_path / "j.sqlite3"
    with EventLog(path) as events:
        events.record("zone_enter", "x", {"camera": "c"})
    before = path.stat().st_mtime_ns, path.stat().st_size
    with EventLog(path, read_only=True) as events:
        assert len(events.query()) == 1
        with pytest.raises(JournalError, match="not journaled"):
            events.record("zone_enter", "y", {})
    assert (path.stat().st_mtime_ns, path.stat().st_size) == before


def run_writer(path: Path, target: int) -> dict[int, int]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen([sys.executable, str(WRITER), str(path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    printed = {}
    try:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()[-2000:]
        while len(printed) < target:
            line = child.stdout.readline()
            assert line, child.stderr.read()[-2000:]
            row_id, i = map(int, line.split())
            printed[row_id] = i
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    for line in child.stdout:  # what was in the pipe at the kill
        if line.endswith("\n"):
            row_id, i = map(int, line.split())
            printed[row_id] = i
    assert child.returncode == -signal.SIGKILL
    return printed


def test_kill_9_leaves_no_half_written_event(tmp_path):
    import numpy as np

    path = tmp_path / "j.sqlite3"
    make_v2_journal(path)  # the writer migrates it first, then journals
    target = 40 + int(np.random.default_rng(KILL_SEED).integers(0, 60))
    print(f"kill point: after {target} printed events (EDGERT_KILL_SEED={KILL_SEED})")
    printed = run_writer(path, target)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with EventLog(path) as events:
        rows = {r.id: r for r in events.query() if r.kind != "model_swap"}
        resumed = events.record("zone_exit", "after the kill", {})
    assert set(printed) <= set(rows) and len(rows) - len(printed) <= 1  # at most the one in flight
    by_i = {int(r.message.split()[1]): r for r in rows.values()}
    for i, row in by_i.items():  # every row there is whole, the unprinted one too
        kind, message, details = expected_event(i)
        assert (row.kind, row.message, row.details, row.camera, row.track_id, row.zone, row.line) == (
            kind, message, details, details["camera"], i, details["zone"], details["line"])
    assert sorted(by_i) == list(range(len(by_i)))
    assert resumed == max(rows) + 1


def test_the_recorder_journals_every_event_and_counts_failures(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="edgert.service.events")
    events = Events()
    recorder = EventRecorder(tmp_path / "j.sqlite3", events)
    seen = []
    recorder.on_recorded(lambda row_id, event: seen.append((row_id, event.kind)))
    events.publish("track_start", "person 1", camera="c", track_id=1, cls="person")
    events.publish("model_swap", "swapped", version="2")
    assert recorder.flush(10)
    recorder.log._conn.execute("PRAGMA query_only = 1")  # every write now fails as a read-only disk would
    events.publish("track_end", "person 1 left", camera="c", track_id=1)
    events.publish("track_end", "person 1 left", camera="c", track_id=1)
    assert recorder.flush(10)
    recorder.log._conn.execute("PRAGMA query_only = 0")
    events.publish("zone_enter", "back", camera="c")
    recorder.close()
    recorder.close()  # idempotent
    assert seen == [(1, "track_start"), (2, "model_swap"), (3, "zone_enter")]
    assert recorder.errors == 2 and recorder.recorded == {"track_start": 1, "model_swap": 1, "zone_enter": 1}
    assert sum("counting further failures" in r.getMessage() for r in caplog.records) == 1
    assert "journaled again" in caplog.text
    with EventLog(tmp_path / "j.sqlite3", read_only=True) as log:
        assert [r.kind for r in log.query(newest_first=False)] == ["track_start", "model_swap", "zone_enter"]


def test_the_publisher_never_waits_for_the_disk_and_batches_commit_together(tmp_path, monkeypatch):
    """A slow disk (every commit held until released) does not hold up `publish`; what queued meanwhile is
    committed in one transaction; a full queue drops and counts."""
    events = Events()
    recorder = EventRecorder(tmp_path / "j.sqlite3", events, queue_size=50)
    gate, calls = threading.Event(), []
    real = recorder.log.record_many

    def slow(items):
        calls.append(len(items))
        assert gate.wait(30)
        return real(items)

    monkeypatch.setattr(recorder.log, "record_many", slow)
    events.publish("track_start", "first", camera="c", track_id=0)
    deadline = time.monotonic() + 10
    while not calls and time.monotonic() < deadline:  # the writer holds the first one
        time.sleep(0.005)
    for i in range(1, 60):  # returns at once although the disk is stuck; 50 queue, 9 are dropped
        events.publish("track_update", f"update {i}", camera="c", track_id=i)
    assert recorder.dropped == 9 and recorder.errors == 9
    gate.set()
    assert recorder.flush(30)
    recorder.close()
    assert calls == [1, 50]  # one transaction for the backlog
    with EventLog(tmp_path / "j.sqlite3", read_only=True) as log:
        assert [r.track_id for r in log.query(newest_first=False)] == list(range(51))


def test_record_many_is_all_or_nothing(tmp_path):
    with EventLog(tmp_path / "j.sqlite3") as events:
        events.record("a", "before", {})
        pages = events._conn.execute("PRAGMA page_count").fetchone()[0]
        events._conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLITE_FULL as a full disk
        with pytest.raises(JournalError, match="disk full .*200 event"):
            events.record_many([("b", "x" * 2000, {"i": i}, None) for i in range(200)])
        events._conn.execute("PRAGMA max_page_count = 1000000")
        assert [r.message for r in events.query()] == ["before"]
        assert events.record_many([("c", "after", {}, 5), ("d", "after", {"t": 1.5}, 6)]) == [2, 3]


# -- edgert events ---------------------------------------------------------------------------------


def test_parse_since_durations_and_iso_times():
    now = 1_800_000_000.0
    assert parse_since("10m", now) == int((now - 600) * 1e9)
    assert parse_since("2h", now) == int((now - 7200) * 1e9)
    assert parse_since(" 1.5s ", now) == int((now - 1.5) * 1e9)
    assert parse_since("2026-12-01T08:00:00+00:00") == 1_796_112_000 * 10**9
    assert parse_since("2026-12-01T08:00:00Z") == 1_796_112_000 * 10**9
    for bad in ("yesterday", "10 minutes", "-5m", ""):
        with pytest.raises(ConfigError, match="--since: .* neither a duration"):
            parse_since(bad, now)


@pytest.fixture
def journal_file(tmp_path):
    path = tmp_path / "state" / "journal.sqlite3"
    now = time.time_ns()
    with EventLog(path) as events:
        events.record("zone_enter", "person 3 entered door", {"camera": "front", "track_id": 3, "zone": "door"},
                      time_ns=now - 3 * 3600 * 10**9)
        events.record("line_cross", "car 5 crossed lane1", {"camera": "gate", "track_id": 5, "line": "lane1"},
                      time_ns=now - 60 * 10**9)
        events.record("zone_exit", "person 3 left door", {"camera": "front", "track_id": 3, "zone": "door"},
                      time_ns=now - 30 * 10**9)
    return path


def test_edgert_events_lists_and_filters(journal_file, tmp_path, capsys):
    assert cli_main(["events", "--journal", str(journal_file), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["kind"] for r in rows] == ["zone_exit", "line_cross", "zone_enter"]
    assert rows[0]["camera"] == "front" and rows[0]["details"]["zone"] == "door" and rows[0]["outbox"] == "pending"
    assert cli_main(["events", "--journal", str(journal_file), "--camera", "front", "--since", "1h"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and "zone_exit" in out[0] and "camera=front" in out[0] and "track=3" in out[0]
    assert cli_main(["events", "--journal", str(journal_file), "--type", "line_cross,zone_enter", "--limit", "1",
                     "--json"]) == 0
    assert [json.loads(x)["kind"] for x in capsys.readouterr().out.splitlines()] == ["line_cross"]
    config = tmp_path / "edgert.yaml"
    demo = (REPO / "edgert" / "examples" / "demo.yaml").read_text()
    config.write_text(demo.replace("state_dir: /tmp/edgert-demo", f"state_dir: {journal_file.parent}"))
    assert cli_main(["events", str(config), "--type", "zone_enter", "--json"]) == 0
    assert [json.loads(x)["kind"] for x in capsys.readouterr().out.splitlines()] == ["zone_enter"]
    assert cli_main(["events", "--journal", str(journal_file), "--camera", "nowhere"]) == 0
    assert "match" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--since", "soon"], "--since: 'soon' is neither"),
    (["--limit", "-1"], "--limit: expected 0 or more"),
])
def test_edgert_events_bad_input_is_one_line(journal_file, capsys, argv, message):
    assert cli_main(["events", "--journal", str(journal_file), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_edgert_events_without_a_journal(tmp_path, capsys):
    assert cli_main(["events", "--journal", str(tmp_path / "none.sqlite3")]) == 2
    assert "no journal at" in capsys.readouterr().err


def test_old_delivered_events_are_pruned_and_pending_ones_kept(tmp_path):
    day = 86_400 * 10**9
    now = 100 * day
    recorder = EventRecorder(tmp_path / "j.sqlite3", Events(), keep_days=2)
    log = recorder.log
    for age_days, delivered in ((5, True), (5, False), (3, True), (1, True), (0, False)):
        row = log.record("track_end", f"{age_days} days old", {"delivered": delivered}, time_ns=now - age_days * day)
        if delivered:
            log.mark_published([row])
    assert recorder.prune(now_ns=now) == 2
    assert sorted(r.message for r in log.query()) == ["0 days old", "1 days old", "5 days old"]
    assert log.count() == 3 and log.count(outbox="pending") == 2
    assert log.prune(now, batch=1) == 1  # batches add up
    recorder.close()
    keeper = EventRecorder(tmp_path / "j.sqlite3", Events())
    assert keeper.prune() == 0 and keeper.log.count() == 2  # no keep_days: kept
    keeper.close()
