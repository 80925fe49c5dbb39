"""Faces to unit embeddings: BlazeFace detection, alignment to the embedding model's template, embedding.

`FaceEmbedder` aligns faces given BlazeFace's 6 keypoints (`edgert.alignment.Aligner`, eyes + nose +
mouth onto the ArcFace template scaled to the model's input) and runs the embedding model once per
face; outputs are dequantised and L2-normalised once (`edgert.postprocess.embeddings`).
`FaceDetector` runs BlazeFace on whole images (enrolment). `embed_enrolment_image` is enrolment's
rule: exactly one face per image, else a one-line refusal naming the image.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from edgert.alignment import Aligner
from edgert.core.errors import AlignmentError, GalleryError
from edgert.postprocess.embeddings import embedding_size, unit_embeddings
from edgert.postprocess.ssd import SsdDecoder
from edgert.preprocess import Preprocessor

DETECTOR = "builtin:face_detection_short_range"
_NORMALISE = ("mean", "std", "channel_order")


def model_id(entry) -> str:
    """The id a gallery stores for an embedding model: ``name:version`` from its card or manifest."""
    return f"{entry.name}:{entry.version}" if entry.version else str(entry.name)


class FaceEmbedder:
    """Aligned embeddings of faces of frames of one pixel format (an `Aligner` per frame size, the last few kept).

    Args:
        entry: The embedding model, a `edgert.models.loaded.LoadedModel` (task "embed"); its card's
            mean/std/channel order normalise the aligned crop.
        src_format: Pixel format of the frames ("BGR", "RGB", ...).
    """

    def __init__(self, entry, src_format: str = "BGR", cache_size: int = 4):
        self.entry, self.model, self.src_format = entry, entry.model, src_format
        self.spec = self.model.outputs[0]
        self.dim = embedding_size(self.spec)
        self.model_id = model_id(entry)
        self._kwargs = {k: v for k, v in entry.preprocess.items() if k in _NORMALISE}
        self._aligners: OrderedDict = OrderedDict()
        self._cache_size = cache_size

    def aligner(self, width: int, height: int) -> Aligner:
        """The aligner for frames of this size."""
        key = (int(width), int(height))
        if key not in self._aligners:
            self._aligners[key] = Aligner(self.model.inputs[0], self.src_format, key, landmarks="blazeface6",
                                          **self._kwargs)
            if len(self._aligners) > self._cache_size:
                self._aligners.popitem(last=False)
        self._aligners.move_to_end(key)
        return self._aligners[key]

    def __call__(self, frame: np.ndarray, keypoints) -> tuple[np.ndarray, tuple]:
        """``(embeddings (N, D) float32 unit rows, reasons)``: rows of refused faces are NaN, their reason set."""
        h, w = frame.shape[:2]
        aligned = self.aligner(w, h)(frame, keypoints)
        out = np.full((len(aligned.ok), self.dim), np.nan, np.float32)
        batch_input = len(self.model.inputs[0].shape) == 4 and self.model.inputs[0].shape[0] == 1
        for i in np.flatnonzero(aligned.ok):
            x = aligned.tensor[i:i + 1] if batch_input else aligned.tensor[i]
            out[i] = unit_embeddings(self.model.run(x)[0], self.spec)[0]
        return out, aligned.reasons


class FaceDetector:
    """BlazeFace over whole images of any size (a `Preprocessor` per size); `Detections` in image pixels."""

    def __init__(self, entry, src_format: str = "BGR"):
        self.entry, self.src_format = entry, src_format
        self.decoder = SsdDecoder.from_card(entry.model.outputs, entry.decoder, entry.labels)
        self._pre: dict = {}

    def __call__(self, image: np.ndarray):
        h, w = image.shape[:2]
        pre = self._pre.get((w, h))
        if pre is None:
            pre = self._pre[(w, h)] = Preprocessor(self.entry.model.inputs[0], self.src_format, (w, h),
                                                  **self.entry.preprocess)
        return self.decoder(self.entry.model.run(pre(image))).to_source(pre)


def embed_enrolment_image(detector: FaceDetector, embedder: FaceEmbedder, image: np.ndarray,
                          label: str) -> np.ndarray:
    """The unit embedding ``(D,)`` of the one face in `image` (BGR uint8).

    Raises:
        GalleryError: no face, or several faces (how many); AlignmentError: a face that cannot be
            aligned. Each names `label` (the image's file name).
    """
    dets = detector(image)
    if len(dets.boxes) == 0:
        raise GalleryError(f"{label}: no face found; enrol with images that show the person's face")
    if len(dets.boxes) > 1:
        raise GalleryError(f"{label}: {len(dets.boxes)} faces found; enrol with images that show only that person")
    rows, reasons = embedder(image, dets.keypoints[:1])
    if reasons[0] is not None:
        raise AlignmentError(f"{label}: the face cannot be aligned: {reasons[0]}")
    return rows[0]
