"""`Daemon`: runs the kiosk in the foreground as systemd expects (`edgert run`).

READY=1 after the first frame is decided; STATUS= with FPS, model and camera health; WATCHDOG=1
only while frames are decided; SIGTERM/SIGINT drain in-flight frames and put actuators in the safe
state (STOPPING=1); SIGHUP reloads the config: a model-only change swaps the model in place, any
other change rebuilds the loop. A config that does not validate is refused and the running one
kept.
"""
from __future__ import annotations

import logging
import os
import select
import signal
import time
import weakref

from edgert.apps.kiosk.app import Kiosk
from edgert.apps.kiosk.config import KioskConfig
from edgert.core.config_file import load_file
from edgert.core.errors import EdgertError
from edgert.models.probation import ModelUpdates
from edgert.models.reference import model_path, store_model_name
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
        self.ready = False
        self.stalled = False
        self._petter: WatchdogPetter | None = None
        self._model_fingerprint = model_fingerprint(self.config)
        self.updates: ModelUpdates | None = None
        self.fleet = None
        # Signal handlers only set these flags; the self-pipe wakes the loop. (An Event set from a
        # handler can deadlock: the handler runs in the main thread, which may hold the Event's lock.)
        self._stop_requested = False
        self._reload_requested = False
        self._signals_installed = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        # Closed with the object, not at the end of run(): a late request_stop() must not write to a
        # descriptor number the process has meanwhile reused for something else.
        weakref.finalize(self, _close_fds, self._wake_r, self._wake_w)

    # -- signals --------------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop, SIGHUP reloads (main thread only)."""
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        self._signals_installed = True
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_reload_signal)

    def _on_stop_signal(self, *_):
        self._stop_requested = True

    def _on_reload_signal(self, *_):
        self._reload_requested = True

    def request_stop(self) -> None:
        """Stop the loop (from any thread)."""
        self._stop_requested = True
        self._poke()

    def request_reload(self) -> None:
        """Reload the config (from any thread)."""
        self._reload_requested = True
        self._poke()

    def _poke(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass  # the pipe is full: the loop is about to wake anyway

    def _sleep(self, seconds: float) -> None:
        select.select([self._wake_r], [], [], seconds)
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    # -- main loop ------------------------------------------------------------------------------
    def run(self, duration: float | None = None) -> int:
        """Run until stopped (or for `duration` seconds); the process exit code.

        Raises:
            EdgertError: the kiosk cannot start (bad model, GPIO unavailable...): nothing is left
                half-open.
        """
        limit_malloc_arenas()
        self._petter = WatchdogPetter(self.notifier)
        code = 0
        try:
            self.kiosk = self._open(self.config)
            self._start_updates(self.config)
            self.kiosk.start()
            code = self._loop(duration)
        finally:
            self.notifier.stopping()
            try:
                self._stop_updates()
                if self.kiosk is not None:
                    self.kiosk.close()  # drains, then puts actuators in their safe state
            finally:
                self._petter.close()
                if self._signals_installed:
                    signal.set_wakeup_fd(-1)
        return code

    def _loop(self, duration: float | None) -> int:
        deadline = None if duration is None else time.monotonic() + duration
        last_status, last_frames = time.monotonic(), 0
        while not self._stop_requested:
            self._sleep(0.05)
            now = time.monotonic()
            kiosk, service = self.kiosk, self.config.service
            if self._stop_requested or (deadline is not None and now >= deadline):
                return 0
            if not kiosk.graph.running:
                return self._ended(kiosk)
            if self._reload_requested:
                self._reload_requested = False
                self._do_reload()
                last_status, last_frames = time.monotonic(), self.kiosk.frames_decided
                continue
            if self.updates is not None:
                self.updates.poll()
            if kiosk.source.health.state == "reconnecting":
                self._petter.progress()  # the capture thread is alive and retrying: not a hang
            if not self.ready:
                if kiosk.frames_decided:
                    self.ready = True
                    self.notifier.ready()
                    log.info("ready: first frame decided")
                elif now - last_status >= service.status_interval_s:
                    # A camera that is not there yet: keep the start pending (actuators stay safe)
                    # rather than let systemd's start timeout kill and restart us in a loop.
                    last_status = now
                    health = kiosk.source.health
                    text = f"waiting for the first frame ({kiosk.source.name}: {health.last_error or health.state})"
                    self.notifier.extend_timeout(3 * service.status_interval_s)
                    self.notifier.status(text)
                    log.warning("%s", text)
                continue
            self._check_stall(kiosk, service)
            if now - last_status >= service.status_interval_s:
                fps = (kiosk.frames_decided - last_frames) / (now - last_status)
                last_status, last_frames = now, kiosk.frames_decided
                text = self.status_text(fps)
                self.notifier.status(text)
                log.info("%s", text)
        return 0

    def _check_stall(self, kiosk: Kiosk, service) -> None:
        idle_s = (time.monotonic_ns() - kiosk.last_progress_ns) / 1e9 if kiosk.last_progress_ns else 0.0
        if idle_s > service.stall_timeout_s and not self.stalled:
            self.stalled = True
            kiosk.safe("stalled")
            log.error("no frame decided for %.0f s: actuators in safe state", idle_s)
        elif self.stalled and idle_s <= service.stall_timeout_s:
            self.stalled = False
            log.warning("frames flow again")

    def _open(self, config: KioskConfig) -> Kiosk:
        kiosk = Kiosk(config, listener=self.listener, pin_factory=self.pin_factory)
        kiosk.progress_hooks.append(self._petter.progress)
        return kiosk

    def _ended(self, kiosk: Kiosk) -> int:
        """The stream ended by itself: 0 for a finite source read to its end, 1 for a source that gave up."""
        health = kiosk.source.health
        if health.state == "ended":
            log.info("source ended")
            return 0
        log.error("source failed: %s", health.last_error or "stopped")
        return 1

    # -- reload ---------------------------------------------------------------------------------
    def _do_reload(self) -> None:
        self.notifier.reloading()
        try:
            new = load_file(self.config_path, KioskConfig) if self.config_path else self.config
        except EdgertError as exc:
            log.error("reload refused, keeping the running config: %s", exc)
            self._reloaded()
            return
        old, fingerprint = self.config, model_fingerprint(new)
        model_changed = new.model != old.model or fingerprint != self._model_fingerprint
        try:
            if new.model_dump(exclude={"model"}) == old.model_dump(exclude={"model"}):
                if model_changed:
                    self._petter.progress()
                    self.kiosk.swap_model(new.model)
                    self.kiosk.config = new
                else:
                    log.info("config unchanged")
            else:
                self._rebuild(new, old)
        except EdgertError as exc:
            log.error("reload failed, keeping the running config: %s", exc)
        else:
            self.config, self._model_fingerprint = new, fingerprint
            self.reloads += 1
            log.info("config reloaded")
        self._reloaded()

    def _rebuild(self, new: KioskConfig, old: KioskConfig) -> None:
        """Stop the loop and start it again on `new`; back on `old` if `new` cannot start."""
        self._petter.progress()
        self._stop_updates()
        self.kiosk.close()
        release_freed_memory()
        self._petter.progress()
        self.stalled = False
        try:
            self.kiosk = self._open(new)
        except EdgertError as exc:
            log.error("new config cannot start (%s); starting the previous one again", exc)
            self.kiosk = self._open(old)  # if this fails too, run() stops the service with the cause
            self._start_updates(old)
            self.kiosk.start()
            raise
        self._start_updates(new)
        self.kiosk.start()
        self._petter.progress()

    # -- model store and fleet -------------------------------------------------------------------
    def _start_updates(self, config: KioskConfig) -> None:
        """Follow the model store (a ``store:`` model) and join the fleet (``fleet.enabled``)."""
        kiosk = self.kiosk
        for kind, message, details in kiosk.startup_events:
            self._model_event(kind, message, **details)
        name = store_model_name(config.model.path)
        if name is not None and kiosk.store is not None:
            for line in kiosk.store.recover():
                log.warning("model store: %s", line)
            self.updates = ModelUpdates(lambda: self.kiosk, kiosk.store, name, config.probation,
                                        config.model.backend, config.model.options, on_event=self._model_event)
        if config.fleet.enabled:
            from edgert.bundles.store import ModelStore
            from edgert.fleet.handler import StoreHandler
            from edgert.fleet.mqtt import FleetAgent

            store = kiosk.store or ModelStore.from_config(config.store, config.service.state_dir)
            handler = StoreHandler(store, self._fleet_state, config.service.state_dir / "downloads",
                                   on_change=lambda _installed: self._poke())
            self.fleet = FleetAgent(config.fleet, handler)
            self.fleet.start()  # connects in the background: the kiosk runs while the broker is away

    def _stop_updates(self) -> None:
        self.updates = None
        if self.fleet is not None:
            fleet, self.fleet = self.fleet, None
            fleet.close()

    def _fleet_state(self) -> dict:
        kiosk = self.kiosk
        entry = kiosk.model
        health = "stalled" if self.stalled else ("ok" if self.ready else "starting")
        return {"backend": entry.model.backend, "running": {"name": entry.name, "version": entry.version},
                "health": health, "camera": kiosk.source.health.state}

    def _model_event(self, kind: str, message: str, **details) -> None:
        try:
            self.kiosk.journal.record_event(kind, message, **details)
        except EdgertError as exc:
            log.error("journal: %s", exc)
        if self.fleet is not None:
            self.fleet.publish_event(kind, message=message, **details)
            self.fleet.publish_state()

    def _reloaded(self) -> None:
        if self.ready:
            self.notifier.ready()  # READY=1 ends RELOADING=1; before the first frame it waits for that

    def status_text(self, fps: float) -> str:
        """The STATUS= line: what the service does now, in a few words."""
        kiosk = self.kiosk
        entry = kiosk.model
        health = kiosk.source.health
        camera = "camera ok" if health.state == "ok" else f"camera {health.state}"
        if health.state == "reconnecting":
            camera += f" ({health.last_error}; retry {health.failures})"
        elif health.reconnects:
            camera += f" (reconnected {health.reconnects}x)"
        state = "STALLED, actuators safe" if self.stalled else f"{fps:.1f} fps"
        return (f"{state}, model {entry.name} {entry.version} on {entry.model.backend}, "
                f"{kiosk.frames_decided} frames, {kiosk.items} items, {camera}").replace("  ", " ")


def _close_fds(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def model_fingerprint(config: KioskConfig) -> tuple:
    """Path, size and modification time of the configured model (a file replaced in place is a change)."""
    try:
        path = model_path(config.model.path)
        st = path.stat()
    except (OSError, EdgertError):
        return (config.model.path,)
    return (str(path), st.st_size, st.st_mtime_ns)
