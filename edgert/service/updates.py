"""The service's links to the outside: following the model store (one `ModelUpdates` per ``store:`` slot)
and the fleet agent over MQTT, which receives the journaled events through the outbox. Both report
through the app's event stream."""
from __future__ import annotations

import logging

from edgert.journal.events import ANALYTICS_KINDS
from edgert.models.probation import ModelUpdates
from edgert.models.reference import store_model_name

log = logging.getLogger(__name__)


class Updates:
    """Model-store following and fleet membership for one app instance.

    Args:
        config: The validated file config (its ``store``, ``probation``, ``fleet`` and ``service``).
        spec: The app's `AppSpec` (which models the config names).
        app: A callable returning the running app.
        store: The `ModelStore` (None when no model is a ``store:`` one and the fleet is off).
        events: The app's `Events`.
        recorder: The `EventRecorder` journaling them (the outbox delivers its rows to the fleet).
        health: ``health()`` -> "ok" | "starting" | "stalled", for the fleet's state.
        wake: Called when the fleet changed the store (the loop polls at once).
    """

    def __init__(self, config, spec, app, store, events, recorder, health, wake):
        self.followers: list[ModelUpdates] = []
        self.fleet = None
        self.outbox = None
        self._app, self._health, self._events = app, health, events
        for slot, model in spec.models(config).items():
            name = store_model_name(model.path)
            if name is not None and store is not None:
                self.followers.append(ModelUpdates(app, store, name, config.probation, model.backend, model.options,
                                                   on_event=self._publish, slot=slot))
        if config.fleet.enabled:
            from edgert.fleet.handler import StoreHandler
            from edgert.fleet.mqtt import FleetAgent
            from edgert.fleet.outbox import Outbox

            admin = spec.fleet_admin(config, config.service.state_dir) if spec.fleet_admin is not None else {}
            handler = StoreHandler(store, self._fleet_state, config.service.state_dir / "downloads",
                                   on_change=lambda _installed: wake(), **admin)
            self.fleet = FleetAgent(config.fleet, handler)
            self.outbox = Outbox(recorder.log, self.fleet)
            self._unsubscribe = [events.subscribe(self._to_fleet), recorder.on_recorded(self.outbox.wake)]
            try:
                self.fleet.start()  # connects in the background: the app runs while the broker is away
                self.outbox.start()  # what the journal holds goes out once the link is up, in order
            except BaseException:
                self.close()
                raise

    def _publish(self, kind: str, message: str, **details) -> None:
        self._events.publish(kind, message, **details)

    def _to_fleet(self, event) -> None:
        """A service event (a swap, a rollback) may change the state: republish it. The event itself goes
        through the journal and the outbox; the analytics events of an app change no state."""
        if self.fleet is not None and event.kind not in ANALYTICS_KINDS:
            self.fleet.publish_state()

    def poll(self) -> None:
        for follower in self.followers:
            follower.poll()

    def _fleet_state(self) -> dict:
        entry = next(iter(self._app().models().values()), None)  # an app may run no model
        streams = self._app().health().streams
        return {"backend": entry.model.backend if entry else None,
                "running": {"name": entry.name, "version": entry.version} if entry else None,
                "health": self._health(), "camera": next(iter(streams.values())).state if streams else "none"}

    def close(self) -> None:
        self.followers = []
        if self.fleet is not None:
            fleet, self.fleet = self.fleet, None
            for unsubscribe in self._unsubscribe:
                unsubscribe()
            self.outbox.close()
            fleet.close()
