"""`edgert demo`: the whole kiosk loop on a synthetic conveyor, with live decisions and a summary.

Only the camera (a rendered belt with items, `edgert.sources.conveyor`) and the GPIO pins
(gpiozero's mock factory) stand in for hardware. The model (an int8 classifier trained on that
scene, shipped in the package), the pipeline, the voting policy, the servo and relay drivers and the
SQLite journal are the ones a device runs.
"""
from __future__ import annotations

import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from importlib import resources
from pathlib import Path

from edgert.service.config import parse_config
from edgert.service.daemon import Daemon
from edgert.service.notify import Notifier

STAGE_ORDER = ("capture", "preprocess", "infer", "decode", "decide", "journal", "actuate")


def demo_config(state_dir: Path, seed: int = 2026):
    """The demo's config (``edgert/examples/demo.yaml``) with its state directory and scene seed."""
    text = (resources.files("edgert") / "examples" / "demo.yaml").read_text(encoding="utf-8")
    config = parse_config(text, "demo.yaml")
    return config.model_copy(update={
        "source": config.source.model_copy(update={"seed": seed}),
        "service": config.service.model_copy(update={"state_dir": Path(state_dir)}),
    })


class Scoreboard:
    """Counts items against the scene's ground truth and prints one line per item.

    Args:
        out: Where the lines go.
        label_of: ``label_of(item_id)``: the scene's class of an item, once known (an item is often
            decided before it is entirely in view; its verdict then waits for a later frame).
    """

    def __init__(self, out=sys.stdout, label_of=None):
        self.out = out
        self.label_of = label_of
        self.items = 0
        self.judged = 0
        self.correct = 0
        self.unmatched = 0
        self.bins: Counter = Counter()
        self.mistakes: Counter = Counter()
        self._pending: list = []
        self.start = time.monotonic()

    def __call__(self, outcome) -> None:
        d = outcome.decision
        self.items += 1
        self.bins[d.bin] += 1
        self.resolve()
        if outcome.truth is not None:
            verdict = self._judge(d, outcome.truth)
        elif outcome.truth_item is not None:
            self._pending.append((d, outcome.truth_item))
            verdict = "(checked when fully in view)"
        else:
            self.unmatched += 1
            verdict = "no item in the scene"
        valid = sum(1 for label, _ in d.votes if label == d.label)
        latency = sum(v for k, v in outcome.latency_ms.items() if k != "capture")
        print(f"{time.monotonic() - self.start:6.1f}s  item {d.item:3d}  {d.label or '-':7s} -> bin {d.bin:8s} "
              f"{d.score:4.2f}  votes {valid}/{len(d.votes)}  {latency:5.1f} ms  {verdict}", file=self.out, flush=True)

    def _judge(self, d, truth: str) -> str:
        self.judged += 1
        ok = d.label == truth and d.reason == "ok"
        self.correct += ok
        if not ok:
            self.mistakes[f"{truth} -> {d.label if d.reason == 'ok' else d.reason}"] += 1
        return "ok" if ok else f"WRONG (was {truth})"

    def resolve(self, final: bool = False) -> None:
        """Judge decided items whose class the scene has shown since (all that can be, when final)."""
        still = []
        for d, item in self._pending:
            truth = self.label_of(item) if self.label_of is not None else None
            if truth is not None:
                if self._judge(d, truth) != "ok":
                    print(f"         item {d.item:3d} was a {truth}: WRONG", file=self.out, flush=True)
            elif final:
                self.unmatched += 1
            else:
                still.append((d, item))
        self._pending = still

    @property
    def accuracy(self) -> float:
        return self.correct / self.judged if self.judged else 0.0


def _last_row_id(db: Path) -> int:
    """The journal's highest decision id so far (0 without a journal): a reused --keep directory has one."""
    if not db.is_file():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT COALESCE(MAX(id), 0) FROM decisions").fetchone()[0]


def _actuations(db: Path, after_id: int = 0) -> Counter:
    """Actuation results of the decisions after `after_id`, counted (read straight from the SQLite file)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT actuation FROM decisions WHERE id > ?", (after_id,)).fetchall()
    return Counter(r[0].split(",")[0] if r[0] else "none" for r in rows)


def summary_lines(board: Scoreboard, stats: dict, elapsed: float, journal_rows: int, actuations: Counter) -> list:
    """The summary printed after the run."""
    lines = [
        f"items: {board.items}, accuracy against the scene {board.accuracy:.1%} ({board.correct}/{board.judged})"
        + (f", {board.unmatched} without a scene item" if board.unmatched else ""),
        f"frames: {stats['frames_decided']} in {elapsed:.1f} s = {stats['frames_decided'] / elapsed:.1f} fps, "
        f"stage errors {stats['errors']}, journal errors {stats['journal_errors']}",
        "bins: " + ", ".join(f"{b} {n}" for b, n in sorted(board.bins.items())),
        f"journal: {journal_rows} decisions; actuations: "
        + ", ".join(f"{k} x{n}" for k, n in actuations.most_common()),
    ]
    if board.mistakes:
        lines.append("mistakes: " + ", ".join(f"{k} x{n}" for k, n in board.mistakes.most_common()))
    lines.append("latency per stage (ms)   p50     p99     max")
    for name in STAGE_ORDER:
        row = stats["latency_ms"].get(name)
        if row:
            label = "actuate (late by)" if name == "actuate" else name
            lines.append(f"  {label:20s} {row['p50']:7.2f} {row['p99']:7.2f} {row['max']:7.2f}")
    return lines


def run_demo(seconds: float = 20.0, seed: int = 2026, keep: str | None = None, out=sys.stdout) -> int:
    """Run the demo kiosk for `seconds`; print live decisions and a summary. Returns the exit code."""
    with tempfile.TemporaryDirectory(prefix="edgert-demo-") as tmp:
        state_dir = Path(keep) if keep else Path(tmp)
        state_dir.mkdir(parents=True, exist_ok=True)
        config = demo_config(state_dir, seed)
        earlier = _last_row_id(state_dir / config.journal.path)
        board = Scoreboard(out)
        daemon = Daemon(None, notifier=Notifier({}), listener=board, config=config)
        board.label_of = lambda item: daemon.app.truth.label_of(item)
        if threading.current_thread() is threading.main_thread():
            daemon.install_signal_handlers()  # Ctrl-C ends the run early and still prints the summary
        print(f"edgert demo: synthetic conveyor {config.source.size[0]}x{config.source.size[1]} at "
              f"{config.source.fps:g} fps, model {config.model.path} on {config.model.backend}, mock GPIO, "
              f"journal in {state_dir}; {seconds:g} s", file=out, flush=True)
        started = time.monotonic()
        code = daemon.run(duration=seconds)
        elapsed = time.monotonic() - started
        kiosk = daemon.app
        board.resolve(final=True)
        stats = kiosk.stats()
        db = state_dir / config.journal.path
        actuations = _actuations(db, earlier)
        print("-" * 72, file=out)
        for line in summary_lines(board, stats, elapsed, sum(actuations.values()), actuations):
            print(line, file=out)
        out.flush()
    return code
