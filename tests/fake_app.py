"""A product with no camera and no model, to test the service through the App protocol alone.

`Control` is handed to the daemon as an app option (``Daemon(..., control=control)``) and is shared by
every app the daemon builds, so a test steers frames and stream health across rebuilds and sees every
app that was built:

```python
monkeypatch.setitem(APPS, "fake", "fake_app:APP")   # then clear the app_spec/file_model caches
daemon = Daemon(config_path, notifier=notifier, control=control)
control.flowing.set()                                # frames are processed from now on
```
"""
from __future__ import annotations

import threading
import time
from typing import Literal

from pydantic import Field

from edgert.core.errors import ConfigError
from edgert.core.settings import Section
from edgert.pipeline.app import AppHealth, AppSpec
from edgert.sources.base import SourceHealth


class FakeConfig(Section):
    """The fake app's sections of a config file."""

    app: Literal["fake"] = "fake"
    label: str = Field("a", description="Applied in place by `reconfigure`.")
    streams: list[str] = Field(["cam0"], description="Stream names; a change needs a rebuild.")
    frames: int | None = Field(None, description="Finite input: every stream ends after this many frames.")
    fail_at: int | None = Field(None, description="The first stream gives up after this many frames.")
    fail_build: bool = Field(False, description="The app cannot start on this config.")


class Control:
    """What a test steers (shared by every app one daemon builds).

    Attributes:
        flowing: Set: frames are processed. Cleared: the frame thread waits (and sets `idle`).
        idle: Set by the frame thread once it waits for `flowing` (no frame is in progress).
        reconnecting: Set: the first stream reports it is inside its reconnect window.
        built: Every app built, in order.
    """

    def __init__(self):
        self.flowing = threading.Event()
        self.idle = threading.Event()
        self.reconnecting = threading.Event()
        self.built: list[FakeApp] = []


class FakeApp:
    """An `edgert.pipeline.app.App` whose "frames" are counter ticks; records what the service asks of it."""

    def __init__(self, config, context, control: Control):
        if config.fail_build:
            raise ConfigError("fake: this config cannot start")
        self.config, self.context, self.control = config, context, control
        self.frames = 0
        self.last_progress_ns = 0
        self.safe_reasons: list[str] = []
        self.reconfigured: list = []
        self.closed = False
        self._ended = False
        self._failed = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-frames", daemon=True)
        context.events.publish("fake_built", f"built with label {config.label}", label=config.label)
        control.built.append(self)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.control.flowing.is_set():
                self.control.idle.set()
                self.control.flowing.wait(0.01)
                continue
            self.control.idle.clear()
            self.frames += 1
            self.last_progress_ns = time.monotonic_ns()
            self.context.on_progress()
            if self.config.fail_at is not None and self.frames >= self.config.fail_at:
                self._failed = f"{self.config.streams[0]} gave up: no signal"
                return
            if self.config.frames is not None and self.frames >= self.config.frames:
                self._ended = True
                return
            time.sleep(0.005)

    def start(self) -> None:
        self._thread.start()
        self.context.events.publish("fake_started", "frames start", streams=len(self.config.streams))

    def stop(self, timeout: float = 8.0) -> bool:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.safe("stop")
        return not self._thread.is_alive()

    def close(self) -> None:
        self.stop()
        self.closed = True

    def safe(self, reason: str) -> None:
        self.safe_reasons.append(reason)

    def health(self) -> AppHealth:
        streams = {}
        for i, name in enumerate(self.config.streams):
            if self._ended:
                streams[name] = SourceHealth("ended")
            elif i == 0 and self._failed:
                streams[name] = SourceHealth("closed", failures=5, last_error="no signal")
            elif i == 0 and self.control.reconnecting.is_set():
                streams[name] = SourceHealth("reconnecting", failures=2, last_error="no signal")
            else:
                streams[name] = SourceHealth("ok")
        return AppHealth(self._thread.is_alive(), self.frames, self.last_progress_ns, streams, self._failed)

    def status(self) -> str:
        return f"fake {self.config.label}, {self.frames} frames"

    def stats(self) -> dict:
        return {"frames": self.frames}

    def models(self) -> dict:
        return {}

    def model_health(self, slot: str) -> dict:
        return {}

    def swap_model(self, slot: str, model):
        raise ConfigError(f"fake: no model slot {slot!r}")

    def reconfigure(self, new_config) -> bool:
        self.reconfigured.append(new_config)
        if new_config.model_dump(exclude={"label"}) != self.config.model_dump(exclude={"label"}):
            return False
        self.config = new_config
        return True


APP = AppSpec("fake", FakeConfig, FakeApp, lambda config: {}, lambda config: f"{len(config.streams)} stream(s)")
