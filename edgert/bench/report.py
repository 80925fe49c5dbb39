"""Reports of a bench run: the terminal table, a progress bar, and the JSON and CSV files.

Accuracy numbers in `BenchResult.accuracy` are fractions (0.932); the table prints them as percent
and their differences in percentage points.
"""
from __future__ import annotations

import csv
import io
import sys
import time
from pathlib import Path

from edgert.bench.results import STAGES, BenchResult
from edgert.core import durable
from edgert.core.errors import ConfigError

#: Columns of `write_csv`, one row per backend x stage. The first seven are the reference CSV format
#: (see benchmarks/reference/README.md), so a run's CSV can serve as a reference.
CSV_COLUMNS = ("board", "model", "backend", "stage", "p50_ms", "p99_ms", "fps_sync",
               "p90_ms", "max_ms", "mean_ms", "n", "outliers", "fps_pipelined", "cpu_percent", "peak_rss_mb",
               "status", "reason", "frames", "warmup", "model_sha256", "src_size", "src_format", "threads",
               "edgert", "created")

_STATS = (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("max", "max"), ("mean", "mean"))


def _num(v, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _pct(v) -> str:
    return "-" if v is None else f"{v * 100:.2f}%"


def _points(v) -> str:
    return "-" if v is None else f"{v * 100:+.2f}"


def _grid(rows: list, right_from: int = 1) -> list:
    """Align rows of cells into columns (left-aligned before `right_from`, right-aligned after)."""
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(str(c).ljust(w) if i < right_from else str(c).rjust(w)
                      for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in rows]


def _stage_order(runs) -> list:
    seen = {s for r in runs for s in r.stages}
    return [s for s in STAGES if s in seen] + sorted(seen - set(STAGES))


def context_lines(context: dict) -> list:
    """The device context in a few lines, then its warnings."""
    if not context:
        return []
    lines = [f"device   {context.get('board', '?')} | {context.get('cpu_model', '?')} "
             f"x{context.get('cpu_count', '?')} | kernel {context.get('kernel', '?')}"]
    freqs = context.get("cpufreq") or {}
    if freqs:
        govs = sorted({f.get("governor") or "?" for f in freqs.values()})
        cur = [f["cur_mhz"] for f in freqs.values() if f.get("cur_mhz")]
        top = [f["max_mhz"] for f in freqs.values() if f.get("max_mhz")]
        span = f"{min(cur):.0f}-{max(cur):.0f} MHz" if cur else "? MHz"
        lines.append(f"cpufreq  governor {'/'.join(govs)} | {span}" + (f" (max {max(top):.0f})" if top else ""))
    temps = context.get("temperatures_c") or {}
    thr = context.get("throttled")
    if temps or thr:
        parts = [", ".join(f"{k} {v:.1f} C" for k, v in temps.items())] if temps else []
        if thr:
            parts.append(f"throttled {thr.get('raw')}" + (f" ({', '.join(thr['now'])})" if thr.get("now") else ""))
        lines.append("thermal  " + " | ".join(parts))
    versions = context.get("versions") or {}
    if versions:
        lines.append("versions " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    if context.get("model_sha256"):
        lines.append(f"model    {context.get('model', '')} sha256 {context['model_sha256'][:16]}")
    lines += [f"WARNING: {w}" for w in context.get("warnings") or []]
    return lines


def _single_block(run) -> list:
    rows = [["stage", "n", "p50 ms", "p90 ms", "p99 ms", "max ms", "mean ms", "outliers"]]
    for stage in _stage_order([run]):
        s = run.stages[stage]
        rows.append([stage, s.n, *(_num(getattr(s, a)) for _, a in _STATS), s.outliers])
    lines = [f"[{run.backend}] {Path(run.model).name}  ({run.frames} frames, warm-up {run.warmup})"]
    lines += ["  " + ln for ln in _grid(rows)] if len(rows) > 1 else ["  (no stages measured)"]
    lines.append(f"  fps sync {_num(run.fps_sync, 1)} | fps pipelined {_num(run.fps_pipelined, 1)} | "
                 f"CPU {_num(run.cpu_percent, 0)}% | peak RSS {_num(run.peak_rss_mb, 0)} MB")
    return lines


def _side_by_side(runs) -> list:
    rows = [["stage", "ms", *(r.backend for r in runs)]]
    for stage in _stage_order(runs):
        for i, (label, attr) in enumerate((*_STATS[:4], ("outliers", "outliers"))):
            cells = []
            for r in runs:
                s = r.stages.get(stage)
                cells.append("-" if s is None else (str(s.outliers) if attr == "outliers" else _num(getattr(s, attr))))
            rows.append([stage if i == 0 else "", label, *cells])
    rows.append(["fps", "sync", *(_num(r.fps_sync, 1) for r in runs)])
    rows.append(["", "pipelined", *(_num(r.fps_pipelined, 1) for r in runs)])
    rows.append(["CPU %", "", *(_num(r.cpu_percent, 0) for r in runs)])
    rows.append(["peak RSS", "MB", *(_num(r.peak_rss_mb, 0) for r in runs)])
    rows.append(["frames", "", *(f"{r.frames}+{r.warmup}" for r in runs)])
    return _grid(rows, right_from=2)


def accuracy_lines(acc: dict | None) -> list:
    """The accuracy section: headline and per-class table (classification) or verification metrics (embedding)."""
    if not acc:
        return []
    head = f"accuracy ({acc.get('task', '?')}): {acc.get('images', 0)} images, {acc.get('skipped', 0)} skipped"
    lines = [head]
    model, ref = acc.get("model") or {}, acc.get("reference")
    if acc.get("task") == "classification":
        line = f"  model top-1 {_pct(model.get('top1'))}"
        if ref:
            delta = acc.get("delta_top1")
            if delta is None and ref.get("top1") is not None and model.get("top1") is not None:
                delta = model["top1"] - ref["top1"]
            line += f" vs reference {_pct(ref.get('top1'))} (delta {_points(delta)})"
        if acc.get("agreement") is not None:
            line += f", agreement {acc['agreement'] * 100:.1f}%"
        lines.append(line)
        top5 = f"  model top-5 {_pct(model.get('top5'))}"
        lines.append(top5 + (f" vs reference {_pct(ref.get('top5'))}" if ref else ""))
        per_class = acc.get("per_class") or {}
        if per_class:
            rows = [["class", "n", "model top1", "ref top1", "delta"]]
            for name, c in per_class.items():
                m, r = c.get("model_top1"), c.get("reference_top1")
                rows.append([name, c.get("n", 0), _pct(m), _pct(r), _points(m - r if None not in (m, r) else None)])
            lines += ["  " + ln for ln in _grid(rows)]
    elif acc.get("task") == "embedding":
        lines.append(f"  identities {acc.get('identities', '?')}")
        rows = [["", "EER", "threshold", "AUC", "Rank-1", "Rank-5"]]
        for label, m in (("model", model), ("reference", ref)):
            if m:
                rows.append([label, _pct(m.get("eer")), _num(m.get("eer_threshold"), 3), _num(m.get("auc"), 4),
                             _pct(m.get("rank1")), _pct(m.get("rank5"))])
        lines += ["  " + ln for ln in _grid(rows)]
    return lines


def format_table(result: BenchResult) -> str:
    """The whole run as text for the terminal: context and warnings, latency per backend and stage
    (side by side when several backends ran), skipped backends with their reason, accuracy."""
    s = result.settings or {}
    title = "edgert bench"
    if s:
        title += " | " + ", ".join(f"{k} {'x'.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
                                   for k, v in s.items() if v not in (None, "") and not isinstance(v, dict))
    lines = [title, *context_lines(result.context), ""]
    ok = [r for r in result.runs if r.status == "ok"]
    if len(ok) == 1:
        lines += _single_block(ok[0])
    elif ok:
        lines += _side_by_side(ok)
    else:
        lines.append("no backend ran")
    for r in result.runs:
        if r.status != "ok":
            lines.append(f"{r.status}: {r.backend} ({r.reason or 'no reason given'})")
    acc = accuracy_lines(result.accuracy)
    if acc:
        lines += ["", *acc]
    return "\n".join(lines) + "\n"


class Progress:
    """A progress bar on stderr without dependencies.

    On a TTY it redraws one line; elsewhere (logs, CI) it prints a line per 10% step, or nothing
    with ``quiet=True``. Call it as ``bar(done, total)`` (the runner's and the accuracy evaluation's
    progress callback) or count with `update`; use it as a context manager or call `close`.
    """

    def __init__(self, label: str = "", total: int = 0, stream=None, width: int = 30, quiet: bool = False):
        self.label = label
        self.total = max(int(total), 0)
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.quiet = quiet
        self.done = 0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._shown = -1
        self._drawn_at = 0.0

    def __call__(self, done: int, total: int | None = None) -> None:
        """Set the position: `done` of `total` items (`total` may be given late, or change)."""
        if total is not None:
            self.total = max(int(total), 0)
        self.done = int(done)
        self._draw()

    def update(self, n: int = 1) -> None:
        """Count `n` more items done."""
        self(self.done + n)

    def _draw(self) -> None:
        if self.quiet or not self.total:
            return
        done = min(self.done, self.total)
        pct = done * 100 // self.total
        if self._tty:
            now = time.monotonic()
            if pct != self._shown and (now - self._drawn_at > 0.05 or done == self.total):
                fill = self.width * done // self.total
                self.stream.write(f"\r{self.label} [{'#' * fill}{'.' * (self.width - fill)}] {pct:3d}% "
                                  f"{done}/{self.total}")
                self.stream.flush()
                self._shown, self._drawn_at = pct, now
        elif pct >= 10 and pct // 10 > self._shown // 10:
            self.stream.write(f"{self.label} {pct // 10 * 10}% ({done}/{self.total})\n")
            self.stream.flush()
            self._shown = pct

    def close(self) -> None:
        """End the bar's line (TTY only)."""
        if self._tty and not self.quiet and self._shown >= 0:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = -1

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_output_path(path, option: str = "output") -> Path:
    """`path` as a Path, if its folder exists (a results file never creates folders).

    Raises:
        ConfigError: the folder does not exist or is not a folder.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise ConfigError(f"{option} {path}: folder {path.parent} does not exist")
    return path


def write_json(result: BenchResult, path) -> Path:
    """Save the run as JSON (`BenchResult.from_json` reads it back), atomically."""
    return durable.write_text(path, result.to_json() + "\n")


def csv_rows(result: BenchResult) -> list:
    """The rows of `write_csv` as dicts (keys `CSV_COLUMNS`); a backend without stages gets one row."""
    ctx, s = result.context or {}, result.settings or {}
    src_size = s.get("src_size")
    if isinstance(src_size, (list, tuple)):
        src_size = "x".join(str(v) for v in src_size)
    common = {"board": ctx.get("board", ""), "src_size": src_size or "", "src_format": s.get("src_format") or "",
              "threads": s.get("threads") or "", "edgert": (ctx.get("versions") or {}).get("edgert", ""),
              "created": result.created}
    rows = []
    for r in result.runs:
        run = {"model": Path(r.model).name if r.model else ctx.get("model", ""), "backend": r.backend,
               "fps_sync": _csv(r.fps_sync), "fps_pipelined": _csv(r.fps_pipelined),
               "cpu_percent": _csv(r.cpu_percent), "peak_rss_mb": _csv(r.peak_rss_mb), "status": r.status,
               "reason": r.reason, "frames": r.frames, "warmup": r.warmup,
               "model_sha256": r.model_sha256 or ctx.get("model_sha256", "")}
        for stage in _stage_order([r]) or [""]:
            st = r.stages.get(stage)
            stats = {} if st is None else {"n": st.n, "outliers": st.outliers,
                                           **{f"{a}_ms": _csv(getattr(st, a)) for _, a in _STATS}}
            rows.append({**common, **run, "stage": stage, **stats})
    return [{c: row.get(c, "") for c in CSV_COLUMNS} for row in rows]


def _csv(v):
    return "" if v is None else float(f"{float(v):.6g}")  # 6 significant digits: sub-microsecond stages too


def write_csv(result: BenchResult, path) -> Path:
    """Save one row per backend x stage (stats, fps, CPU%, peak RSS, settings) as CSV, atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(result))
    return durable.write_text(path, buf.getvalue())
