"""The journal: a SQLite file (WAL, synchronous=FULL) of decisions and events (with their outbox state),
and JPEG snapshots."""
from edgert.journal.db import SCHEMA_VERSION
from edgert.journal.events import EventLog, EventRow
from edgert.journal.journal import (
    DecisionRecord,
    Journal,
    JournalConfig,
    JournalStats,
    open_journal,
)
from edgert.journal.snapshots import SnapshotWriter

__all__ = ["SCHEMA_VERSION", "DecisionRecord", "EventLog", "EventRow", "Journal", "JournalConfig", "JournalStats",
           "SnapshotWriter", "open_journal"]
