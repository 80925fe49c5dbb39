"""The test run itself: what it could not test here is said at its end, with the command that fixes it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_a_run_without_mosquitto_says_at_the_end_what_it_skipped_and_how_to_get_it(tmp_path, pytestconfig):
    """`pytest -q` on a machine without the broker: the last lines name the tool and the apt command."""
    assert pytestconfig.pluginmanager.has_plugin("skip_summary")  # conftest loads it for every run
    (tmp_path / "test_needs_tools.py").write_text(
        "import pytest\nimport mosquitto\nmosquitto.MOSQUITTO = None\n"
        "@pytest.mark.parametrize('i', range(14))\ndef test_broker(i):\n    mosquitto.require_mosquitto()\n"
        "def test_unit():\n    pytest.skip('systemd-analyze is not installed (Debian: apt-get install systemd)')\n"
        "def test_other():\n    pytest.skip('no GPU here')\n")
    tests = Path(__file__).parent
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", "/dev/null", "-p", "skip_summary",
                           "--rootdir", str(tmp_path), str(tmp_path)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(tests)})
    tail = done.stdout.strip().splitlines()[-5:]
    assert any("14 tests skipped: mosquitto is not installed; get it with: sudo apt-get install mosquitto" in line
               for line in tail), done.stdout
    assert any("1 test skipped: systemd-analyze is not installed; get it with: sudo apt-get install systemd" in line
               for line in tail), done.stdout
    assert any("1 other skip: pytest -rs says why" in line for line in tail), done.stdout
