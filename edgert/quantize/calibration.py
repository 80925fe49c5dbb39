"""The calibration set: images from a folder, drawn evenly across its classes, fed through edgert's `Preprocessor`.

A calibration folder holds images directly, or one subfolder of images per class (the `ImageFolder`
layout; the plan asks that calibration "cover all classes"). Each image becomes the model-ready float
tensor that the model card's preprocessing makes of it on the device, so the ranges the quantiser
measures are those the device will feed.

Samples are interleaved across classes (one of each class in turn): ai-edge-quantizer keeps a
moving average of each tensor's min/max over the samples, which a class-by-class order would bias
toward the last classes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgert.core.errors import ConfigError
from edgert.core.tensor import TensorSpec
from edgert.models.cards import PREPROCESS_KEYS
from edgert.preprocess import Preprocessor
from edgert.sources.folder import IMAGE_SUFFIXES
from edgert.sources.opencv import import_cv2

log = logging.getLogger(__name__)

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
        folder: The calibration folder.
        requested: Samples asked for (None: all).
        found: Image files in the folder.
        used: Images fed to the quantiser.
        skipped: Files that could not be decoded.
        per_class: Images used per class name (``""`` for images directly in the folder).
    """

    folder: str
    requested: int | None
    found: int
    used: int = 0
    skipped: int = 0
    per_class: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """A JSON-ready dict."""
        return {"folder": self.folder, "requested": self.requested, "found": self.found, "used": self.used,
                "skipped": self.skipped, "per_class": dict(self.per_class)}


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
        if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
            raise ConfigError(f"--samples: expected a positive number of images, got {samples!r}")
        self.kwargs = dict(preprocess or {})
        unknown = sorted(set(self.kwargs) - set(PREPROCESS_KEYS))
        if unknown:
            raise ConfigError(f"preprocess: unknown key(s) {', '.join(unknown)}; expected some of "
                              f"{', '.join(PREPROCESS_KEYS)}")
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
