"""Over-the-air swaps of models on crops (secondaries, region detectors) while the surveillance app runs.

The app is driven as in tests/test_surveillance_secondary.py (replayed frames, a fixed detector); a crop
listener pauses the stage thread after a given result, so the swap lands at a known crop boundary.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from conftest import wait_until
from test_surveillance_secondary import CAMERA, TRACKING, FixedClassifier, FixedDetector, H, W, loader

from edgert.apps.surveillance.app import Surveillance
from edgert.apps.surveillance.service import APP
from edgert.core.errors import ConfigError
from edgert.core.tensor import TensorSpec
from edgert.models.config import ModelConfig
from edgert.models.loaded import LoadedModel
from edgert.pipeline.app import AppContext
from edgert.service.config import parse_config
from edgert.sources.replay import ReplaySource

STRETCH = dict(resize="stretch", mean=127.5, std=127.5, channel_order="RGB")


class Typer(FixedClassifier):
    """A vehicle type classifier with fixed scores that says when it is closed and refuses to run after."""

    def __init__(self, scores, fail=False):
        super().__init__(scores)
        self.closed, self.fail = False, fail

    def run(self, x):
        if self.closed:
            raise RuntimeError("run on a closed model")
        if self.fail:
            raise RuntimeError("device refused the model")
        return super().run(x)

    def close(self):
        self.closed = True


class Embedder(Typer):
    """An embedding model: one output of `dim` floats per crop."""

    def __init__(self, dim):
        super().__init__(np.linspace(-1, 1, dim))


def typer_entry(model, labels=("car", "bus", "motorbike"), name="typer", version="1.0.0", task="attributes"):
    return LoadedModel(model, name, version=version, labels=labels, preprocess=dict(STRETCH), task=task)


def config(secondary: str) -> str:
    return CAMERA + f"""detectors:
  people: {{path: primary, backend: cpu, labels: [person, car], conf: 0.5}}
secondaries:
  {secondary}
""" + TRACKING


VEHICLE = "vehicle: {path: typer, backend: cpu, kind: attributes, regions: [car], " \
          "schedule: {max_crops: 2, better_by: 1.02, max_runs: 100}}"


def car_frames(n=30):
    frame = np.full((H, W, 3), 90, np.uint8)
    frame[100:400, 100:540] = (30, 30, 200)
    return [frame] * n + [np.zeros((H, W, 3), np.uint8)] * 4


class Pause:
    """A crop listener that stops its stage thread after the `after`-th result until `release`."""

    def __init__(self, after: int):
        self.after, self.results = after, []
        self.reached, self.go = threading.Event(), threading.Event()

    def __call__(self, track, result):
        self.results.append(result)
        if len(self.results) == self.after:
            self.reached.set()
            assert self.go.wait(30)

    def release(self):
        self.go.set()


def run_with_swap(tmp_path, cfg, extra, name, swap, after=3):
    """Run the app over `car_frames`, calling ``swap(app)`` while the stage of `name` is paused after
    `after` results; returns (events, results seen by the listener, what swap returned or raised, app), the
    app stopped; ``app.closed_at_stop`` lists which of the models `extra` names were closed before `close`."""
    ctx = AppContext(tmp_path, 2, loader(FixedDetector([(1, (250.0, 200.0, 350.0, 280.0))], grow=4.0,
                                                       grow_calls=30), extra))
    events = []
    ctx.events.subscribe(events.append)
    pause = Pause(after)
    app = Surveillance(parse_config(cfg), ctx, sources={"cam": ReplaySource(car_frames())})
    try:
        app.on_crop_result(name, pause)
        app.start()
        assert pause.reached.wait(60)
        try:
            outcome = swap(app)
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            outcome = exc
        pause.release()
        deadline = time.monotonic() + 60
        while app.graph.running and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not app.graph.running
        app.stop()
        assert app.stats()["errors"] == 0, app.stats()
        app.models_at_stop = app.models()
        app.closed_at_stop = sorted(k for k, e in extra.items() if getattr(e.model, "closed", False))
        return events, pause.results, outcome, app
    finally:
        app.close()


def test_a_vehicle_type_classifier_is_swapped_while_the_app_runs(tmp_path):
    old, new = Typer([0.1, 2.0, 0.3]), Typer([0.1, 0.2, 0.3, 3.0])  # bus, then truck (a class more)
    entry = typer_entry(new, labels=("car", "bus", "motorbike", "truck"), version="2.0.0")
    events, results, swapped, app = run_with_swap(tmp_path, config(VEHICLE), {"typer": typer_entry(old)}, "vehicle",
                                                  lambda app: app.swap_model("vehicle", entry))
    assert swapped is entry and entry.generation == 1
    gens = [r.entry.generation for r in results]
    assert gens[:3] == [0, 0, 0] and set(gens[3:]) == {1} and len(gens) > 4, gens  # the switch at a crop boundary
    assert all(r.value["type"] == ("bus" if r.entry.generation == 0 else "truck") for r in results)
    assert app.closed_at_stop == ["typer"]  # the old one closed by its stage once its last crop was through
    assert app.models_at_stop["vehicle"] is entry and app.models_at_stop["people"].name == "primary"
    health = app.model_health("vehicle")
    softmax_top = lambda x: float(np.exp(max(x)) / np.exp(x).sum())  # noqa: E731
    assert health[0].summary()["frames"] == 3 and health[1].summary()["frames"] == len(gens) - 3
    assert health[1].summary()["mean_top1"] == pytest.approx(softmax_top([0.1, 0.2, 0.3, 3.0]), abs=1e-3)
    assert health[0].summary()["mean_top1"] == pytest.approx(softmax_top([0.1, 2.0, 0.3]), abs=1e-3)
    (attrs,) = [e for e in events if e.kind == "vehicle_attributes"]
    assert attrs.details["type"] == "truck"  # its largest view came after the swap


@pytest.mark.parametrize("replacement, message", [
    (typer_entry(Typer([0.1, 2.0])), "2 scores in its first output for its 3 classes"),
    (typer_entry(Typer([0.1, 2.0, 0.3]), labels=()), "names no classes"),
    (typer_entry(Typer([0.1, 2.0, 0.3], fail=True)), "device refused the model"),
])
def test_a_refused_classifier_leaves_the_old_one_running(tmp_path, replacement, message):
    old = Typer([0.1, 2.0, 0.3])
    events, results, refused, app = run_with_swap(tmp_path, config(VEHICLE), {"typer": typer_entry(old)}, "vehicle",
                                                  lambda app: app.swap_model("vehicle", replacement))
    assert isinstance(refused, Exception) and message in str(refused), refused
    if isinstance(refused, ConfigError):
        assert str(refused).startswith("vehicle (attributes): typer 1.0.0: ")
    assert replacement.model.closed and app.closed_at_stop == []
    assert len(results) > 3 and all(r.entry.generation == 0 and r.entry.model is old for r in results)
    assert app.models_at_stop["vehicle"].model is old and set(app.model_health("vehicle")) == {0}


EMBED = "faces_vec: {path: vec, backend: cpu, kind: embedding, regions: [car], " \
        "schedule: {max_crops: 2, better_by: 1.02, max_runs: 100}}"


def test_an_embedder_of_another_size_is_refused_and_one_of_the_same_size_taken(tmp_path):
    old, wrong, right = Embedder(64), Embedder(32), Embedder(64)
    entries = {n: typer_entry(m, labels=(), name=n, task="embed") for n, m in
               (("vec", old), ("vec32", wrong), ("vec64", right))}
    outcomes = []

    def swap(app):
        refused = r"outputs per crop \[\(1, 32\)\], the running vec 1.0.0 gives \[\(1, 64\)\]"
        with pytest.raises(ConfigError, match=refused):
            app.swap_model("faces_vec", entries["vec32"])
        outcomes.append(app.swap_model("faces_vec", ModelConfig(path="vec64")))  # loaded by the service's loader
        return outcomes[-1]

    _, results, swapped, app = run_with_swap(tmp_path, config(EMBED), entries, "faces_vec", swap)
    assert swapped is entries["vec64"] and app.closed_at_stop == ["vec", "vec32"]
    assert swapped.generation == 1  # the refused one took no generation
    assert {r.entry.model for r in results[3:]} == {right}
    assert all(r.outputs[0].shape == (1, 64) for r in results)


def test_model_slots_of_the_service_name_every_model_on_crops(tmp_path):
    cfg = parse_config(CAMERA + """detectors:
  people: {path: primary, backend: cpu, labels: [person, car]}
  faces: {path: "builtin:face_detection_short_range", backend: cpu, regions: [person]}
secondaries:
  vehicle: {path: "store:vehicle-type", backend: cpu, kind: attributes, regions: [car]}
""")
    slots = APP.models(cfg)
    assert list(slots) == ["people", "faces", "vehicle"] and slots["vehicle"].path == "store:vehicle-type"
    with pytest.raises(ConfigError, match="also a detector's"):  # so a slot name is never two models'
        parse_config(CAMERA + "detectors:\n  people: {path: primary}\nsecondaries:\n  people: "
                     "{path: x, kind: attributes, regions: [car]}\n")


def test_no_such_slot_names_them_all(tmp_path):
    ctx = AppContext(tmp_path, 2, loader(FixedDetector([]), {"typer": typer_entry(Typer([0.1, 2.0, 0.3]))}))
    with Surveillance(parse_config(config(VEHICLE)), ctx,
                      sources={"cam": ReplaySource([np.zeros((H, W, 3), np.uint8)])}) as app:
        spare = typer_entry(Typer([1.0, 0.0, 0.0]))
        with pytest.raises(ConfigError, match="no model slot 'plates' .it has people, vehicle."):
            app.swap_model("plates", spare)
        assert spare.model.closed


def test_a_changed_secondary_model_in_the_config_is_swapped_in_place(tmp_path):
    old, new = Typer([0.1, 2.0, 0.3]), Typer([3.0, 0.2, 0.3])
    extra = {"typer": typer_entry(old), "typer2": typer_entry(new, version="2.0.0")}
    ctx = AppContext(tmp_path, 2, loader(FixedDetector([]), extra))
    with Surveillance(parse_config(config(VEHICLE)), ctx,
                      sources={"cam": ReplaySource([np.zeros((H, W, 3), np.uint8)])}) as app:
        assert app.reconfigure(parse_config(config(VEHICLE.replace("path: typer,", "path: typer2,"))))
        assert app.models()["vehicle"].model is new and app.models()["vehicle"].generation == 1
        assert not app.reconfigure(parse_config(config(VEHICLE.replace("max_crops: 2", "max_crops: 1"))))


def test_a_region_detector_must_decode_as_one(tmp_path):
    """A region detector's slot takes only a model its decoder builds over (here a classifier's outputs)."""
    cfg = CAMERA + """detectors:
  people: {path: primary, backend: cpu, labels: [person, car], conf: 0.5}
  inner: {path: inner, backend: cpu, regions: [car], schedule: {max_crops: 2}}
""" + TRACKING
    inner = LoadedModel(FixedDetector([]), "inner", labels=("plate", "car"), preprocess=dict(STRETCH), task="detect")
    ctx = AppContext(tmp_path, 2, loader(FixedDetector([]), {"inner": inner}))
    with Surveillance(parse_config(cfg), ctx, sources={"cam": ReplaySource([np.zeros((H, W, 3), np.uint8)])}) as app:
        wrong = typer_entry(Typer([0.1, 2.0, 0.3]), task="detect")
        with pytest.raises(ConfigError, match="^inner .detect.: typer 1.0.0: "):
            app.swap_model("inner", wrong)
        assert wrong.model.closed and app.models()["inner"] is inner
        bad_input = LoadedModel(FixedDetector([]), "inner", version="2", labels=("plate", "car"),
                                preprocess=dict(STRETCH), task="detect")
        bad_input.model.inputs = (TensorSpec("x", (1, 320), np.uint8, None),)
        with pytest.raises(ConfigError, match=r"input \(1, 320\) cannot take crops"):
            app.swap_model("inner", bad_input)
        again = LoadedModel(FixedDetector([]), "inner", version="3", labels=("plate", "car"),
                            preprocess=dict(STRETCH), task="detect")
        assert app.swap_model("inner", again).generation == 1


def test_the_plate_text_detector_is_swapped_on_the_street_and_plates_are_still_read(tmp_path):
    """The street source with its ocr secondary (PP-OCR's DB detector): a model that is not a DB text
    detector is refused mid-run, a new copy of the detector is taken, and the plate reader decodes its maps."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("cv2")
    from test_surveillance_readers import STREET

    from edgert.models.resolve import model_loader
    from edgert.sources.street import StreetSource

    cfg = parse_config(STREET % "94C-083.72")
    load = model_loader()
    ctx = AppContext(tmp_path, 2, load)
    events = []
    ctx.events.subscribe(events.append)
    pause = Pause(3)
    with Surveillance(cfg, ctx, sources={"street": StreetSource(cfg.cameras[0].source)}) as app:
        app.on_crop_result("plates", pause)
        app.start()
        try:
            assert pause.reached.wait(120)
            typer = load(ModelConfig(path="builtin:vehicle", backend="cpu"), "attributes")
            with pytest.raises(ConfigError, match="^plates .ocr.: "):
                app.swap_model("plates", typer)
            assert app.models()["plates"].generation == 0
            swapped = app.swap_model("plates", ModelConfig(path="builtin:ch_PP-OCRv4_det", backend="onnx"))
            assert swapped.generation == 1
        finally:
            pause.release()
        deadline = time.monotonic() + 120
        while app.graph.running and time.monotonic() < deadline:
            time.sleep(0.05)
        app.stop()
        stats = app.stats()
    assert stats["errors"] == 0, stats
    after = [r for r in pause.results if r.entry.generation == 1]
    assert len(after) > 10 and all(r.entry is swapped for r in after)
    reads = [e for e in events if e.kind == "plate_read"]
    assert reads, "no plate read after the swap"
    assert len(pause.results) - len(after) == 3  # the refused model ran no crop


def test_the_service_follows_a_store_secondary_and_swaps_it_over_the_air(tmp_path):
    """The daemon running the surveillance app on the street source, an embedding secondary a ``store:``
    model: installing a new version into the store swaps the secondary in, without a restart, and it passes
    probation. (An embedding: bundle manifests declare classification, detection or embedding only, so an
    attributes or ocr secondary cannot come from the store yet.)"""
    pytest.importorskip("cryptography")
    from bundle_factory import DIGITS_INPUT, make_bundle

    from edgert.bundles.store import ModelStore
    from edgert.core.config_file import parse_text
    from edgert.service.config import file_model
    from edgert.service.daemon import Daemon
    from edgert.service.notify import Notifier

    # Crops are resampled bilinear (area is for whole frames): the digits classifier's card says area.
    template = {"task": "embedding", "input": {**DIGITS_INPUT, "interpolation": "bilinear"}}
    v1 = make_bundle(tmp_path / "bundles", name="vehicle-type", version="1.0.0", template=template)
    state = tmp_path / "state"
    store = ModelStore(state / "models", v1.trusted)
    store.install(v1.bundle)
    text = f"""\
app: surveillance
cameras:
  - id: street
    source: {{kind: street, seed: 5, camera: 1, size: [320, 180], fps: 0, frames: 100000}}
detectors:
  street: {{path: "builtin:street", backend: cpu, classes: [car, bus, motorbike]}}
secondaries:
  vehicle: {{path: "store:vehicle-type", backend: cpu, kind: embedding, regions: [car, bus, motorbike],
            schedule: {{max_crops: 2, better_by: 1.05}}}}
tracking:
  tracker: {{max_missed: 10, min_hits: 2}}
snapshots: {{enabled: false}}
service: {{state_dir: {state}, status_interval_s: 0.2}}
store: {{trusted_keys: {v1.trusted}}}
probation: {{frames: 5}}
"""
    config = parse_text(text, file_model("surveillance"))
    daemon = Daemon(None, notifier=Notifier({}), config=config)
    runner = threading.Thread(target=daemon.run)
    runner.start()
    try:
        assert wait_until(lambda: daemon.app is not None and daemon.app.crops.stages["vehicle"].crops > 2, 60)
        app = daemon.app
        assert app.models()["vehicle"].version == "1.0.0" and app.models()["vehicle"].generation == 0
        v2 = make_bundle(tmp_path / "bundles", name="vehicle-type", version="2.0.0", template=template,
                         private_key=v1.private_key, trusted=v1.trusted)
        store.install(v2.bundle)
        assert wait_until(lambda: app.models()["vehicle"].version == "2.0.0", 60)
        assert daemon.app is app and app.models()["vehicle"].generation == 1
        before = app.crops.stages["vehicle"].crops
        assert wait_until(lambda: app.crops.stages["vehicle"].crops > before + 2, 60)  # crops go on, on 2.0.0
        assert wait_until(lambda: _kinds(state).count("model_trusted") == 1, 60)
        assert app.model_health("vehicle")[1].summary()["frames"] >= 5
        errors = app.stats()["errors"]
    finally:
        daemon.request_stop()
        runner.join(30)
    kinds = _kinds(state)
    assert "model_swap" in kinds and "model_rollback" not in kinds, kinds
    assert errors == 0


def _kinds(state) -> list:
    import sqlite3

    with sqlite3.connect(state / "journal.sqlite3") as db:
        return [k for (k,) in db.execute("SELECT kind FROM events WHERE kind LIKE 'model%' ORDER BY id")]
