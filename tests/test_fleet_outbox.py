"""The outbox against a real mosquitto: journaled events delivered once each, in order, marked published
only after the PUBACK; a broker outage and a restart of the service (also a kill -9 mid-delivery) lose
nothing; retained per-camera counts."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (extra: ota)")
from mosquitto import Mosquitto, Subscriber, require_mosquitto

import edgert
from edgert.fleet.config import FleetConfig
from edgert.fleet.mqtt import FleetAgent
from edgert.fleet.outbox import Outbox
from edgert.journal import EventLog

EDGERT_PATH = str(Path(edgert.__file__).resolve().parent.parent)
EVENTS, COUNTS = "edgert/box-1/events", "edgert/box-1/counts/#"


class Handler:
    def state(self):
        return {"models": {}, "health": "ok"}


def fleet_config(port: int) -> FleetConfig:
    return FleetConfig(enabled=True, host="127.0.0.1", port=port, device_id="box-1", keepalive_s=10,
                       reconnect_min_s=0.1, reconnect_max_s=0.5)


def start_link(events: EventLog, port: int) -> tuple[FleetAgent, Outbox]:
    agent = FleetAgent(fleet_config(port), Handler())
    agent.start()
    outbox = Outbox(events, agent, batch=7, ack_timeout_s=5, retry_min_s=0.05, retry_max_s=0.5)
    outbox.start()
    return agent, outbox


def stop_link(agent: FleetAgent, outbox: Outbox) -> None:
    outbox.close()
    agent.close()


def record(events: EventLog, first: int, n: int) -> None:
    for i in range(first, first + n):
        camera = ("front", "gate")[i % 2]
        kind = "line_cross" if camera == "gate" else "zone_enter"
        events.record(kind, f"event {i}", {"camera": camera, "track_id": i, "cls": "car" if i % 2 else "person",
                                           "line": "lane1" if i % 2 else None, "direction": "a_to_b", "n": i})


def wait_until(predicate, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.02)


def delivered(subscriber: Subscriber, *, first_copies: bool = False) -> list[dict]:
    """The events that arrived; with `first_copies`, without the broker's own redeliveries (DUP flag)."""
    arrived = zip(list(subscriber.messages), list(subscriber.redelivered))
    return [p for (t, p, _), dup in arrived if t == EVENTS and isinstance(p, dict) and "event_id" in p
            and not (first_copies and dup)]


def wait_for_events(subscriber: Subscriber, events: EventLog, n: int, what: str, timeout: float = 30.0) -> None:
    """Wait until `n` events arrived and the journal marked them all; say what is missing if not."""
    deadline = time.monotonic() + timeout
    while len({p["seq"] for p in delivered(subscriber)}) < n or events.count(outbox="pending"):
        if time.monotonic() > deadline:
            got = Counter(p["seq"] for p in delivered(subscriber))
            raise AssertionError(f"{what}: {len(got)} of {n} events arrived (seqs {sorted(got)}), "
                                 f"{events.count(outbox='pending')} pending in the journal")
        time.sleep(0.02)


@pytest.fixture
def broker(tmp_path):
    require_mosquitto()
    b = Mosquitto(tmp_path / "broker", persistence=True).start()
    yield b
    b.stop()


@pytest.fixture
def server(broker):
    """The fleet server: a persistent session, so the broker queues for it while it is away too."""
    s = Subscriber(broker.port, [EVENTS, COUNTS], client_id="fleet-server", clean_session=False)
    yield s
    s.close()


def test_outage_and_restart_lose_nothing_and_deliver_each_event_once(tmp_path, broker, server):
    events = EventLog(tmp_path / "journal.sqlite3")
    record(events, 0, 5)
    agent, outbox = start_link(events, broker.port)
    wait_for_events(server, events, 5, "the first events")
    broker.stop()  # the broker goes away: events queue in the journal
    wait_until(lambda: not agent.connected, what="the agent to notice")
    record(events, 5, 20)
    time.sleep(0.3)  # the outbox tries while the broker is away
    assert len(events.pending(100)) == 20 and outbox.published == 5
    broker.start()  # back on the same port, with the server's session
    wait_for_events(server, events, 25, "the events journaled during the outage")
    stop_link(agent, outbox)  # the service restarts ...
    record(events, 25, 10)  # ... and its app journals while the link is down
    agent, outbox = start_link(events, broker.port)
    wait_for_events(server, events, 35, "the events journaled across the restart")
    time.sleep(0.3)  # anything sent twice would arrive by now
    # The broker may deliver an event to the server a second time across its own restart (its session
    # kept a delivery whose PUBACK from the server it had not processed yet): flagged DUP, not the device's.
    got = delivered(server, first_copies=True)
    assert {p["event_id"] for p in delivered(server)} == {p["event_id"] for p in got}
    stop_link(agent, outbox)
    rows = {r.uid: r for r in events.query()}
    twice = sorted(seq for seq, n in Counter(p["seq"] for p in got).items() if n > 1)
    assert Counter(p["event_id"] for p in got) == Counter(list(rows)), f"seqs sent twice: {twice}"
    assert [p["n"] for p in got] == list(range(35))  # in journal order
    assert all(r.outbox == "published" and r.published_ns for r in rows.values())
    first = got[0]
    assert first["event"] == "zone_enter" and first["camera"] == "front" and first["seq"] == 1
    assert first["message"] == "event 0" and isinstance(first["time"], float)
    late = Subscriber(broker.port, [COUNTS], client_id="late")  # retained: a newcomer gets the totals
    try:
        wait_until(lambda: {t for t, _, r in late.messages if r} >= {"edgert/box-1/counts/front",
                                                                    "edgert/box-1/counts/gate"}, what="counts")
        counts = {t.rsplit("/", 1)[1]: p for t, p, _ in late.messages}
    finally:
        late.close()
    assert counts["front"]["events"] == {"zone_enter": 18}
    assert counts["gate"]["events"] == {"line_cross": 17}
    assert counts["gate"]["lines"] == {"lane1": {"a_to_b": {"car": 17}}}
    events.close()


CHILD = """
import sys, time
from edgert.fleet.config import FleetConfig
from edgert.fleet.mqtt import FleetAgent
from edgert.fleet.outbox import Outbox
from edgert.journal import EventLog
class Handler:
    def state(self):
        return {"models": {}}
events = EventLog(sys.argv[2])
agent = FleetAgent(FleetConfig.model_validate_json(sys.argv[1]), Handler())
agent.connect()
outbox = Outbox(events, agent, batch=5, ack_timeout_s=5, retry_min_s=0.05)
outbox.start()
print("started", flush=True)
time.sleep(120)
"""


def test_kill_9_mid_delivery_resumes_without_loss(tmp_path, broker, server):
    """Killed while batches are in flight: the next start sends what was not marked published. An event
    whose PUBACK came back but was not yet marked is sent again (QoS 1): the event_id says so."""
    path = tmp_path / "journal.sqlite3"
    with EventLog(path) as events:
        record(events, 0, 200)
    child = subprocess.Popen([sys.executable, "-c", CHILD, fleet_config(broker.port).model_dump_json(), str(path)],
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": EDGERT_PATH})
    try:
        assert child.stdout.readline().strip() == "started"
        wait_until(lambda: len(delivered(server)) >= 40, what="some deliveries")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    events = EventLog(path)
    left = len(events.pending(1000))
    assert 0 < left < 200, "the kill should come mid-delivery"
    agent, outbox = start_link(events, broker.port)
    wait_until(lambda: not events.pending(), what="the rest")
    time.sleep(0.3)
    stop_link(agent, outbox)
    got = Counter(p["event_id"] for p in delivered(server))
    uids = {r.uid for r in events.query()}
    events.close()
    assert set(got) == uids  # none lost
    twice = [uid for uid, n in got.items() if n > 1]
    assert all(n <= 2 for n in got.values()) and len(twice) <= 5  # at most the batch in flight at the kill


class Handle:
    """A paho message handle the test acknowledges by hand."""

    def __init__(self, rc=0):
        self.rc = rc
        self.acked = False

    def is_published(self):
        return self.acked


class SilentAgent:
    """A link that looks up but whose broker never answers (half-open), until `ack_all`."""

    connected = True

    def __init__(self):
        self.sent: list[tuple[int, Handle]] = []
        self.refuse_next = 0

    def send(self, kind, payload, retain=False, min_qos=0):
        if kind != "events":
            return Handle()
        handle = Handle(rc=15 if self.refuse_next else 0)  # 15: paho's MQTT_ERR_QUEUE_SIZE
        self.refuse_next = max(0, self.refuse_next - 1)
        self.sent.append((payload["seq"], handle))
        return handle

    def ack_all(self):
        for _, handle in self.sent:
            if handle.rc == 0:
                handle.acked = True


def test_a_half_open_link_never_has_an_event_sent_twice_by_the_outbox(tmp_path):
    with EventLog(tmp_path / "j.sqlite3") as events:
        record(events, 0, 6)
        agent = SilentAgent()
        outbox = Outbox(events, agent, batch=4, ack_timeout_s=0.01)
        for _ in range(5):  # rounds time out without PUBACKs: nothing is sent again
            assert outbox._round() == "failed"
        assert [seq for seq, _ in agent.sent] == [1, 2, 3, 4] and len(events.pending()) == 6
        agent.ack_all()
        assert outbox._round() == "sent"  # the four are marked, the other two go out
        assert [r.id for r in events.pending()] == [5, 6] and [seq for seq, _ in agent.sent] == [1, 2, 3, 4, 5, 6]
        agent.ack_all()
        assert outbox._round() == "sent"  # nothing new to send: the last two marked
        assert events.pending() == [] and outbox.published == 6
        record(events, 6, 2)
        agent.refuse_next = 1  # the client's queue is full once: that event is published again
        assert outbox._round() == "failed"
        assert outbox._round() == "failed"  # 7 again, and 8, sent; no PUBACK yet
        agent.ack_all()
        assert outbox._round() == "sent" and events.pending() == []
        assert [seq for seq, _ in agent.sent][6:] == [7, 7, 8]
        assert outbox._round() == "idle"


def test_the_service_delivers_its_apps_events_through_the_journal(tmp_path, broker, server):
    """`edgert run` with the fleet on: the kiosk's service journals what the app publishes and the outbox
    delivers it, with per-camera counts, through the real agent."""
    pytest.importorskip("cv2")
    from gpiozero.pins.mock import MockFactory, MockPWMPin
    from test_kiosk import config_text, digit_scene

    from edgert.core.config_file import parse_text
    from edgert.service.config import file_model
    from edgert.service.daemon import Daemon
    from edgert.service.notify import Notifier

    digit_scene(tmp_path / "frames", 6)
    (tmp_path / "keys").mkdir()
    text = config_text(tmp_path / "frames", tmp_path / "state", source=", loop: true, fps: 50",
                       service=", status_interval_s: 0.2")
    text += (f"store: {{trusted_keys: {tmp_path / 'keys'}}}\n"
             f"fleet: {{enabled: true, host: 127.0.0.1, port: {broker.port}, device_id: box-1, "
             "reconnect_min_s: 0.1, reconnect_max_s: 0.5}\n")
    pins = MockFactory(pin_class=MockPWMPin)
    daemon = Daemon(None, notifier=Notifier({}), config=parse_text(text, file_model("kiosk")), pin_factory=pins)
    runner = threading.Thread(target=daemon.run)
    runner.start()
    try:
        wait_until(lambda: daemon.app is not None and daemon.app.frames_decided > 0, what="the kiosk")
        publish = daemon.app.context.events.publish
        publish("line_cross", "car 4 crossed lane1", camera="gate", track_id=4, cls="car", line="lane1",
                direction="a_to_b", t=1.7e9)
        publish("zone_enter", "person 2 entered door", camera="front", track_id=2, cls="person", zone="door")
        wait_until(lambda: len(delivered(server)) >= 2, what="the app's events")
        wait_until(lambda: {t for t, _, _ in server.messages} >= {"edgert/box-1/counts/gate",
                                                                 "edgert/box-1/counts/front"}, what="counts")
    finally:
        daemon.request_stop()
        runner.join(30)
        pins.close()
    got = {p["event"]: p for p in delivered(server)}
    assert got["line_cross"]["camera"] == "gate" and got["line_cross"]["direction"] == "a_to_b"
    assert got["zone_enter"]["zone"] == "door" and got["zone_enter"]["event_id"] != got["line_cross"]["event_id"]
    gate = next(p for t, p, _ in server.messages if t == "edgert/box-1/counts/gate")
    assert gate["lines"] == {"lane1": {"a_to_b": {"car": 1}}}
    with EventLog(tmp_path / "state" / "journal.sqlite3", read_only=True) as events:
        rows = events.query(kinds=["line_cross", "zone_enter"])
    assert {r.outbox for r in rows} == {"published"} and len(rows) == 2
