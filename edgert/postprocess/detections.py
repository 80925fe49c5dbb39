"""`Detections`, the result of every detector decoder, and the NMS that produces them."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from edgert.core.errors import DecodeError
from edgert.core.named_rows import named_rows
from edgert.postprocess import kernels


@named_rows
class Detections(NamedTuple):
    """Detected objects, best first.

    Attributes:
        boxes: float32 ``(N, 4)`` x_min, y_min, x_max, y_max in model-input pixels (or source pixels
            after `to_source`).
        scores: float32 ``(N,)`` confidences in [0, 1].
        classes: int32 ``(N,)`` class indices.
        keypoints: float32 ``(N, K, 2)`` x, y per keypoint, or None.
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    keypoints: np.ndarray | None = None

    @classmethod
    def empty(cls, num_keypoints: int = 0) -> "Detections":
        """No detections (with room for `num_keypoints` keypoints each, if any)."""
        kp = np.zeros((0, num_keypoints, 2), np.float32) if num_keypoints else None
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32), kp)

    def __len__(self) -> int:  # the number of detections, not of fields
        return int(self.scores.shape[0])

    def to_source(self, pre) -> "Detections":
        """Boxes and keypoints mapped from model-input pixels to source-frame pixels.

        Args:
            pre: The `edgert.preprocess.Preprocessor` (or anything with ``to_source(coords)``)
                that produced the model input.
        """
        boxes = pre.to_source(self.boxes) if len(self) else self.boxes
        kp = self.keypoints
        if kp is not None and len(self):
            kp = pre.to_source(kp.reshape(-1, 2), clip=False).reshape(kp.shape)
        return Detections(np.asarray(boxes, np.float32), self.scores, self.classes, kp)


def priority_order(scores: np.ndarray) -> np.ndarray:
    """Indices by score, highest first; among equal scores the lower index first."""
    return np.lexsort((np.arange(scores.shape[0]), -scores.astype(np.float64)))


def nms(boxes, scores, classes=None, *, iou: float = 0.45, max_det: int = 300, class_aware: bool = True,
        weighted: bool = False, keypoints=None) -> Detections:
    """Greedy IoU non-maximum suppression.

    Args:
        boxes: ``(N, 4)`` xyxy boxes.
        scores: ``(N,)`` scores.
        classes: ``(N,)`` class indices (default: all 0).
        iou: Boxes overlapping a better one by more than this are suppressed (in [0, 1]).
        max_det: Keep at most this many.
        class_aware: Only boxes of the same class suppress each other.
        weighted: Weighted NMS (as BlazeFace pipelines use): each kept box is the score-weighted
            mean of the boxes (and keypoints) it suppresses, itself included; its score is its own.
        keypoints: Optional ``(N, K, 2)`` keypoints carried along (blended when weighted).

    Returns:
        `Detections`, best first.

    Raises:
        DecodeError: mismatched lengths, bad settings, or NaN or inf among the inputs.
    """
    boxes = np.ascontiguousarray(boxes, np.float32).reshape(-1, 4)
    scores = np.ascontiguousarray(scores, np.float32).reshape(-1)
    n = scores.shape[0]
    if boxes.shape[0] != n:
        raise DecodeError(f"nms: {boxes.shape[0]} boxes but {n} scores")
    classes = np.zeros(n, np.int32) if classes is None else np.ascontiguousarray(classes, np.int32).reshape(-1)
    if classes.shape[0] != n:
        raise DecodeError(f"nms: {classes.shape[0]} classes but {n} scores")
    if not 0.0 <= iou <= 1.0:
        raise DecodeError(f"nms: iou must be in [0, 1], got {iou}")
    if max_det < 0:
        raise DecodeError(f"nms: max_det must be >= 0, got {max_det}")
    if keypoints is not None:
        keypoints = np.asarray(keypoints, np.float32)
        if keypoints.ndim == 2:
            keypoints = keypoints.reshape(n, keypoints.shape[1] // 2, 2)
        if keypoints.ndim != 3 or keypoints.shape[0] != n or keypoints.shape[2] != 2:
            raise DecodeError(f"nms: keypoints of shape {keypoints.shape} do not fit {n} boxes as (N, K, 2)")
    for name, values in (("boxes", boxes), ("scores", scores), ("keypoints", keypoints)):
        if values is not None and not np.all(np.isfinite(values)):
            raise DecodeError(f"nms: {name} hold NaN or inf")
    if n == 0:
        return Detections.empty(0 if keypoints is None else keypoints.shape[1])
    order = priority_order(scores)
    b, c = np.ascontiguousarray(boxes[order]), np.ascontiguousarray(classes[order])
    s = scores[order]
    kp = None if keypoints is None else keypoints[order]
    if not weighted:
        keep = kernels.nms(b, c, iou, max_det, class_aware)
        return Detections(b[keep], s[keep], c[keep], None if kp is None else kp[keep])
    leader = kernels.nms_clusters(b, c, iou, max_det, class_aware)
    return _blend_clusters(b, s, c, kp, leader)


def _blend_clusters(b, s, c, kp, leader) -> Detections:
    member = leader >= 0
    leaders = np.flatnonzero(leader == np.arange(leader.shape[0]))
    slot = np.searchsorted(leaders, leader[member])
    w = s[member].astype(np.float64)
    total = np.bincount(slot, w, minlength=leaders.size)
    if np.any(total <= 0):  # clusters of zero scores: every member counts the same
        flat = total[slot] <= 0
        w = np.where(flat, 1.0, w)
        total = np.bincount(slot, w, minlength=leaders.size)
    boxes = np.stack([np.bincount(slot, w * b[member, k], minlength=leaders.size) for k in range(4)], 1)
    boxes = (boxes / total[:, None]).astype(np.float32)
    kp_out = None
    if kp is not None:
        flat = kp[member].reshape(int(member.sum()), -1)
        kp_out = np.stack([np.bincount(slot, w * flat[:, k], minlength=leaders.size) for k in range(flat.shape[1])], 1)
        kp_out = (kp_out / total[:, None]).astype(np.float32).reshape(leaders.size, -1, 2)
    return Detections(boxes, s[leaders], c[leaders], kp_out)
