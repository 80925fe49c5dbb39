"""The README's API tour runs as written, from the repository root with edgert installed (its first two
blocks; the third lists decoder calls on placeholder outputs)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
TOUR = (ROOT / "README.md").read_text().split("## API tour", 1)[1].split("\n## ", 1)[0]
BLOCKS = re.findall(r"```python\n(.*?)```", TOUR, re.S)


@pytest.mark.parametrize("index", [0, 1])
def test_api_tour_block_runs_from_the_repository_root(index):
    # -P: the installed edgert, not the checkout's own folder (which has no kernels unless built in place,
    # and then says so: tests/test_extension.py); relative paths in the tour still start at the root.
    done = subprocess.run([sys.executable, "-P", "-c", BLOCKS[index]], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
