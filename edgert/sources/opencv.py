"""`VideoSource`: OpenCV VideoCapture - a USB camera, an RTSP/HTTP stream or a video file.

What a failed read means depends on the device: a file has ended (``None``, or it rewinds with
``loop``), while a camera or a stream has failed (`SourceError`, and the `Source` base reopens it
with backoff).

A dead network stream must not hang the loop: OpenCV's FFmpeg (and GStreamer) backend waits 30 s by
default, so streams and files are opened with ``CAP_PROP_OPEN_TIMEOUT_MSEC`` and
``CAP_PROP_READ_TIMEOUT_MSEC`` set to `VideoConfig.timeout` (its interrupt callback then aborts the
blocked call and ``read`` fails). Other backends refuse those open parameters, and the V4L2 backend
bounds each read itself (select() with a 10 s timeout, ``OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT``).

Timestamps are ``time.monotonic_ns()`` when the grab returns: ``CAP_PROP_POS_MSEC`` is a position in
the stream, not a clock the rest of the pipeline can compare with.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Literal

from pydantic import Field

from edgert.core.errors import SourceError
from edgert.core.frame import Frame
from edgert.core.settings import Section
from edgert.sources.base import Backoff, Source

log = logging.getLogger(__name__)

#: Backends that take the open/read timeout parameters.
_TIMEOUT_APIS = ("FFMPEG", "GSTREAMER")


def import_cv2():
    """The cv2 module, or `SourceError` saying how to install it (OpenCV is the optional ``kiosk`` extra)."""
    try:
        import cv2
    except ImportError as exc:
        raise SourceError("OpenCV is not installed: pip install opencv-python-headless "
                          "(or the edgert[kiosk] extra)") from exc
    return cv2


class VideoConfig(Section):
    """A camera or stream OpenCV can open: USB index, /dev/videoN, RTSP/HTTP URL or video file."""

    kind: Literal["opencv"] = Field("opencv", description="Source kind: OpenCV VideoCapture.")
    device: int | str = Field(
        0, description="USB camera index (0) or /dev/videoN, an rtsp:// or http(s):// URL, or a video file path.")
    loop: bool = Field(False, description="Video files: start again at the end instead of ending.")
    realtime: bool = Field(
        False, description="Video files: deliver frames at the file's frame rate instead of as fast as read.")
    width: int | None = Field(None, gt=0, description="USB cameras: requested frame width (None: the driver's).")
    height: int | None = Field(None, gt=0, description="USB cameras: requested frame height (None: the driver's).")
    fps: float | None = Field(None, gt=0, description="USB cameras: requested frame rate (None: the driver's).")
    fourcc: str | None = Field(
        None, min_length=4, max_length=4,
        description="USB cameras: requested pixel format, e.g. 'MJPG' (full HD at 30 fps over USB 2).")
    api: Literal["ANY", "V4L2", "FFMPEG", "GSTREAMER"] = Field(
        "ANY", description="OpenCV capture backend; ANY: FFMPEG for URLs and files, OpenCV's choice for cameras.")
    timeout: float = Field(
        5.0, gt=0, description="Seconds a stream may take to open or to deliver a frame (FFMPEG/GStreamer).")


class VideoSource(Source):
    """Frames from OpenCV VideoCapture, as BGR ``(h, w, 3)`` arrays.

    ``meta`` holds ``device`` and, for files, ``pos_msec`` (the position in the file).
    """

    Config = VideoConfig

    def __init__(self, config: VideoConfig, backoff: Backoff = Backoff(),  # noqa: B008 - frozen
                 max_failures: int | None = None):
        super().__init__(backoff=backoff, max_failures=max_failures)
        self.config = config
        self._cv2 = import_cv2()
        self._target, self._device_kind = _classify(config.device)
        self.name = _describe(self._target, self._device_kind)
        # A file read as fast as possible gives every frame; cameras, streams and paced files run on.
        self.live = self._device_kind != "file" or config.realtime
        self._capture = None
        self._frame_period_ns = 0
        self._next_due_ns = 0
        self._frames_since_open = 0
        self._first = None

    # -- Source ---------------------------------------------------------------------------------
    def _open(self) -> None:
        if self._device_kind == "file" and not Path(self._target).is_file():
            raise SourceError(f"{self.name}: no such video file")
        self._capture = self._open_capture()
        if self._device_kind == "camera":
            self._request_camera_settings()
        fps = self._capture.get(self._cv2.CAP_PROP_FPS) if self.config.realtime else 0.0
        self._frame_period_ns = int(1e9 / fps) if fps and fps > 0 else 0
        self._next_due_ns = 0
        if self._device_kind != "file":
            # A stream can open and then deliver nothing; the Source base counts a successful open
            # as recovered, so a camera or stream is open only once it gave a frame.
            ok, image, stamp = self._grab()
            if not ok:
                raise SourceError(f"{self.name}: opened but gave no frame within {self.config.timeout:g} s")
            self._first = (image, stamp)

    def _read(self, timeout: float) -> Frame | None:
        if self._first is not None:
            (image, stamp), self._first = self._first, None
            return self._frame(image, stamp)
        self._pace()
        ok, image, stamp = self._grab()
        if not ok and self._device_kind == "file":
            if not self.config.loop or self._frames_since_open == 0:
                return None
            log.info("%s: end of file, starting again", self.name)
            self._capture.release()
            self._capture = self._open_capture()
            ok, image, stamp = self._grab()
            if not ok:
                return None
        if not ok:
            raise SourceError(f"{self.name}: no frame (stream dropped, or nothing within {self.config.timeout:g} s)")
        return self._frame(image, stamp)

    def _frame(self, image, stamp: int) -> Frame:
        h, w = image.shape[:2]
        seq, generation = self._next_stamps("BGR", (w, h))
        meta = {"device": self._target}
        if self._device_kind == "file":
            meta["pos_msec"] = self._capture.get(self._cv2.CAP_PROP_POS_MSEC)
        return Frame(pixels=image, format="BGR", size=(w, h), stride=image.strides[0], timestamp_ns=stamp,
                     seq=seq, generation=generation, meta=meta)

    def _close(self) -> None:
        capture, self._capture = self._capture, None
        self._first = None
        if capture is not None:
            capture.release()

    # -- helpers --------------------------------------------------------------------------------
    def _open_capture(self):
        cv2 = self._cv2
        api_name = self.config.api
        if api_name == "ANY" and self._device_kind in ("stream", "file"):
            api_name = "FFMPEG"
        api = getattr(cv2, f"CAP_{api_name}")
        params = []
        if api_name in _TIMEOUT_APIS:
            ms = int(self.config.timeout * 1000)
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        capture = cv2.VideoCapture(self._target, api, params)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"{self.name}: cannot open with OpenCV ({api_name} backend)")
        self._frames_since_open = 0
        return capture

    def _request_camera_settings(self) -> None:
        cv2, cfg, capture = self._cv2, self.config, self._capture
        if cfg.fourcc:
            capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*cfg.fourcc))
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, cfg.width), (cv2.CAP_PROP_FRAME_HEIGHT, cfg.height),
                            (cv2.CAP_PROP_FPS, cfg.fps)):
            if value is not None:
                capture.set(prop, value)
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # keep the driver queue short: the newest frame wins
        got = (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if (cfg.width and got[0] != cfg.width) or (cfg.height and got[1] != cfg.height):
            log.warning("%s: camera gives %dx%d (asked for %sx%s)", self.name, *got, cfg.width, cfg.height)

    def _grab(self):
        capture = self._capture
        ok = capture.grab()
        stamp = time.monotonic_ns()
        image = None
        if ok:
            ok, image = capture.retrieve()
            ok = bool(ok) and image is not None and image.size > 0
        if ok:
            self._frames_since_open += 1
        return ok, image, stamp

    def _pace(self) -> None:
        if not self._frame_period_ns:
            return
        now = time.monotonic_ns()
        if self._next_due_ns > now:
            self._stop.wait((self._next_due_ns - now) / 1e9)
            now = time.monotonic_ns()
        self._next_due_ns = max(self._next_due_ns, now) + self._frame_period_ns


def _classify(device: int | str) -> tuple[int | str, str]:
    """``(target, kind)``: what VideoCapture opens and whether it is a "camera", "stream" or "file"."""
    if isinstance(device, int):
        return device, "camera"
    text = device.strip()
    if text.isdigit():
        return int(text), "camera"
    if text.startswith("/dev/video"):
        return text, "camera"
    if "://" in text:
        return text, "stream"
    return text, "file"


def _describe(target: int | str, kind: str) -> str:
    if kind == "camera":
        return f"USB camera {target}"
    if kind == "stream":
        scheme, _, rest = str(target).partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}"  # no credentials in logs
    return f"video {target}"
