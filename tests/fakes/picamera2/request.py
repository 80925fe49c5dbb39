"""Fake `picamera2.request.CompletedRequest`: reference-counted, arrays laid out as picamera2 does.

``make_array`` follows ``_make_array_shared`` + copy: RGB888/BGR888 ``(h, w, 3)``, XRGB8888/XBGR8888
``(h, w, 4)``, YUV420 the whole ``(h * 3 // 2, stride)`` buffer, padding and all. After the last
``release()`` the request forgets its configuration, so ``make_array`` raises "Stream ... is not
defined" and ``get_metadata`` fails its assertion, as the real one does.
"""
from __future__ import annotations

import numpy as np


class CompletedRequest:
    def __init__(self, request, picam2):
        self.request = request
        self.ref_count = 1
        self.lock = picam2.request_lock
        self.picam2 = picam2
        self.stop_count = picam2.stop_count
        self.configure_count = picam2.configure_count
        self.config = picam2.camera_config.copy()
        self.stream_map = picam2.stream_map.copy()

    def acquire(self) -> None:
        with self.lock:
            if self.ref_count == 0:
                raise RuntimeError("CompletedRequest: acquiring lock with ref_count 0")
            self.ref_count += 1

    def release(self) -> None:
        with self.lock:
            self.ref_count -= 1
            if self.ref_count < 0:
                raise RuntimeError("CompletedRequest: lock now has negative ref_count")
            if self.ref_count == 0:
                assert self.request is not None
                self.picam2._recycle(self)  # back to the camera (or just freed if it was stopped meanwhile)
                self.request = None
                self.config = {}
                self.stream_map = {}

    def make_buffer(self, name: str) -> np.ndarray:
        if self.stream_map.get(name) is None:
            raise RuntimeError(f"Stream {name!r} is not defined")
        return np.array(self.request.buffers[name], dtype=np.uint8)

    def get_metadata(self) -> dict:
        assert self.request is not None
        return dict(self.request.metadata)

    def make_array(self, name: str) -> np.ndarray:
        config = self.config.get(name, None)
        if config is None:
            raise RuntimeError(f"Stream {name!r} is not defined")
        array = _make_array_shared(self.request.buffers[name], config)
        return np.copy(array) if array.data.c_contiguous else np.ascontiguousarray(array)


def _make_array_shared(buffer: np.ndarray, config: dict) -> np.ndarray:
    fmt = config["format"]
    w, h = config["size"]
    stride = config["stride"]
    if fmt in ("BGR888", "RGB888", "XBGR8888", "XRGB8888"):
        bpp = 3 if fmt in ("BGR888", "RGB888") else 4
        array = buffer
        if stride != w * bpp:
            array = array.reshape((h, stride))[:, : w * bpp]
        return array.reshape((h, w, bpp))
    if fmt in ("YUV420", "YVU420"):
        return buffer.reshape((h * 3 // 2, stride))
    raise RuntimeError("Format " + fmt + " not supported")
