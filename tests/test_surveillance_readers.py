"""Face recognition and plate reading wired into the surveillance app, end to end: plates read on the synthetic
street against its ground truth, a gallery's face recognised inside a person track (a stranger unknown), and a
corrupted gallery turning recognition off while the app runs on."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from edgert.apps.surveillance.app import Surveillance
from edgert.journal.events import ANALYTICS_KINDS
from edgert.models.resolve import model_loader
from edgert.pipeline.app import AppContext
from edgert.service.config import parse_config

DATA = Path(__file__).parent / "data"
EMBEDDER = DATA / "synthetic_face_embedder_int8.tflite"


def run_app(cfg, ctx, sources, listen=None):
    with Surveillance(cfg, ctx, sources=sources) as app:
        for name, fn in (listen or {}).items():
            app.on_crop_result(name, fn)
        app.start()
        deadline = time.monotonic() + 120
        while app.graph.running and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not app.graph.running
        app.stop()
        stats, status = app.stats(), app.status()
    assert stats["errors"] == 0, stats
    return stats, status


def _iou(a, b) -> float:
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


STREET = """\
app: surveillance
cameras:
  - id: street
    source: {kind: street, seed: 5, camera: 1, size: [1280, 720], fps: 0, frames: 300}
detectors:
  street: {path: "builtin:street_detector", backend: cpu, classes: [car, bus, motorbike]}
secondaries:
  plates: {path: "builtin:ch_PP-OCRv4_det", backend: onnx, kind: ocr, regions: [car, bus, motorbike],
           schedule: {max_crops: 2, better_by: 1.2}}
plates: {countries: [VN], min_reads: 1, known: [{plate: "%s", name: watched}]}
tracking:
  tracker: {max_missed: 10, min_hits: 2}
snapshots: {enabled: false}
"""


def test_street_plates_are_read_against_the_ground_truth(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("cv2")
    from edgert.sources.street import StreetSource

    truth: dict = {}  # track id -> the ground-truth plate of the vehicle its crops showed

    def note_truth(track, result):
        objects = [o for o in result.frame.meta["objects"] if o.get("plate")]
        if objects:
            best = max(objects, key=lambda o: _iou(o["box"], track.box))
            if _iou(best["box"], track.box) > 0.5:
                truth[track.track_id] = best["plate"]

    cfg = parse_config(STREET % "94C-083.72")
    ctx = AppContext(tmp_path, 2, model_loader())
    events = []
    ctx.events.subscribe(events.append)
    stats, _ = run_app(cfg, ctx, {"street": StreetSource(cfg.cameras[0].source)}, {"plates": note_truth})
    reads = [e.details for e in events if e.kind == "plate_read"]
    right = [d for d in reads if truth.get(d["track_id"]) == d["plate"]]
    print(f"{len(right)} of {len(reads)} plate reads right; truth {truth}; reads {[d['plate'] for d in reads]}; "
          f"{stats['secondaries']}")
    assert len(right) >= 2 and len(right) >= 0.6 * len(reads), reads
    assert all(d["cls"] in ("car", "bus", "motorbike") and d["model"] == "plates" for d in reads)
    watched = [e.details for e in events if e.kind == "watched_plate_seen"]
    assert [d["plate"] for d in watched] == (["94C-083.72"] if any(d["plate"] == "94C-083.72" for d in reads) else [])
    assert {"plate_read", "watched_plate_seen"} <= ANALYTICS_KINDS
    assert stats["plates"]["reads"] >= len(reads)


FACES = """\
app: surveillance
cameras:
  - id: cam
    source: {kind: folder, path: /nonexistent}
detectors:
  people: {path: primary, backend: cpu, labels: [person, car], conf: 0.5}
  faces: {path: "builtin:face_detection_short_range", backend: cpu, regions: [person],
          schedule: {max_crops: 4, better_by: 1.04, max_runs: 6}}
face_recognition: {model: {path: "%s", backend: cpu}, gallery: faces.sqlite3, min_face_px: 30,
                   min_votes: 1}
tracking:
  tracker: {max_missed: 6, min_hits: 2}
""" % EMBEDDER
ASTRONAUT_PERSON = (190.0, 60.0, 415.0, 460.0)
STRANGER_PERSON = (450.0, 60.0, 635.0, 460.0)


def faces_frame(seed: int):
    """The astronaut's face at x 240..390 (tests/test_surveillance_secondary.py) and the cameraman's at 470..620."""
    import cv2
    from face_photos import make_frame
    from test_surveillance_secondary import face_frame

    frame = face_frame(seed)
    cameraman = make_frame([["photo", "camera"], ["crop", 100, 40, 350, 290]])[:, :, ::-1]
    frame[100:250, 470:620] = cv2.resize(cameraman, (150, 150), interpolation=cv2.INTER_AREA)
    return frame


def faces_app(tmp_path, gallery_bytes=None):
    """Run the app over 12 frames of both faces; (events, status, stats). The gallery holds the astronaut's face
    cut from such a frame (enrolled with the app's embedder), or is `gallery_bytes`."""
    from test_surveillance_secondary import FixedDetector, W, H, loader

    from edgert.apps.surveillance.faces.admin import FaceAdmin
    from edgert.sources.replay import ReplaySource

    gallery = tmp_path / "faces.sqlite3"
    if gallery_bytes is None:
        x0, y0, x1, y1 = (int(v) for v in ASTRONAUT_PERSON)
        FaceAdmin(gallery, str(EMBEDDER), backend="cpu").enrol("astronaut", [
            ("astronaut.png", np.ascontiguousarray(faces_frame(99)[y0:y1, x0:x1]))])
    else:
        gallery.write_bytes(gallery_bytes)
    real, fake = model_loader(), loader(FixedDetector([(0, ASTRONAUT_PERSON), (0, STRANGER_PERSON)], grow=2.0))

    def load(model_config, task=None, check=None, at_start=False):
        return (real if str(model_config.path).endswith(".tflite") else fake)(model_config, task, check, at_start)

    ctx = AppContext(tmp_path, 2, load)
    events = []
    ctx.events.subscribe(events.append)
    frames = [faces_frame(i) for i in range(12)] + [np.zeros((H, W, 3), np.uint8)] * 10
    # Paced at 20 fps so each crop's recognition is back before its track ends (6 black frames later).
    stats, status = run_app(parse_config(FACES), ctx, {"cam": ReplaySource(frames, fps=20.0)})
    return events, status, stats


def test_an_enrolled_face_is_recognised_in_its_person_track_and_a_stranger_is_unknown(tmp_path):
    pytest.importorskip("skimage")
    events, status, stats = faces_app(tmp_path)
    print([(e.kind, e.details.get("track_id"), e.details.get("similarity")) for e in events if e.kind.startswith("face")],
          stats["secondaries"])
    starts = {e.details["track_id"]: e.details["box"][0] for e in events if e.kind == "track_start"}
    astronaut = min(starts, key=starts.get)
    stranger = max(starts, key=starts.get)
    named = [e.details for e in events if e.kind == "face_recognised"]
    assert [(d["track_id"], d["name"]) for d in named] == [(astronaut, "astronaut")], named
    assert named[0]["similarity"] >= 0.5 and named[0]["votes"] >= 1 and named[0]["camera"] == "cam"
    unknown = [e.details for e in events if e.kind == "face_unknown"]
    assert [d["track_id"] for d in unknown] == [stranger], unknown
    assert unknown[0]["name"] is None and unknown[0]["similarity"] < named[0]["similarity"]
    assert "face recognition on (1 people enrolled)" in status
    assert stats["faces"]["off"] is None and stats["faces"]["cam"]["tried"] >= 2
    assert not [e for e in events if e.kind == "face_conflict"]
    assert {"face_recognised", "face_unknown", "face_conflict"} <= ANALYTICS_KINDS


def test_a_corrupted_gallery_leaves_the_app_running_without_recognition(tmp_path, caplog):
    pytest.importorskip("skimage")
    junk = b"not a sqlite database at all " * 64
    with caplog.at_level("WARNING"):
        events, status, stats = faces_app(tmp_path, gallery_bytes=junk)
    assert "face recognition off:" in status and "faces.sqlite3" in status, status
    (line,) = [r.getMessage() for r in caplog.records if "face recognition off" in r.getMessage()]
    assert "\n" not in line and status.endswith(", " + line), (line, status)
    assert (tmp_path / "faces.sqlite3").read_bytes() == junk  # left for inspection
    kinds = {e.kind for e in events}
    assert "face_detected" in kinds and not kinds & {"face_recognised", "face_unknown", "face_conflict"}
    assert stats["frames"] == 22 and stats["faces"]["off"].startswith("face recognition off:")


def test_plates_need_an_ocr_secondary_and_readers_need_region_detectors(tmp_path):
    from edgert.core.errors import ConfigError

    no_ocr = STREET.replace("kind: ocr", "kind: attributes") % "51F-123.45"
    with pytest.raises(ConfigError, match="plates: no secondary of kind ocr"):
        parse_config(no_ocr)
    cfg = parse_config(FACES.replace('''  faces: {path: "builtin:face_detection_short_range", backend: cpu, regions: [person],
          schedule: {max_crops: 4, better_by: 1.04, max_runs: 6}}
''', ""))
    from test_surveillance_secondary import FixedDetector, loader

    real, fake = model_loader(), loader(FixedDetector([]))

    def load(model_config, task=None, check=None, at_start=False):
        return (real if str(model_config.path).endswith(".tflite") else fake)(model_config, task, check, at_start)

    from edgert.sources.replay import ReplaySource

    with pytest.raises(ConfigError, match="face_recognition: no detector runs inside tracked boxes"):
        Surveillance(cfg, AppContext(tmp_path, 2, load), sources={"cam": ReplaySource([np.zeros((8, 8, 3), np.uint8)])})
