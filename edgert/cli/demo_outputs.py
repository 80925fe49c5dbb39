"""Where `edgert demo surveillance` sends its events besides the summary: snapshots and the journal.

The one place the demo wires them. The service journals every event of the app by itself; the demo
gives the app a snapshot writer and reads back what was journaled and written.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DemoOutputs:
    """The demo's event outputs.

    Attributes:
        app_options: Options for the app's builder (``snapshot``: the writer's callable, when there is one).
    """

    app_options: dict = field(default_factory=dict)

    def close(self) -> None:
        """Nothing to release."""

    def report(self, state_dir) -> dict:
        """``{"journal": text, "snapshots": text}`` for the summary."""
        return {"journal": "not journaled (this build has no events table)",
                "snapshots": "none (this build has no snapshot writer)"}


def open_outputs(config) -> DemoOutputs:
    """The outputs for the demo's `config`."""
    return DemoOutputs()
