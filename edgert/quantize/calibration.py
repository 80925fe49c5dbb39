"""The calibration set, fed through edgert's `Preprocessor`: an image folder, a video, or ``.npy`` tensors.

A calibration folder holds images directly, or one subfolder of images per class (the `ImageFolder`
layout; the plan asks that calibration "cover all classes"), drawn evenly across the classes. A video
file (`VIDEO_SUFFIXES`) gives frames evenly spaced over its length. Either way each picture becomes the
model-ready float tensor that the model card's preprocessing makes of it on the device, so the ranges
the quantiser measures are those the device will feed. ``.npy`` tensors (one file of ``(N, *input)``
or ``(*input)``, or a folder of such files) are taken as already model-ready float32 input.

Samples are interleaved across classes (one of each class in turn): with ``--method moving-average``
ai-edge-quantizer keeps a moving average of each tensor's min/max over the samples, which a
class-by-class order would bias toward the last classes (min/max over all samples, the default,
does not depend on the order).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgert.core.errors import ConfigError, one_line
from edgert.core.tensor import TensorSpec
from edgert.models.cards import PREPROCESS_KEYS
from edgert.preprocess import Preprocessor
from edgert.sources.folder import IMAGE_SUFFIXES
from edgert.sources.opencv import import_cv2

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")
_SRC_FORMAT = {1: "GRAY", 3: "BGR"}


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _images_in(folder: Path) -> list:
    return sorted((p for p in folder.iterdir() if _visible(p) and p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                  key=lambda p: p.name)


def list_images(folder) -> tuple:
    """The images of a calibration folder: ``(classes, per_class_files)``.

    Images directly in `folder` form one class named ``""``; each visible subfolder with images is a class.

    Raises:
        ConfigError: `folder` is not a readable directory, or holds no image file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"calibration {folder}: not a directory")
    try:
        groups = {"": _images_in(folder)}
        for sub in sorted((p for p in folder.iterdir() if p.is_dir() and _visible(p)), key=lambda p: p.name):
            groups[sub.name] = _images_in(sub)
    except OSError as exc:
        raise ConfigError(f"calibration {folder}: unreadable: {exc.strerror or exc}") from None
    groups = {name: files for name, files in groups.items() if files}
    if not groups:
        raise ConfigError(f"calibration {folder}: no images ({', '.join(IMAGE_SUFFIXES)}), "
                          "directly or in class subfolders")
    return tuple(groups), tuple(tuple(files) for files in groups.values())


def select_evenly(per_class: tuple, count: int | None) -> list:
    """At most `count` files (all with None), as equal a share per class as the classes allow, interleaved.

    Within a class the files taken are spread evenly over its sorted list; the result takes one
    file of each class in turn.
    """
    sizes = [len(files) for files in per_class]
    total = sum(sizes)
    count = total if count is None else min(int(count), total)
    quota = [0] * len(sizes)
    left = count
    while left > 0:  # hand out one per class in turn, skipping classes already used up
        for c in range(len(sizes)):
            if left and quota[c] < sizes[c]:
                quota[c] += 1
                left -= 1
    picked = []
    for files, q in zip(per_class, quota):
        idx = np.linspace(0, len(files) - 1, q).round().astype(int) if q else []
        picked.append([files[i] for i in idx])
    return [group[i] for i in range(max(quota, default=0)) for group in picked if i < len(group)]


def input_channels(spec: TensorSpec) -> int:
    """Channels of an image input (NHWC or NCHW)."""
    shape = spec.shape
    return int(shape[-1]) if shape[-1] in (1, 3) else int(shape[-3])


@dataclass
class CalibrationSummary:
    """What the calibration saw (goes into the int8 model's card).

    Attributes:
        folder: The calibration folder (or video or ``.npy`` file).
        requested: Samples asked for (None: all).
        found: Image files in the folder (video frames, tensors).
        used: Samples fed to the quantiser.
        skipped: Files that could not be decoded.
        per_class: Images used per class name (``""`` for images directly in the folder).
        kind: "images", "video" or "npy".
    """

    folder: str
    requested: int | None
    found: int
    used: int = 0
    skipped: int = 0
    per_class: dict = field(default_factory=dict)
    kind: str = "images"

    def as_dict(self) -> dict:
        """A JSON-ready dict."""
        return {"kind": self.kind, "folder": self.folder, "requested": self.requested, "found": self.found,
                "used": self.used, "skipped": self.skipped, "per_class": dict(self.per_class)}


def _check_samples(samples) -> None:
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
        raise ConfigError(f"--samples: expected a positive number of images, got {samples!r}")


def calibration_set(spec: TensorSpec, path, samples: int | None = None, preprocess: dict | None = None,
                    min_samples: int = 1):
    """The calibration reader for `path`: a `VideoCalibration` for a video file, an `NpyCalibration` for
    ``.npy`` tensors (a file, or a folder holding only ``.npy`` files), else a `CalibrationReader`."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
        return VideoCalibration(spec, path, samples, preprocess, min_samples)
    if (path.is_file() and path.suffix.lower() == ".npy") or (path.is_dir() and _only_npy(path)):
        return NpyCalibration(spec, path, samples, min_samples)
    if path.is_file():
        raise ConfigError(f"calibration {path}: expected an image folder, a video ({', '.join(VIDEO_SUFFIXES)}) "
                          "or .npy tensors")
    return CalibrationReader(spec, path, samples, preprocess, min_samples)


def _only_npy(folder: Path) -> bool:
    try:
        names = [p for p in folder.iterdir() if _visible(p) and p.is_file()]
    except OSError:
        return False
    return bool(names) and all(p.suffix.lower() == ".npy" for p in names)


def _too_few(where, n: int, min_samples: int, what: str = "sample(s)") -> ConfigError:
    return ConfigError(f"calibration {where}: {n} {what} for a model of {min_samples} classes: "
                       "give at least one per class")


class NpyCalibration:
    """Model-ready float32 tensors from ``.npy`` files, taken as they are (no preprocessing).

    Each file holds one tensor of the model's input shape, or a stack ``(N, *shape[1:])`` / ``(N, *shape)``.
    `samples` draws evenly over all the tensors.

    Raises:
        ConfigError: an unreadable file, a tensor of another shape, non-finite values, too few tensors.
    """

    def __init__(self, spec: TensorSpec, path, samples: int | None = None, min_samples: int = 1):
        _check_samples(samples)
        self.spec, self.path = spec, Path(path)
        files = [self.path] if self.path.is_file() else sorted(self.path.glob("*.npy"))
        shape = tuple(int(v) for v in spec.shape)
        stacks = []
        for f in files:
            try:
                a = np.load(f, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"calibration {f}: not a readable .npy file ({one_line(exc)})") from None
            if a.shape == shape or a.shape == shape[1:]:
                a = a.reshape((1,) + shape)
            elif a.shape[1:] == shape[1:] or a.shape[1:] == shape:
                a = a.reshape((-1,) + shape)
            else:
                raise ConfigError(f"calibration {f}: tensors of shape {a.shape}; the model takes {shape} "
                                  f"(a stack of them: (N, {', '.join(map(str, shape[1:]))}))")
            if a.dtype.kind not in "fiu" or not np.all(np.isfinite(a)):
                raise ConfigError(f"calibration {f}: expected finite numbers, got {a.dtype} with NaN/inf or not numeric")
            stacks.append(a.astype(np.float32))
        self.tensors = np.concatenate(stacks) if stacks else np.zeros((0,) + shape, np.float32)
        found = len(self.tensors)
        count = found if samples is None else min(samples, found)
        self.index = np.linspace(0, found - 1, count).round().astype(int) if count else np.zeros(0, int)
        if len(self.index) < min_samples:
            raise _too_few(self.path, len(self.index), min_samples, "tensor(s)")
        if samples is not None and found < samples:
            log.warning("calibration %s: %d tensors asked for, %d found; calibrating with %d", self.path,
                        samples, found, found)
        self.summary = CalibrationSummary(str(self.path), samples, found, kind="npy")

    def __len__(self) -> int:
        return len(self.index)

    def __iter__(self):
        """Yield each tensor (a fresh float32 array of the model's input shape)."""
        self.summary.used = 0
        for i in self.index:
            self.summary.used += 1
            yield np.array(self.tensors[i])


class VideoCalibration:
    """Frames of a video, evenly spaced over it, through the model card's `Preprocessor`.

    Raises:
        ConfigError: a video OpenCV cannot open or read, fewer readable frames than `min_samples`.
    """

    def __init__(self, spec: TensorSpec, path, samples: int | None = None, preprocess: dict | None = None,
                 min_samples: int = 1):
        _check_samples(samples)
        self.spec, self.path, self.min_samples = spec, Path(path), min_samples
        self.kwargs = _preprocess_kwargs(preprocess)
        self._cv2 = import_cv2()
        cap = self._cv2.VideoCapture(str(self.path))
        try:
            found = int(cap.get(self._cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
        finally:
            cap.release()
        if found <= 0:
            raise ConfigError(f"calibration {self.path}: OpenCV cannot read this video (or it has no frames)")
        count = found if samples is None else min(samples, found)
        if count < min_samples:
            raise _too_few(self.path, count, min_samples, "frame(s)")
        if samples is not None and found < samples:
            log.warning("calibration %s: %d frames asked for, %d in the video; calibrating with %d", self.path,
                        samples, found, found)
        self.frames = set(np.linspace(0, found - 1, count).round().astype(int).tolist())
        self.summary = CalibrationSummary(str(self.path), samples, found, kind="video")
        self._pre = None

    def __len__(self) -> int:
        return len(self.frames)

    def __iter__(self):
        """Yield the model-ready tensor of each chosen frame (read in order, one pass)."""
        self.summary.used = 0
        cap = self._cv2.VideoCapture(str(self.path))
        try:
            n = 0
            while self.summary.used < len(self.frames):
                ok, frame = cap.read()
                if not ok:
                    break
                if n in self.frames:
                    if self._pre is None:
                        self._pre = Preprocessor(self.spec, "BGR", (frame.shape[1], frame.shape[0]), **self.kwargs)
                    self.summary.used += 1
                    yield np.array(self._pre(frame))
                n += 1
        finally:
            cap.release()
        if self.summary.used < max(self.min_samples, 1):
            raise _too_few(self.path, self.summary.used, self.min_samples, "readable frame(s)")


def _preprocess_kwargs(preprocess) -> dict:
    kwargs = dict(preprocess or {})
    unknown = sorted(set(kwargs) - set(PREPROCESS_KEYS))
    if unknown:
        raise ConfigError(f"preprocess: unknown key(s) {', '.join(unknown)}; expected some of "
                          f"{', '.join(PREPROCESS_KEYS)}")
    return kwargs


class CalibrationReader:
    """Model-ready tensors of a calibration folder, one per image, from the model card's preprocessing.

    Args:
        spec: The float model's input.
        folder: The calibration folder (see `list_images`).
        samples: How many images to draw (None: all); fewer found is a warning.
        preprocess: `Preprocessor` keyword arguments (`PREPROCESS_KEYS`), the model card's.
        min_samples: Fewer images than this is an error (the model's class count: one per class at least).

    Attributes:
        files: The images drawn, in feeding order.
        summary: A `CalibrationSummary`, complete after one full iteration.

    Raises:
        ConfigError: a missing, unreadable or empty folder, too few images, unknown preprocessing keys.
    """

    def __init__(self, spec: TensorSpec, folder, samples: int | None = None, preprocess: dict | None = None,
                 min_samples: int = 1):
        _check_samples(samples)
        self.kwargs = _preprocess_kwargs(preprocess)
        self.spec, self.folder, self.min_samples = spec, Path(folder), min_samples
        self.channels = input_channels(spec)
        self.classes, per_class = list_images(self.folder)
        found = sum(len(files) for files in per_class)
        self.files = select_evenly(per_class, samples)
        if len(self.files) < min_samples:
            raise ConfigError(f"calibration {self.folder}: {len(self.files)} image(s) for a model of {min_samples} "
                              f"classes: give at least one image per class")
        if samples is not None and found < samples:
            log.warning("calibration %s: %d images asked for, %d found; calibrating with %d",
                        self.folder, samples, found, found)
        self._class_of = {f: name for name, files in zip(self.classes, per_class) for f in files}
        self.summary = CalibrationSummary(str(self.folder), samples, found)
        self._pre: dict = {}
        self._cv2 = import_cv2()

    def __len__(self) -> int:
        """Images drawn (some may turn out unreadable)."""
        return len(self.files)

    def _preprocessor(self, channels: int, width: int, height: int) -> Preprocessor:
        key = (channels, width, height)
        if key not in self._pre:
            self._pre[key] = Preprocessor(self.spec, _SRC_FORMAT[channels], (width, height), **self.kwargs)
        return self._pre[key]

    def _read(self, path: Path):
        image = self._cv2.imread(str(path), self._cv2.IMREAD_UNCHANGED)
        if image is None:
            return None
        if image.dtype != np.uint8:
            raise ConfigError(f"calibration image {path}: {image.dtype} pixels; expected 8-bit images")
        channels = 1 if image.ndim == 2 else image.shape[2]
        # A gray model takes colour images too (the Preprocessor converts them); nothing else fits.
        if channels not in (self.channels, 3 if self.channels == 1 else self.channels):
            raise ConfigError(f"calibration image {path}: {channels} channel(s); the model takes {self.channels} "
                              f"({'gray or colour' if self.channels == 1 else 'colour'} images)")
        return np.ascontiguousarray(image.reshape(image.shape[0], image.shape[1], -1)[..., 0]
                                    if channels == 1 else image), channels

    def __iter__(self):
        """Yield each image's model-ready tensor (a fresh array); unreadable files are skipped and counted.

        Raises:
            ConfigError: an image of another channel count or bit depth, or no readable image at all.
        """
        summary = self.summary
        summary.used, summary.skipped, summary.per_class = 0, 0, {}
        for path in self.files:
            read = self._read(path)
            if read is None:
                summary.skipped += 1
                log.warning("calibration %s: skipping %s: not a readable image", self.folder, path)
                continue
            image, channels = read
            tensor = self._preprocessor(channels, image.shape[1], image.shape[0])(image)
            summary.used += 1
            name = self._class_of[path]
            summary.per_class[name] = summary.per_class.get(name, 0) + 1
            yield np.array(tensor)  # the Preprocessor reuses its buffer
        if summary.used == 0:
            raise ConfigError(f"calibration {self.folder}: none of the {len(self.files)} images could be read")
        if summary.used < self.min_samples:
            raise ConfigError(f"calibration {self.folder}: {summary.used} readable image(s) for a model of "
                              f"{self.min_samples} classes: give at least one image per class")
