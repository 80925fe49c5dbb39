"""Bench reports: terminal table, progress bar, JSON/CSV files (round trip) and the PNG plot."""
from __future__ import annotations

import csv
import io
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import edgert
from edgert.bench import report
from edgert.bench.compare import check_reference
from edgert.bench.results import BackendRun, BenchResult, StageStats
from edgert.core.errors import ConfigError
from edgert.postprocess import classify
from edgert.preprocess import Preprocessor

DATA = Path(__file__).parent / "data"
DIGITS = DATA / "digits_int8.tflite"

CLASSIFICATION = {
    "task": "classification", "images": 300, "skipped": 2, "classes": ["cat", "dog", "fox"],
    "model": {"top1": 0.932, "top5": 0.99}, "reference": {"top1": 0.939, "top5": 0.995}, "delta_top1": -0.007,
    "agreement": 0.971,
    "per_class": {
        "cat": {"n": 100, "model_top1": 0.91, "model_top5": 1.0, "reference_top1": 0.93, "reference_top5": 1.0},
        "dog": {"n": 120, "model_top1": 0.95, "model_top5": 0.98, "reference_top1": 0.945, "reference_top5": 0.99},
        "fox": {"n": 80, "model_top1": 0.9375, "model_top5": 0.99, "reference_top1": 0.9375, "reference_top5": 1.0},
    },
}
EMBEDDING = {"task": "embedding", "images": 400, "skipped": 0, "identities": 40,
             "model": {"eer": 0.031, "eer_threshold": 0.4125, "auc": 0.9931, "rank1": 0.955, "rank5": 0.99},
             "reference": {"eer": 0.025, "eer_threshold": 0.43, "auc": 0.9952, "rank1": 0.965, "rank5": 0.995}}


def measure_digits(frames: int = 60, warmup: int = 5) -> tuple:
    """A real run of the digits model: per-stage times of preprocess, infer and classify."""
    with edgert.load(DIGITS, backend="cpu") as model:
        pre = Preprocessor(model.inputs[0], src_format="GRAY", src_size=(64, 64), interpolation="area")
        images = np.random.default_rng(0).integers(0, 256, (8, 64, 64), dtype=np.uint8)
        samples = {"preprocess": [], "infer": [], "decode": [], "end_to_end": []}
        for i in range(warmup + frames):
            t0 = time.perf_counter_ns()
            x = pre(images[i % 8])
            t1 = time.perf_counter_ns()
            out = model.run(x)
            t2 = time.perf_counter_ns()
            classify(out[0], model.outputs[0], top_k=3)
            t3 = time.perf_counter_ns()
            if i >= warmup:
                for k, a, b in (("preprocess", t0, t1), ("infer", t1, t2), ("decode", t2, t3), ("end_to_end", t0, t3)):
                    samples[k].append((b - a) / 1e6)
    run = BackendRun("cpu", "ok", model=str(DIGITS), model_sha256="ab" * 32,
                     stages={k: StageStats.of(v) for k, v in samples.items()},
                     fps_sync=frames / (sum(samples["end_to_end"]) / 1e3), cpu_percent=97.5, peak_rss_mb=88.25,
                     frames=frames, warmup=warmup)
    return run, samples


def synthetic_run(backend: str, scale: float) -> BackendRun:
    rng = np.random.default_rng(len(backend))
    stages = {s: StageStats.of(rng.gamma(9.0, m * scale / 9.0, 200))
              for s, m in (("preprocess", 0.34), ("infer", 3.4), ("decode", 0.09), ("end_to_end", 3.9))}
    return BackendRun(backend, "ok", model="tests/data/mobilenetv2_1.0_int8.tflite", stages=stages,
                      fps_sync=1000 / (3.9 * scale), fps_pipelined=1300 / (3.9 * scale), cpu_percent=120.0,
                      peak_rss_mb=140.0, frames=200, warmup=20)


def make_result(runs, accuracy=None, warnings=()) -> BenchResult:
    ctx = {"board": "Raspberry Pi 5 Model B Rev 1.0", "cpu_model": "4x Cortex-A76", "cpu_count": 4,
           "kernel": "6.6.51+rpt-rpi-2712", "versions": {"python": "3.11.2", "edgert": "0.1.0"},
           "model": DIGITS.name, "model_sha256": "ab" * 32,
           "cpufreq": {f"cpu{i}": {"governor": "ondemand", "cur_mhz": 2400.0, "max_mhz": 2400.0} for i in range(4)},
           "temperatures_c": {"cpu-thermal": 58.2},
           "throttled": {"raw": "0x0", "now": [], "since_boot": [], "source": "vcgencmd"}, "warnings": list(warnings)}
    settings = {"frames": 60, "warmup": 5, "source": "synthetic", "src_size": [64, 64], "src_format": "GRAY"}
    return BenchResult("2026-11-22T08:00:00+00:00", settings, ctx, list(runs), accuracy)


@pytest.fixture(scope="module")
def measured():
    return measure_digits()


def test_table_of_one_backend_has_its_numbers_and_skipped_reasons(measured):
    run, _ = measured
    skipped = BackendRun("hailo", "skipped", "no Hailo device (/dev/hailo0 missing)")
    failed = BackendRun("rknn", "failed", "DeviceError: NPU core 0 timed out")
    text = report.format_table(make_result([run, skipped, failed], warnings=['CPU governor is "ondemand"']))
    lines = text.splitlines()
    assert "Raspberry Pi 5 Model B Rev 1.0" in lines[1] and "src_size 64x64" in lines[0]
    assert 'WARNING: CPU governor is "ondemand"' in text and "cpu-thermal 58.2 C" in text
    assert "governor ondemand | 2400-2400 MHz" in text
    for stage, s in run.stages.items():
        row = next(ln for ln in lines if ln.split() and ln.split()[0] == stage)
        assert row.split()[1:] == [str(s.n), f"{s.p50:.2f}", f"{s.p90:.2f}", f"{s.p99:.2f}", f"{s.max:.2f}",
                                   f"{s.mean:.2f}", str(s.outliers)]
    assert f"fps sync {run.fps_sync:.1f}" in text and "fps pipelined -" in text
    assert "CPU 98%" in text and "peak RSS 88 MB" in text
    assert "skipped: hailo (no Hailo device (/dev/hailo0 missing))" in text
    assert "failed: rknn (DeviceError: NPU core 0 timed out)" in text
    assert "accuracy" not in text


def test_several_backends_side_by_side():
    cpu, coral = synthetic_run("cpu", 1.0), synthetic_run("coral", 0.25)
    text = report.format_table(make_result([cpu, coral, BackendRun("hailo", "skipped", "HailoRT not installed")]))
    lines = text.splitlines()
    header = next(ln for ln in lines if ln.startswith("stage"))
    assert header.split() == ["stage", "ms", "cpu", "coral"]
    infer = lines.index(next(ln for ln in lines if ln.startswith("infer")))
    ci, ki = cpu.stages["infer"], coral.stages["infer"]
    assert lines[infer].split() == ["infer", "p50", f"{ci.p50:.2f}", f"{ki.p50:.2f}"]
    assert lines[infer + 2].split() == ["p99", f"{ci.p99:.2f}", f"{ki.p99:.2f}"]
    fps = next(ln for ln in lines if ln.startswith("fps"))
    assert fps.split() == ["fps", "sync", f"{cpu.fps_sync:.1f}", f"{coral.fps_sync:.1f}"]
    assert "skipped: hailo (HailoRT not installed)" in text


def test_classification_accuracy_lines():
    text = report.format_table(make_result([synthetic_run("cpu", 1.0)], CLASSIFICATION))
    assert "model top-1 93.20% vs reference 93.90% (delta -0.70), agreement 97.1%" in text
    assert "300 images, 2 skipped" in text
    rows = {ln.split()[0]: ln.split()[1:] for ln in text.splitlines() if ln.startswith("  ") and ln.split()}
    assert rows["cat"] == ["100", "91.00%", "93.00%", "-2.00"]
    assert rows["dog"] == ["120", "95.00%", "94.50%", "+0.50"]
    assert rows["fox"] == ["80", "93.75%", "93.75%", "+0.00"]
    no_ref = {**CLASSIFICATION, "reference": None, "delta_top1": None, "agreement": None,
              "per_class": {"cat": {"n": 3, "model_top1": 2 / 3, "model_top5": 1.0, "reference_top1": None,
                                    "reference_top5": None}}}
    lines = report.accuracy_lines(no_ref)
    assert lines[1] == "  model top-1 93.20%" and any(ln.split() == ["cat", "3", "66.67%", "-", "-"] for ln in lines)


def test_embedding_accuracy_lines():
    lines = report.accuracy_lines(EMBEDDING)
    rows = {ln.split()[0]: ln.split()[1:] for ln in lines[2:]}
    assert rows["model"] == ["3.10%", "0.412", "0.9931", "95.50%", "99.00%"]
    assert rows["reference"] == ["2.50%", "0.430", "0.9952", "96.50%", "99.50%"]
    assert "identities 40" in lines[1]


def test_json_round_trip(tmp_path, measured):
    result = make_result([measured[0], BackendRun("coral", "skipped", "no Edge TPU")], CLASSIFICATION)
    path = report.write_json(result, tmp_path / "run.json")
    back = BenchResult.from_json(path.read_text())
    assert back == result
    assert back.run("cpu").stages["infer"] == measured[0].stages["infer"]
    assert [p.name for p in path.parent.iterdir()] == ["run.json"]  # no temporary file left behind


def test_csv_rows_match_the_result_and_replace_atomically(tmp_path, measured):
    run = measured[0]
    result = make_result([run, BackendRun("hailo", "skipped", "no device, not installed")])
    path = tmp_path / "run.csv"
    path.write_text("old content\n")
    report.write_csv(result, path)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == report.CSV_COLUMNS
        rows = list(reader)
    assert [(r["backend"], r["stage"]) for r in rows] == [("cpu", s) for s in run.stages] + [("hailo", "")]
    for r in rows[:-1]:
        s = run.stages[r["stage"]]
        assert float(r["p50_ms"]) == pytest.approx(s.p50, rel=1e-5)
        assert float(r["p99_ms"]) == pytest.approx(s.p99, rel=1e-5)
        assert int(r["n"]) == s.n and int(r["outliers"]) == s.outliers
        assert float(r["fps_sync"]) == pytest.approx(run.fps_sync, rel=1e-5)
        assert r["board"] == "Raspberry Pi 5 Model B Rev 1.0" and r["model"] == DIGITS.name
        assert r["src_size"] == "64x64" and r["peak_rss_mb"] == "88.25"
    assert rows[-1]["status"] == "skipped" and rows[-1]["reason"] == "no device, not installed"
    assert rows[-1]["p50_ms"] == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.csv"]
    # The CSV of a run is a reference for that board: checking the run against it finds no change.
    same = check_reference(result, path)
    assert same.ok and len(same.stages) == 4 and all(abs(d.p50_change) < 1e-3 for d in same.stages)


def test_progress_without_tty_prints_every_ten_percent():
    out = io.StringIO()
    with report.Progress("cpu", stream=out) as bar:
        for i in range(1, 38):
            bar(i, 37)
    lines = out.getvalue().splitlines()
    assert [ln.split()[1] for ln in lines] == [f"{p}%" for p in range(10, 101, 10)]
    assert lines[-1] == "cpu 100% (37/37)"
    quiet = io.StringIO()
    bar = report.Progress("x", total=5, stream=quiet, quiet=True)
    for _ in range(5):
        bar.update()
    bar.close()
    assert quiet.getvalue() == "" and bar.done == 5


class FakeTty(io.StringIO):
    def isatty(self):
        return True


def test_progress_on_a_tty_redraws_one_line():
    out = FakeTty()
    bar = report.Progress("hailo", total=4, stream=out, width=8)
    for _ in range(4):
        bar.update()
    bar.close()
    text = out.getvalue()
    assert text.startswith("\rhailo [##......]  25% 1/4") and text.endswith("\rhailo [########] 100% 4/4\n")
    assert text.count("\n") == 1


def test_plot_writes_a_png(tmp_path, measured):
    pytest.importorskip("matplotlib")
    cv2 = pytest.importorskip("cv2")
    from edgert.bench.plot import plot

    run, samples = measured
    result = make_result([run, synthetic_run("coral", 0.05), BackendRun("hailo", "skipped", "absent")],
                         CLASSIFICATION)
    path = plot(result, tmp_path / "bench.png", samples={"cpu": samples})
    img = cv2.imread(str(path))
    assert img is not None and img.shape[0] > 300 and img.shape[1] > 600
    assert img.std() > 10  # something is drawn, not a blank canvas
    assert sorted(p.name for p in path.parent.iterdir()) == ["bench.png"]
    # Percentiles only (a result read back from JSON has no raw samples), no accuracy panel.
    small = plot(make_result([run]), tmp_path / "small.png")
    assert cv2.imread(str(small)).shape[0] < img.shape[0]


def test_plot_without_matplotlib_says_what_to_install(tmp_path, monkeypatch):
    from edgert.bench import plot as plot_module

    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ConfigError, match=r"pip install 'edgert\[plot\]'"):
        plot_module.plot(make_result([synthetic_run("cpu", 1.0)]), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_plot_with_nothing_to_draw(tmp_path):
    pytest.importorskip("matplotlib")
    from edgert.bench.plot import plot

    with pytest.raises(ConfigError, match="nothing|no measured stage"):
        plot(make_result([BackendRun("hailo", "skipped", "absent")]), tmp_path / "x.png")
