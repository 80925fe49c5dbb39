"""`ImageFolder`: a labelled image dataset in the usual layout, one subfolder per class (or identity).

    dataset/
      cat/  0001.jpg 0002.png ...
      dog/  ...

Class names are the subfolder names, sorted; images are the jpg/jpeg/png/bmp files directly inside
each subfolder, sorted by name. Hidden files and folders (names starting with ".") and other files are
ignored. Images that OpenCV cannot decode are skipped and counted, with the first few paths kept for
the report.
"""
from __future__ import annotations

import logging
from pathlib import Path

from edgert.core.errors import ConfigError
from edgert.sources.folder import IMAGE_SUFFIXES
from edgert.sources.opencv import import_cv2

log = logging.getLogger(__name__)

SKIPPED_PATHS_KEPT = 5


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


class ImageFolder:
    """The images of a class-per-subfolder directory, yielded as ``(bgr_image, class_index, path)``.

    Args:
        path: The dataset directory.

    Attributes:
        path: The dataset directory.
        classes: Class names (subfolder names, sorted); ``class_index`` indexes this tuple.
        samples: ``(path, class_index)`` of every image file found, in iteration order.
        skipped: Images the last (or current) iteration could not decode.
        skipped_paths: The first `SKIPPED_PATHS_KEPT` of them, as strings.

    Raises:
        ConfigError: the directory is missing, has no class subfolder, or a class subfolder holds no
            image file (the message names the folder).
    """

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise ConfigError(f"dataset {self.path}: not a directory")
        folders = sorted((p for p in self.path.iterdir() if p.is_dir() and _visible(p)), key=lambda p: p.name)
        if not folders:
            raise ConfigError(f"dataset {self.path}: no class subfolders (expected one subfolder of images per class)")
        samples = []
        for index, folder in enumerate(folders):
            files = sorted((p for p in folder.iterdir() if _visible(p) and p.suffix.lower() in IMAGE_SUFFIXES
                            and p.is_file()), key=lambda p: p.name)
            if not files:
                raise ConfigError(f"dataset {self.path}: class folder {folder.name!r} has no images "
                                  f"({', '.join(IMAGE_SUFFIXES)})")
            samples += [(p, index) for p in files]
        self.classes = tuple(p.name for p in folders)
        self.samples = tuple(samples)
        self.skipped = 0
        self.skipped_paths: list[str] = []
        self._cv2 = import_cv2()

    def __len__(self) -> int:
        """Image files found (some may turn out unreadable)."""
        return len(self.samples)

    def class_counts(self) -> dict:
        """Image files per class name."""
        counts = dict.fromkeys(self.classes, 0)
        for _, index in self.samples:
            counts[self.classes[index]] += 1
        return counts

    def __iter__(self):
        """Yield ``(image, class_index, path)`` per readable image; ``image`` is BGR ``(h, w, 3)`` uint8.

        Restarts the skipped count: after a full pass `skipped` counts that pass's unreadable files.
        """
        self.skipped, self.skipped_paths = 0, []
        for path, index in self.samples:
            image = self._cv2.imread(str(path), self._cv2.IMREAD_COLOR)
            if image is None:
                self.skipped += 1
                if len(self.skipped_paths) < SKIPPED_PATHS_KEPT:
                    self.skipped_paths.append(str(path))
                log.warning("dataset %s: skipping %s: not a readable image", self.path, path)
                continue
            yield image, index, path

    def __repr__(self):
        return f"ImageFolder({str(self.path)!r}, {len(self.classes)} classes, {len(self.samples)} images)"
