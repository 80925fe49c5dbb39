"""Where `edgert demo surveillance` sends its events besides the summary: the journal and snapshots.

The one place the demo wires them. The service journals every event of its app by itself (the
events table, `edgert.service.events.EventRecorder`); the demo hands the app the service's own
`SnapshotWriter` (the config's ``snapshots:`` section), keeping it to report its stats, and afterwards
reads back what this run journaled and wrote.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from edgert.apps.surveillance.service import snapshot_writer
from edgert.journal import EventLog
from edgert.service.events import events_journal_path


class DemoOutputs:
    """The demo's event outputs for one run.

    Attributes:
        app_options: Options for the app's builder (``snapshot``: the writer's callable, or none).
    """

    def __init__(self, config):
        self.journal_path = events_journal_path(config)
        self.state_dir = Path(config.service.state_dir)
        self.first_id = _last_event_id(self.journal_path)  # a reused --keep directory has rows already
        self.writer = snapshot_writer(config, self.state_dir)
        self.app_options = {"snapshot": self.writer.write} if self.writer is not None else {}

    def close(self) -> None:
        """Nothing to release (the writer holds no open files)."""

    def report(self) -> dict:
        """``{"journal": {...}, "snapshots": {...}}`` of this run, for the summary."""
        by_kind: Counter = Counter()
        if self.journal_path.is_file():
            with EventLog(self.journal_path, read_only=True) as log:
                by_kind.update(row.kind for row in log.query(after_id=self.first_id, newest_first=False))
        journal = {"file": str(self.journal_path), "events": sum(by_kind.values()), "by_kind": dict(by_kind)}
        snapshots = {"dir": str(self.writer.directory), **self.writer.stats()} if self.writer is not None else None
        return {"journal": journal, "snapshots": snapshots}


def _last_event_id(path: Path) -> int:
    if not path.is_file():
        return 0
    with EventLog(path, read_only=True) as log:
        newest = log.query(limit=1)
    return newest[0].id if newest else 0


def open_outputs(config) -> DemoOutputs:
    """The outputs for the demo's `config`."""
    return DemoOutputs(config)
