"""The decision journal: a SQLite file (WAL, synchronous=FULL) of decisions and service events, and JPEG snapshots."""
from edgert.journal.db import SCHEMA_VERSION
from edgert.journal.journal import (
    DecisionRecord,
    Journal,
    JournalConfig,
    JournalStats,
    open_journal,
)

__all__ = ["SCHEMA_VERSION", "DecisionRecord", "Journal", "JournalConfig", "JournalStats", "open_journal"]
