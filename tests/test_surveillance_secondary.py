"""Models on crops of tracks in the surveillance app: BlazeFace inside person tracks on a real face, vehicle
attributes once per track, the on_crop_result hook, and the config's checks."""
from __future__ import annotations

import time
from concurrent.futures import Future

import numpy as np
import pytest

from edgert.apps.surveillance.app import Surveillance
from edgert.apps.surveillance.attributes import COLOURS, colour_names, dominant_colour
from edgert.apps.surveillance.config import check_class_names
from edgert.core.errors import ConfigError
from edgert.core.tensor import Quantization, TensorSpec
from edgert.models.loaded import LoadedModel
from edgert.models.resolve import model_loader
from edgert.pipeline.app import AppContext
from edgert.service.config import parse_config
from edgert.sources.replay import ReplaySource

PREPROCESS = dict(resize="letterbox", mean=0.0, std=255.0, channel_order="RGB", pad_value=0.0)
W, H = 640, 480


class FixedDetector:
    """A detect model (YOLOv8 layout, 320x320 letterboxed input) that finds the given frame boxes in every frame
    that is not all black.

    Each box may grow by ``grow`` pixels per call on every side (a track coming closer) for its first
    ``grow_calls`` calls.
    """

    backend = "test"
    asynchronous = False

    def __init__(self, boxes, grow: float = 0.0, grow_calls: int = 10):
        self.inputs = (TensorSpec("x", (1, 320, 320, 3), np.uint8, Quantization(1 / 255, 0), "NHWC"),)
        self.outputs = (TensorSpec("y", (1, 6, 2100), np.float32, None),)
        self.boxes, self.grow, self.grow_calls, self.calls = boxes, grow, grow_calls, 0

    def run(self, x):
        out = np.zeros((1, 6, 2100), np.float32)
        if not x.any():
            return [out]
        scale, pad_y = 320 / W, (320 - H * 320 / W) / 2
        g = self.grow * min(self.calls, self.grow_calls)
        for k, (cls, (x0, y0, x1, y1)) in enumerate(self.boxes):
            x0, y0, x1, y1 = max(0, x0 - g), max(0, y0 - g), min(W, x1 + g), min(H, y1 + g)
            out[0, :4, k] = ((x0 + x1) / 2 * scale / 320, ((y0 + y1) / 2 * scale + pad_y) / 320,
                             (x1 - x0) * scale / 320, (y1 - y0) * scale / 320)
            out[0, 4 + cls, k] = 0.95
        self.calls += 1
        return [out]

    def submit(self, x):
        future = Future()
        future.set_result(self.run(x))
        return future

    def close(self):
        pass


class FixedClassifier:
    """An attributes model whose scores are fixed (softmax inputs), 64x64 int8 input."""

    backend = "test"
    asynchronous = False

    def __init__(self, scores):
        self.inputs = (TensorSpec("x", (1, 64, 64, 3), np.int8, Quantization(1 / 127.5, 0), "NHWC"),)
        self.outputs = (TensorSpec("y", (1, len(scores)), np.float32, None),)
        self.scores, self.crops = np.asarray([scores], np.float32), 0

    def run(self, x):
        self.crops += 1
        return [self.scores]

    def close(self):
        pass


def loader(primary, extra=None):
    """A load_model: builtin models from the real resolver, the primary detector and `extra` by path."""
    real = model_loader()

    def load(model_config, task=None, check=None, at_start=False):
        if str(model_config.path).startswith("builtin:"):
            entry = real(model_config, task, check)
            return entry
        if model_config.path == "primary":
            entry = LoadedModel(primary, "primary", labels=("person", "car"), preprocess=dict(PREPROCESS),
                                task="detect")
        else:
            entry = extra[model_config.path]
        if check is not None:
            check(entry)
        return entry
    return load


def run(cfg, frames, load, tmp_path, listen=None):
    ctx = AppContext(tmp_path, 2, load)
    events = []
    ctx.events.subscribe(events.append)
    with Surveillance(parse_config(cfg), ctx, sources={"cam": ReplaySource(frames)}) as app:
        for name, fn in (listen or {}).items():
            app.on_crop_result(name, fn)
        app.start()
        deadline = time.monotonic() + 120
        while app.graph.running and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not app.graph.running
        app.stop()
        stats = app.stats()
    assert stats["errors"] == 0, stats
    return events, stats


CAMERA = "app: surveillance\ncameras:\n  - id: cam\n    source: {kind: folder, path: /nonexistent}\n"
TRACKING = "tracking:\n  tracker: {max_missed: 2, min_hits: 2}\n"


def face_frame(seed: int = 0):
    """A 640x480 frame of noise with the astronaut's face (tests/face_photos.py) at x 240..390, y 100..250."""
    import cv2
    from face_photos import _FACE, make_frame

    rng = np.random.default_rng(seed)
    frame = rng.integers(60, 120, (H, W, 3), np.uint8)
    face = cv2.resize(make_frame(_FACE), (150, 150), interpolation=cv2.INTER_AREA)[:, :, ::-1]  # RGB -> BGR
    frame[100:250, 240:390] = face
    return frame


def test_blazeface_inside_a_person_track_finds_the_face_once(tmp_path):
    pytest.importorskip("skimage")
    cfg = CAMERA + """detectors:
  people: {path: primary, backend: cpu, labels: [person, car], conf: 0.5}
  faces: {path: "builtin:face_detection_short_range", backend: cpu, regions: [person],
          schedule: {max_crops: 4, max_runs: 3}}
""" + TRACKING
    frames = [face_frame(i) for i in range(10)] + [np.zeros((H, W, 3), np.uint8)] * 4
    person = (0, (200.0, 60.0, 440.0, 460.0))
    events, stats = run(cfg, frames, loader(FixedDetector([person])), tmp_path)
    faces = [e for e in events if e.kind == "face_detected"]
    start = next(e for e in events if e.kind == "track_start")
    assert len(faces) == 1, [e.details for e in faces]  # the person's box never grew: one crop only
    d = faces[0].details
    assert d["track_id"] == start.details["track_id"] and d["track_cls"] == "person" and d["cls"] == "face"
    x0, y0, x1, y1 = d["box"]
    assert 230 <= x0 < x1 <= 400 and 90 <= y0 < y1 <= 260, d["box"]  # on the pasted face, in frame pixels
    eyes = d["keypoints"]["right_eye"], d["keypoints"]["left_eye"]
    assert eyes[0][0] < eyes[1][0] and all(x0 < x < x1 and y0 < y < d["keypoints"]["mouth_centre"][1] for x, y in eyes)
    assert d["score"] >= 0.5
    assert stats["secondaries"]["faces"]["crops"] == 1 and stats["secondaries"]["faces"]["backend"] == "cpu"


def test_vehicle_attributes_once_per_track_from_its_largest_view(tmp_path):
    cfg = CAMERA + """detectors:
  people: {path: primary, backend: cpu, labels: [person, car], conf: 0.5}
secondaries:
  vehicle: {path: typer, backend: cpu, kind: attributes, regions: [car], schedule: {max_crops: 2, better_by: 1.2}}
""" + TRACKING
    frame = np.full((H, W, 3), 90, np.uint8)
    frame[150:330, 150:450] = (30, 30, 200)  # a red car body (BGR), wider than any box the track has
    typer = FixedClassifier([0.1, 2.0, 0.3])
    typer_entry = LoadedModel(typer, "typer", labels=("car", "bus", "motorbike"), preprocess=dict(
        resize="stretch", mean=127.5, std=127.5, channel_order="RGB"), task="attributes")
    detector = FixedDetector([(1, (250.0, 200.0, 350.0, 280.0))], grow=4.0)
    seen = []
    events, stats = run(cfg, [frame] * 20 + [np.zeros((H, W, 3), np.uint8)] * 4,
                        loader(detector, {"typer": typer_entry}), tmp_path,
                        listen={"vehicle": lambda track, result: seen.append((track.track_id, result.quality))})
    attrs = [e for e in events if e.kind == "vehicle_attributes"]
    assert len(attrs) == 1
    d = attrs[0].details
    assert d["type"] == "bus" and d["colour"] == "red" and d["colour_share"] > 0.9 and d["cls"] == "car"
    assert 1 < len(seen) == typer.crops  # cropped again as the box grew by 1.2x, each result to the listener
    assert (d["box"][2] - d["box"][0]) * (d["box"][3] - d["box"][1]) == pytest.approx(max(q for _, q in seen), rel=0.01)
    kinds = [e.kind for e in events]
    assert kinds.index("vehicle_attributes") < kinds.index("track_end")


def test_a_listener_that_settles_the_track_stops_its_crops(tmp_path):
    cfg = CAMERA + """detectors:
  people: {path: primary, backend: cpu, labels: [person, car], conf: 0.5}
secondaries:
  plates: {path: reader, backend: cpu, kind: ocr, regions: [car], schedule: {max_crops: 2, better_by: 1.05}}
""" + TRACKING
    reader = FixedClassifier([1.0, 0.0])
    entry = LoadedModel(reader, "reader", labels=(), preprocess=dict(resize="stretch", mean=127.5, std=127.5,
                                                                     channel_order="RGB"), task="text_detect")
    calls = []

    def settle(track, result):
        calls.append(result.reason)
        assert result.value is None and len(result.outputs) == 1 and result.frame is not None
        return len(calls) == 2

    frame = np.full((H, W, 3), 90, np.uint8)
    run(cfg, [frame] * 16 + [np.zeros((H, W, 3), np.uint8)] * 4,
        loader(FixedDetector([(1, (250.0, 200.0, 350.0, 280.0))], grow=4.0), {"reader": entry}), tmp_path,
        listen={"plates": settle})
    assert calls == ["new", "better"] and reader.crops == 2


def test_a_changed_model_on_crops_needs_a_rebuild(tmp_path):
    cfg = CAMERA + """detectors:
  people: {path: primary, backend: cpu, labels: [person, car], conf: 0.5}
secondaries:
  plates: {path: reader, backend: cpu, kind: ocr, regions: [car]}
""" + TRACKING
    entry = LoadedModel(FixedClassifier([1.0]), "reader", preprocess=dict(resize="stretch"), task="text_detect")
    load = loader(FixedDetector([]), {"reader": entry})
    with Surveillance(parse_config(cfg), AppContext(tmp_path, 2, load),
                      sources={"cam": ReplaySource([np.zeros((H, W, 3), np.uint8)])}) as app:
        assert app.reconfigure(parse_config(cfg))  # nothing changed
        changed = cfg.replace("regions: [car]", "regions: [car], schedule: {max_crops: 1}")
        assert not app.reconfigure(parse_config(changed))
        with pytest.raises(ConfigError, match="no model on crops named 'faces'"):
            app.on_crop_result("faces", print)


def test_colour_rule_names():
    px = np.array([[[10, 10, 10], [240, 240, 240], [128, 128, 128], [30, 30, 220], [30, 140, 230], [40, 220, 220],
                    [40, 180, 40], [200, 60, 20], [180, 40, 160]]], np.uint8)
    assert [COLOURS[i] for i in colour_names(px)[0]] == list(COLOURS)
    frame = np.zeros((100, 100, 3), np.uint8)
    frame[:, :] = (200, 60, 20)
    assert dominant_colour(frame, (10, 10, 90, 90)) == ("blue", 1.0)
    with pytest.raises(ConfigError, match="no pixel"):
        dominant_colour(frame, (200, 200, 300, 300))


@pytest.mark.parametrize("body, message", [
    ("detectors:\n  p: {path: primary, regions: [person]}\n", "one must see whole frames"),
    ("detectors:\n  p: {path: primary, schedule: {max_crops: 2}}\n", "only for a detector that runs inside"),
    ("detectors:\n  p: {path: primary}\nsecondaries:\n  p: {path: x, kind: ocr, regions: [car]}\n", "also a detector"),
    ("detectors:\n  p: {path: primary}\nsecondaries:\n  s: {path: x, kind: ocr, regions: [car], cameras: [nope]}\n",
     "unknown camera 'nope'"),
    ("detectors:\n  p: {path: primary}\nsecondaries:\n  s: {path: x, kind: colour, regions: [car]}\n", "kind"),
    ("detectors:\n  p: {path: primary}\nsecondaries:\n  s: {path: x, kind: ocr, regions: [car],"
     " schedule: {max_crops: null}}\n", "per-frame budget"),
    ("detectors:\n  p: {path: primary}\nsecondaries:\n  s: {path: x, kind: ocr, regions: []}\n", "regions"),
])
def test_config_refuses_bad_secondaries(body, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(CAMERA + body)


def test_region_classes_must_be_tracked():
    cfg = parse_config(CAMERA + "detectors:\n  p: {path: primary}\n  f: {path: y, regions: [persn]}\n")
    with pytest.raises(ConfigError, match=r"detectors\.f\.regions\[0\]: no detector reports 'persn'"):
        check_class_names(cfg, {"p": ("person", "car"), "f": ("face",)})
    cfg = parse_config(CAMERA + "detectors:\n  p: {path: primary}\nsecondaries:\n  v: {path: x, kind: attributes, "
                       "regions: [car, lorry]}\n")
    with pytest.raises(ConfigError, match=r"secondaries\.v\.regions\[1\]: no detector reports 'lorry'"):
        check_class_names(cfg, {"p": ("person", "car")})


def test_service_check_names_the_secondaries_and_checks_their_files():
    from pathlib import Path

    from edgert.apps.surveillance.service import APP

    model = Path(__file__).parent / "data" / "yolov8_int8.tflite"
    cfg = CAMERA + f"""detectors:
  objects: {{path: {model}, backend: cpu, labels: [person, car, bus]}}
  faces: {{path: "builtin:face_detection_short_range", backend: cpu, regions: [person]}}
secondaries:
  vehicle: {{path: "builtin:vehicle_type", backend: cpu, kind: attributes, regions: [car, bus]}}
"""
    assert "secondary vehicle (attributes, cpu)" in APP.check(parse_config(cfg))
    with pytest.raises(ConfigError, match="nope"):
        APP.check(parse_config(cfg.replace("builtin:vehicle_type", "builtin:nope")))
