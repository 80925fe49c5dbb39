"""Frame sources: picamera2 (on the SDK-faithful fake), OpenCV VideoCapture (real video files and a
real local HTTP stream) and image folders (real PNG/BMP files)."""
from __future__ import annotations

import http.server
import logging
import socketserver
import sys
import threading
import time

import cv2
import numpy as np
import pytest
from conftest import yuv_planes
from pydantic import ValidationError

from edgert import TensorSpec
from edgert.core.errors import SourceError
from edgert.preprocess import Preprocessor
from edgert.sources.base import Backoff
from edgert.sources.folder import FolderConfig, FolderSource
from edgert.sources.opencv import VideoConfig, VideoSource
from edgert.sources.picamera import PicameraConfig, PicameraSource

FAST = Backoff(initial=0.01, maximum=0.05)
QUADRANTS = ((200, 40, 40), (40, 180, 60), (50, 60, 200), (128, 128, 128))  # RGB, as tests/fakes/picamera2


def camera_source(**overrides) -> PicameraSource:
    options = {"main_size": (640, 480), "lores_size": (300, 224), "capture_timeout": 1.0} | overrides
    max_failures = options.pop("max_failures", None)
    return PicameraSource(PicameraConfig(**options), backoff=FAST, max_failures=max_failures)


def quadrant_centres(w: int, h: int):
    """(x, y) of the middle of each scene quadrant, in QUADRANTS order."""
    return [(w // 4, h // 4), (3 * w // 4, h // 4), (w // 4, 3 * h // 4), (3 * w // 4, 3 * h // 4)]


@pytest.fixture
def handed_out(fake_picamera2, monkeypatch):
    """Every request the fake camera hands to the application (to check they all come back)."""
    import picamera2
    requests = []
    original = picamera2.Picamera2.capture_request

    def recording(self, *args, **kwargs):
        request = original(self, *args, **kwargs)
        requests.append(request)
        return request
    monkeypatch.setattr(picamera2.Picamera2, "capture_request", recording)
    return requests


# -- picamera2 -----------------------------------------------------------------------------------

def test_picamera_frames_are_lores_yuv420_as_picamera2_lays_it_out(fake_picamera2):
    with camera_source() as source:
        frames = [source.read() for _ in range(6)]
    w, h = 300, 224
    stride = 320  # 300 rounded up to the fake's 64-byte row alignment: rows carry padding
    for i, frame in enumerate(frames):
        assert frame.format == "YUV420" and frame.size == (w, h)
        assert frame.pixels.shape == (h * 3 // 2, stride) and frame.stride == stride
        assert frame.pixels.flags.c_contiguous and frame.seq == i and frame.generation == 0
    # The planes hold the scene: luma per quadrant, and chroma telling red from blue.
    y, u, v = yuv_planes(frames[-1].pixels, "YUV420", w, h)
    (x0, y0), _, (x2, y2), _ = quadrant_centres(w, h)
    assert y[y0, x0] > y[y2, x2]  # red is brighter than blue
    assert v[y0 // 2, x0 // 2] > 170 and u[y0 // 2, x0 // 2] < 115  # red: high V, low U
    assert u[y2 // 2, x2 // 2] > 170  # blue: high U
    assert not np.array_equal(frames[-1].pixels[:h, w:], np.zeros((h, stride - w), np.uint8))  # junk padding kept


def test_picamera_timestamps_are_the_sensor_timestamps(fake_picamera2):
    issued = []
    import picamera2.picamera2 as fake
    original = fake.Picamera2._complete_one

    def recording(self):
        request = original(self)
        if request is not None:
            issued.append(request.request.metadata["SensorTimestamp"])
        return request
    fake.Picamera2._complete_one = recording
    try:
        with camera_source() as source:
            stamps = [source.read().timestamp_ns for _ in range(5)]
    finally:
        fake.Picamera2._complete_one = original
    assert set(stamps) <= set(issued)
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert stamps[-1] <= time.monotonic_ns()


@pytest.mark.parametrize("use_case, main_size, expected", [
    ("preview", (640, 480), ("full", "bt601")),       # sYCC
    ("video", (640, 480), ("limited", "bt601")),      # SMPTE 170M below 1280x720
    ("video", (1280, 720), ("limited", "bt709")),     # Rec.709 from 720p up
])
def test_picamera_yuv_meta_decodes_the_right_colours(fake_picamera2, use_case, main_size, expected):
    with camera_source(use_case=use_case, main_size=main_size) as source:
        frame = source.read()
    assert (frame.meta["yuv_range"], frame.meta["yuv_matrix"]) == expected
    w, h = frame.size
    spec = TensorSpec("input", (1, h, w, 3), np.float32)

    def decoded(yuv_range, yuv_matrix):
        pre = Preprocessor(spec, src_format="YUV420", src_size=frame.size, interpolation="nearest",
                           yuv_range=yuv_range, yuv_matrix=yuv_matrix)
        rgb = pre(frame.pixels)[0]
        return np.array([rgb[y, x] for x, y in quadrant_centres(w, h)])

    right = decoded(frame.meta["yuv_range"], frame.meta["yuv_matrix"])
    np.testing.assert_allclose(right, np.array(QUADRANTS, np.float32), atol=3)
    wrong_range = "limited" if expected[0] == "full" else "full"
    wrong_matrix = "bt709" if expected[1] == "bt601" else "bt601"
    for other in ((wrong_range, expected[1]), (expected[0], wrong_matrix)):
        assert np.abs(decoded(*other) - np.array(QUADRANTS)).max() > 8  # the meta matters


def test_picamera_releases_every_request(fake_picamera2, handed_out):
    with camera_source(buffer_count=3) as source:
        for i in range(12):  # four times the buffers: a leak would stall the camera and time out
            if i % 3 == 0:
                source.request_snapshot()
            source.read()
        camera = fake_picamera2.instances[-1]
        assert camera.fake_requests_held_by_app() == 0
    assert len(handed_out) == 12 and all(r.ref_count == 0 for r in handed_out)


def test_picamera_releases_the_request_when_reading_it_fails(fake_picamera2, handed_out, monkeypatch):
    import picamera2
    monkeypatch.setattr(picamera2.CompletedRequest, "get_metadata", lambda self: {}["SensorTimestamp"])
    source = camera_source(max_failures=1)
    with pytest.raises(SourceError, match="camera 0: gave up after 1 failed attempts: camera 0: cannot open: 'SensorTimestamp'"):
        source.read()
    source.close()
    assert handed_out and all(r.ref_count == 0 for r in handed_out)


def test_picamera_dislodged_cable_times_out_and_reconnects(fake_picamera2):
    source = camera_source(capture_timeout=0.2)
    states = []
    set_health = source._set_health
    source._set_health = lambda state, **kw: (states.append(state), set_health(state, **kw))
    try:
        frames = [source.read()]
        fake_picamera2.dislodge(0)  # reseated once the camera that lost it is closed
        while source.health.reconnects == 0:  # the first read may still get the frame picamera2 queued
            frames.append(source.read())
        health = source.health
    finally:
        source.close()
    assert len(frames) <= 3 and [f.seq for f in frames] == list(range(len(frames)))
    assert frames[-1].generation == frames[0].generation
    assert health.state == "ok" and health.reconnects == 1 and health.failures == 0
    assert health.last_error == "camera 0: no frame within 0.2 s (cable dislodged?)"
    assert states.index("reconnecting") < len(states) - 1 - states[::-1].index("ok")
    lost, reopened = fake_picamera2.instances
    assert not lost.is_open and lost._job_list == []  # its timed-out capture job was cancelled, then closed
    assert reopened is not lost


def test_picamera_cable_that_stays_out_gives_up_after_max_failures(fake_picamera2):
    source = camera_source(capture_timeout=0.1, max_failures=2)
    source.read()
    fake_picamera2.dislodge(0, heal_on_close=False)
    with pytest.raises(SourceError, match=r"camera 0: gave up after 2 failed attempts: camera 0: no frame within "
                                          r"0\.1 s \(cable dislodged\?\)"):
        for _ in range(3):  # the first read may still get the frame picamera2 queued
            source.read()
    source.close()
    assert not any(camera.is_open for camera in fake_picamera2.instances)


@pytest.mark.parametrize("not_found", ["runtime", "index"])
def test_picamera_that_never_opens_names_the_camera(fake_picamera2, not_found):
    fake_picamera2.set_camera_count(0)
    fake_picamera2.not_found = not_found
    source = camera_source(max_failures=3)
    with pytest.raises(SourceError) as info:
        source.read()
    message = str(info.value)
    assert message.startswith("camera 0: gave up after 3 failed attempts: camera 0: cannot open (0 camera(s) attached)")
    assert "\n" not in message
    assert source.health.state == "reconnecting" and source.health.failures == 3


def test_picamera_open_error_says_what_is_wrong(fake_picamera2):
    with pytest.raises(SourceError, match=r"camera 1: cannot open \(1 camera\(s\) attached\): No camera number 1"):
        camera_source(camera_num=1).open()
    with pytest.raises(SourceError, match="Control Focus is not advertised by libcamera"):
        camera_source(controls={"Focus": 1}).open()
    assert not any(camera.is_open for camera in fake_picamera2.instances)  # the failed open closed its camera


def test_picamera_controls_reach_the_camera(fake_picamera2):
    with camera_source(controls={"FrameRate": 30, "ExposureTime": 8000}, buffer_count=5, use_case="video") as source:
        frame = source.read()
        camera = fake_picamera2.instances[-1]
        assert camera.controls["ExposureTime"] == 8000 and camera.controls["FrameDurationLimits"] == 30
        assert camera.camera_config["buffer_count"] == 5 and camera.camera_config["use_case"] == "video"
    assert frame.meta["exposure_us"] == 8000


@pytest.mark.parametrize("main_format", ["RGB888", "XBGR8888"])
def test_picamera_snapshot_is_the_main_stream_as_bgr_on_request(fake_picamera2, main_format):
    with camera_source(main_format=main_format) as source:
        plain = source.read()
        assert source.snapshot() is None and "snapshot" not in plain.meta
        source.request_snapshot()
        taken = source.read()
        after = source.read()
    image = source.snapshot()
    assert image.shape == (480, 640, 3) and image.dtype == np.uint8 and image.flags.c_contiguous
    assert taken.meta["snapshot"] is image and source.snapshot_seq == taken.seq
    assert "snapshot" not in after.meta  # one request, one copy
    for (x, y), rgb in zip(quadrant_centres(640, 480), QUADRANTS):
        assert tuple(image[y, x]) == rgb[::-1]


def test_picamera_config_refuses_what_picamera2_would():
    with pytest.raises(ValidationError, match="even width and height"):
        PicameraConfig(lores_size=(301, 224))
    with pytest.raises(ValidationError, match="larger than main_size"):
        PicameraConfig(main_size=(640, 480), lores_size=(800, 480))
    with pytest.raises(ValidationError, match="lores_format"):
        PicameraConfig(lores_format="NV12")
    with pytest.raises(ValidationError, match="Extra inputs"):
        PicameraConfig(lores={"size": (320, 240)})
    assert PicameraConfig().kind == "picamera2"


def test_picamera_missing_sdk_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(SourceError, match="sudo apt install python3-picamera2"):
        PicameraSource(PicameraConfig())


def test_fake_picamera2_fails_where_picamera2_fails(fake_picamera2):
    """The fake's own faithfulness, for what the source relies on."""
    from concurrent.futures import TimeoutError as FutureTimeout

    from picamera2 import Picamera2
    camera = Picamera2(0)
    with pytest.raises(ValueError, match="Bad key 'fps'"):
        camera.create_preview_configuration(lores={"size": (320, 240), "fps": 30})
    with pytest.raises(RuntimeError, match="lores stream dimensions may not exceed main stream"):
        camera.configure(camera.create_preview_configuration(main={"size": (320, 240)}, lores={"size": (640, 480)}))
    config = camera.create_preview_configuration()
    config["main"]["size"] = [640, 480]  # create_*_configuration makes sizes tuples; configure insists
    with pytest.raises(RuntimeError, match="should be \\(width, height\\)"):
        camera.configure(config)
    camera.configure(camera.create_preview_configuration(lores={"size": (320, 240)}, buffer_count=2))
    with pytest.raises(FutureTimeout):
        camera.capture_request(wait=0.1)  # before start() no event loop runs: nothing completes
    camera.cancel_all_and_flush()
    camera.start()
    held = [camera.capture_request(wait=1.0) for _ in range(2)]  # both buffers
    with pytest.raises(FutureTimeout):
        camera.capture_request(wait=0.2)  # the camera has no free buffer: stalled
    camera.cancel_all_and_flush()
    for request in held:
        request.release()
    blocked = threading.Thread(target=lambda: pytest.raises(RuntimeError, camera.capture_request), daemon=True)
    fake_picamera2.dislodge(0, heal_on_close=False)
    blocked.start()
    blocked.join(0.3)
    assert blocked.is_alive() and fake_picamera2.forever_waits == 1  # wait=None: blocks for good
    fake_picamera2.hang_breaker.set()
    blocked.join(2.0)
    assert not blocked.is_alive()
    with pytest.raises(RuntimeError, match="Stream 'lores' is not defined"):
        held[0].make_array("lores")  # released requests forget their buffers


# -- OpenCV VideoCapture -------------------------------------------------------------------------

def clip_colour(i: int) -> tuple:
    return (20 + 15 * i, 100, 230 - 12 * i)  # BGR, distinct per frame


@pytest.fixture
def clip(tmp_path):
    """A real 12-frame 64x48 MJPG AVI at 25 fps, each frame one distinct colour."""
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    assert writer.isOpened()
    for i in range(12):
        writer.write(np.full((48, 64, 3), clip_colour(i), np.uint8))
    writer.release()
    return path


def assert_colour(frame, i):
    assert np.abs(frame.pixels[24, 32].astype(int) - clip_colour(i)).max() <= 6, (frame.seq, frame.pixels[24, 32])


def test_video_file_frames_then_end(clip):
    with VideoSource(VideoConfig(device=str(clip))) as source:
        frames = list(source)
        assert source.read() is None and source.health.state == "ended"
    assert len(frames) == 12
    for i, frame in enumerate(frames):
        assert frame.format == "BGR" and frame.size == (64, 48) and frame.pixels.shape == (48, 64, 3)
        assert frame.stride == 64 * 3 and frame.seq == i
        assert_colour(frame, i)
    stamps = [f.timestamp_ns for f in frames]
    assert stamps == sorted(stamps) and stamps[-1] <= time.monotonic_ns()
    assert [f.meta["pos_msec"] for f in frames] == sorted(f.meta["pos_msec"] for f in frames)


def test_video_file_loops(clip):
    with VideoSource(VideoConfig(device=str(clip), loop=True)) as source:
        frames = [source.read() for _ in range(30)]
        assert source.health.state == "ok" and source.health.reconnects == 0
    assert [f.seq for f in frames] == list(range(30))
    for frame in frames:
        assert_colour(frame, frame.seq % 12)


def test_video_file_realtime_keeps_the_file_rate(clip):
    with VideoSource(VideoConfig(device=str(clip), realtime=True)) as source:
        stamps = [source.read().timestamp_ns for _ in range(5)]
    assert stamps[-1] - stamps[0] >= 0.8 * 4 * 40e6  # 25 fps: never faster (slower is the machine's business)


@pytest.mark.parametrize("device, name", [
    ("rtsp://127.0.0.1:1/none", "rtsp://127.0.0.1:1/none"),
    (97, "USB camera 97"),
    ("/nonexistent/clip.avi", "video /nonexistent/clip.avi"),
])
def test_video_that_cannot_open_gives_up_after_max_failures(device, name):
    source = VideoSource(VideoConfig(device=device, timeout=1.0), backoff=FAST, max_failures=2)
    with pytest.raises(SourceError, match=f"^{name}: gave up after 2 failed attempts: {name}: "):
        source.read()
    assert source.health.failures == 2


class _FlakyStream:
    """A real HTTP server streaming a video file whose first connection stalls halfway (a dead camera)."""

    def __init__(self, payload: bytes):
        self.connections = 0
        self.release = threading.Event()
        stream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                stream.connections += 1
                first = stream.connections == 1
                self.send_response(200)
                self.send_header("Content-Type", "video/x-msvideo")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload[: len(payload) // 2] if first else payload)
                    self.wfile.flush()
                    if first:
                        stream.release.wait(10)  # connection open, nothing more: only a read timeout ends it
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/clip.avi"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_video_stream_that_stalls_times_out_and_reconnects(tmp_path):
    path = tmp_path / "long.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    for i in range(40):
        writer.write(np.full((48, 64, 3), (i * 5, 80, 160), np.uint8))
    writer.release()
    stream = _FlakyStream(path.read_bytes())
    source = VideoSource(VideoConfig(device=stream.url, timeout=0.5), backoff=FAST, max_failures=3)
    try:
        frames = []
        while source.health.reconnects == 0:
            frames.append(source.read())
        frames.append(source.read())
    finally:
        source.close()
        stream.close()
    assert stream.connections == 2 and source.health.last_error.endswith("nothing within 0.5 s)")
    before, first_again = frames[-3], frames[-2]  # the last frame of the stalled connection, the first after
    assert [f.seq for f in frames] == list(range(len(frames)))
    assert first_again.pixels[0, 0, 0] <= 6 < before.pixels[0, 0, 0]  # the new connection starts at frame 0


def test_live_sources_are_cameras_and_streams(clip, tmp_path, fake_picamera2):
    assert VideoSource(VideoConfig(device=0)).live and VideoSource(VideoConfig(device="rtsp://cam/1")).live
    assert not VideoSource(VideoConfig(device=str(clip))).live  # every frame of a file is processed
    assert VideoSource(VideoConfig(device=str(clip), realtime=True)).live
    assert not FolderSource(FolderConfig(path=tmp_path)).live
    assert PicameraSource(PicameraConfig()).live


def test_video_name_hides_credentials():
    assert VideoSource(VideoConfig(device="rtsp://admin:secret@10.0.0.5/stream1")).name == "rtsp://10.0.0.5/stream1"


def test_missing_opencv_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(SourceError, match="pip install opencv-python-headless"):
        VideoSource(VideoConfig(device=0))
    with pytest.raises(SourceError, match="pip install opencv-python-headless"):
        FolderSource(FolderConfig(path=tmp_path))


# -- image folder --------------------------------------------------------------------------------

@pytest.fixture
def images(tmp_path):
    """b.png, a.png (both 40x30), c.bmp (20x10), a corrupt d.png and a text file, written out of order."""
    cv2.imwrite(str(tmp_path / "b.png"), np.full((30, 40, 3), (0, 0, 255), np.uint8))
    cv2.imwrite(str(tmp_path / "a.png"), np.full((30, 40, 3), (255, 0, 0), np.uint8))
    cv2.imwrite(str(tmp_path / "c.bmp"), np.full((10, 20, 3), (0, 255, 0), np.uint8))
    (tmp_path / "d.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_folder_frames_in_name_order_skipping_a_corrupt_file(images, caplog):
    with caplog.at_level(logging.WARNING, logger="edgert.sources.folder"), \
            FolderSource(FolderConfig(path=images)) as source:
        frames = list(source)
    assert [f.meta["path"] for f in frames] == [str(images / n) for n in ("a.png", "b.png", "c.bmp")]
    assert [tuple(f.pixels[0, 0]) for f in frames] == [(255, 0, 0), (0, 0, 255), (0, 255, 0)]
    assert [f.size for f in frames] == [(40, 30), (40, 30), (20, 10)]
    assert [f.generation for f in frames] == [0, 0, 1]  # a new size is a new generation
    assert all(f.format == "BGR" and f.stride == f.size[0] * 3 for f in frames)
    skipped = [r for r in caplog.records if "d.png" in r.getMessage()]
    assert len(skipped) == 1 and "\n" not in skipped[0].getMessage()


def test_folder_loops_and_logs_a_bad_file_once(images, caplog):
    with caplog.at_level(logging.WARNING, logger="edgert.sources.folder"), \
            FolderSource(FolderConfig(path=images, loop=True)) as source:
        frames = [source.read() for _ in range(7)]
    names = [f.meta["path"].rsplit("/", 1)[1] for f in frames]
    assert names == ["a.png", "b.png", "c.bmp", "a.png", "b.png", "c.bmp", "a.png"]
    assert [f.seq for f in frames] == list(range(7))
    assert len([r for r in caplog.records if "d.png" in r.getMessage()]) == 1


def test_folder_fps_paces_frames(images):
    with FolderSource(FolderConfig(path=images, fps=20)) as source:
        stamps = [f.timestamp_ns for f in source]
    assert len(stamps) == 3 and stamps[-1] - stamps[0] >= 0.8 * 2 * 50e6


def test_empty_folder_is_an_error_at_open(tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(SourceError, match="no images"):
        FolderSource(FolderConfig(path=tmp_path)).open()
    with pytest.raises(SourceError, match="not a directory"):
        FolderSource(FolderConfig(path=tmp_path / "missing")).open()


def test_folder_of_only_unreadable_images_is_an_error(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"garbage")
    source = FolderSource(FolderConfig(path=tmp_path, loop=True), backoff=FAST, max_failures=2)
    with pytest.raises(SourceError, match="none of the 1 images could be read"):
        source.read()
