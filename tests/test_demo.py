"""`edgert demo`: the README's main command runs the whole kiosk and reports against ground truth."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import edgert

pytest.importorskip("cv2")
# Children import the edgert these tests import (the installed one in CI, the checkout in a dev venv).
EDGERT_PATH = str(Path(edgert.__file__).resolve().parent.parent)
ROOT = Path(__file__).parent.parent


def test_demo_sorts_items_and_reports(tmp_path):
    done = subprocess.run([sys.executable, "-m", "edgert.cli", "demo", "--seconds", "8", "--keep", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": EDGERT_PATH})
    assert done.returncode == 0, done.stderr
    out = done.stdout
    decided = re.findall(r"item +\d+ +(\w+) +-> bin (\w+)", out)
    assert len(decided) >= 4  # an item about every 1.2 s
    m = re.search(r"accuracy against the scene [\d.]+% \((\d+)/(\d+)\)", out)
    correct, judged = int(m.group(1)), int(m.group(2))
    assert judged >= len(decided) - 1 and correct >= judged - 1
    m = re.search(r"frames: (\d+) in ([\d.]+) s = ([\d.]+) fps, stage errors (\d+), journal errors (\d+)", out)
    # The frame rate is reported, not asserted: it depends on the machine (benchmarks measure speed).
    assert int(m.group(1)) > 0 and float(m.group(3)) > 0 and m.group(4) == "0" and m.group(5) == "0"
    journal = re.search(r"journal: (\d+) decisions; actuations: (.*)", out)
    assert int(journal.group(1)) == len(decided)
    assert "servo 18" in journal.group(2) or "relay 23" in journal.group(2)
    for stage in ("capture", "preprocess", "infer", "decode", "decide", "actuate"):
        assert re.search(rf"^  {stage}.* +[\d.]+ +[\d.]+ +[\d.]+$", out, re.M), stage
    assert (tmp_path / "journal.sqlite3").is_file() and any((tmp_path / "snapshots").glob("*.jpg"))


def test_demo_scene_item_accuracy_over_many_items(tmp_path):
    """The demo's loop (presence, 5-frame votes, policy) on an unpaced scene: >= 95% of >= 40 items right."""
    from gpiozero.pins.mock import MockFactory, MockPWMPin
    from test_kiosk import make_kiosk

    from edgert.cli.demo import Scoreboard, demo_config

    config = demo_config(tmp_path, seed=31)
    # unpaced: frames come as fast as the loop takes them (same scene); the cooldown counts frame
    # timestamps, which are then milliseconds apart, so it goes
    config = config.model_copy(update={"source": config.source.model_copy(update={"fps": 0, "items": 45}),
                                       "policy": config.policy.model_copy(update={"cooldown_s": 0.0})})
    board = Scoreboard(out=open(os.devnull, "w"))
    pins = MockFactory(pin_class=MockPWMPin)
    kiosk = make_kiosk(config, listener=board, pin_factory=pins)
    board.label_of = kiosk.truth.label_of
    try:
        kiosk.start()
        assert kiosk.graph.join(240)
        board.resolve(final=True)
    finally:
        kiosk.close()
        pins.close()
    assert board.judged >= 40
    assert board.correct / board.judged >= 0.95, board.mistakes


def test_demo_summary_on_a_reused_keep_directory_counts_only_this_run(tmp_path):
    import sqlite3

    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", "edgert.cli", "demo", "--seconds", "4", "--keep", str(tmp_path)],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path,
                              env={**os.environ, "PYTHONPATH": EDGERT_PATH})
        assert done.returncode == 0, done.stderr
        decided = len(re.findall(r"item +\d+ +(\w+) +-> bin (\w+)", done.stdout))
        journal = int(re.search(r"journal: (\d+) decisions", done.stdout).group(1))
        runs.append((decided, journal))
    with sqlite3.connect(tmp_path / "journal.sqlite3") as conn:
        total = conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
    assert runs[0][0] >= 1 and runs[1][0] >= 1 and total == runs[0][1] + runs[1][1], (runs, total)
    assert [journal for _, journal in runs] == [decided for decided, _ in runs], runs
