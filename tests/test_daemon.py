"""`edgert run` as systemd runs it: notifications on a real socket, signals, reloads, watchdog, stalls."""
from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import edgert

pytest.importorskip("cv2")
from gpiozero.pins.mock import MockFactory, MockPWMPin  # noqa: E402
from test_kiosk import config_text, digit_scene  # noqa: E402

from edgert.core.config_file import parse_text  # noqa: E402
from edgert.core.frame import Frame  # noqa: E402
from edgert.service.config import file_model  # noqa: E402
from edgert.service.daemon import Daemon  # noqa: E402
from edgert.service.notify import Notifier  # noqa: E402
from edgert.sources.base import Source  # noqa: E402

KioskFile = file_model("kiosk")  # a whole config file: the kiosk's sections and the service's

# Children import the edgert these tests import (the installed one in CI, the checkout in a dev venv).
EDGERT_PATH = str(Path(edgert.__file__).resolve().parent.parent)
ROOT = Path(__file__).parent.parent


class NotifySocket:
    """A datagram socket standing in for systemd's notify socket; collects what arrives."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def wait_for(self, predicate, timeout: float = 20.0, start: int = 0) -> int:
        """Index of the first message from `start` on that satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i in range(start, len(self.messages)):
                if predicate(self.messages[i]):
                    return i
            time.sleep(0.02)
        raise AssertionError(f"no such message; got {self.messages[start:]}")

    def close(self):
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def notify(tmp_path):
    s = NotifySocket(tmp_path / "notify.sock")
    yield s
    s.close()


def write_config(tmp_path: Path, **extra) -> Path:
    frames = tmp_path / "frames"
    if not frames.exists():
        digit_scene(frames, 6)
    path = tmp_path / "edgert.yaml"
    path.write_text(config_text(frames, tmp_path / "state", source=", loop: true, fps: 100",
                                service=", status_interval_s: 0.3", **extra))
    return path


def test_service_lifecycle_on_a_real_notify_socket(tmp_path, notify):
    config = write_config(tmp_path)
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "400000",
           "PYTHONPATH": EDGERT_PATH}
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen([sys.executable, "-m", "edgert.cli", "run", "--config", str(config)],
                            env=env, cwd=tmp_path,
                            stderr=subprocess.PIPE, text=True)
    try:
        ready = notify.wait_for(lambda m: m == "READY=1")
        status = notify.wait_for(lambda m: m.startswith("STATUS=") and "fps" in m, start=ready)
        assert "model digits_int8" in notify.messages[status] and "camera ok" in notify.messages[status]
        notify.wait_for(lambda m: m == "WATCHDOG=1", start=ready)

        # SIGHUP with a model-only change: reloading, then ready again, model swapped in place
        config.write_text(config.read_text().replace("backend: cpu", "backend: cpu\n  version: '2'"))
        mark = len(notify.messages)
        proc.send_signal(signal.SIGHUP)
        reloading = notify.wait_for(lambda m: m.startswith("RELOADING=1\nMONOTONIC_USEC="), start=mark)
        notify.wait_for(lambda m: m == "READY=1", start=reloading)
        notify.wait_for(lambda m: "model digits_int8 2 on cpu" in m, start=reloading)

        # a broken config is refused; the service keeps running the old one
        good = config.read_text()
        config.write_text(good.replace("votes: 3", "votes: [3"))
        mark = len(notify.messages)
        proc.send_signal(signal.SIGHUP)
        notify.wait_for(lambda m: m == "READY=1", start=mark)
        notify.wait_for(lambda m: m.startswith("STATUS=") and "fps" in m, start=mark + 1)
        assert proc.poll() is None

        mark = len(notify.messages)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        notify.wait_for(lambda m: m == "STOPPING=1", start=mark)
    finally:
        if proc.poll() is None:
            proc.kill()
        err = proc.stderr.read()
    assert "reload refused, keeping the running config" in err and "not valid YAML" in err
    assert "model swapped" in err
    assert "Traceback" not in err
    with sqlite3.connect(tmp_path / "state" / "journal.sqlite3") as db:
        rows = db.execute("SELECT actuation FROM decisions").fetchall()
    # SIGTERM drained: every decision fired or was cancelled by the safe state, none left pending
    assert rows and all(r[0] != "pending" for r in rows)
    assert any(r[0].startswith(("servo", "relay")) for r in rows)


def test_bad_config_exits_2_with_one_line(tmp_path):
    config = tmp_path / "edgert.yaml"
    config.write_text("source: {kind: conveyor}\npolicy: {bins: {}}\n")
    done = subprocess.run([sys.executable, "-m", "edgert.cli", "run", "--config", str(config)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": EDGERT_PATH}, timeout=60,
                          cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "edgert.yaml" in lines[0] and "Traceback" not in done.stderr


class StuckCamera(Source):
    """A camera that delivers frames until told to hang (a dislodged cable with a driver that blocks)."""

    name = "stuck camera"

    def __init__(self, frames):
        super().__init__()
        self.frames = frames
        self.hang = threading.Event()

    def _open(self):
        pass

    def _close(self):
        pass

    def _read(self, timeout):
        if self.hang.is_set():
            self._stop.wait(30)
            return None
        time.sleep(0.01)
        pixels = self.frames[self._seq % len(self.frames)]
        seq, gen = self._next_stamps("BGR", (64, 64))
        return Frame(pixels, "BGR", (64, 64), pixels.strides[0], time.monotonic_ns(), seq, gen)


def test_stalled_camera_stops_watchdog_pings_and_makes_actuators_safe(tmp_path, notify, monkeypatch):
    import cv2

    digit_scene(tmp_path / "frames", 2)
    frames = [cv2.imread(str(p)) for p in sorted((tmp_path / "frames").glob("*.png"))]
    camera = StuckCamera(frames)
    monkeypatch.setattr("edgert.apps.kiosk.app.make_source", lambda config: camera)
    text = config_text(tmp_path / "frames", tmp_path / "state",
                       service=", stall_timeout_s: 0.5, status_interval_s: 0.2")
    config = parse_text(text, KioskFile)
    pins = MockFactory(pin_class=MockPWMPin)
    notifier = Notifier({"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "200000"})
    daemon = Daemon(None, notifier=notifier, config=config, pin_factory=pins)
    result = {}
    runner = threading.Thread(target=lambda: result.setdefault("code", daemon.run()))
    runner.start()
    try:
        ready = notify.wait_for(lambda m: m == "READY=1")
        notify.wait_for(lambda m: m == "WATCHDOG=1", start=ready)
        daemon.app.firing.schedule("odd", time.monotonic_ns() + 5_000_000_000)  # an item on its way
        camera.hang.set()
        stalled = notify.wait_for(lambda m: "STALLED" in m, start=ready)
        mark = len(notify.messages)
        time.sleep(0.6)
        assert "WATCHDOG=1" not in notify.messages[mark:]  # systemd's watchdog would now fire
        assert daemon.app.firing.pending() == 0  # the item's firing was cancelled
        flap = pins.pin(18)
        assert abs(flap.state - 0.075) < 1e-6  # servo at its safe angle (0 degrees)
        assert stalled >= ready
    finally:
        daemon.request_stop()
        runner.join(20)
        pins.close()
    assert result["code"] == 0


def start_daemon(config_path, pins) -> tuple[Daemon, threading.Thread]:
    """A daemon on `config_path` in a thread, returned once it decides frames."""
    daemon = Daemon(config_path, notifier=Notifier({}), pin_factory=pins)
    runner = threading.Thread(target=daemon.run)
    runner.start()
    deadline = time.monotonic() + 20
    while not (daemon.app and daemon.app.frames_decided) and time.monotonic() < deadline:
        time.sleep(0.05)
    return daemon, runner


def test_reloads_leave_no_threads_behind(tmp_path):
    config = write_config(tmp_path)
    variants = [config.read_text(), config.read_text().replace("min_agreement: 0.6",
                                                               "min_agreement: 0.6\n  cooldown_s: 0.05")]
    pins = MockFactory(pin_class=MockPWMPin)
    daemon, runner = start_daemon(config, pins)
    try:
        baseline = threading.active_count()
        for i in range(8):
            config.write_text(variants[(i + 1) % 2])
            before = daemon.reloads
            daemon.request_reload()
            deadline = time.monotonic() + 20
            while daemon.reloads == before and time.monotonic() < deadline:
                time.sleep(0.02)
            assert daemon.reloads == before + 1
        deadline = time.monotonic() + 5  # a servo hold timer or relay pulse may still be finishing
        while threading.active_count() > baseline and time.monotonic() < deadline:
            time.sleep(0.05)
        assert threading.active_count() <= baseline, sorted(t.name for t in threading.enumerate())
    finally:
        daemon.request_stop()
        runner.join(20)
        pins.close()


class VanishingCamera(StuckCamera):
    """Fails to open while `unplugged` is set, and fails reads from then on until replugged."""

    name = "usb camera"

    def __init__(self, frames):
        super().__init__(frames)
        self.unplugged = threading.Event()

    def _open(self):
        if self.unplugged.is_set():
            raise OSError("no such device")

    def _read(self, timeout):
        if self.unplugged.is_set():
            raise TimeoutError("no frame within 0.1 s")
        return super()._read(timeout)


def run_daemon_with(camera, tmp_path, notify, monkeypatch, pins):
    import cv2

    digit_scene(tmp_path / "frames", 2)
    camera.frames = [cv2.imread(str(p)) for p in sorted((tmp_path / "frames").glob("*.png"))]
    monkeypatch.setattr("edgert.apps.kiosk.app.make_source", lambda config: camera)
    text = config_text(tmp_path / "frames", tmp_path / "state", service=", status_interval_s: 0.2")
    notifier = Notifier({"NOTIFY_SOCKET": str(notify.path)})
    daemon = Daemon(None, notifier=notifier, config=parse_text(text, KioskFile), pin_factory=pins)
    runner = threading.Thread(target=daemon.run)
    runner.start()
    return daemon, runner


def test_camera_that_never_opens_keeps_the_start_pending_and_actuators_safe(tmp_path, notify, monkeypatch):
    camera = VanishingCamera([])
    camera.unplugged.set()
    camera.backoff = type(camera.backoff)(0.05, 0.2)
    pins = MockFactory(pin_class=MockPWMPin)
    daemon, runner = run_daemon_with(camera, tmp_path, notify, monkeypatch, pins)
    try:
        waiting = notify.wait_for(lambda m: m.startswith("STATUS=waiting for the first frame"))
        assert "usb camera" in notify.messages[waiting] and "no such device" in notify.messages[waiting]
        notify.wait_for(lambda m: m.startswith("EXTEND_TIMEOUT_USEC="))
        assert "READY=1" not in notify.messages
        assert abs(pins.pin(18).state - 0.075) < 1e-6  # servo held at its safe angle
        camera.unplugged.clear()  # plugged in at last
        notify.wait_for(lambda m: m == "READY=1")
    finally:
        daemon.request_stop()
        runner.join(20)
        pins.close()


def test_camera_that_vanishes_mid_run_reconnects_and_says_so(tmp_path, notify, monkeypatch):
    camera = VanishingCamera([])
    camera.backoff = type(camera.backoff)(0.05, 0.2)
    pins = MockFactory(pin_class=MockPWMPin)
    daemon, runner = run_daemon_with(camera, tmp_path, notify, monkeypatch, pins)
    try:
        ready = notify.wait_for(lambda m: m == "READY=1")
        camera.unplugged.set()
        gone = notify.wait_for(lambda m: "camera reconnecting" in m, start=ready)
        assert "no such device" in notify.messages[gone] or "no frame" in notify.messages[gone]
        camera.unplugged.clear()
        notify.wait_for(lambda m: "camera ok (reconnected 1x)" in m, start=gone)
    finally:
        daemon.request_stop()
        runner.join(20)
        pins.close()


def test_signal_storm_then_sigterm_stops_cleanly(tmp_path):
    config = write_config(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "edgert.cli", "run", "--config", str(config)], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": EDGERT_PATH}, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        db = tmp_path / "state" / "journal.sqlite3"
        while not db.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        for _ in range(40):  # signals land at any point of the loop, also inside its waits
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.005)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in proc.stderr.read()


def test_reload_picks_up_a_model_file_replaced_in_place(tmp_path):
    import shutil

    model = tmp_path / "sorter.tflite"
    shutil.copy(ROOT / "tests" / "data" / "digits_int8.tflite", model)
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace(str(ROOT / "tests" / "data" / "digits_int8.tflite"), str(model)))
    pins = MockFactory(pin_class=MockPWMPin)
    daemon, runner = start_daemon(config, pins)
    try:
        first = daemon.app.model
        daemon.request_reload()  # nothing changed: nothing swapped
        deadline = time.monotonic() + 10
        while daemon.reloads == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert daemon.app.model is first
        shutil.copy(ROOT / "tests" / "data" / "digits_fp32.tflite", model)  # an update overwrites the file
        daemon.request_reload()
        deadline = time.monotonic() + 10
        while daemon.app.model is first and time.monotonic() < deadline:
            time.sleep(0.02)
        swapped = daemon.app.model
        assert swapped.generation == first.generation + 1
        assert swapped.model.inputs[0].dtype.name == "float32"  # the new file's model runs now
    finally:
        daemon.request_stop()
        runner.join(20)
        pins.close()
