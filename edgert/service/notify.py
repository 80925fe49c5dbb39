"""sd_notify without libsystemd: readiness, status, watchdog pings and reload/stop notices.

The protocol (systemd's ``man/notify-selfcontained-example.py``): ``$NOTIFY_SOCKET`` names an
AF_UNIX datagram socket, a file path or ``@name`` for the abstract namespace; each notice is one
datagram of newline-separated ``KEY=VALUE`` lines. Without ``$NOTIFY_SOCKET`` (a run from a shell)
every call does nothing. A failed send is logged once and never raised: a lost notice must not
stop the kiosk loop.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from typing import Self

from edgert.core.errors import ConfigError

log = logging.getLogger(__name__)


class Notifier:
    """Sends notices to the service manager named by ``$NOTIFY_SOCKET`` (read once, at construction).

    Args:
        environ: The environment to read; ``os.environ`` when omitted.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._environ = dict(env)
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self._warned = False
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether a service manager listens (``$NOTIFY_SOCKET`` was set and usable)."""
        return self._address is not None

    def notify(self, **fields: str | int) -> bool:
        """Sends one datagram of ``KEY=VALUE`` lines; returns whether it was sent.

        Values must not contain newlines (``status`` flattens them for you).
        """
        if self._address is None:
            return False
        payload = "\n".join(f"{key}={value}" for key, value in fields.items()).encode("utf-8")
        try:
            # One short-lived socket per notice, as the reference implementation does: nothing to
            # keep alive across a systemd re-exec, and safe to call from any thread.
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self._address)
                sock.sendall(payload)
        except OSError as exc:
            with self._lock:
                first, self._warned = not self._warned, True
            level = logging.WARNING if first else logging.DEBUG
            log.log(level, "sd_notify to %r failed (%s); further failures are logged at debug level",
                    _printable(self._address), exc)
            return False
        return True

    def ready(self) -> bool:
        """Start-up (or a reload) is complete: ``READY=1``."""
        return self.notify(READY=1)

    def status(self, text: str) -> bool:
        """A one-line status for ``systemctl status``: ``STATUS=<text>``."""
        return self.notify(STATUS=" ".join(str(text).splitlines()))

    def watchdog(self) -> bool:
        """The service is alive and working: ``WATCHDOG=1``."""
        return self.notify(WATCHDOG=1)

    def stopping(self) -> bool:
        """The service is shutting down: ``STOPPING=1``."""
        return self.notify(STOPPING=1)

    def reloading(self) -> bool:
        """A reload started: ``RELOADING=1`` with ``MONOTONIC_USEC``; send ``ready()`` when done."""
        return self.notify(RELOADING=1, MONOTONIC_USEC=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)

    def extend_timeout(self, seconds: float) -> bool:
        """Asks for ``seconds`` more before the start/stop/reload timeout: ``EXTEND_TIMEOUT_USEC=``.

        For a start that legitimately waits (a camera not plugged in yet): send it, with a ``status()``
        saying why, more often than ``seconds``, and the unit's TimeoutStartSec= does not fail the start.
        """
        if not seconds > 0:
            raise ConfigError(f"timeout extension must be > 0 seconds, got {seconds!r}")
        return self.notify(EXTEND_TIMEOUT_USEC=round(seconds * 1_000_000))

    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings (half of ``$WATCHDOG_USEC``), or None when not asked for.

        As sd_watchdog_enabled(3): only when ``$WATCHDOG_PID`` is unset or is this process (a child
        that inherited the environment must not ping for its parent).
        """
        try:
            usec = int(self._environ.get("WATCHDOG_USEC", ""))
        except ValueError:
            return None
        if usec <= 0:
            return None
        pid = self._environ.get("WATCHDOG_PID")
        if pid is not None:
            try:
                if int(pid) != os.getpid():
                    return None
            except ValueError:
                return None
        return usec / 2 / 1_000_000


class WatchdogPetter:
    """Pings the watchdog only while work gets done, so a stuck camera or device lets it fire.

    The daemon calls ``progress()`` each time a frame is fully processed (and between the steps of a
    deliberate long task such as a model swap). A background thread sends ``WATCHDOG=1`` every
    interval if there was progress since the previous ping, and nothing otherwise. With no interval
    (no ``WatchdogSec=``, or no service manager) no thread is started and ``progress()`` is nearly free.

    Args:
        notifier: Where pings go.
        interval: Seconds between pings; ``notifier.watchdog_interval()`` when omitted.
    """

    def __init__(self, notifier: Notifier, interval: float | None = None) -> None:
        if interval is None and notifier.enabled:
            interval = notifier.watchdog_interval()
        if interval is not None and not interval > 0:
            raise ConfigError(f"watchdog interval must be > 0 seconds, got {interval!r}")
        self.interval = interval
        self._notifier = notifier
        self._progress = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if interval is not None:
            self._thread = threading.Thread(target=self._run, name="edgert-watchdog", daemon=True)
            self._thread.start()

    @property
    def active(self) -> bool:
        """Whether the ping thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def progress(self) -> None:
        """Records that a frame was fully processed (cheap; call it every frame)."""
        self._progress.set()

    def close(self) -> None:
        """Stops the ping thread (idempotent)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if self._progress.is_set():
                self._progress.clear()
                self._notifier.watchdog()


def _socket_address(value: str) -> str | None:
    """The connect() address for a ``$NOTIFY_SOCKET`` value; None when unset or unusable."""
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    log.warning("NOTIFY_SOCKET=%r is neither a path nor an @abstract name; systemd notices are off", value)
    return None


def _printable(address: str) -> str:
    return "@" + address[1:] if address.startswith("\0") else address
