"""The one model resolver: each reference kind (file with its card, ``builtin:``, ``store:``), the task
from the card or manifest, labels checked for classifiers only, `describe` without loading, and the
service's fall-back to the previous store version at start."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from bundle_factory import DIGITS_MODEL, LABELS, make_bundle

from edgert.bundles.store import ModelStore
from edgert.core.errors import ConfigError, EdgertError
from edgert.models.config import ModelConfig
from edgert.models.resolve import describe, model_loader, resolve
from edgert.pipeline.app import Events
from edgert.service.models import ServiceModels

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def carded(tmp_path: Path, **card) -> Path:
    """The digits model as ``sorter.tflite`` with ``sorter.json`` beside it."""
    path = tmp_path / "sorter.tflite"
    shutil.copy(DIGITS_MODEL, path)
    (tmp_path / "sorter.json").write_text(json.dumps({"name": "sorter", "version": "3", **card}))
    return path


def test_a_file_with_its_card(tmp_path):
    path = carded(tmp_path, classes=WORDS, task="classify", preprocess={"resize": "letterbox", "std": 255})
    with_card = resolve(path, "classify", preprocess={"std": 127.5})
    try:
        assert (with_card.name, with_card.version, with_card.task) == ("sorter", "3", "classify")
        assert with_card.labels == tuple(WORDS)
        assert with_card.preprocess == {"resize": "letterbox", "std": 127.5}  # the caller's over the card's
    finally:
        with_card.model.close()
    overridden = resolve(path, labels=LABELS, name="mine", version="9")  # the task from the card
    try:
        assert (overridden.name, overridden.version, overridden.labels) == ("mine", "9", tuple(LABELS))
        assert overridden.task == "classify"
    finally:
        overridden.model.close()


def test_a_model_declared_for_another_task_is_refused_before_it_is_loaded(tmp_path, monkeypatch):
    path = carded(tmp_path, task="detect")
    monkeypatch.setattr("edgert.models.resolve.load", lambda *a, **k: pytest.fail("loaded"))
    with pytest.raises(ConfigError, match="sorter 3: declared a detect model, but a classify model is needed"):
        resolve(path, "classify")


def test_labels_that_do_not_fit_the_outputs_are_refused_for_a_classifier_only(tmp_path):
    path = carded(tmp_path, classes=["a", "b", "c"], task="classify")
    with pytest.raises(ConfigError, match="sorter 3: 3 labels for a model with 10 classes"):
        resolve(path)  # the card says classify
    (tmp_path / "sorter.json").write_text(json.dumps({"name": "sorter", "classes": ["a", "b", "c"], "task": "embed"}))
    entry = resolve(path, "embed")  # not class scores: nothing to count the labels against
    try:
        assert entry.labels == ("a", "b", "c") and entry.task == "embed"
    finally:
        entry.model.close()


def test_a_card_without_labels_gets_class_numbers_for_a_classifier(tmp_path):
    path = tmp_path / "plain.tflite"
    shutil.copy(DIGITS_MODEL, path)
    entry = resolve(path, "classify")
    try:
        assert entry.labels == tuple(str(i) for i in range(10)) and entry.name == "plain"
    finally:
        entry.model.close()


def test_builtin_conveyor():
    entry = resolve("builtin:conveyor", "classify")
    try:
        assert entry.labels == ("belt", "bottle", "can", "paper", "glass")
        assert entry.task == "classify" and entry.preprocess["resize"] == "stretch"
        assert entry.model.inputs[0].shape == (1, 96, 96, 3)
    finally:
        entry.model.close()
    with pytest.raises(ConfigError, match="no built-in model 'nope'; built-in: ch_PP-OCRv4_det, ch_PP-OCRv4_rec, "
                                          "conveyor, face_detection_full_range_sparse, face_detection_short_range"):
        describe("builtin:nope")
    with pytest.raises(ConfigError, match="no built-in model 'blazeface/face_detection_short_range'"):
        describe("builtin:blazeface/face_detection_short_range")


def test_builtin_in_a_subfolder_has_its_card():
    """BlazeFace lives in models/blazeface/ with its licence and source note; its card names the corner convention."""
    info = describe("builtin:face_detection_short_range")
    assert info.path.parent.name == "blazeface" and (info.path.parent / "LICENSE").is_file()
    assert (info.path.parent / "SOURCE.md").is_file()
    assert info.task == "detect" and info.labels == ("face",)
    assert info.preprocess["pixel_centers"] == "corner" and info.decoder["kind"] == "ssd"
    assert describe("builtin:conveyor").decoder == {}


@pytest.fixture(scope="module")
def kits(tmp_path_factory):
    """Digits bundles signed by one key: 1.0.0, 2.0.0 whose classes fit no bin map, 3.0.0 (to damage once installed)."""
    folder = tmp_path_factory.mktemp("bundles")
    v1 = make_bundle(folder, version="1.0.0")
    v2 = make_bundle(folder, version="2.0.0", private_key=v1.private_key, trusted=v1.trusted,
                     template={"labels": WORDS})
    v3 = make_bundle(folder, version="3.0.0", private_key=v1.private_key, trusted=v1.trusted)
    return v1, v2, v3


@pytest.fixture
def store(tmp_path, kits):
    store = ModelStore(tmp_path / "models", kits[0].trusted, keep=5, min_free_mb=0)
    store.install(kits[0].bundle)
    return store


def test_store_reference_takes_task_labels_and_input_from_the_manifest(store):
    assert store.current("digits").manifest.task == "classification"  # the manifest's spelling
    entry = resolve("store:digits", "classify", store=store)
    try:
        assert (entry.name, entry.version, entry.task) == ("digits", "1.0.0", "classify")
        assert entry.labels == tuple(LABELS) and entry.preprocess["std"] == 255.0
    finally:
        entry.model.close()
    with pytest.raises(ConfigError, match="digits 1.0.0: declared a classify model, but a detect model"):
        resolve("store:digits", "detect", store=store)
    with pytest.raises(ConfigError, match="'store:digits' needs the model store"):
        resolve("store:digits")
    with pytest.raises(ConfigError, match="no version of 'waste' is installed"):
        resolve("store:waste", store=store)


def test_describe_reads_each_kind_of_reference_without_loading(tmp_path, store, monkeypatch):
    monkeypatch.setattr("edgert.models.resolve.load", lambda *a, **k: pytest.fail("loaded"))
    monkeypatch.setattr("edgert.backends.loader.load", lambda *a, **k: pytest.fail("loaded"))
    file_info = describe(carded(tmp_path, classes=WORDS, task="classify"))
    assert (file_info.name, file_info.task, file_info.labels) == ("sorter", "classify", tuple(WORDS))
    builtin = describe("builtin:conveyor")
    assert builtin.path.name == "conveyor_int8.tflite" and builtin.labels[0] == "belt"
    stored = describe("store:digits", store=store)
    assert (stored.version, stored.task, stored.backend) == ("1.0.0", "classify", "cpu")
    assert stored.path.is_file() and stored.path.is_relative_to(store.root)


def bins_fit(entry):
    """An app's check: its bin map names the digits "0".."9"."""
    if entry.labels != tuple(LABELS):
        raise ConfigError(f"bins name classes {entry.name} {entry.version} lacks")


@pytest.mark.parametrize("bad", [1, 2], ids=["refused by the app", "does not load"])
def test_a_store_version_that_does_not_start_falls_back_at_start_only(store, kits, bad):
    store.install(kits[bad].bundle)
    if bad == 2:  # passed its canary, then the file was damaged on disk
        store.current("digits").choose_variant("cpu")[1].write_bytes(b"not a model")
    events, seen = Events(), []
    events.subscribe(seen.append)
    models = ServiceModels(store, events)
    config = ModelConfig(path="store:digits")
    with pytest.raises(EdgertError):  # a later swap: the running model keeps running, the store is unchanged
        models.load(config, "classify", check=bins_fit)
    assert store.current("digits").version == kits[bad].manifest.version and seen == []

    entry = models.load(config, "classify", check=bins_fit, at_start=True)
    try:
        assert entry.version == "1.0.0" and store.current("digits").version == "1.0.0"
    finally:
        entry.model.close()
    assert [(e.kind, e.details) for e in seen] == [("model_rollback", {"failed": kits[bad].manifest.version,
                                                                       "to": "1.0.0"})]
    assert f"{kits[bad].manifest.version} did not start" in seen[0].message


def test_no_fallback_without_a_previous_version(store):
    events, seen = Events(), []
    events.subscribe(seen.append)
    with pytest.raises(ConfigError, match="declared a classify model"):
        ServiceModels(store, events).load(ModelConfig(path="store:digits"), "detect", at_start=True)
    assert seen == [] and store.current("digits").version == "1.0.0"


def test_model_loader_closes_a_model_the_check_refuses(tmp_path, monkeypatch):
    from edgert.core.model import Model

    closed, original = [], Model.close
    monkeypatch.setattr(Model, "close", lambda self: (closed.append(self), original(self)))
    path = carded(tmp_path, classes=WORDS, task="classify")
    with pytest.raises(ConfigError, match="bins name classes sorter 3 lacks"):
        model_loader()(ModelConfig(path=str(path)), "classify", check=bins_fit)
    assert len(closed) == 1


def test_a_store_model_is_described_by_its_manifest_alone(store):
    """Config overrides of a file model do not apply to store: (a foreign version would look "new" at every poll)."""
    from edgert.models.config import ModelConfig
    from edgert.models.resolve import resolve_config

    config = ModelConfig(path="store:digits", version="2024-05", name="waste", labels=["x"] * 3)
    entry = resolve_config(config, "classify", store)
    try:
        assert (entry.name, entry.version, entry.labels) == ("digits", "1.0.0", tuple(LABELS))
    finally:
        entry.model.close()


def test_card_pixel_centers_and_decoder_reach_the_loaded_model(tmp_path):
    model = tmp_path / "digits.tflite"
    shutil.copy(DIGITS_MODEL, model)
    card = {"task": "detect", "preprocess": {"pixel_centers": "corner", "resize": "letterbox"},
            "decoder": {"kind": "ssd", "conf": 0.4}}
    (tmp_path / "digits.json").write_text(json.dumps(card))
    entry = resolve(str(model), backend="cpu", preprocess={"interpolation": "area"})
    try:
        assert entry.preprocess == {"pixel_centers": "corner", "resize": "letterbox", "interpolation": "area"}
        assert entry.decoder == {"kind": "ssd", "conf": 0.4}
    finally:
        entry.model.close()
    (tmp_path / "digits.json").write_text(json.dumps({**card, "decoder": ["ssd"]}))
    with pytest.raises(EdgertError, match="'decoder' must be an object"):
        describe(str(model))
    assert ModelConfig(preprocess={"pixel_centers": "corner"}).preprocess.arguments() == {"pixel_centers": "corner"}
    with pytest.raises(ValueError, match="pixel_centers"):
        ModelConfig(preprocess={"pixel_centers": "centre"})
