"""`edgert bench` end to end: table, files, accuracy against a reference, comparisons and their exit codes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgert.bench.results import BenchResult
from edgert.cli.main import main

cv2 = pytest.importorskip("cv2")
DATA = Path(__file__).parent / "data"


def digits_folder(root: Path, per_class: int = 6) -> Path:
    d = np.load(DATA / "digits_test.npz")
    for label in range(10):
        folder = root / str(label)
        folder.mkdir(parents=True)
        for i, img in enumerate(d["images"][d["labels"] == label][:per_class]):
            cv2.imwrite(str(folder / f"{i}.png"), cv2.resize(img, (32, 32), interpolation=cv2.INTER_NEAREST))
    (root / "3" / "broken.png").write_bytes(b"not a png")
    return root


def test_bench_all_backends_with_accuracy_and_files(tmp_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(str(i) for i in range(10)))
    args = ["bench", str(DATA / "digits_int8.tflite"), "--all", "--frames", "30", "--warmup", "3",
            "--src-size", "64x48", "--pipelined", "--reference", str(DATA / "digits_fp32.tflite"),
            "--dataset", str(digits_folder(tmp_path / "ds")), "--labels", str(labels),
            "--json", str(tmp_path / "r.json"), "--csv", str(tmp_path / "r.csv"), "--plot", str(tmp_path / "r.png")]
    assert main(args) == 0
    out = capsys.readouterr().out
    result = BenchResult.from_json((tmp_path / "r.json").read_text())
    runs = {r.backend: r for r in result.runs}
    assert runs["cpu"].status == "ok" and runs["cpu"].stages["infer"].n == 30 and runs["cpu"].fps_pipelined > 0
    assert all(runs[k].status == "skipped" and runs[k].reason for k in ("coral", "hailo", "rknn"))
    acc = result.accuracy
    assert acc["images"] == 60 and acc["skipped"] == 1 and 0.8 <= acc["model"]["top1"] <= 1.0
    assert acc["reference"] is not None and acc["agreement"] > 0.8
    assert "skipped" in out and "top-1" in out and "cpu" in out
    assert (tmp_path / "r.csv").read_text().count("\n") > 4 and cv2.imread(str(tmp_path / "r.png")) is not None
    assert result.context["board"] and result.context["versions"]["edgert"]


def test_compare_exits_3_on_a_regression(tmp_path, capsys):
    assert main(["bench", str(DATA / "mobilenetv2_int8.tflite"), "--frames", "20", "--warmup", "2",
                 "--src-size", "320x240", "--json", str(tmp_path / "old.json")]) == 0
    data = json.loads((tmp_path / "old.json").read_text())
    assert main(["bench", "compare", str(tmp_path / "old.json"), str(tmp_path / "old.json")]) == 0
    for stage in data["runs"][0]["stages"].values():  # the "new" run is 50% slower everywhere
        for key in ("p50", "p90", "p99", "max", "mean"):
            stage[key] *= 1.5
    data["runs"][0]["fps_sync"] /= 1.5
    (tmp_path / "new.json").write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["bench", "compare", str(tmp_path / "old.json"), str(tmp_path / "new.json")]) == 3
    assert "infer" in capsys.readouterr().out
    assert main(["bench", "compare", str(tmp_path / "old.json")]) == 2
    assert main(["bench", "compare", str(tmp_path / "old.json"), str(tmp_path / "missing.json")]) == 2


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    assert main(["bench", str(DATA / "digits_int8.tflite"), "--frames", "2", "--dataset", str(empty)]) == 2
    assert main(["bench", str(DATA / "digits_int8.tflite"), "--src-size", "big"]) == 2
    assert main(["bench", str(tmp_path / "nope.tflite")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("edgert: ")]
    assert len(err) == 3 and "empty" in err[0] and "big" in err[1] and "nope.tflite" in err[2]


def test_bench_a_bundle_runs_each_variant_on_its_backend(tmp_path, capsys):
    pytest.importorskip("cryptography")
    from bundle_factory import make_bundle

    hef = b"HEF-not-really"  # a hailo variant this machine cannot run: listed as skipped, with the reason
    kit = make_bundle(tmp_path, form="tar.gz", variants=[{"backend": "cpu", "file": "model/digits_int8.tflite"},
                                                         {"backend": "hailo", "file": "model/digits.hef",
                                                          "arch": "hailo8l"}],
                      extra_files={"model/digits.hef": hef})
    out_json = tmp_path / "b.json"
    assert main(["bench", str(kit.bundle), "--all", "--frames", "10", "--warmup", "1", "--src-size", "64x48",
                 "--json", str(out_json), "--dataset", str(digits_folder(tmp_path / "ds", 3))]) == 0
    result = BenchResult.from_json(out_json.read_text())
    runs = {r.backend: r for r in result.runs}
    assert runs["cpu"].status == "ok" and runs["cpu"].model.endswith("digits_int8.tflite")
    assert runs["hailo"].status == "skipped" and runs["coral"].reason == "the bundle has no coral variant"
    assert result.accuracy["model"]["top1"] > 0.8  # the bundle's labels and preprocessing were used


def test_sizes_and_counts_out_of_range_are_one_line_errors(capsys):
    model = str(DATA / "digits_int8.tflite")
    cases = [(["--src-size", "99999x99999"], "99999x99999"), (["--src-size", "8193x2"], "8193x2"),
             (["--src-size", "8000x8000"], "8000x8000"), (["--src-size", "9" * 5000 + "x2"], "--src-size"),
             (["--threads", "0"], "--threads"), (["--threads", "1000"], "--threads"),
             (["--frames", "10000000000"], "--frames"), (["--warmup", "-1"], "--warmup")]
    for extra, named in cases:
        assert main(["bench", model, "--frames", "2", "--warmup", "0", *extra]) == 2, extra
        err = capsys.readouterr().err.strip()
        assert err.startswith("edgert: ConfigError: ") and "\n" not in err and named in err, (extra, err)


def test_results_files_are_written_only_into_existing_folders(tmp_path, capsys):
    model = str(DATA / "digits_int8.tflite")
    for option in ("--json", "--csv", "--plot"):
        target = tmp_path / "nonexistent" / "dir" / "x.out"
        assert main(["bench", model, "--frames", "2", "--warmup", "0", "--src-size", "64x48",
                     option, str(target)]) == 2, option
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and f"{option} {target}" in err and "does not exist" in err, err
        assert not (tmp_path / "nonexistent").exists()
    assert main(["bench", model, "--frames", "2", "--warmup", "0", "--src-size", "64x48",
                 "--json", str(tmp_path / "x.json")]) == 0
    assert BenchResult.from_json((tmp_path / "x.json").read_text()).runs


def test_a_model_file_that_cannot_load_is_bad_input_exit_2(tmp_path, capsys):
    """It passes the header checks but LiteRT refuses it: one line, exit 2, as for a truncated file."""
    data = bytearray((DATA / "digits_int8.tflite").read_bytes())
    data[100:2000] = b"\xff" * 1900
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(bytes(data))
    for extra in ([], ["--all"]):
        assert main(["bench", str(corrupt), "--frames", "2", "--warmup", "0", "--src-size", "64x48", *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("edgert: ModelError: ") and "\n" not in err and "corrupt.tflite" in err, err


def test_a_bad_model_card_is_bad_input_exit_2(tmp_path, capsys):
    model = tmp_path / "digits.tflite"
    model.write_bytes((DATA / "digits_int8.tflite").read_bytes())
    (tmp_path / "digits.json").write_text("{not json")
    assert main(["bench", str(model), "--frames", "2", "--warmup", "0", "--src-size", "64x48"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgert: ModelError: ") and "\n" not in err and "digits.json" in err, err


@pytest.mark.parametrize("argv", [["demo", "--seconds", "-1"], ["demo", "--seconds", "nan"],
                                  ["demo", "--seconds", "inf"], ["run", "--seconds", "0"],
                                  ["bench", "compare", "a.json", "b.json", "--threshold", "nan"],
                                  ["bench", "compare", "a.json", "b.json", "--threshold", "-0.1"]])
def test_durations_and_thresholds_out_of_range_are_one_line_errors(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgert: ConfigError: --") and "\n" not in err, err
