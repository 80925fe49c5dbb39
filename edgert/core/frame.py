"""`Frame`: one picture from a source, with everything the pipeline needs to know about it."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured frame.

    Attributes:
        pixels: The pixel array, laid out as `format` says (see `edgert.core.pixel_formats`); planar
            4:2:0 formats are one 2-D array of ``h * 3 // 2`` rows.
        format: A source format name (``"BGR"``, ``"NV12"``, ``"YUV420"``, ...).
        size: ``(width, height)`` in pixels.
        stride: Bytes per row of the first (or only) plane.
        timestamp_ns: Capture time in ``CLOCK_MONOTONIC`` nanoseconds: the sensor timestamp where the
            camera gives one, else the time the frame was read.
        seq: Sequence number within the source, counting from 0 and never reused across reconnects.
        generation: The source's configuration generation; it changes when the camera is reopened
            with another size or format, so stale buffers can be told apart.
        meta: Extra facts from the source (``{"label": ...}`` ground truth from a synthetic source).
    """

    pixels: np.ndarray
    format: str
    size: tuple
    stride: int
    timestamp_ns: int
    seq: int
    generation: int = 0
    meta: dict = field(default_factory=dict)


#: OpenCV conversions to BGR by source format (None: the pixels are shown as they are).
_TO_BGR = {"RGB": "COLOR_RGB2BGR", "BGR888": "COLOR_RGB2BGR", "NV12": "COLOR_YUV2BGR_NV12",
           "NV21": "COLOR_YUV2BGR_NV21", "YUV420": "COLOR_YUV2BGR_I420", "I420": "COLOR_YUV2BGR_I420", "GRAY": None}


def frame_as_bgr(frame: Frame) -> np.ndarray:
    """The frame's picture as BGR ``(h, w, 3)`` (for snapshots): the pixels themselves when already BGR."""
    if frame.format in ("BGR", "RGB888"):
        return frame.pixels
    import cv2  # only for snapshots

    name = _TO_BGR.get(frame.format, "COLOR_BGRA2BGR")
    if name is None:
        return frame.pixels
    w, h = frame.size
    pixels = frame.pixels if frame.format not in ("NV12", "NV21") else frame.pixels[:, :w]
    return cv2.cvtColor(pixels, getattr(cv2, name))[:h, :w]
