"""`FolderSource`: the images of a directory, in name order, as frames (bench runs, replaying a site)."""
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
from edgert.sources.opencv import import_cv2

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


class FolderConfig(Section):
    """A directory of images (jpg, png, bmp), read in name order."""

    kind: Literal["folder"] = Field("folder", description="Source kind: a directory of images.")
    path: Path = Field(..., description="Directory holding the images; other files are ignored.")
    loop: bool = Field(False, description="Start again at the first image after the last instead of ending.")
    fps: float | None = Field(None, gt=0, description="Deliver at most this many frames per second (None: as fast "
                                                      "as the images decode).")


class FolderSource(Source):
    """Frames from the images of a directory, as BGR ``(h, w, 3)`` arrays with ``meta["path"]``.

    The directory is listed when the source opens. An image that cannot be decoded is skipped with
    one log line; a directory with no image, or none that decodes, is a `SourceError`.
    """

    Config = FolderConfig

    live = False  # every image is processed; reading waits for the pipeline

    def __init__(self, config: FolderConfig, backoff: Backoff = Backoff(),  # noqa: B008 - frozen
                 max_failures: int | None = None):
        super().__init__(backoff=backoff, max_failures=max_failures)
        self.config = config
        self.name = f"folder {config.path}"
        self.live = False  # every image is processed; reading waits for the pipeline
        self._cv2 = import_cv2()
        self._paths: list[Path] = []
        self._index = 0
        self._decoded_this_pass = 0
        self._skipped: set[Path] = set()
        self._first = None
        self._next_due_ns = 0

    def _open(self) -> None:
        folder = Path(self.config.path)
        if not folder.is_dir():
            raise SourceError(f"{self.name}: not a directory")
        self._paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self._paths:
            raise SourceError(f"{self.name}: no images ({', '.join(IMAGE_SUFFIXES)}) in the directory")
        self._index, self._decoded_this_pass = 0, 0
        # Open means an image decodes (the Source base counts a successful open as recovered).
        self._first = self._next_image()

    def _read(self, timeout: float) -> Frame | None:
        self._pace()
        found, self._first = self._first or self._next_image(), None
        if found is None:
            return None
        image, path = found
        h, w = image.shape[:2]
        seq, generation = self._next_stamps("BGR", (w, h))
        return Frame(pixels=image, format="BGR", size=(w, h), stride=image.strides[0],
                     timestamp_ns=time.monotonic_ns(), seq=seq, generation=generation, meta={"path": str(path)})

    def _next_image(self):
        """``(image, path)`` of the next readable image, or ``None`` at the end (without `loop`)."""
        while True:
            if self._index == len(self._paths):
                if self._decoded_this_pass == 0:
                    raise SourceError(f"{self.name}: none of the {len(self._paths)} images could be read")
                if not self.config.loop:
                    return None
                self._index, self._decoded_this_pass = 0, 0
            path = self._paths[self._index]
            self._index += 1
            image = self._cv2.imread(str(path), self._cv2.IMREAD_COLOR)
            if image is None:
                if path not in self._skipped:  # one line per bad file, not one per loop
                    self._skipped.add(path)
                    log.warning("%s: skipping %s: not a readable image", self.name, path.name)
                continue
            self._decoded_this_pass += 1
            return image, path

    def _close(self) -> None:
        self._paths, self._first = [], None

    def _pace(self) -> None:
        if self.config.fps is None:
            return
        now = time.monotonic_ns()
        if self._next_due_ns > now:
            self._stop.wait((self._next_due_ns - now) / 1e9)
            now = time.monotonic_ns()
        self._next_due_ns = max(self._next_due_ns, now) + int(1e9 / self.config.fps)
