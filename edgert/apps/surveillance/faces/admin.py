"""`FaceAdmin`: the gallery operations both `edgert faces` and the fleet's ``faces.*`` commands run.

Enrolment is all or nothing: every image is decoded, must show exactly one face, is aligned and
embedded; only then are the embeddings stored, in one transaction. The models are loaded on first use
and kept.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from edgert.apps.surveillance.faces.embedder import DETECTOR, FaceDetector, FaceEmbedder, embed_enrolment_image
from edgert.apps.surveillance.faces.gallery import Gallery, check_name
from edgert.apps.surveillance.faces.transfer import export_bytes, export_gallery, import_gallery
from edgert.core.errors import ConfigError, GalleryError

MAX_IMAGE_BYTES = 8 * 1024 * 1024


def decode_image(data: bytes, label: str) -> np.ndarray:
    """BGR uint8 image of encoded bytes (JPEG, PNG, ... as OpenCV reads them).

    Raises:
        GalleryError: not an image, naming `label`.
    """
    import cv2

    if len(data) > MAX_IMAGE_BYTES:
        raise GalleryError(f"{label}: {len(data)} bytes, at most {MAX_IMAGE_BYTES}")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise GalleryError(f"{label}: not an image OpenCV can decode (JPEG, PNG, ...)")
    return image


class FaceAdmin:
    """Gallery administration with one embedding model.

    Args:
        gallery_path: The gallery file.
        model: The embedding model reference (file, ``builtin:``), or a loaded entry.
        backend: Backend for the models.
        detector: The face detector reference (BlazeFace, 6 keypoints).
    """

    def __init__(self, gallery_path, model, *, backend: str = "auto", detector: str = DETECTOR):
        self.gallery_path, self.model, self.backend, self.detector_ref = Path(gallery_path), model, backend, detector
        self._embedder: FaceEmbedder | None = None
        self._detector: FaceDetector | None = None
        self._lock = threading.Lock()

    def embedder(self) -> FaceEmbedder:
        """The embedding model, loaded on first use."""
        if self._embedder is None:
            entry = self.model
            if isinstance(entry, (str, Path)):
                from edgert.models.resolve import resolve

                entry = resolve(str(entry), "embed", backend=self.backend)
            self._embedder = FaceEmbedder(entry)
        return self._embedder

    def detector(self) -> FaceDetector:
        """BlazeFace, loaded on first use."""
        if self._detector is None:
            from edgert.models.resolve import resolve

            self._detector = FaceDetector(resolve(self.detector_ref, "detect", backend="cpu"))
        return self._detector

    def gallery(self, create: bool = True) -> Gallery:
        """The gallery opened for this model (close it after use)."""
        e = self.embedder()
        return Gallery.open(self.gallery_path, e.model_id, e.dim, create=create)

    def enrol(self, name: str, images: list[tuple[str, np.ndarray]]) -> dict:
        """Store one embedding per image for `name`; ``{"name", "added", "embeddings"}``.

        Args:
            images: ``[(label, BGR uint8 image)]``; labels name the images in refusals.

        Raises:
            GalleryError: no images, an image with no face or several faces (named), a bad name.
        """
        name = check_name(name)
        if not images:
            raise GalleryError(f"enrol {name}: no images given")
        with self._lock:
            rows = [embed_enrolment_image(self.detector(), self.embedder(), img, label) for label, img in images]
            with self.gallery() as g:
                added = g.add(name, np.stack(rows), [label for label, _ in images])
                total = dict(g.people())[name]
        return {"name": name, "added": added, "embeddings": total}

    def people(self) -> list[dict]:
        """``[{"name", "embeddings"}]`` by name."""
        with self._lock, self.gallery() as g:
            return [{"name": n, "embeddings": k} for n, k in g.people()]

    def remove(self, name: str) -> dict:
        """Forget a person; ``{"name", "removed"}``.

        Raises:
            GalleryError: `name` is not enrolled.
        """
        with self._lock, self.gallery() as g:
            removed = g.remove(name)
        if removed == 0:
            raise GalleryError(f"remove: {name!r} is not enrolled")
        return {"name": name, "removed": removed}

    def export(self, path) -> dict:
        """Write the gallery to an NPZ export file; ``{"path", "embeddings"}``."""
        with self._lock, self.gallery(create=False) as g:
            return {"path": str(path), "embeddings": export_gallery(g, path)}

    def import_file(self, path) -> dict:
        """Add an export file's embeddings (all or nothing); ``{"path", "added": {name: n}}``."""
        with self._lock, self.gallery() as g:
            return {"path": str(path), "added": import_gallery(g, path)}

    def export_bytes(self) -> tuple[bytes, int, int]:
        """``(NPZ bytes of the export format, embeddings, people)`` of the whole gallery."""
        with self._lock, self.gallery(create=False) as g:
            data, count = export_bytes(g)
            return data, count, len(g.people())

    def import_bytes(self, data: bytes, label: str = "export") -> dict:
        """Add the embeddings of an export held in memory (all or nothing; `label` names it in refusals);
        ``{"added": {name: n}, "embeddings": total in the gallery}``."""
        with self._lock, self.gallery() as g:
            added = import_gallery(g, data, label)
            return {"added": added, "embeddings": sum(k for _, k in g.people())}

    def set_threshold(self, threshold: float, margin: float | None = None) -> dict:
        """Store the operating threshold in the gallery; ``{"threshold", "margin"}``."""
        with self._lock, self.gallery() as g:
            g.set_threshold(threshold, margin)
            return {"threshold": g.threshold, "margin": g.margin}


def threshold_from_bench(result) -> float:
    """The EER operating threshold of an ``edgert bench --task embedding --json`` result (a dict or file).

    Raises:
        ConfigError: not an embedding result.
    """
    import json

    data = result
    if isinstance(result, (str, Path)):
        try:
            data = json.loads(Path(result).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{result}: not a readable bench result ({' '.join(str(exc).split())})") from None
    for candidate in _accuracy_blocks(data):
        if candidate.get("task") == "embedding" and "eer_threshold" in candidate.get("model", {}):
            return float(candidate["model"]["eer_threshold"])
    raise ConfigError(f"{result if isinstance(result, (str, Path)) else 'bench result'}: no embedding "
                      f"evaluation in it (run edgert bench --task embedding --dataset DIR --json FILE)")


def _accuracy_blocks(data):
    """Every dict inside a bench result (the accuracy block sits at some depth, per run)."""
    if isinstance(data, dict):
        yield data
        for v in data.values():
            yield from _accuracy_blocks(v)
    elif isinstance(data, list):
        for v in data:
            yield from _accuracy_blocks(v)
