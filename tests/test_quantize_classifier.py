"""The project's float classifier (benchmarks/data/conveyor_mnv2_fp32.tflite), on which issue 14's quantisation
gates are measured: it is the kiosk's conveyor classifier, and the committed figures are of this very file."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import edgert
from edgert.models.cards import read_card

ROOT = Path(__file__).resolve().parents[1]
FP32 = ROOT / "benchmarks" / "data" / "conveyor_mnv2_fp32.tflite"
FIGURES = ROOT / "benchmarks" / "quantize_classifier.json"


def test_the_float_parent_is_the_kiosks_classifier():
    from edgert.sources.conveyor import CLASSES

    card = read_card(FP32)
    shipped = json.loads((ROOT / "edgert" / "models" / "conveyor.json").read_text())
    assert card.labels == CLASSES and card.task == "classify"
    assert card.preprocess == shipped["preprocess"]  # the device's preprocessing
    with edgert.load(FP32, backend="cpu") as m:
        assert m.inputs[0].shape == tuple(shipped["input"]["shape"]) and m.inputs[0].dtype == np.float32
        assert m.outputs[0].shape == (1, len(CLASSES))


def test_the_committed_figures_are_of_this_file_and_meet_the_gates():
    figures = json.loads(FIGURES.read_text())
    parent = figures["edgert_quantization"]["parent"]
    assert parent["sha256"] == hashlib.sha256(FP32.read_bytes()).hexdigest()
    assert figures["edgert"]["float_bytes"] == FP32.stat().st_size
    assert figures["verdict"] == "PASS" and all(g["ok"] for g in figures["gates"].values())
    assert min(r["n"] for r in figures["edgert"]["per_class"].values()) >= 300  # one image <= 0.33 pt


def test_the_float_parent_classifies_held_out_conveyor_frames():
    cv2 = pytest.importorskip("cv2", reason="OpenCV is not installed: pip install opencv-python-headless")
    del cv2
    from edgert.postprocess import classify
    from edgert.preprocess import Preprocessor
    from edgert.sources.conveyor import CLASSES, ConveyorConfig, ConveyorSource

    config = ConveyorConfig(fps=0, seed=7, items=4)  # a seed neither trained nor in the validation set
    right = seen = 0
    with edgert.load(FP32, backend="cpu") as m, ConveyorSource(config) as source:
        pre = Preprocessor(m.inputs[0], "BGR", config.size, **read_card(FP32).preprocess)
        for i, frame in enumerate(source):
            truth = frame.meta["label"] if frame.meta["item"] is not None else "belt"
            if i % 3 or (frame.meta["item"] is not None and frame.meta["label"] is None):
                continue  # partial views have no certain label
            seen += 1
            right += CLASSES[classify(m.run(pre(frame.pixels))[0], m.outputs[0], top_k=1)[0][0]] == truth
    assert seen >= 20 and right / seen >= 0.9, (right, seen)
