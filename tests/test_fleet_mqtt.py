"""The fleet agent against a real mosquitto: retained state and last will, commands in order on a worker,
malformed payloads answered with error events, reconnects, username/password, TLS; and `StoreHandler`
(download + store) on a real HTTP server."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (extra: ota)")
from mosquitto import Mosquitto, Subscriber, make_tls_files, require_mosquitto
from pydantic import ValidationError

import edgert
from edgert.core.errors import BundleError, ConfigError
from edgert.fleet.config import FleetConfig
from edgert.fleet.handler import StoreHandler
from edgert.fleet.mqtt import FleetAgent, FleetError

EDGERT_PATH = str(Path(edgert.__file__).resolve().parent.parent)
SHA = "ab" * 32
STATE, CMD, EVENTS = "edgert/kiosk-7/state", "edgert/kiosk-7/cmd", "edgert/kiosk-7/events"


class RecordingHandler:
    """A fake daemon: records calls, keeps model versions, optionally blocks installs until released."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.models: dict[str, dict] = {"waste": {"current": "1.0.0", "previous": None}}
        self.gate = threading.Event()
        self.gate.set()
        self.running = 0
        self.max_running = 0
        self._lock = threading.Lock()

    def _enter(self, *call):
        with self._lock:
            self.calls.append(call)
            self.running += 1
            self.max_running = max(self.max_running, self.running)

    def _leave(self):
        with self._lock:
            self.running -= 1

    def install(self, url, name, version, sha256, size):
        self._enter("install", url, name, version, sha256, size)
        try:
            assert self.gate.wait(20)
            if url.endswith("/broken.tar"):
                raise BundleError("broken.tar: signature: not signed by a trusted key")
            if url.endswith("/bug.tar"):
                raise KeyError("handler bug")
            entry = self.models.setdefault(name, {"current": None, "previous": None})
            entry.update(previous=entry["current"], current=version)
            return {"name": name, "version": version}
        finally:
            self._leave()

    def activate(self, name, version):
        self._enter("activate", name, version)
        entry = self.models[name]
        entry.update(previous=entry["current"], current=version)
        self._leave()
        return {"name": name, "version": version}

    def rollback(self, name):
        self._enter("rollback", name)
        entry = self.models[name]
        entry.update(previous=entry["current"], current=entry["previous"])
        self._leave()
        return {"name": name, "version": entry["current"]}

    def state(self):
        return {"models": json.loads(json.dumps(self.models)), "backend": "cpu", "health": "ok"}


def fleet_config(port: int, **extra) -> FleetConfig:
    return FleetConfig(enabled=True, host="127.0.0.1", port=port, device_id="kiosk-7", keepalive_s=10,
                       reconnect_min_s=0.1, reconnect_max_s=0.5, **extra)


def install(cid: str, url: str = "http://fleet.example/waste-1.1.0.tar", version: str = "1.1.0", **extra) -> dict:
    return {"id": cid, "action": "install", "name": "waste", "version": version, "url": url, "sha256": SHA,
            **extra}


def result_for(cid):
    return lambda topic, p: topic == EVENTS and isinstance(p, dict) and p.get("id") == cid


@pytest.fixture
def broker(tmp_path):
    require_mosquitto()
    with Mosquitto(tmp_path / "broker") as b:
        yield b


@pytest.fixture
def watcher(broker):
    s = Subscriber(broker.port, [STATE, EVENTS])
    yield s
    s.close()


@pytest.fixture
def agent(broker):
    handler = RecordingHandler()
    a = FleetAgent(fleet_config(broker.port), handler)
    a.connect()
    yield a
    handler.gate.set()
    a.close()


def test_config_is_checked():
    assert fleet_config(1883).topic("cmd") == CMD
    assert FleetConfig().device  # the host name when no device_id
    for bad in ({"device_id": "a/b"}, {"device_id": "+"}, {"qos": 3}, {"password": "x"}, {"colour": "red"},
                {"username": "u", "password": "x", "password_file": "/p"}, {"tls": {"cert_file": "/c"}},
                {"topic_prefix": "edgert/"}, {"port": "1883"}):
        with pytest.raises(ValidationError):
            FleetConfig.model_validate(bad, strict=True)


def test_connect_publishes_retained_state_and_subscribers_joining_later_see_it(broker, watcher, agent):
    # connect() returns once subscribed, with the state publication possibly still on its way: the late
    # subscriber joins after the watcher (subscribed before the agent connected) has the state, i.e.
    # after the broker has stored it.
    watcher.wait_for(lambda topic, p: topic == STATE and p.get("online") is True)
    late = Subscriber(broker.port, [STATE], client_id="late")
    try:
        i = late.wait_for(lambda topic, p: topic == STATE)
        _, state, retained = late.messages[i]
        assert retained and state == {"online": True, "models": {"waste": {"current": "1.0.0", "previous": None}},
                                      "backend": "cpu", "health": "ok"}
    finally:
        late.close()
    assert agent.connected


def test_commands_run_in_order_one_at_a_time_and_errors_are_answered_meanwhile(agent, watcher):
    handler: RecordingHandler = agent.handler
    handler.gate.clear()  # the first install blocks until released
    watcher.publish(CMD, install("c1", size=123))
    watcher.publish(CMD, {"id": "c2", "action": "activate", "name": "waste", "version": "1.0.0"})
    watcher.publish(CMD, {"id": "c3", "action": "rollback", "name": "waste"})
    bad_payloads = {
        "not json": b"{install",
        "not an object": b"[1, 2]",
        "unknown action": {"id": "b1", "action": "format-disk", "name": "waste"},
        "missing url": {"id": "b2", "action": "install", "name": "waste", "version": "1.2.0", "sha256": SHA},
        "wrong type": {"id": "b3", "action": "activate", "name": "waste", "version": 1},
        "string size": install("b4", size="12"),
        "unknown key": {"id": "b5", "action": "rollback", "name": "waste", "force": True},
        "bad hash": {**install("b6"), "sha256": "xyz"},
    }
    for payload in bad_payloads.values():
        watcher.publish(CMD, payload)
    # every malformed payload is answered while c1 is still running (paho's thread is not blocked)
    errors = []
    for cid in (None, None, "b1", "b2", "b3", "b4", "b5", "b6"):
        start = errors[-1] + 1 if errors else 0
        errors.append(watcher.wait_for(lambda t, p, cid=cid: t == EVENTS and p.get("ok") is False
                                       and p.get("id") == cid, start=start))
    texts = [watcher.messages[i][1]["error"] for i in errors]
    assert texts[0].startswith("command: not JSON") and "expected a JSON object, got list" in texts[1]
    assert "unknown action 'format-disk'" in texts[2] and texts[3] == "command: url: missing"
    assert texts[4].startswith("command: version:") and texts[5].startswith("command: size:")
    assert texts[6] == "command: force: unknown key" and texts[7].startswith("command: sha256:")
    assert all("\n" not in t for t in texts)
    assert handler.calls == [("install", "http://fleet.example/waste-1.1.0.tar", "waste", "1.1.0", SHA, 123)]

    handler.gate.set()
    done = [watcher.wait_for(result_for(cid)) for cid in ("c1", "c2", "c3")]
    assert done == sorted(done)
    events = [watcher.messages[i][1] for i in done]
    assert events == [{"id": "c1", "action": "install", "ok": True, "result": {"name": "waste", "version": "1.1.0"}},
                      {"id": "c2", "action": "activate", "ok": True, "result": {"name": "waste", "version": "1.0.0"}},
                      {"id": "c3", "action": "rollback", "ok": True, "result": {"name": "waste", "version": "1.1.0"}}]
    assert [c[0] for c in handler.calls] == ["install", "activate", "rollback"] and handler.max_running == 1
    # the retained state follows each command
    last = watcher.wait_for(lambda t, p: t == STATE and p["models"]["waste"] == {"current": "1.1.0",
                                                                                  "previous": "1.0.0"}, start=done[2])
    assert watcher.messages[last][1]["online"] is True


def test_refused_and_failing_commands_are_reported_and_the_agent_keeps_working(agent, watcher):
    watcher.publish(CMD, install("x1", url="http://fleet.example/broken.tar"))
    watcher.publish(CMD, install("x2", url="http://fleet.example/bug.tar"))
    watcher.publish(CMD, install("x3", version="1.4.0"))
    e1, e2, e3 = (watcher.messages[watcher.wait_for(result_for(c))][1] for c in ("x1", "x2", "x3"))
    assert e1 == {"id": "x1", "action": "install", "ok": False,
                  "error": "broken.tar: signature: not signed by a trusted key"}
    assert e2["ok"] is False and e2["error"] == "KeyError: 'handler bug'"
    assert e3["ok"] is True and e3["result"]["version"] == "1.4.0"


def test_a_redelivered_command_id_runs_once(agent, watcher):
    watcher.publish(CMD, {"id": "r1", "action": "rollback", "name": "waste"})
    watcher.publish(CMD, {"id": "r1", "action": "rollback", "name": "waste"})
    watcher.publish(CMD, {"id": "r2", "action": "activate", "name": "waste", "version": "1.0.0"})
    watcher.wait_for(result_for("r2"))
    watcher.wait_for(lambda t, p: t == EVENTS and p.get("id") == "r1" and "ignored" in p)  # the repeat is answered
    assert [c[0] for c in agent.handler.calls] == ["rollback", "activate"]  # ... but runs once
    r1 = [p for t, p, _ in watcher.messages if t == EVENTS and p.get("id") == "r1"]
    assert sum("ok" in p for p in r1) == 1


def test_publish_event_and_clean_close(broker, watcher):
    agent = FleetAgent(fleet_config(broker.port), RecordingHandler())
    agent.connect()
    agent.publish_event("swap", name="waste", version="1.1.0", dropped_frames=1)
    i = watcher.wait_for(lambda t, p: t == EVENTS and p.get("event") == "swap")
    assert watcher.messages[i][1] == {"event": "swap", "name": "waste", "version": "1.1.0", "dropped_frames": 1}
    agent.close()
    agent.close()  # idempotent
    j = watcher.wait_for(lambda t, p: t == STATE and p == {"online": False}, start=i)
    assert not agent.connected
    with pytest.raises(FleetError, match="closed"):
        agent.connect()
    assert j > i


AGENT_SCRIPT = """
import sys, time
from edgert.fleet.config import FleetConfig
from edgert.fleet.mqtt import FleetAgent
class Handler:
    def state(self):
        return {"models": {}, "health": "ok"}
agent = FleetAgent(FleetConfig.model_validate_json(sys.argv[1]), Handler())
agent.connect()
print("connected", flush=True)
time.sleep(60)
"""


def test_last_will_marks_a_killed_agent_offline(broker, watcher):
    config = fleet_config(broker.port)
    proc = subprocess.Popen([sys.executable, "-c", AGENT_SCRIPT, config.model_dump_json()], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": EDGERT_PATH}, cwd=broker.directory)
    try:
        assert proc.stdout.readline().strip() == "connected"
        online = watcher.wait_for(lambda t, p: t == STATE and p.get("online") is True)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        offline = watcher.wait_for(lambda t, p: t == STATE and p == {"online": False}, start=online)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    assert offline > online
    late = Subscriber(broker.port, [STATE], client_id="late")
    try:  # the will was retained
        late.wait_for(lambda t, p: p == {"online": False})
    finally:
        late.close()


def test_reconnects_after_the_broker_restarts_and_republishes_state(tmp_path):
    require_mosquitto()
    first = Mosquitto(tmp_path / "b").start()
    agent = FleetAgent(fleet_config(first.port), RecordingHandler())
    try:
        agent.connect()
        first.stop()
        second = Mosquitto(tmp_path / "b", port=first.port).start()  # in-memory broker: all state lost
        try:
            watcher = Subscriber(second.port, [STATE, EVENTS])
            try:  # the agent is back: state republished and the command topic resubscribed
                watcher.wait_for(lambda t, p: t == STATE and p.get("online") is True)
                watcher.publish(CMD, {"id": "after", "action": "rollback", "name": "waste"})
                assert watcher.messages[watcher.wait_for(result_for("after"))][1]["ok"] is True
            finally:
                watcher.close()
        finally:
            agent.close()
            second.stop()
    finally:
        first.stop()


def test_start_in_the_background_before_the_broker_is_up(tmp_path):
    require_mosquitto()
    broker = Mosquitto(tmp_path / "b")  # not started yet: its port refuses connections
    agent = FleetAgent(fleet_config(broker.port), RecordingHandler())
    try:
        agent.start()  # returns at once; paho keeps trying
        assert not agent.connected
        broker.start()
        watcher = Subscriber(broker.port, [STATE, EVENTS])
        try:
            watcher.wait_for(lambda t, p: t == STATE and p.get("online") is True)
            assert agent.connected
            watcher.publish(CMD, {"id": "bg", "action": "rollback", "name": "waste"})
            assert watcher.messages[watcher.wait_for(result_for("bg"))][1]["ok"] is True
        finally:
            watcher.close()
    finally:
        agent.close()
        broker.stop()


def test_username_and_password(tmp_path):
    require_mosquitto()
    (tmp_path / "secret").write_text("s3cret\n")
    with Mosquitto(tmp_path / "b", users={"kiosk-7": "s3cret", "ops": "opspw"}) as broker:
        good = FleetAgent(fleet_config(broker.port, username="kiosk-7", password_file=tmp_path / "secret"),
                          RecordingHandler())
        good.connect()
        watcher = Subscriber(broker.port, [EVENTS], username="ops", password="opspw")
        try:
            watcher.publish(CMD, {"id": "a1", "action": "rollback", "name": "waste"})
            assert watcher.messages[watcher.wait_for(result_for("a1"))][1]["ok"] is True
        finally:
            watcher.close()
            good.close()

        wrong = FleetAgent(fleet_config(broker.port, username="kiosk-7", password="guess"), RecordingHandler())
        with pytest.raises(FleetError, match=r"refused the connection: Not authorized .*check fleet.username") as e:
            wrong.connect(timeout=10)
        assert "\n" not in str(e.value) and not wrong.connected
        assert not any(t.name == "edgert-fleet-commands" for t in threading.enumerate())  # nothing left running
        with pytest.raises(FleetError, match="Not authorized"):  # a second attempt is answered afresh
            wrong.connect(timeout=10)
        anonymous = FleetAgent(fleet_config(broker.port), RecordingHandler())
        with pytest.raises(FleetError, match="refused the connection"):
            anonymous.connect(timeout=10)
    missing = FleetAgent(fleet_config(broker.port, username="u", password_file=tmp_path / "nope"), RecordingHandler())
    with pytest.raises(ConfigError, match="fleet.password_file: cannot read .*nope"):
        missing.connect()


def test_unreachable_broker_is_one_line(tmp_path):
    from mosquitto import free_port

    agent = FleetAgent(fleet_config(free_port()), RecordingHandler())
    with pytest.raises(FleetError, match=r"cannot connect to broker 127\.0\.0\.1:\d+: .*[Rr]efused"):
        agent.connect(timeout=5)


def test_tls(tmp_path):
    require_mosquitto()
    tls = make_tls_files(tmp_path / "tls")
    with Mosquitto(tmp_path / "b", tls=tls) as broker:
        agent = FleetAgent(fleet_config(broker.port, tls={"ca_file": tls.ca}), RecordingHandler())
        agent.connect()
        watcher = Subscriber(broker.port, [EVENTS], tls=tls)
        try:
            watcher.publish(CMD, {"id": "t1", "action": "rollback", "name": "waste"})
            assert watcher.messages[watcher.wait_for(result_for("t1"))][1]["ok"] is True
        finally:
            watcher.close()
            agent.close()
        untrusting = FleetAgent(fleet_config(broker.port, tls={}), RecordingHandler())  # system CAs only
        with pytest.raises(FleetError, match="certificate verify failed"):
            untrusting.connect(timeout=10)
    with pytest.raises(ConfigError, match="fleet.tls: cannot load the TLS files"):
        FleetAgent(fleet_config(1883, tls={"ca_file": tmp_path / "missing.pem"}), RecordingHandler()).connect()


# -- StoreHandler: download + a store ------------------------------------------------------------------


class FakeStore:
    """Records the store calls `StoreHandler` makes; keeps current/previous per name like ModelStore."""

    def __init__(self, refuse: str | None = None):
        self.refuse = refuse
        self.installed: list[tuple[str, bytes]] = []
        self.links: dict[str, list[str | None]] = {}

    def _version(self, name, version):
        return type("InstalledVersion", (), {"name": name, "version": version, "path": Path("/store") / name / version})

    def install(self, bundle: Path):
        from edgert.bundles.archive import read_manifest

        self.installed.append((bundle.name, bundle.read_bytes()))
        if self.refuse:
            raise BundleError(self.refuse)
        manifest = json.loads(read_manifest(bundle))
        current = self.links.get(manifest["name"], [None, None])[0]
        self.links[manifest["name"]] = [manifest["version"], current]
        return self._version(manifest["name"], manifest["version"])

    def activate(self, name, version):
        self.links[name] = [version, self.links[name][0]]
        return self._version(name, version)

    def rollback(self, name):
        current, previous = self.links[name]
        if previous is None:
            raise BundleError(f"{name}: no previous version to roll back to")
        self.links[name] = [previous, current]
        return self._version(name, previous)

    def names(self):
        return sorted(self.links)

    def current(self, name):
        v = self.links.get(name, [None])[0]
        return self._version(name, v) if v else None

    def previous(self, name):
        v = self.links.get(name, [None, None])[1]
        return self._version(name, v) if v else None


@pytest.fixture
def bundle_server(tmp_path):
    from bundle_factory import make_bundle

    served = tmp_path / "served"
    served.mkdir()
    for version in ("1.0.0", "1.1.0"):
        kit = make_bundle(tmp_path / "kits", form="tar.gz", version=version, golden=False)
        (served / f"digits-{version}.tar.gz").write_bytes(kit.bundle.read_bytes())
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(10)


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_store_handler_downloads_installs_activates_and_rolls_back(bundle_server, tmp_path):
    served, base = bundle_server
    store, swaps = FakeStore(), []
    handler = StoreHandler(store, lambda: {"backend": "cpu"}, tmp_path / "downloads", on_change=swaps.append)
    blobs = {v: (served / f"digits-{v}.tar.gz").read_bytes() for v in ("1.0.0", "1.1.0")}
    for version, blob in blobs.items():
        result = handler.install(f"{base}/digits-{version}.tar.gz", "digits", version,
                                 hashlib.sha256(blob).hexdigest(), len(blob))
        assert result == {"name": "digits", "version": version, "path": f"/store/digits/{version}"}
    assert [b for _, b in store.installed] == [blobs["1.0.0"], blobs["1.1.0"]]
    assert list((tmp_path / "downloads").iterdir()) == []  # handed to the store, then removed
    assert handler.state() == {"models": {"digits": {"current": "1.1.0", "previous": "1.0.0"}}, "backend": "cpu"}
    assert handler.rollback("digits") == {"name": "digits", "version": "1.0.0"}
    assert handler.activate("digits", "1.1.0") == {"name": "digits", "version": "1.1.0"}
    assert [s.version for s in swaps] == ["1.0.0", "1.1.0", "1.0.0", "1.1.0"]


def test_store_handler_refusals_leave_the_store_alone(bundle_server, tmp_path):
    served, base = bundle_server
    blob = (served / "digits-1.1.0.tar.gz").read_bytes()
    sha = hashlib.sha256(blob).hexdigest()
    store = FakeStore()
    handler = StoreHandler(store, None, tmp_path / "downloads")
    with pytest.raises(BundleError, match="sha256 mismatch"):
        handler.install(f"{base}/digits-1.1.0.tar.gz", "digits", "1.1.0", SHA, None)
    with pytest.raises(BundleError, match="bundle is digits 1.1.0, the command asked for digits 2.0.0"):
        handler.install(f"{base}/digits-1.1.0.tar.gz", "digits", "2.0.0", sha, len(blob))
    with pytest.raises(BundleError, match="HTTP 404"):
        handler.install(f"{base}/nope.tar.gz", "digits", "1.1.0", sha, None)
    assert store.installed == [] and handler.state() == {"models": {}}
    refusing = StoreHandler(FakeStore(refuse="canary: 3 of 24 golden images disagree"), None, tmp_path / "dl2")
    with pytest.raises(BundleError, match="canary"):
        refusing.install(f"{base}/digits-1.1.0.tar.gz", "digits", "1.1.0", sha, None)
    assert list((tmp_path / "dl2").iterdir()) == []


def test_agent_with_store_handler_end_to_end(bundle_server, broker, watcher, tmp_path):
    served, base = bundle_server
    blob = (served / "digits-1.0.0.tar.gz").read_bytes()
    handler = StoreHandler(FakeStore(), lambda: {"health": "ok"}, tmp_path / "downloads")
    with FleetAgent(fleet_config(broker.port), handler) as agent:
        agent.connect()
        watcher.publish(CMD, {"id": "e1", "action": "install", "name": "digits", "version": "1.0.0",
                              "url": f"{base}/digits-1.0.0.tar.gz", "sha256": hashlib.sha256(blob).hexdigest(),
                              "size": len(blob)})
        watcher.publish(CMD, {"id": "e2", "action": "rollback", "name": "digits"})
        e1, e2 = (watcher.messages[watcher.wait_for(result_for(c))][1] for c in ("e1", "e2"))
        assert e1["ok"] is True and e1["result"]["version"] == "1.0.0"
        assert e2 == {"id": "e2", "action": "rollback", "ok": False,
                      "error": "digits: no previous version to roll back to"}
        watcher.wait_for(lambda t, p: t == STATE and p.get("models") == {"digits": {"current": "1.0.0",
                                                                                    "previous": None}})


def tree_digest(root: Path) -> str:
    """Hash of a directory tree: names, file contents and link targets."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_symlink():
            digest.update(b"->" + os.readlink(path).encode())
        elif path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_fleet_commands_on_a_real_model_store(broker, watcher, tmp_path):
    from bundle_factory import make_bundle

    from edgert.bundles.store import ModelStore

    served = tmp_path / "served"
    served.mkdir()
    first = make_bundle(tmp_path / "kits", form="tar.gz", version="1.0.0", golden_count=8)
    make_bundle(tmp_path / "kits", form="tar.gz", version="1.1.0", golden_count=8, private_key=first.private_key,
                trusted=first.trusted)
    make_bundle(tmp_path / "kits", form="tar", version="1.2.0", golden=False)  # signed by an untrusted key
    for kit_dir in (tmp_path / "kits").iterdir():
        for tar in kit_dir.glob("digits-*.tar*"):
            tar.rename(served / tar.name)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(served)))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    def command(cid, version, file):
        blob = (served / file).read_bytes()
        return {"id": cid, "action": "install", "name": "digits", "version": version, "url": f"{base}/{file}",
                "sha256": hashlib.sha256(blob).hexdigest(), "size": len(blob)}

    store = ModelStore(tmp_path / "store", first.trusted)
    swaps = []
    handler = StoreHandler(store, lambda: {"backend": "cpu"}, tmp_path / "downloads", on_change=swaps.append)
    try:
        with FleetAgent(fleet_config(broker.port), handler) as agent:
            agent.connect()
            watcher.publish(CMD, command("s1", "1.0.0", "digits-1.0.0.tar.gz"))
            watcher.publish(CMD, command("s2", "1.1.0", "digits-1.1.0.tar.gz"))
            for cid in ("s1", "s2"):
                event = watcher.messages[watcher.wait_for(result_for(cid), timeout=60)][1]
                assert event["ok"] is True, event
            assert store.current("digits").version == "1.1.0" and store.previous("digits").version == "1.0.0"
            before = tree_digest(tmp_path / "store")

            watcher.publish(CMD, command("s3", "1.2.0", "digits-1.2.0.tar"))
            refused = watcher.messages[watcher.wait_for(result_for("s3"), timeout=60)][1]
            assert refused["ok"] is False and "signature" in refused["error"] and "\n" not in refused["error"]
            assert tree_digest(tmp_path / "store") == before

            watcher.publish(CMD, {"id": "s4", "action": "rollback", "name": "digits"})
            assert watcher.messages[watcher.wait_for(result_for("s4"))][1]["result"]["version"] == "1.0.0"
            watcher.wait_for(lambda t, p: t == STATE and p.get("models") == {"digits": {"current": "1.0.0",
                                                                                        "previous": "1.1.0"}})
        assert [s.version for s in swaps] == ["1.0.0", "1.1.0", "1.0.0"]
    finally:
        server.shutdown()
        server.server_close()

