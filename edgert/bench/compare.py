"""Run-to-run comparison of bench results, and checks against the per-board reference CSVs.

`compare(old, new)` lists the latency, throughput and accuracy deltas per backend and stage and
flags regressions past a threshold; `edgert bench compare OLD.json NEW.json` exits with
`Comparison.exit_code`. `check_reference(result, csv)` does the same against a reference CSV of
benchmarks/reference/ (format in its README), found for a board with `reference_for`.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from edgert.bench.results import STAGES, BenchResult
from edgert.core.errors import ConfigError

#: Columns a reference CSV must have (a CSV written by `edgert.bench.report.write_csv` has them).
REFERENCE_COLUMNS = ("board", "model", "backend", "stage", "p50_ms", "p99_ms", "fps_sync")

#: Exit status of `edgert bench compare` / `--check-reference` when a regression is found (2 is for errors).
REGRESSION_EXIT = 3

#: Where reference CSVs are looked for: the source checkout, then the copy shipped in the package.
REFERENCE_DIRS = (Path(__file__).resolve().parents[2] / "benchmarks" / "reference",
                  Path(__file__).resolve().parents[1] / "_files" / "reference")


@dataclass(frozen=True)
class StageDelta:
    """Latency of one stage of one backend, old and new (milliseconds; None where not measured)."""

    backend: str
    stage: str
    old_p50: float | None
    new_p50: float | None
    old_p99: float | None
    new_p99: float | None

    @property
    def p50_change(self) -> float | None:
        """Relative change of p50 (0.2 = 20% slower), None without both values."""
        return _change(self.old_p50, self.new_p50)

    @property
    def p99_change(self) -> float | None:
        """Relative change of p99."""
        return _change(self.old_p99, self.new_p99)


@dataclass(frozen=True)
class ThroughputDelta:
    """Frames per second of one backend, old and new (None where not measured)."""

    backend: str
    kind: str
    old_fps: float | None
    new_fps: float | None

    @property
    def change(self) -> float | None:
        """Relative change (-0.2 = 20% fewer frames per second)."""
        return _change(self.old_fps, self.new_fps)


@dataclass
class Comparison:
    """What changed between two runs.

    Attributes:
        old_label, new_label: What was compared (file names, "reference x86-64.csv", ...).
        stages: Per backend and stage latency deltas.
        throughput: Per backend fps deltas (sync, pipelined).
        accuracy: ``{metric: (old, new)}`` for the accuracy metrics both runs have (fractions).
        regressions: One line per regression past the thresholds.
        warnings: Why the runs may not be comparable (different board, edgert version, model).
        threshold: Relative latency/fps threshold used.
    """

    old_label: str
    new_label: str
    stages: list = field(default_factory=list)
    throughput: list = field(default_factory=list)
    accuracy: dict = field(default_factory=dict)
    regressions: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    threshold: float = 0.10

    @property
    def ok(self) -> bool:
        """True when there is no regression."""
        return not self.regressions

    @property
    def exit_code(self) -> int:
        """Exit status for `edgert bench compare`: 0 without regressions, `REGRESSION_EXIT` with."""
        return 0 if self.ok else REGRESSION_EXIT

    def lines(self) -> list:
        """The comparison as printable lines: warnings, deltas, then regressions or "no regressions"."""
        out = [f"compare {self.old_label} -> {self.new_label}"]
        out += [f"WARNING: {w}" for w in self.warnings]
        if self.stages:
            rows = [["backend", "stage", "p50 old", "p50 new", "change", "p99 old", "p99 new", "change"]]
            for d in self.stages:
                rows.append([d.backend, d.stage, _ms(d.old_p50), _ms(d.new_p50), _rel(d.p50_change),
                             _ms(d.old_p99), _ms(d.new_p99), _rel(d.p99_change)])
            widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
            out += ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                    for r in rows]
        for t in self.throughput:
            out.append(f"fps {t.kind} {t.backend}: {_fps(t.old_fps)} -> {_fps(t.new_fps)} ({_rel(t.change)})")
        for metric, (old, new) in self.accuracy.items():
            out.append(f"{metric}: {old * 100:.2f}% -> {new * 100:.2f}% ({(new - old) * 100:+.2f} points)")
        out += [f"REGRESSION: {r}" for r in self.regressions]
        if self.ok:
            out.append(f"no regressions (threshold {self.threshold * 100:.0f}%)")
        return out


def _change(old, new) -> float | None:
    return None if old is None or new is None or old <= 0 else new / old - 1


def _ms(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _fps(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def _rel(v) -> str:
    return "-" if v is None else f"{v * 100:+.1f}%"


def _table(result: BenchResult) -> dict:
    """backend -> {"status", "model", "stages": {stage: (p50, p99)}, "fps": {kind: value}} of the runs."""
    out = {}
    for r in result.runs:
        out[r.backend] = {"status": r.status, "reason": r.reason, "model": Path(r.model).name if r.model else "",
                          "sha": r.model_sha256, "stages": {k: (s.p50, s.p99) for k, s in r.stages.items()},
                          "fps": {"sync": r.fps_sync, "pipelined": r.fps_pipelined}}
    return out


def _accuracy_metrics(acc: dict | None) -> dict:
    """Comparable accuracy metrics as fractions, with the direction that is better (+1 higher, -1 lower)."""
    if not acc:
        return {}
    m = acc.get("model") or {}
    keys = {"classification": (("top-1", "top1", 1), ("top-5", "top5", 1)),
            "embedding": (("Rank-1", "rank1", 1), ("Rank-5", "rank5", 1), ("EER", "eer", -1))}
    return {label: (m[key], sign) for label, key, sign in keys.get(acc.get("task"), ()) if m.get(key) is not None}


def _compare_tables(cmp: Comparison, old: dict, new: dict, min_ms: float) -> None:
    th = cmp.threshold
    for backend, o in old.items():
        n = new.get(backend)
        if o["status"] == "ok" and (n is None or n["status"] != "ok"):
            why = "not run" if n is None else f"{n['status']}: {n['reason'] or 'no reason given'}"
            cmp.regressions.append(f"{backend} ran before and now did not ({why})")
        if n is None or n["status"] != "ok" or o["status"] != "ok":
            continue
        for stage in [s for s in STAGES if s in o["stages"]] + sorted(set(o["stages"]) - set(STAGES)):
            if stage not in n["stages"]:
                continue
            (op50, op99), (np50, np99) = o["stages"][stage], n["stages"][stage]
            d = StageDelta(backend, stage, op50, np50, op99, np99)
            cmp.stages.append(d)
            if d.p50_change is not None and d.p50_change > th and np50 - op50 >= min_ms:
                cmp.regressions.append(f"{backend} {stage} p50 {op50:.3f} -> {np50:.3f} ms "
                                       f"({d.p50_change * 100:+.1f}%, threshold {th * 100:.0f}%)")
        for kind in ("sync", "pipelined"):
            t = ThroughputDelta(backend, kind, o["fps"].get(kind), n["fps"].get(kind))
            if t.old_fps is None or t.new_fps is None:
                continue
            cmp.throughput.append(t)
            if t.change is not None and t.change < -th:
                cmp.regressions.append(f"{backend} fps {kind} {t.old_fps:.1f} -> {t.new_fps:.1f} "
                                       f"({t.change * 100:+.1f}%, threshold -{th * 100:.0f}%)")


def compare(old: BenchResult, new: BenchResult, threshold: float = 0.10, top1_points: float = 0.5,
            min_ms: float = 0.05, old_label: str = "old", new_label: str = "new") -> Comparison:
    """Compare two bench runs.

    Args:
        old: The earlier (baseline) run.
        new: The run to judge.
        threshold: Relative change that counts as a regression: p50 latency up or fps down by more.
        top1_points: Accuracy drop, in percentage points, that counts as a regression (top-1 for
            classification; Rank-1 and EER for embeddings).
        min_ms: p50 increases smaller than this many ms are never regressions (timer and scheduler noise
            on sub-0.1 ms stages).
        old_label, new_label: Names for the printed lines.

    Returns:
        The `Comparison`, with regressions and the warnings about differing device contexts.
    """
    if not threshold > 0:
        raise ConfigError(f"compare: threshold must be > 0 (a fraction, 0.10 = 10%), got {threshold}")
    cmp = Comparison(old_label, new_label, threshold=threshold)
    co, cn = old.context or {}, new.context or {}
    for key, what in (("board", "boards"), ("model_sha256", "model files (sha256)")):
        if co.get(key) and cn.get(key) and co[key] != cn[key]:
            cmp.warnings.append(f"{what} differ: {co[key]} vs {cn[key]}")
    vo, vn = (co.get("versions") or {}).get("edgert"), (cn.get("versions") or {}).get("edgert")
    if vo and vn and vo != vn:
        cmp.warnings.append(f"edgert versions differ: {vo} vs {vn}")
    old_t, new_t = _table(old), _table(new)
    for backend in set(old_t) & set(new_t):
        so, sn = old_t[backend]["sha"], new_t[backend]["sha"]
        if so and sn and so != sn and not (co.get("model_sha256") and cn.get("model_sha256")):
            cmp.warnings.append(f"{backend}: model files (sha256) differ: {so[:12]} vs {sn[:12]}")
    _compare_tables(cmp, old_t, new_t, min_ms)
    ao, an = _accuracy_metrics(old.accuracy), _accuracy_metrics(new.accuracy)
    for metric in [m for m in ao if m in an]:
        (vo_, sign), (vn_, _) = ao[metric], an[metric]
        cmp.accuracy[metric] = (vo_, vn_)
        drop = (vo_ - vn_) * sign * 100
        if drop > top1_points:
            cmp.regressions.append(f"{metric} {vo_ * 100:.2f}% -> {vn_ * 100:.2f}% "
                                   f"({(vn_ - vo_) * 100:+.2f} points, threshold {top1_points:.2f} points)")
    return cmp


def load_result(path) -> BenchResult:
    """Read a bench JSON file (`--json`), with a one-line `ConfigError` when it is missing or malformed."""
    path = Path(path)
    try:
        return BenchResult.from_json(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read bench result ({e.strerror or e})") from None
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path}: not an edgert bench JSON result ({type(e).__name__}: {e})") from None


def read_reference(path) -> list:
    """Rows of a reference CSV as dicts, numbers as floats (None where empty); checks the columns."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(line for line in f if not line.lstrip().startswith("#"))
            missing = [c for c in REFERENCE_COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise ConfigError(f"{path}: reference CSV lacks column(s) {', '.join(missing)} "
                                  f"(needs {', '.join(REFERENCE_COLUMNS)})")
            rows = list(reader)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read reference CSV ({e.strerror or e})") from None
    for i, row in enumerate(rows, start=1):
        for col in ("p50_ms", "p99_ms", "fps_sync"):
            text = (row.get(col) or "").strip()
            try:
                row[col] = float(text) if text else None
            except ValueError:
                raise ConfigError(f"{path}: data row {i}: {col} is {text!r}, expected a number") from None
    return rows


def check_reference(result: BenchResult, reference_csv, threshold: float = 0.10, min_ms: float = 0.05) -> Comparison:
    """Compare a run against the rows of a reference CSV for the same model and backends.

    Rows are matched by backend and model file name. Accuracy is not part of the reference.

    Raises:
        ConfigError: The CSV is unreadable or malformed, or has no row for any model and backend of the run.
    """
    path = Path(reference_csv)
    rows = read_reference(path)
    ref: dict = {}
    boards = set()
    for r in result.runs:
        model = Path(r.model).name if r.model else (result.context or {}).get("model", "")
        # Rows of a backend that was skipped or failed in the reference run carry no numbers.
        mine = [row for row in rows if row["backend"] == r.backend and row["model"] == model
                and (row.get("status") or "ok") == "ok" and row["p50_ms"] is not None]
        if not mine:
            continue
        boards |= {row["board"] for row in mine}
        stages = {row["stage"]: (row["p50_ms"], row["p99_ms"]) for row in mine
                  if row["stage"] and row["p50_ms"] is not None}
        fps = next((row["fps_sync"] for row in mine if row["fps_sync"] is not None), None)
        ref[r.backend] = {"status": "ok", "model": model, "sha": "", "stages": stages,
                          "fps": {"sync": fps, "pipelined": None}}
    if not ref:
        have = sorted({f"{row['model']} on {row['backend']}" for row in rows})
        want = ", ".join(f"{Path(r.model).name} on {r.backend}" for r in result.runs) or "no runs"
        raise ConfigError(f"{path}: no reference for {want} (it has: {', '.join(have) or 'no rows'})")
    cmp = Comparison(f"reference {path.name}", "this run", threshold=threshold)
    board = (result.context or {}).get("board")
    if board and boards and board not in boards:
        cmp.warnings.append(f"reference measured on {', '.join(sorted(boards))}, this run on {board}")
    # Only backends this run tried are in `ref` (--backend picks a subset); one that was tried and
    # skipped or failed while the reference has numbers for it is a regression.
    _compare_tables(cmp, ref, _table(result), min_ms)
    return cmp


def board_slug(board: str) -> str:
    """File-name form of a board name: "Raspberry Pi 5 Model B Rev 1.0" -> "raspberry-pi-5-model-b-rev-1-0"."""
    return re.sub(r"[^a-z0-9]+", "-", board.lower()).strip("-")


def reference_for(board: str, directory=None) -> Path | None:
    """The reference CSV for a board: the longest file stem that starts the board's slug at a word boundary.

    "raspberry-pi-5.csv" serves "Raspberry Pi 5 Model B Rev 1.0" (not "Raspberry Pi 500"), "x86-64.csv"
    serves "x86_64".

    Args:
        board: Board name as `device_context` gives it.
        directory: Folder of reference CSVs (default: benchmarks/reference of the checkout, else the
            copy shipped in the package).
    """
    slug = board_slug(board)
    dirs = [Path(directory)] if directory is not None else [d for d in REFERENCE_DIRS if d.is_dir()]
    best = None
    for d in dirs:
        for f in d.glob("*.csv"):
            stem = board_slug(f.stem)
            if stem and (slug == stem or slug.startswith(stem + "-")) and (best is None or len(stem) > len(best[0])):
                best = (stem, f)
        if best:
            return best[1]
    return None
