"""sd_notify over real AF_UNIX datagram sockets: exact datagrams, watchdog rules, no-op without systemd."""
from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import time
import uuid

import pytest

from edgert.core.errors import ConfigError
from edgert.service.notify import Notifier, WatchdogPetter


@pytest.fixture
def path_listener():
    """A bound datagram socket at a short filesystem path (sun_path holds 108 bytes) and its name."""
    folder = tempfile.mkdtemp(prefix="ntf", dir="/tmp")
    path = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5.0)
    yield sock, path
    sock.close()
    shutil.rmtree(folder)


@pytest.fixture
def abstract_listener():
    name = f"edgert-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5.0)
    yield sock, "@" + name
    sock.close()


def _pending(sock: socket.socket, wait: float) -> list[bytes]:
    """Datagrams that arrive within `wait` seconds."""
    sock.settimeout(wait)
    out = []
    try:
        while True:
            out.append(sock.recv(4096))
    except TimeoutError:
        return out
    finally:
        sock.settimeout(5.0)


def test_path_socket_gets_exact_datagrams(path_listener):
    sock, path = path_listener
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready() is True
    assert sock.recv(4096) == b"READY=1"
    notifier.status("12.5 fps, mobilenet v2")
    assert sock.recv(4096) == b"STATUS=12.5 fps, mobilenet v2"
    notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    notifier.stopping()
    assert sock.recv(4096) == b"STOPPING=1"


def test_abstract_socket_gets_exact_datagrams(abstract_listener):
    sock, name = abstract_listener
    notifier = Notifier({"NOTIFY_SOCKET": name})
    notifier.ready()
    assert sock.recv(4096) == b"READY=1"
    notifier.notify(STATUS="camera lost", ERRNO=5)
    assert sock.recv(4096) == b"STATUS=camera lost\nERRNO=5"


def test_status_is_one_line(abstract_listener):
    sock, name = abstract_listener
    Notifier({"NOTIFY_SOCKET": name}).status("line one\nline two\r\nthree")
    assert sock.recv(4096) == b"STATUS=line one line two three"


def test_reloading_carries_monotonic_usec(abstract_listener):
    sock, name = abstract_listener
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    Notifier({"NOTIFY_SOCKET": name}).reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    lines = sock.recv(4096).decode().split("\n")
    assert lines[0] == "RELOADING=1"
    key, value = lines[1].split("=")
    assert key == "MONOTONIC_USEC" and before <= int(value) <= after
    assert len(lines) == 2


def test_extend_timeout_sends_microseconds(abstract_listener):
    sock, name = abstract_listener
    notifier = Notifier({"NOTIFY_SOCKET": name})
    notifier.extend_timeout(90)
    assert sock.recv(4096) == b"EXTEND_TIMEOUT_USEC=90000000"
    notifier.extend_timeout(0.25)
    assert sock.recv(4096) == b"EXTEND_TIMEOUT_USEC=250000"
    with pytest.raises(ConfigError, match="timeout"):
        notifier.extend_timeout(0)


def test_default_environment_is_read_at_construction(monkeypatch, abstract_listener):
    sock, name = abstract_listener
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    notifier = Notifier()
    monkeypatch.delenv("NOTIFY_SOCKET")
    notifier.ready()
    assert sock.recv(4096) == b"READY=1"


def test_unset_notify_socket_is_a_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled
    assert [notifier.ready(), notifier.status("x"), notifier.watchdog(), notifier.stopping(),
            notifier.reloading()] == [False] * 5


def test_relative_notify_socket_is_refused_not_used(caplog):
    with caplog.at_level(logging.WARNING, logger="edgert.service.notify"):
        notifier = Notifier({"NOTIFY_SOCKET": "relative/path"})
    assert not notifier.enabled and notifier.ready() is False
    assert "NOTIFY_SOCKET" in caplog.text


def test_send_failure_never_raises_and_is_logged_once(caplog):
    notifier = Notifier({"NOTIFY_SOCKET": f"/tmp/edgert-absent-{uuid.uuid4().hex}"})
    with caplog.at_level(logging.WARNING, logger="edgert.service.notify"):
        assert notifier.ready() is False
        assert notifier.watchdog() is False
        assert notifier.status("still here") is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "sd_notify" in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "not-a-pid"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_PID": str(os.getpid())}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_follows_sd_watchdog_enabled(env, expected):
    assert Notifier(env).watchdog_interval() == expected


def test_petter_pings_once_per_interval_with_progress(abstract_listener):
    sock, name = abstract_listener
    notifier = Notifier({"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "100000"})
    with WatchdogPetter(notifier) as petter:
        assert petter.interval == pytest.approx(0.05) and petter.active
        petter.progress()
        assert sock.recv(4096) == b"WATCHDOG=1"
        # No further progress: several intervals pass without another ping.
        assert _pending(sock, 0.4) == []
        petter.progress()
        assert sock.recv(4096) == b"WATCHDOG=1"
    assert not petter.active


def test_petter_without_progress_never_pings(abstract_listener):
    sock, name = abstract_listener
    with WatchdogPetter(Notifier({"NOTIFY_SOCKET": name}), interval=0.02) as petter:
        assert petter.active
        assert _pending(sock, 0.4) == []


def test_petter_stops_pinging_after_close(abstract_listener):
    sock, name = abstract_listener
    petter = WatchdogPetter(Notifier({"NOTIFY_SOCKET": name}), interval=0.02)
    petter.close()
    petter.close()
    petter.progress()
    assert not petter.active
    assert _pending(sock, 0.2) == []


def test_petter_without_watchdog_starts_no_thread(abstract_listener):
    _, name = abstract_listener
    for notifier in (Notifier({"NOTIFY_SOCKET": name}), Notifier({"WATCHDOG_USEC": "100000"})):
        petter = WatchdogPetter(notifier)
        assert petter.interval is None and not petter.active
        petter.progress()
        petter.close()


def test_petter_rejects_a_non_positive_interval():
    with pytest.raises(ConfigError, match="interval"):
        WatchdogPetter(Notifier({}), interval=0)
