"""`Daemon`: runs the kiosk in the foreground as systemd expects (`edgert run`).

READY=1 after the first frame is decided; STATUS= with FPS, model and camera health; WATCHDOG=1
only while frames are decided; SIGTERM/SIGINT drain in-flight frames and put actuators in the safe
state (STOPPING=1); SIGHUP reloads the config: a model-only change swaps the model in place, any
other change rebuilds the loop. A config that does not validate is refused and the running one
kept.
"""
from __future__ import annotations

import logging
import signal
import threading
import time

from edgert.config.loader import load_file
from edgert.config.schema import KioskConfig
from edgert.errors import EdgertError
from edgert.pipeline.kiosk import Kiosk
from edgert.service.notify import Notifier, WatchdogPetter

log = logging.getLogger(__name__)


_M_ARENA_MAX = -8


def limit_malloc_arenas(count: int = 2) -> None:
    """Cap glibc's malloc arenas (as ``MALLOC_ARENA_MAX`` would).

    Every reload starts new stage threads; glibc gives new threads new arenas (up to 8 per core)
    and keeps what they freed, so the daemon grew by ~3 MB per reload (seen: 130 -> 250 MB over 40
    reloads; flat at 2 arenas). Frames are handed between threads anyway, so arenas buy nothing.
    """
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, count)
    except (OSError, AttributeError):  # not glibc
        pass


def release_freed_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (after a rebuild freed a model and buffers)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        pass


class Daemon:
    """The kiosk service loop.

    Args:
        config_path: The YAML config file.
        notifier: systemd notifications (default: from ``$NOTIFY_SOCKET``).
        listener: Passed on to `Kiosk` (``listener(ItemOutcome)`` per decided item).
        pin_factory: Passed on to `Kiosk` (tests).
        config: An already validated config (skips the first read of `config_path`).
    """

    def __init__(self, config_path, notifier: Notifier | None = None, listener=None, pin_factory=None,
                 config: KioskConfig | None = None):
        self.config_path = config_path
        self.notifier = notifier or Notifier()
        self.listener = listener
        self.pin_factory = pin_factory
        self.config = config or load_file(config_path, KioskConfig)
        self.kiosk: Kiosk | None = None
        self.reloads = 0
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._wake = threading.Event()

    # -- signals --------------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop, SIGHUP reloads (main thread only)."""
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
        signal.signal(signal.SIGINT, lambda *_: self.request_stop())
        signal.signal(signal.SIGHUP, lambda *_: self.request_reload())

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def request_reload(self) -> None:
        self._reload.set()
        self._wake.set()

    # -- main loop ------------------------------------------------------------------------------
    def run(self, duration: float | None = None) -> int:
        """Run until stopped (or for `duration` seconds); the process exit code.

        Raises:
            EdgertError: the kiosk cannot start (bad model, camera that never opens with a bounded
                retry, GPIO unavailable...): nothing is left half-open.
        """
        limit_malloc_arenas()
        petter = WatchdogPetter(self.notifier)
        self.kiosk = self._open(self.config, petter)
        self.kiosk.start()
        deadline = None if duration is None else time.monotonic() + duration
        service = self.config.service
        ready = stalled = False
        last_status, last_frames = time.monotonic(), 0
        code = 0
        try:
            while not self._stop.is_set():
                self._wake.wait(0.05)
                self._wake.clear()
                now = time.monotonic()
                kiosk = self.kiosk
                if deadline is not None and now >= deadline:
                    break
                if not kiosk.graph.running:
                    code = self._ended(kiosk)
                    break
                if not ready and kiosk.frames_decided:
                    ready = True
                    self.notifier.ready()
                    log.info("ready: first frame decided")
                elif not ready and now - last_status >= service.status_interval_s:
                    # A camera that is not there yet: keep the start pending (actuators stay safe)
                    # rather than let systemd's start timeout kill and restart us in a loop.
                    last_status = now
                    health = kiosk.source.health
                    text = f"waiting for the first frame ({kiosk.source.name}: {health.last_error or health.state})"
                    self.notifier.extend_timeout(3 * service.status_interval_s)
                    self.notifier.status(text)
                    log.warning("%s", text)
                if self._reload.is_set():
                    self._reload.clear()
                    self._do_reload(petter)
                    service = self.config.service
                    last_frames = self.kiosk.frames_decided
                    continue
                idle_s = (time.monotonic_ns() - kiosk.last_progress_ns) / 1e9 if kiosk.last_progress_ns else 0.0
                if ready and idle_s > service.stall_timeout_s and not stalled:
                    stalled = True
                    kiosk.safe("stalled")
                    log.error("no frame decided for %.0f s: actuators in safe state", idle_s)
                elif stalled and idle_s <= service.stall_timeout_s:
                    stalled = False
                    log.warning("frames flow again")
                if now - last_status >= service.status_interval_s:
                    fps = (kiosk.frames_decided - last_frames) / (now - last_status)
                    last_status, last_frames = now, kiosk.frames_decided
                    text = self.status_text(fps, stalled)
                    self.notifier.status(text)
                    log.info("%s", text)
        finally:
            self.notifier.stopping()
            try:
                self.kiosk.stop()
            finally:
                self.kiosk.close()
                petter.close()
        return code

    def _open(self, config: KioskConfig, petter: WatchdogPetter) -> Kiosk:
        kiosk = Kiosk(config, listener=self.listener, pin_factory=self.pin_factory)
        kiosk.progress_hooks.append(petter.progress)
        return kiosk

    def _ended(self, kiosk: Kiosk) -> int:
        """The stream ended by itself: 0 for a finite source read to its end, 1 for a source that gave up."""
        health = kiosk.source.health
        if health.state == "ended":
            log.info("source ended")
            return 0
        log.error("source failed: %s", health.last_error or "stopped")
        return 1

    def _do_reload(self, petter: WatchdogPetter) -> None:
        self.notifier.reloading()
        try:
            new = load_file(self.config_path, KioskConfig)
        except EdgertError as exc:
            log.error("reload refused, keeping the running config: %s", exc)
            self.notifier.ready()
            return
        old = self.config
        try:
            if new.model_dump(exclude={"model"}) == old.model_dump(exclude={"model"}):
                if new.model != old.model:
                    self.kiosk.swap_model(new.model)
                    self.kiosk.config = new
            else:
                self.kiosk.stop()
                self.kiosk.close()
                release_freed_memory()
                try:
                    self.kiosk = self._open(new, petter)
                except EdgertError:
                    self.kiosk = self._open(old, petter)  # back to what worked
                    self.kiosk.start()
                    raise
                self.kiosk.start()
        except EdgertError as exc:
            log.error("reload failed, keeping the running config: %s", exc)
        else:
            self.config = new
            self.reloads += 1
            log.info("config reloaded")
        self.notifier.ready()

    def status_text(self, fps: float, stalled: bool = False) -> str:
        """The STATUS= line: what the service does now, in a few words."""
        kiosk = self.kiosk
        entry = kiosk.model
        health = kiosk.source.health
        camera = "camera ok" if health.state == "ok" else f"camera {health.state}"
        if health.state == "reconnecting":
            camera += f" ({health.last_error}; retry {health.failures})"
        elif health.reconnects:
            camera += f" (reconnected {health.reconnects}x)"
        state = "STALLED, actuators safe" if stalled else f"{fps:.1f} fps"
        return (f"{state}, model {entry.name} {entry.version} on {entry.model.backend}, "
                f"{kiosk.frames_decided} frames, {kiosk.items} items, {camera}").replace("  ", " ")
