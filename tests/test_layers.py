"""The layer contracts of pyproject.toml hold (DESIGN.md "Layout"): import-linter, on the edgert being tested."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_layer_contracts_are_kept():
    beside = Path(sys.executable).parent / "lint-imports"  # the venv's, even when its bin/ is not on PATH
    lint = str(beside) if beside.is_file() else shutil.which("lint-imports")
    if lint is None:
        pytest.skip("import-linter is not installed (pip install '.[test]')")
    done = subprocess.run([lint, "--no-cache", "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]
    assert "0 broken" in done.stdout
