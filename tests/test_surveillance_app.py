"""The surveillance app end to end: cameras -> a real detector on the CPU -> trackers -> events; dead cameras,
resolution changes, NaN outputs and detectors that do not detect."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgert.apps.surveillance import app as app_module
from edgert.apps.surveillance.app import Surveillance
from edgert.backends.simulated import simulated_model
from edgert.core.errors import ConfigError
from edgert.core.tensor import Quantization, TensorSpec
from edgert.models.loaded import LoadedModel
from edgert.models.resolve import model_loader
from edgert.pipeline.app import AppContext
from edgert.service.config import parse_config
from edgert.sources.replay import ReplaySource

DATA = Path(__file__).parent / "data"
LIFECYCLE = ("track_start", "track_update", "track_end")

DETECTOR = f"""\
detectors:
  squares:
    path: {DATA / "yolov8_int8.tflite"}
    backend: cpu
    labels: [red, green, blue]
    preprocess: {{resize: letterbox, mean: 0, std: 255, channel_order: RGB, pad_value: 0}}
    conf: 0.5
tracking:
  tracker: {{max_missed: 3, min_hits: 2}}
"""


def scene(n: int, w: int = 640, h: int = 480, blank: int = 8, seed: int = 0) -> list:
    """`n` frames of a red square walking right (what the test detector was trained on), then `blank` black ones."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        f = rng.integers(0, 40, (h, w, 3), np.uint8)
        x = int(w * 0.1 + i * w * 0.6 / max(1, n))
        s = w // 6
        f[h // 3:h // 3 + s, x:x + s, 2] = 255  # red in BGR
        out.append(f)
    return out + [np.zeros((h, w, 3), np.uint8)] * blank


def config(cameras: str):
    return parse_config("app: surveillance\ncameras:\n" + cameras + DETECTOR)


def context(tmp_path, load_model=None, progress=None) -> AppContext:
    return AppContext(tmp_path, 2, load_model or model_loader(), on_progress=progress or (lambda: None))


def run_to_end(app: Surveillance, timeout: float = 120.0) -> None:
    app.start()
    deadline = time.monotonic() + timeout
    while app.graph.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not app.graph.running, "the app did not finish its finite streams"


def recorded(ctx: AppContext) -> list:
    events: list = []
    ctx.events.subscribe(events.append)
    return events


def test_two_cameras_end_to_end_publish_track_lifecycle_events(tmp_path):
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(scene(24, seed=1)):
        cv2.imwrite(str(folder / f"{i:03d}.png"), f)
    cfg = config(f"""\
  - id: door
    source: {{kind: folder, path: {folder}}}
    fps: 30
  - id: yard
    source: {{kind: folder, path: /nonexistent}}
    fps: 10
""")
    ctx = context(tmp_path)
    events = recorded(ctx)
    progress = []
    ctx.on_progress = lambda: progress.append(1)
    yard = ReplaySource(scene(30, 800, 600, seed=2), live=False)
    order = []  # the camera of each frame through the tracker, in order
    with Surveillance(cfg, ctx, sources={"yard": yard}, on_tracks=lambda cam, *_: order.append(cam)) as app:
        run_to_end(app)
        health, stats = app.health(), app.stats()
    assert health.failed is None and health.ended
    assert stats["frames"] == 32 + 38 and stats["errors"] == 0
    assert stats["streams"]["door"]["processed"] == 32 and stats["streams"]["yard"]["processed"] == 38
    # The watchdog is fed once both cameras have delivered a frame, then for every frame (which camera
    # delivers first depends on the machine: the frames before the other's first one feed nothing).
    both_from = max(order.index("door"), order.index("yard"))
    assert len(progress) == len(order) - both_from
    kinds = {(e.kind, e.details["camera"]) for e in events}
    for cam in ("door", "yard"):
        assert ("track_start", cam) in kinds and ("track_end", cam) in kinds, kinds
    now = time.time()
    sizes = {"door": (640, 480), "yard": (800, 600)}
    for e in events:
        d = e.details
        assert e.kind in LIFECYCLE
        assert isinstance(d["track_id"], int) and d["track_id"] >= 1
        assert d["cls"] in ("red", "green", "blue")
        assert now - 120 < d["t"] <= now
        x0, y0, x1, y1 = d["box"]
        w, h = sizes[d["camera"]]
        assert -1 <= x0 < x1 <= w + 1 and -1 <= y0 < y1 <= h + 1  # frame pixels of that camera
        if e.kind == "track_end":
            assert d["t_start"] <= d["t_end"] == d["t"]
    starts = [(e.details["camera"], e.details["track_id"]) for e in events if e.kind == "track_start"]
    ends = [(e.details["camera"], e.details["track_id"]) for e in events if e.kind == "track_end"]
    assert len(starts) == len(set(starts)) and set(ends) == set(starts)  # each track starts once and ends once


def test_tracks_still_followed_at_stop_end_with_reason_stopped(tmp_path):
    """A camera stopped while an object is in view: its track ends at its last sighting, marked as stopped."""
    cfg = config("""\
  - id: cam
    source: {kind: folder, path: /nonexistent}
    fps: 30
""")
    ctx = context(tmp_path)
    events = recorded(ctx)
    with Surveillance(cfg, ctx, sources={"cam": ReplaySource(scene(20, blank=0), live=False)}) as app:
        run_to_end(app)
        assert not [e for e in events if e.kind == "track_end"]  # the square never left
        app.stop()
    starts = {e.details["track_id"]: e.details for e in events if e.kind == "track_start"}
    ends = {e.details["track_id"]: e.details for e in events if e.kind == "track_end"}
    assert starts and set(ends) == set(starts)
    for track_id, end in ends.items():
        assert end["reason"] == "stopped" and starts[track_id]["t_start"] == end["t_start"] <= end["t_end"]
    assert all("stopped" in e.message for e in events if e.kind == "track_end")


def test_dead_camera_is_reported_and_the_others_run(tmp_path):
    cfg = config("""\
  - id: good
    source: {kind: folder, path: /nonexistent}
    fps: 30
  - id: dead
    source: {kind: opencv, device: /nonexistent/camera.mp4}
    fps: 30
""")
    ctx = context(tmp_path)
    events = recorded(ctx)
    progress = []
    ctx.on_progress = lambda: progress.append(1)
    class AfterDeadFailed(ReplaySource):
        """Frames only once the dead camera has failed once: before that (no frame, no failure yet) it is
        not accounted for, and the watchdog rightly waits."""

        def _open(self):
            deadline = time.monotonic() + 30
            while app.health().streams["dead"].state != "reconnecting" and time.monotonic() < deadline:
                time.sleep(0.01)
            super()._open()

    good = AfterDeadFailed(scene(40), live=True, fps=40)
    with Surveillance(cfg, ctx, sources={"good": good}) as app:
        app.start()
        deadline = time.monotonic() + 60
        while good.health.state != "ended" and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        health = app.health()
        assert health.running  # the dead camera keeps retrying; the app runs on
        assert health.streams["dead"].state == "reconnecting" and health.streams["dead"].failures >= 1
        assert "camera.mp4" in health.streams["dead"].last_error or health.streams["dead"].last_error
        assert health.reconnecting == ["dead"]
        assert app.stats()["streams"]["good"]["processed"] > 0
        assert len(progress) == app.stats()["streams"]["good"]["processed"]  # inside its reconnect window
        assert "2 cameras" in app.status()
    assert any(e.details["camera"] == "good" for e in events)


def test_watchdog_is_not_fed_while_a_camera_is_stuck(tmp_path, monkeypatch):
    monkeypatch.setattr(app_module, "PROGRESS_WINDOW_S", 0.3)
    cfg = config("""\
  - id: good
    source: {kind: folder, path: /nonexistent}
    fps: 100
  - id: stuck
    source: {kind: folder, path: /nonexistent}
    fps: 100
""")
    release = threading.Event()

    class Stuck(ReplaySource):
        """One frame, then a read that neither fails nor returns (a hung driver)."""

        def _read(self, timeout):
            if self._seq >= 1:
                release.wait(30)
                return None
            return super()._read(timeout)

    progress = []
    ctx = context(tmp_path, progress=lambda: progress.append(1))
    good = ReplaySource(scene(100, blank=0), live=True, fps=50)
    with Surveillance(cfg, ctx, sources={"good": good, "stuck": Stuck(scene(1, blank=0), live=True)}) as app:
        app.start()
        deadline = time.monotonic() + 60
        while good.health.state != "ended" and time.monotonic() < deadline:
            time.sleep(0.05)
        processed = app.stats()["streams"]["good"]["processed"]
        release.set()
    assert processed > 50
    assert len(progress) < processed / 2  # fed only while the stuck camera was inside its window


def test_stream_changing_resolution_keeps_running(tmp_path):
    cfg = config("""\
  - id: cam
    source: {kind: folder, path: /nonexistent}
    fps: 30
    frame_size: [640, 480]
    filters: {red: {min_score: 0.5, mask: [[0, 0], [100, 0], [100, 100], [0, 100]]}}
""")
    ctx = context(tmp_path)
    events = recorded(ctx)

    class Resizing(ReplaySource):
        def _read(self, timeout):
            big = self._seq >= 20
            self.frames = self.big if big else self.small
            self.size = (1280, 720) if big else (640, 480)
            return super()._read(timeout)

    source = Resizing(scene(20, blank=0), count=48)
    source.small, source.big = scene(20, blank=0), scene(20, 1280, 720, blank=0, seed=3)
    with Surveillance(cfg, ctx, sources={"cam": source}) as app:
        run_to_end(app)
        stats = app.stats()
    assert stats["frames"] == 48 and stats["errors"] == 0
    late = [e for e in events if e.details["t"] and e.kind == "track_start" and e.details["box"][2] > 640]
    assert late, "no track found in the 1280x720 frames"
    for e in events:
        assert e.details["box"][2] <= 1281 and e.details["box"][3] <= 721


def test_a_detector_whose_outputs_do_not_detect_is_refused_in_one_line(tmp_path):
    cfg = parse_config(f"""\
app: surveillance
cameras:
  - id: cam
    source: {{kind: folder, path: /nonexistent}}
detectors:
  digits: {{path: {DATA / "digits_int8.tflite"}, backend: cpu}}
""")
    with pytest.raises(ConfigError, match=r"outputs \(1, 10\) do not fit the detect task") as info:
        Surveillance(cfg, context(tmp_path), sources={"cam": ReplaySource(scene(1))})
    assert "\n" not in str(info.value)


def test_nan_outputs_are_counted_and_skipped(tmp_path):
    spec_in = TensorSpec("x", (1, 320, 320, 3), np.uint8, Quantization(1 / 255, 0), "NHWC")
    spec_out = TensorSpec("y", (1, 7, 2100), np.float32, None)
    nan = np.full((1, 7, 2100), np.nan, np.float32)

    def load(model_config, task=None, check=None, at_start=False):
        entry = LoadedModel(simulated_model([spec_in], [nan], [spec_out], 0.5), "nan", labels=("red", "green", "blue"),
                            task="detect")
        if check is not None:
            check(entry)
        return entry

    cfg = config("""\
  - id: cam
    source: {kind: folder, path: /nonexistent}
""")
    ctx = context(tmp_path, load_model=load)
    events = recorded(ctx)
    with Surveillance(cfg, ctx, sources={"cam": ReplaySource(scene(10, blank=0))}) as app:
        run_to_end(app)
        stats = app.stats()
        health = app.model_health("squares")
    assert stats["skipped"] == 10 and stats["errors"] == 10 and stats["frames"] == 0
    assert events == []
    assert sum(h.errors for h in health.values()) == 10
    assert "NaN or inf" in app.graph.stages[-1].last_error


def test_unknown_slot_and_bad_swap_leave_the_detector_running(tmp_path):
    cfg = config("""\
  - id: cam
    source: {kind: folder, path: /nonexistent}
""")
    with Surveillance(cfg, context(tmp_path), sources={"cam": ReplaySource(scene(4, blank=0))}) as app:
        before = app.models()["squares"]
        with pytest.raises(ConfigError, match="no model slot 'faces'"):
            app.swap_model("faces", cfg.detectors["squares"])
        digits = cfg.detectors["squares"].model_copy(update={"path": str(DATA / "digits_int8.tflite"), "labels": None})
        with pytest.raises(ConfigError, match="do not fit the detect task"):
            app.swap_model("squares", digits)
        assert app.models()["squares"] is before
        entry = app.swap_model("squares", cfg.detectors["squares"])
        assert app.models()["squares"] is entry and entry.generation == before.generation + 1
        run_to_end(app)
        assert app.stats()["frames"] == 4


class SquareFinder:
    """A detector that finds the red square exactly (in YOLOv8's single-tensor layout, float outputs).

    Stands in for a trained model where the test needs boxes that follow the scene: it reads the
    preprocessed input it is given, so what it returns is a function of the frame, as a model's is.
    """

    backend = "test"
    asynchronous = False

    def __init__(self):
        self.inputs = (TensorSpec("x", (1, 320, 320, 3), np.uint8, Quantization(1 / 255, 0), "NHWC"),)
        self.outputs = (TensorSpec("y", (1, 7, 2100), np.float32, None),)
        self.closed = False

    def run(self, x):
        out = np.zeros((1, 7, 2100), np.float32)
        red = (x[0, :, :, 0] > 200) & (x[0, :, :, 1] < 100) & (x[0, :, :, 2] < 100)  # RGB input
        if red.any():
            ys, xs = np.nonzero(red)
            out[0, :4, 0] = ((xs.min() + xs.max() + 1) / 640, (ys.min() + ys.max() + 1) / 640,
                             (xs.max() - xs.min() + 1) / 320, (ys.max() - ys.min() + 1) / 320)
            out[0, 4, 0] = 0.95
        return [out]

    def submit(self, x):
        from concurrent.futures import Future

        future = Future()
        future.set_result(self.run(x))
        return future

    def close(self):
        self.closed = True


def test_zone_and_line_events_from_the_tracks(tmp_path):
    cfg = config("""\
  - id: cam
    source: {kind: folder, path: /nonexistent}
    frame_size: [640, 480]
    zones:
      - {id: right, polygon: [[320, 0], [639, 0], [639, 479], [320, 479]], intrusion: [red]}
    lines:
      - {id: middle, points: [[320, 0], [320, 479]], interval_s: 3600}
""")

    def load(model_config, task=None, check=None, at_start=False):
        entry = LoadedModel(SquareFinder(), "squares", labels=("red", "green", "blue"), preprocess=dict(
            resize="letterbox", mean=0.0, std=255.0, channel_order="RGB", pad_value=0.0), task="detect")
        if check is not None:
            check(entry)
        return entry

    ctx = context(tmp_path, load_model=load)
    events = recorded(ctx)
    with Surveillance(cfg, ctx, sources={"cam": ReplaySource(scene(30, blank=6))}) as app:
        run_to_end(app)
        app.stop()
        assert app.stats()["errors"] == 0
    kinds = [e.kind for e in events]
    assert kinds.count("track_start") == 1 and kinds.count("track_end") == 1, kinds
    by_kind = {e.kind: e.details for e in events}
    track = by_kind["track_start"]["track_id"]
    for kind in ("zone_enter", "intrusion", "zone_exit", "line_cross"):
        assert by_kind[kind]["track_id"] == track and by_kind[kind]["camera"] == "cam", kind
        assert by_kind[kind]["cls"] == "red"
    assert by_kind["zone_enter"]["zone"] == "right" and by_kind["zone_exit"]["dwell_s"] > 0
    assert by_kind["line_cross"]["line"] == "middle" and by_kind["line_cross"]["direction"] in ("a_to_b", "b_to_a")
    assert by_kind["line_count"]["count"] == 1  # the unfinished interval, counted at stop
    x0, _, x1, _ = by_kind["zone_enter"]["box"]
    assert (x0 + x1) / 2 >= 320 - 8  # it entered when its bottom centre crossed into the zone
    assert kinds.index("zone_enter") > kinds.index("track_start")


def test_service_spec_names_a_slot_per_detector_and_checks_class_names():
    from edgert.apps.surveillance.service import APP
    from edgert.service.config import app_spec

    assert app_spec("surveillance") is APP
    cfg = config("""\
  - id: cam
    source: {kind: folder, path: /nonexistent}
    filters: {red: {min_score: 0.5}}
""")
    assert list(APP.models(cfg)) == ["squares"] and APP.models(cfg)["squares"].backend == "cpu"
    assert APP.check(cfg).startswith("1 camera(s), detectors squares (cpu, 3 classes)")
    bad = config("""\
  - id: cam
    source: {kind: folder, path: /nonexistent}
    filters: {purple: {min_score: 0.5}}
""")
    with pytest.raises(ConfigError, match=r"cameras\[0\]\.filters\.purple: no detector of camera 'cam' reports"):
        APP.check(bad)


def test_reconfigure_swaps_a_changed_detector_model_and_refuses_other_changes(tmp_path):
    cfg = config("""\
  - id: cam
    source: {kind: folder, path: /nonexistent}
""")
    with Surveillance(cfg, context(tmp_path), sources={"cam": ReplaySource(scene(4, blank=0))}) as app:
        before = app.models()["squares"]
        changed = parse_config(cfg.model_dump_json().replace('"version":null', '"version":"2"'))
        assert app.reconfigure(changed)
        assert app.models()["squares"].version == "2" and app.models()["squares"] is not before
        other = cfg.model_copy(update={"cameras": [cfg.cameras[0].model_copy(update={"fps": 5.0})]})
        assert not app.reconfigure(other)  # a camera change needs a rebuild


def test_a_camera_no_detector_serves_is_not_opened(tmp_path, caplog):
    cfg = parse_config(f"""\
app: surveillance
cameras:
  - {{id: a, source: {{kind: folder, path: /nonexistent}}}}
  - {{id: b, source: {{kind: folder, path: /nonexistent}}}}
detectors:
  squares:
    path: {DATA / "yolov8_int8.tflite"}
    backend: cpu
    labels: [red, green, blue]
    cameras: [a]
""")
    with Surveillance(cfg, context(tmp_path), sources={"a": ReplaySource(scene(3, blank=0))}) as app:
        assert list(app.health().streams) == ["a"]
        run_to_end(app)
        assert app.stats()["frames"] == 3
    assert "camera b has no detector" in caplog.text


def test_two_detectors_each_on_its_own_backend_serve_the_cameras_named(tmp_path):
    cfg = parse_config(f"""\
app: surveillance
cameras:
  - {{id: one, source: {{kind: folder, path: /nonexistent}}, fps: 30}}
  - {{id: two, source: {{kind: folder, path: /nonexistent}}, fps: 5}}
detectors:
  squares:
    path: {DATA / "yolov8_int8.tflite"}
    backend: cpu
    labels: [red, green, blue]
    preprocess: {{resize: letterbox, mean: 0, std: 255, channel_order: RGB, pad_value: 0}}
    conf: 0.5
    cameras: [one]
  shadow:
    path: {DATA / "yolov8_int8.tflite"}
    backend: simulated
    options: {{device_ms: 1}}
    labels: [red, green, blue]
    conf: 0.9
""")
    ctx = context(tmp_path)
    events = recorded(ctx)
    sources = {"one": ReplaySource(scene(12, seed=5)), "two": ReplaySource(scene(6, seed=6))}
    with Surveillance(cfg, ctx, sources=sources) as app:
        assert {n: e.model.backend for n, e in app.models().items()} == {"squares": "cpu", "shadow": "simulated"}
        run_to_end(app)
        streams = app.stats()["streams"]
    assert set(streams["one"]["detectors"]) == {"squares", "shadow"} and set(streams["two"]["detectors"]) == {"shadow"}
    assert streams["one"]["detectors"]["squares"].taken == 20 and streams["one"]["detectors"]["shadow"].taken == 20
    assert streams["two"]["detectors"]["shadow"].taken == 14
    assert streams["one"]["processed"] == 40 and streams["two"]["processed"] == 14
    assert {e.details["camera"] for e in events} == {"one"}  # the simulated detector returns nothing confident


def test_the_service_gives_the_app_a_snapshot_writer_in_its_state_dir_unless_snapshots_are_off(tmp_path):
    from edgert.apps.surveillance.service import APP

    cameras = """\
  - id: cam
    source: {kind: folder, path: /nonexistent}
"""
    app = APP.build(config(cameras), context(tmp_path))
    try:
        frame = np.zeros((120, 160, 3), np.uint8)
        path = app.snapshot(frame, [10.0, 20.0, 60.0, 90.0], "cam-zone_enter")
        assert path is not None and (tmp_path / path).is_file() and (tmp_path / path).suffix == ".jpg"
        assert (tmp_path / path).parent == tmp_path / "snapshots" / "events"
    finally:
        app.close()
    off = parse_config("app: surveillance\ncameras:\n" + cameras + DETECTOR + "snapshots: {enabled: false}\n")
    app = APP.build(off, context(tmp_path / "off"))
    try:
        assert app.snapshot is None
    finally:
        app.close()
