"""`Daemon`: runs one app in the foreground as systemd expects (`edgert run`).

READY=1 after the first frame is processed; STATUS= with FPS, the app's words and stream health;
WATCHDOG=1 only while frames are processed (or a stream is inside its reconnect window);
SIGTERM/SIGINT drain in-flight frames and put outputs in their safe state (STOPPING=1); SIGHUP
reloads the config: what the app can apply live (a changed model) it applies in place, any other
change rebuilds the app. A config that does not validate is refused and the running one kept.

The daemon knows the app only through `edgert.pipeline.app` (`AppSpec`, `App`, `AppContext`).
"""
from __future__ import annotations

import logging
import os
import select
import signal
import time
import weakref

from edgert.core.errors import EdgertError
from edgert.pipeline.app import AppContext, Events
from edgert.service.config import app_spec, load_config
from edgert.service.events import EventRecorder, events_journal, events_journal_path
from edgert.service.metrics import MetricsServer
from edgert.service.models import ServiceModels
from edgert.service.notify import Notifier, WatchdogPetter
from edgert.service.process import limit_malloc_arenas, release_freed_memory
from edgert.service.reload import model_fingerprints, reload_action
from edgert.service.status import status_text, waiting_text
from edgert.service.updates import Updates

log = logging.getLogger(__name__)


class Daemon:
    """The service loop around one app.

    Args:
        config_path: The YAML config file.
        notifier: systemd notifications (default: from ``$NOTIFY_SOCKET``).
        config: An already validated config (skips the first read of `config_path`).
        **app_options: Passed on to the app's builder (the kiosk's ``listener`` and ``pin_factory``).
    """

    def __init__(self, config_path, notifier: Notifier | None = None, config=None, **app_options):
        self.config_path = config_path
        self.notifier = notifier or Notifier()
        self.app_options = app_options
        self.config = config or load_config(config_path)
        self.spec = app_spec(self.config.app)
        self.app = None
        self.updates: Updates | None = None
        self.recorder: EventRecorder | None = None
        self.metrics = None
        self.reloads = 0
        self.ready = False
        self.stalled = False
        self._petter: WatchdogPetter | None = None
        self._fingerprints = model_fingerprints(self.spec, self.config)
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
            EdgertError: the app cannot start (bad model, GPIO unavailable...): nothing is left half-open.
        """
        limit_malloc_arenas()
        self._petter = WatchdogPetter(self.notifier)
        code = 0
        try:
            self._open(self.config)
            self.app.start()
            code = self._loop(duration)
        finally:
            self.notifier.stopping()
            try:
                self._close()  # drains, then puts outputs in their safe state
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
            service = self.config.service
            if self._stop_requested or (deadline is not None and now >= deadline):
                return 0
            health = self.app.health()
            if not health.running:
                return self._ended(health)
            if self._reload_requested:
                self._reload_requested = False
                self._do_reload()
                last_status, last_frames = time.monotonic(), self.app.health().frames
                continue
            if self.updates is not None:
                self.updates.poll()
            if health.reconnecting:
                self._petter.progress()  # the capture thread is alive and retrying: not a hang
            if not self.ready:
                if health.frames:
                    self.ready = True
                    self.notifier.ready()
                    log.info("ready: first frame processed")
                elif now - last_status >= service.status_interval_s:
                    # A camera that is not there yet: keep the start pending (outputs stay safe)
                    # rather than let systemd's start timeout kill and restart us in a loop.
                    last_status = now
                    text = waiting_text(self.app)
                    self.notifier.extend_timeout(3 * service.status_interval_s)
                    self.notifier.status(text)
                    log.warning("%s", text)
                continue
            self._check_stall(health, service)
            if now - last_status >= service.status_interval_s:
                fps = (health.frames - last_frames) / (now - last_status)
                last_status, last_frames = now, health.frames
                text = status_text(self.app, fps, self.stalled)
                self.notifier.status(text)
                log.info("%s", text)
        return 0

    def _check_stall(self, health, service) -> None:
        idle_s = (time.monotonic_ns() - health.last_progress_ns) / 1e9 if health.last_progress_ns else 0.0
        if idle_s > service.stall_timeout_s and not self.stalled:
            self.stalled = True
            self.app.safe("stalled")
            log.error("no frame processed for %.0f s: outputs in safe state", idle_s)
        elif self.stalled and idle_s <= service.stall_timeout_s:
            self.stalled = False
            log.warning("frames flow again")

    @staticmethod
    def _ended(health) -> int:
        """The app stopped by itself: 0 when its finite input was read to the end, 1 when a stream gave up."""
        if health.failed is None:
            log.info("source ended")
            return 0
        log.error("%s", health.failed)
        return 1

    # -- building and closing the app -------------------------------------------------------------
    def _open(self, config) -> None:
        """Build the app for `config`, with its model store, events (journaled), and the store and fleet links."""
        events = Events()
        self.app = None
        # First: the events of the start are kept too.
        self.recorder = EventRecorder(events_journal_path(config), events, events_journal(config).keep_days)
        try:
            store = _store_for(config, self.spec)
            context = AppContext(config.service.state_dir, config.service.infer_depth,
                                 ServiceModels(store, events).load, events, self._petter.progress)
            self.app = self.spec.build(config, context, **self.app_options)
        except BaseException:
            self._close()
            self.app = None
            raise
        try:
            self.updates = Updates(config, self.spec, lambda: self.app, store, events, self.recorder,
                                   self._health_word, self._poke)
        except BaseException:
            self._close()  # a fleet that cannot start (unreadable password or TLS files): nothing left open
            self.app = None
            raise
        if config.metrics is not None:
            try:
                self.metrics = MetricsServer(config.metrics, lambda: self.app, lambda: self.recorder,
                                             lambda: self.updates)
            except BaseException:
                self._close()  # the port is taken: nothing left open
                self.app = None
                raise

    def _close(self) -> None:
        if self.metrics is not None:
            metrics, self.metrics = self.metrics, None
            metrics.close()
        if self.updates is not None:
            self.updates.close()
            self.updates = None
        if self.app is not None:
            self.app.close()
        if self.recorder is not None:  # last: the app's closing events are journaled
            recorder, self.recorder = self.recorder, None
            recorder.close()

    def _health_word(self) -> str:
        return "stalled" if self.stalled else ("ok" if self.ready else "starting")

    # -- reload ---------------------------------------------------------------------------------
    def _do_reload(self) -> None:
        self.notifier.reloading()
        try:
            new = load_config(self.config_path) if self.config_path else self.config
        except EdgertError as exc:
            log.error("reload refused, keeping the running config: %s", exc)
            self._reloaded()
            return
        old, prints = self.config, model_fingerprints(app_spec(new.app), new)
        try:
            action = reload_action(old, new, self._fingerprints, prints)
            if action == "unchanged":
                log.info("config unchanged")
            else:
                self._petter.progress()
                if action == "rebuild" or not self.app.reconfigure(new):
                    self._rebuild(new, old)
        except EdgertError as exc:
            log.error("reload failed, keeping the running config: %s", exc)
        else:
            self.config, self._fingerprints = new, prints
            self.reloads += 1
            log.info("config reloaded")
        self._reloaded()

    def _rebuild(self, new, old) -> None:
        """Stop the app and start it again on `new`; back on `old` if `new` cannot start."""
        self._petter.progress()
        self._close()
        release_freed_memory()
        self._petter.progress()
        self.stalled = False
        try:
            self.spec = app_spec(new.app)
            self._open(new)
        except EdgertError as exc:
            log.error("new config cannot start (%s); starting the previous one again", exc)
            self.spec = app_spec(old.app)
            self._open(old)  # if this fails too, run() stops the service with the cause
            self.app.start()
            raise
        self.app.start()
        self._petter.progress()

    def _reloaded(self) -> None:
        if self.ready:
            self.notifier.ready()  # READY=1 ends RELOADING=1; before the first frame it waits for that


def _store_for(config, spec):
    """The `ModelStore` when a model of the config is a ``store:`` one or the fleet is on, else None."""
    from edgert.models.reference import store_model_name

    needs = config.fleet.enabled or any(store_model_name(m.path) for m in spec.models(config).values())
    if not needs:
        return None
    from edgert.bundles.store import ModelStore

    store = ModelStore.from_config(config.store, config.service.state_dir)
    for line in store.recover():
        log.warning("model store: %s", line)
    return store


def _close_fds(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
