"""Fake `picamera2.Picamera2`, written from picamera2 0.3.36 (``picamera2/picamera2.py``).

What it keeps from the real one:
  * opening: an absent camera fails (see `fake_rig.Rig.not_found`); a camera another Picamera2
    holds fails with "Camera __init__ sequence did not complete.";
  * ``create_preview_configuration`` / ``create_video_configuration`` with the real signatures and
    defaults (sYCC for preview; video picks SMPTE 170M below 1280x720, Rec.709 from there); stream
    keys other than format/size/stride/preserve_ar raise ValueError;
  * ``configure`` checks (``check_camera_config``): sizes must be even tuples, lores no larger than
    main, lores YUV on VC4, known formats and controls; "Camera must be stopped before configuring";
  * the request life cycle: ``buffer_count`` buffers; the event loop keeps the newest completed
    request when ``queue`` is on; a request held by the application keeps its buffer, so holding
    them all stalls the camera; ``release()`` is reference counted;
  * jobs: a capture before ``start()`` (no event loop) never completes; ``wait=None``/``True``
    blocks forever, a number raises ``concurrent.futures.TimeoutError``, and the timed-out job stays
    queued until ``cancel_all_and_flush()``.
What it adds: a rendered scene instead of a sensor (`fake_rig.Rig.scene`), converted to YUV with
the configured colour space, and a thread that plays the camera.
"""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import libcamera
import numpy as np

from .fake_rig import quadrant_scene, rig
from .fake_sensor import RGB_FORMATS, render_buffer, stride_and_size
from .job import Job
from .request import CompletedRequest

YUV_FORMATS = {"NV21", "NV12", "YUV420", "YVU420", "YVYU", "YUYV", "UYVY", "VYUY"}
RAW_FORMATS = {"SBGGR10_CSI2P", "SRGGB10_CSI2P", "BGGR16_PISP_COMP1", "RGGB16_PISP_COMP1"}
#: Formats the fake can render; other valid picamera2 formats configure but give no frames' arrays.
RENDERED = RGB_FORMATS | {"YUV420"}

CONTROLS = {
    "AeEnable": (False, True, True), "AwbEnable": (False, True, True), "AnalogueGain": (1.0, 16.0, 1.0),
    "ExposureTime": (26, 220417486, 20000), "ExposureValue": (-8.0, 8.0, 0.0), "Brightness": (-1.0, 1.0, 0.0),
    "Contrast": (0.0, 32.0, 1.0), "Saturation": (0.0, 32.0, 1.0), "Sharpness": (0.0, 16.0, 1.0),
    "ColourGains": (0.0, 32.0, None), "FrameDurationLimits": (33333, 220000000, 33333),
    "NoiseReductionMode": (0, 4, 0), "ScalerCrop": ((0, 0, 64, 64), (0, 0, 4608, 2592), (0, 0, 4608, 2592)),
    "AfMode": (0, 2, 0), "LensPosition": (0.0, 15.0, 1.0),
}
VIRTUAL_CONTROLS = {"FrameRate": "FrameDurationLimits"}
NOISE_REDUCTION = {"Off": 0, "Fast": 1, "HighQuality": 2, "Minimal": 3}
SENSOR_RESOLUTION = (4608, 2592)
SENSOR_FORMAT = "BGGR16_PISP_COMP1"


class Picamera2:
    """The fake camera. Test-only members start with ``fake_``."""

    platform = "PISP"

    @staticmethod
    def global_camera_info() -> list:
        return [dict(c) for c in rig.cameras]

    def __init__(self, camera_num=0, verbose_console=None, tuning=None, allocator=None):
        self._preview = None
        self.is_open = False
        self._reset_flags()
        Picamera2.platform = rig.platform
        infos = self.global_camera_info()
        if rig.not_found == "index":
            camera_num = infos[camera_num]["Num"]  # 0.3.36: IndexError when there is no such camera
        else:
            if not infos:
                raise RuntimeError("Camera(s) not found (Do not forget to disable legacy camera with raspi-config).")
            if not 0 <= camera_num < len(infos):
                raise RuntimeError(f"No camera number {camera_num} found")
            camera_num = infos[camera_num]["Num"]
        self.camera_idx = camera_num
        self.request_lock = threading.Lock()
        rig.instances.append(self)
        if camera_num in rig.opened:
            raise RuntimeError("Camera __init__ sequence did not complete.")
        rig.opened[camera_num] = self
        self.camera = SimpleNamespace(id=infos[camera_num]["Id"])
        self.camera_ctrl_info = {name: (name, limits) for name, limits in CONTROLS.items()}
        self.camera_properties_ = {"Model": infos[camera_num]["Model"], "ColorFilterArrangement": 0,
                                   "PixelArraySize": SENSOR_RESOLUTION}
        self.sensor_resolution, self.sensor_format = SENSOR_RESOLUTION, SENSOR_FORMAT
        self.is_open = True

    def _reset_flags(self):
        self.camera = None
        self.camera_ctrl_info = {}
        self.camera_config = {}
        self.streams = []
        self.stream_map = {}
        self.started = False
        self.stop_count = 0
        self.configure_count = 0
        self.frames = 0
        self._job_list = []
        self.completed_requests = []
        self.lock = threading.Lock()
        self._event_loop_running = False
        self._max_queue_len = 0
        self._held = set()
        self._rendered = {}
        self._loop_stop = threading.Event()
        self._wake = threading.Event()
        self._loop = None
        self.controls = {}

    # -- properties -----------------------------------------------------------------------------
    @property
    def camera_properties(self) -> dict:
        return {} if self.camera is None else self.camera_properties_

    @property
    def camera_controls(self) -> dict:
        return {name: limits for name, (_, limits) in self.camera_ctrl_info.items()}

    def _is_rpi_camera(self) -> bool:
        return "ColorFilterArrangement" in self.camera_properties

    # -- configurations -------------------------------------------------------------------------
    @staticmethod
    def _make_initial_stream_config(stream_config, updates, ignore_list=()):
        if updates is None:
            return None
        valid = ("format", "size", "stride", "preserve_ar")
        for key, value in updates.items():
            if key in valid:
                stream_config[key] = value
            elif key not in ignore_list:
                raise ValueError(f"Bad key {key!r}: valid stream configuration keys are {valid}")
        return stream_config

    @staticmethod
    def align_stream(stream_config, optimal=True) -> None:
        align = (64 if Picamera2.platform == "PISP" else 32) if optimal else 2
        if optimal and stream_config["format"] in ("YUV420", "YVU420"):
            align *= 2
        elif optimal and stream_config["format"] in ("XBGR8888", "XRGB8888"):
            align //= 2
        size = stream_config["size"]
        stream_config["size"] = (size[0] - size[0] % align, size[1] - size[1] % 2)

    def _create(self, main_default, main, lores, raw, transform, colour_space, buffer_count, controls,
                display, encode, queue, sensor, use_case, default_controls):
        if self.camera is None:
            raise RuntimeError("Camera not opened")
        main = self._make_initial_stream_config(dict(main_default), main)
        self.align_stream(main, optimal=False)
        lores = self._make_initial_stream_config({"format": "YUV420", "size": main["size"], "preserve_ar": False},
                                                 lores)
        if lores is not None:
            self.align_stream(lores, optimal=False)
        raw = self._make_initial_stream_config({"format": self.sensor_format, "size": main["size"]}, raw,
                                               ["bit_depth", "crop_limits", "exposure_limits", "fps", "unpacked"])
        config = {"use_case": use_case, "transform": transform, "colour_space": colour_space,
                  "buffer_count": buffer_count, "queue": queue, "main": main, "lores": lores, "raw": raw,
                  "controls": default_controls | controls, "sensor": sensor}
        for key, name in (("display", display), ("encode", encode)):
            if name is not None and config.get(name) is None:
                raise RuntimeError(f"{key.capitalize()} stream {name} was not defined")
        config["display"], config["encode"] = display, encode
        return config

    def create_preview_configuration(self, main={}, lores=None, raw={}, transform=libcamera.Transform(),  # noqa: B006,B008
                                     colour_space=libcamera.ColorSpace.Sycc(), buffer_count=4, controls={},  # noqa: B006,B008
                                     display="main", encode="main", queue=True, sensor={},  # noqa: B006
                                     use_case="preview"):
        defaults = {"NoiseReductionMode": NOISE_REDUCTION["Minimal"], "FrameDurationLimits": (100, 83333)}
        return self._create({"format": "XBGR8888", "size": (640, 480), "preserve_ar": True}, main, lores, raw,
                            transform, colour_space, buffer_count, controls, display, encode, queue, sensor,
                            use_case, defaults)

    def create_video_configuration(self, main={}, lores=None, raw={}, transform=libcamera.Transform(),  # noqa: B006,B008
                                   colour_space=None, buffer_count=6, controls={}, display="main",  # noqa: B006
                                   encode="main", queue=True, sensor={}, use_case="video"):  # noqa: B006
        defaults = {"NoiseReductionMode": NOISE_REDUCTION["Fast"], "FrameDurationLimits": (33333, 33333)}
        config = self._create({"format": "XBGR8888", "size": (1280, 720), "preserve_ar": True}, main, lores, raw,
                              transform, colour_space, buffer_count, controls, display, encode, queue, sensor,
                              use_case, defaults)
        if config["colour_space"] is None:
            w, h = config["main"]["size"]
            small = w < 1280 or h < 720
            config["colour_space"] = libcamera.ColorSpace.Smpte170m() if small else libcamera.ColorSpace.Rec709()
        return config

    def check_stream_config(self, stream_config, name) -> None:
        if type(stream_config) is not dict:
            raise RuntimeError(name + " stream should be a dictionary")
        if "format" not in stream_config:
            raise RuntimeError("format not found in " + name + " stream")
        if "size" not in stream_config:
            raise RuntimeError("size not found in " + name + " stream")
        fmt = stream_config["format"]
        if type(fmt) is not str:
            raise RuntimeError("format in " + name + " stream should be a string")
        if name == "raw":
            if fmt not in RAW_FORMATS:
                raise RuntimeError("Unrecognised raw format " + fmt)
        elif fmt not in YUV_FORMATS and fmt not in RGB_FORMATS and fmt != "MJPEG":
            raise RuntimeError("Bad format " + fmt + " in stream " + name)
        size = stream_config["size"]
        if type(size) is not tuple or len(size) != 2:
            raise RuntimeError("size in " + name + " stream should be (width, height)")
        if size[0] % 2 or size[1] % 2:
            raise RuntimeError("width and height should be even")

    def check_camera_config(self, camera_config) -> None:
        for name in ("colour_space", "transform", "main", "lores", "raw"):
            if name not in camera_config:
                raise RuntimeError(f"{name!r} key expected in camera configuration")
        if not isinstance(camera_config["colour_space"], libcamera.ColorSpace):
            raise RuntimeError("Colour space has incorrect type")  # noqa: TRY004 - as picamera2
        if not isinstance(camera_config["transform"], libcamera.Transform):
            raise RuntimeError("Transform has incorrect type")  # noqa: TRY004 - as picamera2
        sensor = camera_config.get("sensor")
        if sensor is not None and set(sensor) - {"bit_depth", "output_size"}:
            raise RuntimeError(f"Unexpected keys {set(sensor) - {'bit_depth', 'output_size'}} in sensor configuration")
        self.check_stream_config(camera_config["main"], "main")
        if camera_config["lores"] is not None:
            self.check_stream_config(camera_config["lores"], "lores")
            main_w, main_h = camera_config["main"]["size"]
            lores_w, lores_h = camera_config["lores"]["size"]
            if lores_w > main_w or lores_h > main_h:
                raise RuntimeError("lores stream dimensions may not exceed main stream")
            if Picamera2.platform == "VC4" and camera_config["lores"]["format"] not in YUV_FORMATS:
                raise RuntimeError("lores stream must be YUV")
        if camera_config["raw"] is not None:
            self.check_stream_config(camera_config["raw"], "raw")

    def configure(self, camera_config=None) -> None:
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        if camera_config is None or isinstance(camera_config, str):
            make = {"video": self.create_video_configuration}.get(camera_config, self.create_preview_configuration)
            camera_config = make()
        if not isinstance(camera_config, dict):
            raise TypeError("Invalid type for `camera_config` given")
        camera_config = camera_config.copy()
        if camera_config["raw"] is not None and camera_config["raw"].get("size") is None:
            camera_config["raw"]["size"] = camera_config["main"]["size"]
        self.camera_config = {}
        self.check_camera_config(camera_config)
        controls = {}
        for name, value in camera_config["controls"].items():
            real = VIRTUAL_CONTROLS.get(name, name)
            if real not in self.camera_ctrl_info:
                raise RuntimeError(f"Control {real} is not advertised by libcamera")
            controls[real] = value
        for name in ("main", "lores", "raw"):
            stream = camera_config[name]
            if stream is not None:
                stream = camera_config[name] = dict(stream)
                layout = stride_and_size(Picamera2.platform, stream["format"], stream["size"])
                stream["stride"], stream["framesize"] = layout
        self._max_queue_len = 1 if camera_config["queue"] and camera_config["buffer_count"] > 1 else 0
        self.stream_map = {name: (name if camera_config[name] is not None else None)
                           for name in ("main", "lores", "raw")}
        self.controls = controls
        self.camera_config = camera_config
        self.configure_count += 1
        self._rendered = {}

    def camera_configuration(self) -> dict:
        return self.camera_config

    def stream_configuration(self, name="main") -> dict:
        return self.camera_config[name]

    # -- running --------------------------------------------------------------------------------
    def start(self, config=None, show_preview=False) -> None:
        if not self.camera_config and config is None:
            config = "preview"
        if config is not None:
            self.configure(config)
        if not self.camera_config:
            raise RuntimeError("Camera has not been configured")
        if show_preview is not None and not self._event_loop_running:
            self._event_loop_running = True  # the NULL preview's thread drives the camera
            self._loop_stop.clear()
            self._loop = threading.Thread(target=self._event_loop, name="fake-picamera2", daemon=True)
            self._loop.start()
        self.started = True

    def stop(self) -> None:
        if not self.started:
            return
        with self.lock:
            self.stop_count += 1
            self.started = False
            stale, self.completed_requests = self.completed_requests, []
        for request in stale:
            request.release()
        self._held.clear()

    def close(self) -> None:
        if self._event_loop_running:
            self._loop_stop.set()
            self._wake.set()
            if self._loop is not threading.current_thread():
                self._loop.join()
            self._event_loop_running = False
        if not self.is_open:
            return
        self.stop()
        rig.opened.pop(self.camera_idx, None)
        rig.camera_closed(self.camera_idx)
        self.is_open = False
        self.camera = None
        self.camera_ctrl_info = {}
        self.camera_config = {}
        self.stream_map = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def set_controls(self, controls) -> None:
        for name, value in controls.items():
            real = VIRTUAL_CONTROLS.get(name, name)
            if real not in self.camera_ctrl_info:
                raise RuntimeError(f"Control {real} is not advertised by libcamera")
            self.controls[real] = value

    def cancel_all_and_flush(self) -> None:
        with self.lock:
            for job in self._job_list:
                job.cancel()
            self._job_list = []

    # -- jobs and captures ----------------------------------------------------------------------
    def dispatch_functions(self, functions, wait, signal_function=None, immediate=False):
        if wait is None:
            wait = signal_function is None
        timeout = None if wait is True else wait
        with self.lock:
            only_job = not self._job_list
            job = Job(functions, signal_function)
            self._job_list.append(job)
            if only_job and (self.completed_requests or immediate) and self._event_loop_running:
                self._wake.set()
        return job.get_result(timeout=timeout) if wait else job

    def wait(self, job, timeout=None):
        return job.get_result(timeout=timeout)

    def _capture_request_(self):
        if not self.completed_requests:
            return (False, None)
        return (True, self.completed_requests.pop(0))

    def _wait_for_timestamp_(self, timestamp_ns):
        if not timestamp_ns:
            return (True, None)
        while self.completed_requests:
            md = self.completed_requests[0].get_metadata()
            if md["SensorTimestamp"] - 1000 * md["ExposureTime"] >= timestamp_ns:
                return (True, None)
            self.completed_requests.pop(0).release()
        return (False, None)

    def capture_request(self, wait=None, signal_function=None, flush=None):
        if flush is True:
            flush = time.monotonic_ns()
        functions = [lambda: self._wait_for_timestamp_(flush), self._capture_request_]
        return self.dispatch_functions(functions, wait, signal_function)

    def capture_array(self, name="main", wait=None, signal_function=None):
        def capture_array_():
            if not self.completed_requests:
                return (False, None)
            return (True, self.completed_requests[0].make_array(name))
        return self.dispatch_functions([capture_array_], wait, signal_function)

    def capture_metadata(self, wait=None, signal_function=None):
        def capture_metadata_():
            if not self.completed_requests:
                return (False, None)
            return (True, self.completed_requests[0].get_metadata())
        return self.dispatch_functions([capture_metadata_], wait, signal_function)

    # -- the "camera" ---------------------------------------------------------------------------
    def fake_requests_held_by_app(self) -> int:
        """Requests the application holds and has not released (the event loop's queued one excluded)."""
        with self.lock:
            return len(self._held) - len(self.completed_requests)

    def _recycle(self, request) -> None:
        self._held.discard(request)

    def _event_loop(self):
        due = time.monotonic() + rig.frame_period
        while not self._loop_stop.is_set():
            woken = self._wake.wait(max(0.0, due - time.monotonic()))
            if self._loop_stop.is_set():
                break
            if woken:
                self._wake.clear()
                self._process_requests([])
                continue
            due = max(due + rig.frame_period, time.monotonic())
            request = self._complete_one()
            if request is not None:
                self._process_requests([request])

    def _complete_one(self):
        with self.lock:
            config = self.camera_config
            if not self.started or rig.is_dislodged(self.camera_idx) or len(self._held) >= config["buffer_count"]:
                return None
            index = self.frames
            self.frames += 1
            exposure_us = int(self.controls.get("ExposureTime") or 10000)
            buffers = {name: self._render(name, index) for name in ("main", "lores")
                       if config[name] is not None and config[name]["format"] in RENDERED}
            metadata = {"SensorTimestamp": time.monotonic_ns() - 2000, "ExposureTime": exposure_us,
                        "AnalogueGain": float(self.controls.get("AnalogueGain") or 1.0), "DigitalGain": 1.0,
                        "FrameDuration": int(rig.frame_period * 1e6), "Lux": 400.0, "ColourTemperature": 5000}
            request = CompletedRequest(SimpleNamespace(buffers=buffers, metadata=metadata), self)
            self._held.add(request)
            return request

    def _render(self, name: str, index: int) -> np.ndarray:
        if rig.scene is None and name in self._rendered:
            return self._rendered[name]
        stream = self.camera_config[name]
        w, h = stream["size"]
        rgb = (rig.scene or quadrant_scene)(w, h, index)
        buffer = render_buffer(rgb, stream["format"], stream["stride"], stream["framesize"],
                                self.camera_config["colour_space"])
        buffer.flags.writeable = False
        self._rendered[name] = buffer
        return buffer

    def _process_requests(self, requests):
        with self.lock:
            for request in requests:
                request.acquire()
            self.completed_requests += requests
            finished = []
            while self._job_list:
                if self._job_list[0].execute():
                    finished.append(self._job_list.pop(0))
                else:
                    break
            for request in requests:
                request.release()
            while len(self.completed_requests) > self._max_queue_len:
                self.completed_requests.pop(0).release()
        for job in finished:
            job.signal()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001,S110 - interpreter shutdown
            pass
