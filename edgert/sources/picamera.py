"""`PicameraSource`: a Raspberry Pi camera through picamera2, inference on the ISP-scaled lores stream.

The camera runs two streams: ``main`` at the size snapshots want, and ``lores`` near the model's
input size, which the ISP scales for free. Frames carry the lores YUV420 buffer exactly as picamera2
gives it (``(h * 3 // 2, stride)``), so the preprocessor reads it with no colour conversion first.

Each read is ``capture_request(wait=timeout)``: with picamera2's default (wait forever) a dislodged
cable hangs the loop for good, since libcamera then simply completes no request. On a timeout the
source cancels the pending capture job (``cancel_all_and_flush``; otherwise it would later take a
request nobody releases), stops and closes the camera, and raises `SourceError`; the `Source` base
then reopens it with backoff.
"""
from __future__ import annotations

import concurrent.futures
import importlib
import logging
import threading
import time
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from edgert.core.errors import FrameError, SourceError, one_line
from edgert.core.frame import Frame
from edgert.core.settings import Section
from edgert.sources.base import Backoff, Source

log = logging.getLogger(__name__)

#: Byte order of picamera2's RGB formats -> index order giving B, G, R (picamera2 names follow
#: libcamera/DRM, so "RGB888" is stored B, G, R).
_TO_BGR = {"RGB888": (0, 1, 2), "BGR888": (2, 1, 0), "XRGB8888": (0, 1, 2), "XBGR8888": (2, 1, 0)}


class PicameraConfig(Section):
    """A Raspberry Pi camera (libcamera through picamera2)."""

    kind: Literal["picamera2"] = Field("picamera2", description="Source kind: a Raspberry Pi camera via picamera2.")
    camera_num: int = Field(0, ge=0, description="Camera index as picamera2 numbers them (0: the first).")
    main_size: tuple[int, int] = Field(
        (1280, 720), description="(width, height) of the main stream, used for snapshots; even numbers.")
    main_format: Literal["RGB888", "BGR888", "XRGB8888", "XBGR8888"] = Field(
        "RGB888", description="Pixel format of the main stream (picamera2 names; RGB888 is stored B,G,R).")
    lores_size: tuple[int, int] = Field(
        (320, 240), description="(width, height) of the lores stream the model sees; near the model input, "
                                "even numbers, no larger than main_size. The ISP scales it for free.")
    lores_format: Literal["YUV420"] = Field(
        "YUV420", description="Pixel format of the lores stream. YUV420 only: Pi 4 requires a YUV lores "
                              "stream, and picamera2 0.3.36 cannot make arrays of NV12.")
    use_case: Literal["preview", "video"] = Field(
        "preview", description="picamera2 configuration: 'preview' (sYCC: BT.601 full range) or 'video' "
                               "(Rec.709 limited from 1280x720 up, SMPTE 170M/BT.601 limited below).")
    buffer_count: int | None = Field(
        None, ge=2, le=16, description="Camera buffers; None: picamera2's default (4 preview, 6 video).")
    controls: dict[str, Any] = Field(
        default_factory=dict, description="libcamera controls passed through, e.g. {FrameRate: 30, "
                                          "ExposureTime: 8000, AnalogueGain: 2.0}.")
    hflip: bool = Field(False, description="Mirror the image horizontally (camera mounted reversed).")
    vflip: bool = Field(False, description="Flip the image vertically (camera mounted upside down).")
    capture_timeout: float | None = Field(
        None, gt=0, description="Seconds to wait for a frame before the camera counts as lost "
                                "(cable dislodged); None: the timeout given to read() (2 s by default).")

    @field_validator("main_size", "lores_size")
    @classmethod
    def _even_size(cls, size: tuple[int, int]) -> tuple[int, int]:
        if size[0] < 2 or size[1] < 2 or size[0] % 2 or size[1] % 2:
            raise ValueError(f"expected even width and height of at least 2, got {size[0]}x{size[1]}")
        return size

    @model_validator(mode="after")
    def _lores_within_main(self) -> PicameraConfig:
        (lw, lh), (mw, mh) = self.lores_size, self.main_size
        if lw > mw or lh > mh:
            raise ValueError(f"lores_size {lw}x{lh} is larger than main_size {mw}x{mh} (picamera2 refuses it)")
        return self


class PicameraSource(Source):
    """Frames from a Raspberry Pi camera: lores YUV420 for the model, main-stream snapshots on request.

    Frames have format ``"YUV420"``, size `PicameraConfig.lores_size` (as the camera configured it),
    the sensor timestamp (``SensorTimestamp``, CLOCK_MONOTONIC ns) and ``meta``:
    ``yuv_range`` (``"full"``/``"limited"``) and ``yuv_matrix`` (``"bt601"``/``"bt709"``) read from
    the colour space the camera was configured with, to pass on to `edgert.preprocess.Preprocessor`;
    ``camera``, ``exposure_us``, ``analogue_gain``; and ``snapshot`` on the frame a snapshot came from.

    Snapshots: copying the main stream costs a full-size memory copy, so it is not done on every
    frame. `request_snapshot` (any thread) makes the next read also copy the main stream of the
    same request; `snapshot` returns the newest such image as BGR.
    """

    Config = PicameraConfig

    def __init__(self, config: PicameraConfig, backoff: Backoff = Backoff(),  # noqa: B008 - frozen
                 max_failures: int | None = None):
        super().__init__(backoff=backoff, max_failures=max_failures)
        self.config = config
        self.name = f"camera {config.camera_num}"
        self._picamera2 = _import("picamera2")
        self._libcamera = _import("libcamera")
        self._camera = None
        self._first: Frame | None = None
        self._read_timeout = 2.0
        self._lores_size = tuple(config.lores_size)
        self._meta: dict = {}
        self._snapshot_wanted = threading.Event()
        self._snapshot: np.ndarray | None = None
        self._snapshot_seq = -1

    # -- Source ---------------------------------------------------------------------------------
    def _open(self) -> None:
        cfg = self.config
        try:
            camera = self._picamera2.Picamera2(cfg.camera_num)
        except Exception as exc:  # RuntimeError or IndexError, by picamera2 version
            found = len(self._picamera2.Picamera2.global_camera_info())
            raise SourceError(f"{self.name}: cannot open ({found} camera(s) attached): {one_line(exc)}") from exc
        self._camera = camera
        create = (camera.create_preview_configuration if cfg.use_case == "preview"
                  else camera.create_video_configuration)
        options = {"main": {"format": cfg.main_format, "size": tuple(cfg.main_size)},
                   "lores": {"format": cfg.lores_format, "size": tuple(cfg.lores_size)},
                   "controls": dict(cfg.controls),
                   "transform": self._libcamera.Transform(hflip=int(cfg.hflip), vflip=int(cfg.vflip))}
        if cfg.buffer_count is not None:
            options["buffer_count"] = cfg.buffer_count
        camera.configure(create(**options))
        configured = camera.camera_configuration()
        self._lores_size = tuple(configured["lores"]["size"])
        if self._lores_size != tuple(cfg.lores_size):
            log.warning("%s: lores stream is %dx%d (asked for %dx%d)", self.name, *self._lores_size, *cfg.lores_size)
        yuv_range, yuv_matrix = self._yuv_encoding(configured.get("colour_space"))
        self._meta = {"camera": cfg.camera_num, "yuv_range": yuv_range, "yuv_matrix": yuv_matrix}
        camera.start()  # show_preview=False: picamera2's NULL-preview thread runs the request loop
        # A camera whose cable is out still opens and starts; only a frame shows it works, and the
        # Source base counts a successful open as recovered. So the open waits for the first frame.
        self._first = self._capture(self.config.capture_timeout or self._read_timeout)
        log.info("%s: started, lores %dx%d YUV420 (%s, %s), main %dx%d %s", self.name, *self._lores_size,
                 yuv_range, yuv_matrix, *configured["main"]["size"], configured["main"]["format"])

    def _read(self, timeout: float) -> Frame:
        self._read_timeout = timeout
        first, self._first = self._first, None
        return first if first is not None else self._capture(self.config.capture_timeout or timeout)

    def _capture(self, wait: float) -> Frame:
        camera = self._camera
        try:
            request = camera.capture_request(wait=wait)
        except concurrent.futures.TimeoutError:
            self._abandon(camera)
            raise SourceError(f"{self.name}: no frame within {wait:.1f} s (cable dislodged?)") from None
        try:
            lores = request.make_array("lores")
            metadata = request.get_metadata()
            main = request.make_array("main") if self._snapshot_wanted.is_set() else None
        finally:
            request.release()
        w, h = self._lores_size
        if lores.ndim != 2 or lores.shape[0] != h * 3 // 2 or lores.shape[1] < w:
            raise FrameError(f"{self.name}: lores array {lores.shape} is not YUV420 {w}x{h} (h*3/2 rows of stride)")
        # CLOCK_MONOTONIC on the Pi: picamera2's own flush compares it with time.monotonic_ns().
        stamp = metadata.get("SensorTimestamp")
        seq, generation = self._next_stamps("YUV420", self._lores_size)
        meta = dict(self._meta, exposure_us=metadata.get("ExposureTime"), analogue_gain=metadata.get("AnalogueGain"))
        if main is not None:
            self._snapshot_wanted.clear()
            self._snapshot, self._snapshot_seq = self._to_bgr(main), seq
            meta["snapshot"] = self._snapshot
        return Frame(pixels=lores, format="YUV420", size=self._lores_size, stride=lores.shape[1],
                     timestamp_ns=int(stamp) if stamp else time.monotonic_ns(), seq=seq, generation=generation,
                     meta=meta)

    def _close(self) -> None:
        camera, self._camera = self._camera, None
        self._first = None
        if camera is not None:
            self._abandon(camera)

    # -- snapshots ------------------------------------------------------------------------------
    def request_snapshot(self) -> None:
        """Make the next frame also copy the main stream (safe from any thread)."""
        self._snapshot_wanted.set()

    def snapshot(self) -> np.ndarray | None:
        """The newest main-stream image taken on request, as BGR ``(h, w, 3)``, or ``None`` yet."""
        return self._snapshot

    @property
    def snapshot_seq(self) -> int:
        """Sequence number of the frame `snapshot` came from (-1: none yet)."""
        return self._snapshot_seq

    # -- helpers --------------------------------------------------------------------------------
    def _abandon(self, camera) -> None:
        """Cancel pending capture jobs, then stop and close (the order picamera2 documents)."""
        for step in (camera.cancel_all_and_flush, camera.stop, camera.close):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - a lost camera may fail to stop; close anyway
                log.debug("%s: %s failed: %s", self.name, step.__name__, exc)
        if camera is self._camera:
            self._camera = None

    def _to_bgr(self, main: np.ndarray) -> np.ndarray:
        order = _TO_BGR[self.config.main_format]
        if order == (0, 1, 2) and main.shape[2] == 3:
            return main  # RGB888 is already B, G, R and make_array gave a private copy
        return np.ascontiguousarray(main[..., list(order)])

    def _yuv_encoding(self, colour_space) -> tuple[str, str]:
        """("full"|"limited", "bt601"|"bt709") of the configured colour space."""
        cs = self._libcamera.ColorSpace
        if colour_space is None:  # USB cameras may report none; picamera2's defaults otherwise
            if self.config.use_case == "preview":
                return "full", "bt601"
            w, h = self.config.main_size
            return "limited", "bt709" if w >= 1280 and h >= 720 else "bt601"
        matrices = {cs.YcbcrEncoding.Rec601: "bt601", cs.YcbcrEncoding.Rec709: "bt709"}
        if colour_space.ycbcrEncoding not in matrices:
            raise SourceError(f"{self.name}: colour space {colour_space} has a YUV matrix edgert cannot decode "
                              "(expected Rec.601 or Rec.709)")
        yuv_range = "full" if colour_space.range == cs.Range.Full else "limited"
        return yuv_range, matrices[colour_space.ycbcrEncoding]


def _import(module: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise SourceError(f"{module} is not installed: the Raspberry Pi camera needs picamera2 and libcamera "
                          "(sudo apt install python3-picamera2; in a venv use --system-site-packages)") from exc
