"""The input frames of a bench run: the same frames, in the same order, for every backend.

Frames are made (or read and resized) once before timing starts; their pixel format and size are
what the device's camera would deliver (``--src-format``, ``--src-size``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgert.core.errors import ConfigError
from edgert.core.pixel_formats import pixel_format

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
#: Largest frames a run makes: 8K UHD (a run keeps 16 of them, about 1.6 GB in BGR).
MAX_SRC_SIDE, MAX_SRC_PIXELS = 8192, 7680 * 4320


def _cv2():
    try:
        import cv2
    except ImportError:
        raise ConfigError("bench: reading images or video and converting pixel formats needs OpenCV: "
                          "pip install opencv-python-headless") from None
    return cv2


def synthetic_bgr(size: tuple, count: int, seed: int = 0) -> list:
    """BGR frames with structure a model responds to: gradients, blocks and noise, each different."""
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.ogrid[0:h, 0:w]  # broadcast: no two int64 planes of the frame's size
    frames = []
    for i in range(count):
        f = np.empty((h, w, 3), np.uint8)
        f[..., 0] = (xx * 255 // max(1, w - 1) + 37 * i) % 256
        f[..., 1] = (yy * 255 // max(1, h - 1) + 53 * i) % 256
        f[..., 2] = ((xx + yy) // 8 + 71 * i) % 256
        for _ in range(4):
            bw, bh = int(rng.integers(w // 10 + 1, w // 3 + 2)), int(rng.integers(h // 10 + 1, h // 3 + 2))
            x0, y0 = int(rng.integers(0, max(1, w - bw))), int(rng.integers(0, max(1, h - bh)))
            f[y0:y0 + bh, x0:x0 + bw] = rng.integers(0, 256, 3)
        noise = rng.integers(-8, 9, f.shape)
        frames.append(np.clip(f.astype(np.int16) + noise, 0, 255).astype(np.uint8))
    return frames


def convert(bgr: np.ndarray, fmt: str) -> np.ndarray:
    """One BGR frame in another source format (as a camera would deliver it)."""
    pf = pixel_format(fmt)
    if pf.name in ("BGR", "RGB888"):
        return bgr
    cv2 = _cv2()
    if pf.name in ("RGB", "BGR888"):
        return np.ascontiguousarray(bgr[..., ::-1])
    if pf.is_gray:
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    if pf.yuv420 == "I420":
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
    if pf.yuv420 in ("NV12", "NV21"):
        i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
        h, w = bgr.shape[:2]
        u = i420[h:h + h // 4].reshape(h // 2, w // 2)
        v = i420[h + h // 4:].reshape(h // 2, w // 2)
        out = np.empty((h * 3 // 2, w), np.uint8)
        out[:h] = i420[:h]
        chroma = out[h:].reshape(h // 2, w // 2, 2)
        chroma[..., 0], chroma[..., 1] = (u, v) if pf.yuv420 == "NV12" else (v, u)
        return out
    # 4-byte formats: B,G,R,X or R,G,B,X in memory
    rgb_first = pf.rgb_offsets == (0, 1, 2)
    four = np.empty(bgr.shape[:2] + (4,), np.uint8)
    four[..., :3] = bgr[..., ::-1] if rgb_first else bgr
    four[..., 3] = 255
    return four


def load_frames(source: str, size: tuple, fmt: str, count: int = 16) -> list:
    """The frames for a run.

    Args:
        source: "synthetic", a folder of images, or a video file.
        size: ``(width, height)`` the frames are made or resized to.
        fmt: Their source pixel format.
        count: How many distinct frames (they are cycled through).

    Raises:
        ConfigError: the folder has no readable image, the video cannot be read, bad size/format.
    """
    w, h = size
    if w < 2 or h < 2:
        raise ConfigError(f"--src-size: expected WxH of at least 2x2, got {w}x{h}")
    if w > MAX_SRC_SIDE or h > MAX_SRC_SIDE or w * h > MAX_SRC_PIXELS:
        raise ConfigError(f"--src-size: at most {MAX_SRC_SIDE} per side and 7680x4320 pixels in all (8K), "
                          f"got {w}x{h}")
    pf = pixel_format(fmt)
    if pf.yuv420 and (w % 2 or h % 2):
        raise ConfigError(f"--src-size: {pf.name} needs even width and height, got {w}x{h}")
    try:
        return _load(source, (w, h), pf, count)
    except MemoryError:
        raise ConfigError(f"--src-size: not enough memory for {count} frames of {w}x{h}; "
                          f"try a smaller size") from None


def _load(source: str, size: tuple, pf, count: int) -> list:
    w, h = size
    if source == "synthetic":
        bgr = synthetic_bgr(size, count)
    else:
        path = Path(source)
        cv2 = _cv2()
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:count]
            images = [img for img in (cv2.imread(str(p)) for p in files) if img is not None]
            if not images:
                raise ConfigError(f"--source: no readable image in {path}")
        elif path.is_file():
            cap = cv2.VideoCapture(str(path))
            images = []
            while len(images) < count:
                ok, img = cap.read()
                if not ok:
                    break
                images.append(img)
            cap.release()
            if not images:
                raise ConfigError(f"--source: cannot read frames from {path}")
        else:
            raise ConfigError(f"--source: {source!r} is not 'synthetic', a folder or a video file")
        bgr = [cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA) for img in images]
    return [convert(f, pf.name) for f in bgr]
