"""Child process of the store's kill -9 tests: one install that may SIGKILL itself at a named step.

Usage: ``EDGERT_STORE_CRASH_AT=<step> python store_killer.py ROOT TRUSTED_DIR BUNDLE KEEP``. The store
kills this process at `<step>` (see `edgert.bundles.crashpoints`); without the variable, or if the
step is never reached, the install completes and ``installed <name> <version>`` is printed.
"""
from __future__ import annotations

import sys
from pathlib import Path

from edgert.bundles.store import ModelStore


def main() -> None:
    root, trusted, bundle, keep = sys.argv[1:5]
    installed = ModelStore(Path(root), Path(trusted), int(keep), min_free_mb=0).install(Path(bundle))
    print("installed", installed.name, installed.version, flush=True)


if __name__ == "__main__":
    main()
