"""The synthetic conveyor source and the shipped int8 conveyor classifier (real model, real LiteRT)."""
from __future__ import annotations

import itertools
import json
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

pytest.importorskip("cv2")

import edgert
from edgert.postprocess import classify
from edgert.preprocess import Preprocessor
from edgert.sources.conveyor import CLASSES, ConveyorConfig, ConveyorSource

MODELS = Path(edgert.__file__).parent / "models"
HELD_OUT_SEED = 7  # the model was trained on seeds >= 1000 (conveyor.json: train_seeds)


def frames(config: ConveyorConfig, limit: int | None = None) -> list:
    out = []
    with ConveyorSource(config) as source:
        while limit is None or len(out) < limit:
            frame = source.read()
            if frame is None:
                break
            out.append(frame)
    return out


def runs(values) -> list:
    """[(value, length), ...] of consecutive equal values."""
    out = []
    for v in values:
        if out and out[-1][0] == v:
            out[-1][1] += 1
        else:
            out.append([v, 1])
    return [tuple(r) for r in out]


@pytest.mark.parametrize("size", [(640, 480), (320, 240)])
def test_frames_have_declared_geometry_and_stamps(size):
    got = frames(ConveyorConfig(fps=0, size=size, seed=3), limit=60)
    w, h = size
    assert [f.seq for f in got] == list(range(60))
    for f in got:
        assert f.format == "BGR" and f.size == (w, h) and f.generation == 0
        assert f.pixels.shape == (h, w, 3) and f.pixels.dtype == np.uint8
        assert f.stride == f.pixels.strides[0] == w * 3
        assert set(f.meta) >= {"label", "item"}
        assert f.meta["label"] is None or f.meta["label"] in CLASSES[1:]
    assert all(b.timestamp_ns >= a.timestamp_ns for a, b in itertools.pairwise(got))
    # each frame is its own array: a consumer holding a frame never sees it overwritten
    assert len({id(f.pixels) for f in got}) == 60 and not np.shares_memory(got[0].pixels, got[1].pixels)


def test_items_enter_stay_in_view_and_leave_with_empty_belt_between():
    got = frames(ConveyorConfig(fps=0, seed=11, items=8))
    assert 8 * 20 < len(got) < 8 * 80  # the stream ends after its items
    ids = [f.meta["item"] for f in got]
    item_runs = runs(ids)
    assert item_runs[0][0] is None and item_runs[-1][0] is not None  # starts on empty belt, ends as the last item leaves
    assert [v for v, _ in item_runs if v is not None] == list(range(8))  # each item in one stretch, in order
    for (a, _), (b, n) in itertools.pairwise(item_runs):
        if a is not None and b is not None:
            pytest.fail(f"item {b} entered straight after item {a} with no empty belt between")
    for item in range(8):
        labels = [f.meta["label"] for f in got if f.meta["item"] == item]
        label_runs = runs(labels)
        # enters through the edge (not yet labelled), fully in view for several frames, leaves through the edge
        assert [v is None for v, _ in label_runs] == [True, False, True], label_runs
        assert label_runs[1][0] in CLASSES[1:] and label_runs[1][1] >= 6
        visible = [f.meta["visible"] for f in got if f.meta["item"] == item]
        assert visible[0] < 1 and visible[-1] < 1 and max(visible) == 1
    empty = [f for f in got if f.meta["item"] is None]
    assert all(f.meta["label"] is None for f in empty) and len(empty) >= 8 * 3


def test_an_item_changes_the_picture_far_more_than_the_moving_belt():
    """What a frame-difference presence detector relies on: the scrolling belt barely changes pixels."""
    got = frames(ConveyorConfig(fps=0, seed=5), limit=200)
    changed = lambda a, b: (np.abs(a.pixels.astype(np.int16) - b.pixels).max(-1) > 40).mean()
    belt = [changed(a, b) for a, b in itertools.pairwise(got) if a.meta["item"] is None and b.meta["item"] is None]
    moving = [changed(a, b) for a, b in itertools.pairwise(got) if b.meta["label"] is not None]
    assert len(belt) > 20 and len(moving) > 20
    assert max(belt) < 0.002 and min(moving) > 10 * max(belt)


def test_same_seed_same_frames_other_seed_other_frames():
    a = frames(ConveyorConfig(fps=0, seed=21), limit=80)
    b = frames(ConveyorConfig(fps=0, seed=21), limit=80)
    c = frames(ConveyorConfig(fps=0, seed=22), limit=80)
    assert all(np.array_equal(x.pixels, y.pixels) and x.meta == y.meta for x, y in zip(a, b))
    assert not any(np.array_equal(x.pixels, z.pixels) for x, z in zip(a, c))


def test_classes_limit_what_is_drawn():
    got = frames(ConveyorConfig(fps=0, seed=2, classes=("can", "glass"), items=10))
    assert {f.meta["label"] for f in got} - {None} <= {"can", "glass"}
    assert {f.meta["label"] for f in got} >= {"can", "glass"}


@pytest.mark.parametrize("bad", [{"classes": ("banana",)}, {"classes": ()}, {"classes": ("can", "can")},
                                 {"size": (32, 32)}, {"fps": -1}, {"item_gap_s": 0}, {"items": 0},
                                 {"colour": "red"}, {"kind": "camera"}])
def test_config_refuses_bad_values(bad):
    with pytest.raises(ValidationError):
        ConveyorConfig(**bad)


def test_stop_wakes_a_paced_read():
    source = ConveyorSource(ConveyorConfig(fps=0.2, seed=1))  # 5 s between frames
    assert source.read() is not None
    result = []
    reader = threading.Thread(target=lambda: result.append(source.read()))
    reader.start()
    source.stop()
    reader.join(10)
    assert not reader.is_alive() and result == [None]
    source.close()


# -- the shipped classifier ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def manifest():
    return json.loads((MODELS / "conveyor.json").read_text())


@pytest.fixture(scope="module")
def held_out_run(manifest):
    """Every frame of 45 items on a seed never used in training, through load -> Preprocessor -> classify."""
    model = edgert.load(str(MODELS / manifest["model"]), backend="cpu")
    config = ConveyorConfig(fps=0, seed=HELD_OUT_SEED, items=45)
    pre = Preprocessor(model.inputs[0], "BGR", config.size, **manifest["preprocess"])
    rows = []
    with ConveyorSource(config) as source:
        for frame in source:
            raw = model.run(pre(frame.pixels))[0]
            rows.append((frame.meta, classify(raw, model.outputs[0], top_k=1)[0][0], raw.copy()))
    model.close()
    return rows


def test_manifest_describes_the_model(manifest):
    model = edgert.load(str(MODELS / manifest["model"]), backend="cpu")
    try:
        spec_in, spec_out = model.inputs[0], model.outputs[0]
        assert manifest["classes"] == list(CLASSES)
        assert tuple(spec_in.shape) == tuple(manifest["input"]["shape"]) and spec_in.dtype == np.int8
        assert spec_out.dtype == np.int8 and int(np.prod(spec_out.shape)) == len(CLASSES)
    finally:
        model.close()
    assert (MODELS / manifest["model"]).stat().st_size < 500_000
    assert all(s >= 1000 for s in manifest["train_seeds"]) and HELD_OUT_SEED < 1000


def test_int8_model_frame_accuracy_on_a_held_out_seed(held_out_run):
    full = [(meta["label"], CLASSES[top]) for meta, top, _ in held_out_run if meta["label"] is not None]
    assert len(full) >= 45 * 6
    accuracy = np.mean([truth == guess for truth, guess in full])
    assert accuracy >= 0.95, f"frame accuracy {accuracy:.3f}"
    empty = [CLASSES[top] for meta, top, _ in held_out_run if meta["item"] is None]
    assert np.mean([g == "belt" for g in empty]) >= 0.95
    # outputs depend on the input: every class is predicted and the raw outputs vary
    assert {CLASSES[top] for _, top, _ in held_out_run} == set(CLASSES)
    assert len({raw.tobytes() for _, _, raw in held_out_run}) > 50


def test_int8_model_item_accuracy_by_majority_vote(held_out_run):
    votes, truth = {}, {}
    for meta, top, _ in held_out_run:
        if meta["label"] is not None:
            votes.setdefault(meta["item"], []).append(CLASSES[top])
            truth[meta["item"]] = meta["label"]
    assert len(votes) >= 40
    correct = [Counter(v).most_common(1)[0][0] == truth[item] for item, v in votes.items()]
    assert np.mean(correct) >= 0.95, f"item accuracy {np.mean(correct):.3f} over {len(correct)} items"
    assert set(truth.values()) == set(CLASSES[1:])
