"""The daemon runs any app through the App protocol: a fake app (tests/fake_app.py, no camera, no model)
under the real `Daemon`, with a real `Notifier` on a datagram socket standing in for systemd's."""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager

import pytest
from fake_app import Control
from test_daemon import notify  # noqa: F401 - the notify-socket fixture, shared

from edgert.journal import EventLog
from edgert.service import config as service_config
from edgert.service.daemon import Daemon
from edgert.service.notify import Notifier

WATCHDOG_USEC = "100000"  # a ping every 0.05 s while there is progress


@pytest.fixture
def fake_app(monkeypatch):
    """``app: fake`` names tests/fake_app.py's `APP` for this test."""
    monkeypatch.setitem(service_config.APPS, "fake", "fake_app:APP")
    service_config.app_spec.cache_clear()
    service_config.file_model.cache_clear()
    yield
    service_config.app_spec.cache_clear()
    service_config.file_model.cache_clear()


def write_config(tmp_path, body: str = "", service: str = "") -> str:
    path = tmp_path / "edgert.yaml"
    path.write_text(f"app: fake\n{body}\nservice: {{state_dir: {tmp_path / 'state'}, status_interval_s: 0.1, "
                    f"stall_timeout_s: 0.3{service}}}\n")
    return path


@contextmanager
def running(daemon):
    """`daemon.run()` in a thread; yields ``{"code": exit code}`` (filled once it returned)."""
    result = {}
    runner = threading.Thread(target=lambda: result.setdefault("code", daemon.run()))
    runner.start()
    try:
        yield result
    finally:
        daemon.request_stop()
        runner.join(20)
        assert not runner.is_alive()


def wait_until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_ready_status_watchdog_and_stall_come_from_the_app_health(tmp_path, notify, fake_app):
    control = Control()
    control.reconnecting.set()  # cam0 is not there yet
    notifier = Notifier({"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": WATCHDOG_USEC})
    daemon = Daemon(write_config(tmp_path, "streams: [cam0, cam1]"), notifier=notifier, control=control)
    with running(daemon) as result:
        waiting = notify.wait_for(lambda m: m.startswith("STATUS=waiting for the first frame"))
        assert notify.messages[waiting] == "STATUS=waiting for the first frame (cam0: no signal; cam1: ok)"
        assert "READY=1" not in notify.messages  # no frame yet
        control.reconnecting.clear()
        control.flowing.set()
        ready = notify.wait_for(lambda m: m == "READY=1")
        assert daemon.app.frames > 0
        status = notify.wait_for(lambda m: m.startswith("STATUS=") and "fps" in m, start=ready)
        assert notify.messages[status].endswith(" frames, cam0 ok, cam1 ok")
        assert ", fake a, " in notify.messages[status]  # the app's own words
        notify.wait_for(lambda m: m == "WATCHDOG=1", start=ready)

        control.flowing.clear()  # the app stops making progress
        assert control.idle.wait(10)
        notify.wait_for(lambda m: m.startswith("STATUS=STALLED, outputs safe, fake a"), start=status)
        assert daemon.app.safe_reasons == ["stalled"]  # once, not at every check
        # The ping owed for the last frame goes out; after that, none while nothing progresses.
        wait_until(lambda: not daemon._petter._progress.is_set())
        time.sleep(0.2)
        mark = len(notify.messages)
        time.sleep(0.5)  # ten watchdog intervals
        assert "WATCHDOG=1" not in notify.messages[mark:]

        control.reconnecting.set()  # a stream inside its reconnect window: alive, not a hang
        pinged = notify.wait_for(lambda m: m == "WATCHDOG=1", start=mark)
        notify.wait_for(lambda m: "cam0 reconnecting (no signal; retry 2), cam1 ok" in m, start=mark)
        control.reconnecting.clear()
        control.flowing.set()
        flowing = notify.wait_for(lambda m: m.startswith("STATUS=") and "fps" in m, start=pinged)
        assert "STALLED" not in notify.messages[flowing] and not daemon.stalled
        assert daemon.app.safe_reasons == ["stalled"]
    assert result["code"] == 0
    app = control.built[0]
    assert app.closed and app.safe_reasons[-1] == "stop" and len(control.built) == 1


def reload(daemon, notify, path, text: str) -> None:
    """Write `text` to the config, ask for a reload, return once the daemon said READY again."""
    path.write_text(text)
    mark = len(notify.messages)
    daemon.request_reload()
    reloading = notify.wait_for(lambda m: m.startswith("RELOADING=1"), start=mark)
    notify.wait_for(lambda m: m == "READY=1", start=reloading)


def test_reload_in_place_rebuild_and_fallback_to_the_running_config(tmp_path, notify, fake_app, caplog):
    caplog.set_level(logging.INFO, "edgert.service.daemon")
    control = Control()
    control.flowing.set()
    path = write_config(tmp_path, "label: a")
    text = path.read_text()
    daemon = Daemon(path, notifier=Notifier({"NOTIFY_SOCKET": str(notify.path)}), control=control)
    with running(daemon):
        notify.wait_for(lambda m: m == "READY=1")
        first = daemon.app

        reload(daemon, notify, path, text)  # nothing changed
        assert first.reconfigured == [] and daemon.app is first and daemon.reloads == 1

        reload(daemon, notify, path, text.replace("label: a", "label: b"))  # the app applies it live
        assert daemon.app is first and len(control.built) == 1
        assert [c.label for c in first.reconfigured] == ["b"] and first.config.label == "b"
        assert daemon.config.label == "b" and daemon.reloads == 2
        notify.wait_for(lambda m: ", fake b, " in m)

        reload(daemon, notify, path, text.replace("label: a", "label: b\nstreams: [cam0, cam9]"))
        second = daemon.app  # the app said no (False): rebuilt
        assert len(first.reconfigured) == 2 and first.closed and second is control.built[1]
        assert second.config.streams == ["cam0", "cam9"] and daemon.reloads == 3
        wait_until(lambda: second.frames > 0)

        reload(daemon, notify, path, text.replace("label: a", "label: b\nstreams: [cam0, cam9]")
               .replace("stall_timeout_s: 0.3", "stall_timeout_s: 0.4"))
        third = daemon.app  # a service section changed: rebuilt without asking the app
        assert second.reconfigured == [] and second.closed and third is control.built[2]
        assert daemon.config.service.stall_timeout_s == 0.4 and daemon.reloads == 4

        reload(daemon, notify, path, text.replace("label: a", "label: c\nfail_build: true"))
        fourth = daemon.app  # the new config cannot start: the running one is started again
        assert third.closed and fourth is control.built[3] and len(control.built) == 4
        assert fourth.config.label == "b" and fourth.config.streams == ["cam0", "cam9"]
        assert daemon.config.label == "b" and not daemon.config.fail_build and daemon.reloads == 4
        wait_until(lambda: fourth.frames > 0)
    assert "new config cannot start (fake: this config cannot start)" in caplog.text
    assert "reload failed, keeping the running config" in caplog.text


class Acked:
    """A paho message handle whose PUBACK came back."""

    rc = 0

    @staticmethod
    def is_published():
        return True


class FakeFleetAgent:
    """Stands in for `edgert.fleet.mqtt.FleetAgent` (no broker): records what the outbox sends, and states."""

    agents: list = []
    connected = True

    def __init__(self, config, handler):
        self.handler = handler
        self.events: list = []
        self.states: list = []
        self.closed = False
        FakeFleetAgent.agents.append(self)

    def start(self):
        pass

    def send(self, kind, payload, retain=False, min_qos=0):
        if kind == "events":
            self.events.append(payload)
        return Acked()

    def publish_state(self):
        try:
            self.states.append(self.handler.state())
        except Exception as exc:  # noqa: BLE001 - as the real agent, which publishes the error instead
            self.states.append({"state_error": repr(exc)})

    def close(self):
        self.closed = True


def test_events_the_app_publishes_reach_the_fleet(tmp_path, fake_app, monkeypatch):
    monkeypatch.setattr("edgert.fleet.mqtt.FleetAgent", FakeFleetAgent)
    monkeypatch.setattr(FakeFleetAgent, "agents", [])
    (tmp_path / "keys").mkdir()
    control = Control()
    path = write_config(tmp_path, f"fleet: {{enabled: true, device_id: d1}}\n"
                                  f"store: {{trusted_keys: {tmp_path / 'keys'}}}")
    daemon = Daemon(path, notifier=Notifier({}), control=control)
    with running(daemon):
        wait_until(lambda: FakeFleetAgent.agents and len(FakeFleetAgent.agents[0].events) >= 2)
        control.built[0].context.events.publish("fake_note", "a note", n=3)
        agent = FakeFleetAgent.agents[0]
        wait_until(lambda: len(agent.events) >= 3)
    # published while the app was built (before the fleet joined: journaled, then sent), at start, and later
    sent = [{k: v for k, v in e.items() if k not in ("event_id", "time")} for e in agent.events]
    assert sent == [{"event": "fake_built", "seq": 1, "message": "built with label a", "label": "a"},
                    {"event": "fake_started", "seq": 2, "message": "frames start", "streams": 1},
                    {"event": "fake_note", "seq": 3, "message": "a note", "n": 3}]
    assert len({e["event_id"] for e in agent.events}) == 3
    with EventLog(tmp_path / "state" / "journal.sqlite3", read_only=True) as journal:
        rows = journal.query(newest_first=False)
    assert [r.kind for r in rows] == ["fake_built", "fake_started", "fake_note"]  # journaled by the service
    assert {r.outbox for r in rows} == {"published"}
    assert agent.closed
    assert agent.states and all("state_error" not in s for s in agent.states), agent.states
    assert agent.states[-1]["running"] is None and agent.states[-1]["camera"] == "ok"


@pytest.mark.parametrize("body,code", [("frames: 5", 0), ("fail_at: 3", 1)])
def test_the_exit_code_says_whether_the_streams_ended_or_failed(tmp_path, fake_app, caplog, body, code):
    control = Control()
    control.flowing.set()
    daemon = Daemon(write_config(tmp_path, body), notifier=Notifier({}), control=control)
    result = {}
    runner = threading.Thread(target=lambda: result.setdefault("code", daemon.run()))
    runner.start()
    runner.join(20)  # the daemon ends by itself
    if runner.is_alive():
        daemon.request_stop()
        runner.join(20)
        pytest.fail("the daemon did not notice that the app stopped")
    assert result["code"] == code
    assert control.built[0].closed
    if code:
        assert "cam0 gave up: no signal" in caplog.text


def test_an_app_whose_service_links_cannot_start_is_closed(tmp_path, fake_app, monkeypatch):
    """The fleet refusing to start (say an unreadable password file) leaves no app open behind it."""
    from edgert.core.errors import ConfigError
    from edgert.service import daemon as daemon_module

    def refuse(*_args, **_kwargs):
        raise ConfigError("fleet.password_file: cannot read /etc/edgert/mqtt.pass")

    monkeypatch.setattr(daemon_module, "Updates", refuse)
    control = Control()
    daemon = Daemon(write_config(tmp_path), notifier=Notifier({}), control=control)
    with pytest.raises(ConfigError, match="password_file"):
        daemon.run()
    assert len(control.built) == 1 and control.built[0].closed and daemon.app is None
