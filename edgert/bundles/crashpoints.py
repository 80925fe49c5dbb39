"""Test hook for the store's kill -9 tests: die at a named step of an install.

`crash_point(name)` does nothing unless the environment variable ``EDGERT_STORE_CRASH_AT`` equals
`name`; then the process SIGKILLs itself there (no cleanup, no atexit, no flushing: what a power cut
or an OOM kill does). tests/store_killer.py runs installs this way, one step at a time. The names, in
install order: staged, extracted, canary_loaded (inside the canary child), canary_passed, moved,
previous_linked, current_linked, pruning, pruned.
"""
from __future__ import annotations

import os
import signal

ENV = "EDGERT_STORE_CRASH_AT"


def crash_point(name: str) -> None:
    """SIGKILL this process if ``EDGERT_STORE_CRASH_AT`` names this step."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
