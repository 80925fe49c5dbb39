"""`FaceRecognition`: one camera's face tracks -> gate -> alignment -> embedding -> gallery -> votes -> events.

`open_gallery` is how the app opens its gallery: a refused gallery (corrupted, another model or size)
turns recognition off with one line saying why, the file left in place, and the app runs on.
"""
from __future__ import annotations

import logging
from collections import Counter

import numpy as np

from edgert.apps.surveillance.faces.gallery import Gallery
from edgert.apps.surveillance.faces.identity import RecognitionRules, TrackIdentity, estimate_yaw, face_quality
from edgert.core.errors import GalleryError

log = logging.getLogger(__name__)


def open_gallery(path, embedder, *, threshold=None, margin=None) -> tuple[Gallery | None, str | None]:
    """``(gallery, None)``, or ``(None, why)`` when it is refused: the caller runs without recognition.

    `embedder` gives ``model_id`` and ``dim`` (a `FaceEmbedder`). The reason is logged as a warning.
    """
    try:
        return Gallery.open(path, embedder.model_id, embedder.dim, threshold=threshold, margin=margin), None
    except GalleryError as exc:
        why = f"face recognition off: {exc}"
        log.warning("%s", why)
        return None, why


class FaceRecognition:
    """Recognises the faces of one camera's face tracks on their best frames.

    Args:
        camera: The camera id (events carry it).
        embedder: A `FaceEmbedder` for this camera's frames.
        gallery: The open `Gallery`.
        rules: `RecognitionRules` (defaults: min mean similarity = the gallery's threshold).

    Attributes:
        counts: Counter of ``tried``, ``skipped_small``, ``skipped_yaw``, ``skipped_done`` (quota or no
            quality gain), ``skipped_alignment``.
    """

    def __init__(self, camera: str, embedder, gallery: Gallery, rules: RecognitionRules | None = None):
        self.camera, self.embedder, self.gallery = camera, embedder, gallery
        self.rules = rules or RecognitionRules(min_mean_similarity=gallery.threshold)
        self.identities: dict[int, TrackIdentity] = {}
        self.counts: Counter = Counter()

    def update(self, frame: np.ndarray, t: float, track_ids, boxes, keypoints) -> list:
        """One frame's face tracks (ids ``(N,)``, boxes ``(N, 4)``, BlazeFace keypoints ``(N, 6, 2)``); events."""
        ids = np.asarray(track_ids, np.int64).reshape(-1)
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        kp = np.asarray(keypoints, np.float64).reshape(-1, 6, 2)
        if not len(ids):
            return []
        yaws = estimate_yaw(kp)
        chosen = []
        for k, (tid, box, yaw) in enumerate(zip(ids, boxes, yaws)):
            ident = self.identities.get(int(tid))
            if ident is None:
                ident = self.identities[int(tid)] = TrackIdentity(self.camera, int(tid), self.rules)
            if ident.wants(box, float(yaw)):
                chosen.append(k)
            else:
                self.counts[self._skip_reason(ident, box, yaw)] += 1
        if not chosen:
            return []
        rows, reasons = self.embedder(frame, kp[chosen])
        good = [i for i, why in enumerate(reasons) if why is None]
        self.counts["skipped_alignment"] += len(chosen) - len(good)
        events = []
        for i, match in zip(good, self.gallery.match_many(rows[good]) if good else []):
            k = chosen[i]
            self.counts["tried"] += 1
            events.extend(self.identities[int(ids[k])].add(match, t, face_quality(boxes[k], float(yaws[k]))))
        return events

    def end(self, track_id: int, t: float) -> list:
        """The track ended: its closing events (``face_unknown`` when never named); forgets it."""
        ident = self.identities.pop(int(track_id), None)
        return ident.finish(t) if ident is not None else []

    def _skip_reason(self, ident: TrackIdentity, box, yaw) -> str:
        if abs(yaw) > self.rules.max_yaw_deg:
            return "skipped_yaw"
        x1, y1, x2, y2 = box
        if min(x2 - x1, y2 - y1) < self.rules.min_face_px:
            return "skipped_small"
        return "skipped_done"
