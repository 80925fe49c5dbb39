"""A pytest plugin (loaded by conftest.py): at the end of a run, which tests were skipped for want of a
system tool and the command that installs it, so `pytest -q` on a fresh machine says what it did not test.

A test that needs a tool skips with ``"<tool> is not installed (Debian: apt-get install <package>..."``.
"""
from __future__ import annotations

import re

MISSING_TOOL = re.compile(r"(\S+) is not installed \(Debian: apt-get install ([\w.+-]+)")


def _reason(report) -> str:
    longrepr = report.longrepr
    return longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)


def pytest_terminal_summary(terminalreporter) -> None:
    """List the missing system tools, how many tests each skipped, and the install command."""
    missing, other = {}, 0
    for report in terminalreporter.stats.get("skipped", []):
        match = MISSING_TOOL.search(_reason(report))
        if match:
            missing[match[2], match[1]] = missing.get((match[2], match[1]), 0) + 1
        else:
            other += 1
    if not missing:
        return
    terminalreporter.write_sep("=", "not tested here: system tools missing")
    for (package, tool), count in sorted(missing.items()):
        terminalreporter.write_line(f"{count} test{'s' if count > 1 else ''} skipped: {tool} is not installed; "
                                    f"get it with: sudo apt-get install {package}  (.ci/run does this as root)")
    if other:
        terminalreporter.write_line(f"{other} other skip{'s' if other > 1 else ''}: pytest -rs says why")
