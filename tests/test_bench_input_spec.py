"""`edgert bench X.rknn`: the input spec from the model card, the bundle manifest or --input-shape."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgert.bench.results import BenchResult
from edgert.cli.main import main

DATA = Path(__file__).parent / "data"
pytest.importorskip("cv2")


@pytest.fixture
def digits_rknn(tmp_path, fake_rknn):
    path = tmp_path / "digits.rknn"  # the digits classifier takes uint8 (1, 8, 8, 1)
    path.write_bytes(fake_rknn.make_rknn((DATA / "digits_int8.tflite").read_bytes()))
    return path


def bench(path, *more) -> list:
    return ["bench", str(path), "--backend", "rknn", "--frames", "5", "--warmup", "1", "--src-size", "64x48", *more]


def errors(capsys) -> list:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("edgert: ")]


def test_rknn_runs_with_input_shape_and_accuracy(digits_rknn, tmp_path):
    from test_bench_cli import digits_folder

    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(str(i) for i in range(10)))
    out = tmp_path / "r.json"
    assert main(bench(digits_rknn, "--input-shape", "1x8x8x1", "--input-dtype", "uint8", "--json", str(out),
                      "--dataset", str(digits_folder(tmp_path / "ds")), "--labels", str(labels))) == 0
    result = BenchResult.from_json(out.read_text())
    run = result.runs[0]
    assert (run.backend, run.status) == ("rknn", "ok") and run.stages["infer"].n == 5
    assert result.accuracy["images"] == 60 and result.accuracy["model"]["top1"] >= 0.8


def test_rknn_without_a_shape_says_how_to_give_it(digits_rknn, capsys):
    assert main(bench(digits_rknn)) == 2
    err = errors(capsys)
    assert len(err) == 1 and "--input-shape" in err[0] and "digits.json" in err[0] and "rknn" in err[0]


def test_rknn_shape_from_the_model_card_and_a_disagreeing_flag(digits_rknn, tmp_path, capsys):
    (tmp_path / "digits.json").write_text(json.dumps({"input_shape": [1, 8, 8, 1], "input_dtype": "uint8"}))
    out = tmp_path / "r.json"
    assert main(bench(digits_rknn, "--json", str(out))) == 0
    assert BenchResult.from_json(out.read_text()).runs[0].status == "ok"
    assert main(bench(digits_rknn, "--input-shape", "1x8x8x1")) == 0  # agrees with the card
    capsys.readouterr()
    assert main(bench(digits_rknn, "--input-shape", "1x16x16x1")) == 2
    err = errors(capsys)
    assert len(err) == 1 and "1x16x16x1" in err[0] and "model card" in err[0] and "1x8x8x1" in err[0]


def test_rknn_shape_from_the_bundle_manifest(tmp_path, fake_rknn, capsys):
    pytest.importorskip("cryptography")
    from bundle_factory import make_bundle
    from test_hardware import make_tree

    rknn = fake_rknn.make_rknn((DATA / "digits_int8.tflite").read_bytes())
    variant = {"backend": "rknn", "file": "model/digits.rknn", "arch": "rk3588"}
    root = make_tree(tmp_path / "root", rk3588=True)
    for options, code in (({"input_shape": [1, 8, 8, 1]}, 0), ({}, 2)):
        kit = make_bundle(tmp_path / f"b{code}", form="tar", variants=[{**variant, "options": options}],
                          extra_files={"model/digits.rknn": rknn})
        assert main(bench(kit.bundle, "--root", str(root))) == code
    err = errors(capsys)
    assert len(err) == 1 and "--input-shape" in err[0] and "rknn variant" in err[0]


@pytest.mark.parametrize("args, what", [
    (("--input-shape", "1x0x8x1"), "positive"),
    (("--input-shape", "big"), "big"),
    (("--input-shape", "1x99999x99999x3"), "elements"),
])
def test_bad_input_shapes_are_one_line_errors(digits_rknn, capsys, args, what):
    assert main(bench(digits_rknn, *args)) == 2
    err = errors(capsys)
    assert len(err) == 1 and what in err[0]


def test_input_shape_for_a_model_that_says_it_is_refused(capsys):
    assert main(["bench", str(DATA / "digits_int8.tflite"), "--input-shape", "1x8x8x1"]) == 2
    err = errors(capsys)
    assert len(err) == 1 and "--input-shape" in err[0]


def test_card_input_spec_is_checked(tmp_path):
    from edgert.core.errors import ModelError
    from edgert.models.cards import read_card

    model = tmp_path / "m.rknn"
    model.write_bytes(b"RKNN")
    assert read_card(model).input_spec == {}
    for bad in ([1, 0, 8], "1x8x8x1", [1, True, 8], []):
        (tmp_path / "m.json").write_text(json.dumps({"input_shape": bad}))
        with pytest.raises(ModelError, match="input_shape"):
            read_card(model)
    (tmp_path / "m.json").write_text(json.dumps({"input_shape": [1, 8, 8, 1], "input_dtype": "int8"}))
    card = read_card(model)
    assert card.input_spec == {"input_shape": [1, 8, 8, 1], "input_dtype": "int8"} and card.labels == ()
