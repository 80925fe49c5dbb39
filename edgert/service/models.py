"""Where the service's apps get their models: the resolver, over the model store the service owns."""
from __future__ import annotations

import logging

from edgert.core.errors import EdgertError
from edgert.models.reference import store_model_name
from edgert.models.resolve import model_loader

log = logging.getLogger(__name__)


class ServiceModels:
    """`AppContext.load_model` for a service: `edgert.models.resolve` plus the store's start-up fallback.

    At start, a ``store:`` model whose current version does not load (or that the app refuses) is
    rolled back to the previous version, which is made current again, and the rollback is published
    as a ``model_rollback`` event. Later swaps do not fall back: the running model keeps running.

    Args:
        store: The `ModelStore`, or None when no model of the config is a ``store:`` one.
        events: The `edgert.pipeline.app.Events` stream of the app.
    """

    def __init__(self, store, events):
        self.store = store
        self.events = events
        self._load = model_loader(store)

    def load(self, config, task=None, check=None, at_start=False):
        """Load the model a `ModelConfig` names (see the class docstring for the fallback)."""
        try:
            return self._load(config, task, check)
        except EdgertError as exc:
            name = store_model_name(config.path)
            if not at_start or name is None or self.store is None:
                raise
            failed, previous = self.store.current(name), self.store.previous(name)
            if failed is None or previous is None:
                raise
            back = self.store.activate(name, previous.version)
            message = f"{name} {failed.version} did not start ({exc}); rolled back to {back.version}"
            log.error("%s", message)
            self.events.publish("model_rollback", message, failed=failed.version, to=back.version)
            return self._load(config, task, check)  # and if this one fails too, the service says why
