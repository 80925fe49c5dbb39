"""Checked wrappers over the compiled decoding kernels (the only importer of `edgert._ext.postprocess`)."""
from __future__ import annotations

import numpy as np

from edgert._ext import postprocess as _k
from edgert.core.errors import DecodeError
from edgert.core.tensor import Quantization

KERNEL_DTYPES = (np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16), np.dtype(np.float32))


def dequantize(q: np.ndarray, quant: Quantization) -> np.ndarray:
    """float32 ``(q - zero_point) * scale``, per tensor or along ``quant.axis``."""
    q = np.ascontiguousarray(q)
    if q.dtype not in KERNEL_DTYPES[:3]:
        raise DecodeError(f"dequantize: expected int8, uint8 or int16 values, got {q.dtype}")
    out = np.empty(q.shape, np.float32)
    inner = 1
    if quant.per_channel:
        axis = quant.axis % max(q.ndim, 1)
        if q.ndim == 0 or q.shape[axis] != quant.scale.size:
            raise DecodeError(f"dequantize: {quant.scale.size} per-channel scales do not fit axis {quant.axis} "
                              f"of shape {q.shape}")
        inner = int(np.prod(q.shape[axis + 1:], dtype=np.int64))
    if q.size:
        _k.dequantize(q.reshape(-1), quant.scale.reshape(-1), quant.zero_point.reshape(-1).astype(np.int32),
                      max(inner, 1), out.reshape(-1))
    return out


def top_k(x: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` largest entries of a 1-D array, largest first, lower index first on ties."""
    k = min(int(k), x.size)  # before allocating: top_k may be any large number
    out = np.empty(max(k, 0), np.intp)
    if k <= 0:
        return out[:0]
    m = _k.top_k(x, k, out)
    return out[:m]


class CandidateBuffers:
    """Scratch for decoding tensors of up to `n` candidates: allocated once per decoder."""

    def __init__(self, n: int, dtype):
        self.best = np.empty(n, dtype)
        self.index = np.empty(n, np.intp)
        self.cls = np.empty(n, np.int32)
        self.boxes = np.empty((n, 4), np.float32)
        self.scores = np.empty(n, np.float32)
        self.keep = np.empty(n, np.intp)
        self.ranked_cls = np.empty(n, np.int32)
        self.ranked = np.empty((n + 1) * _k.RANK_BYTES, np.uint8)

    def select(self, x2d: np.ndarray, c0: int, nc: int, threshold, channel_major: bool, what: str):
        """Candidates whose best class value over columns/rows ``c0..c0+nc`` reaches `threshold`.

        Returns:
            ``(index, cls, best)``: candidate positions, their best class, and the best value per
            position (views into the scratch; copy what must outlive the next call).
        """
        fn = _k.select_channel_major if channel_major else _k.select_row_major
        m = fn(x2d, c0, nc, threshold, self.best, self.index, self.cls)
        if m < 0:
            raise DecodeError(f"{what}: output holds NaN or inf")
        return self.index[:m], self.cls[:m], self.best

    def decode_single(self, x2d, args: tuple):
        """Single-tensor YOLO decode in one kernel call.

        Args:
            x2d: The output without its batch axis.
            args: The kernel's arguments between the tensor and the buffers (see
                `_ext.postprocess.decode_single`): channel_major, objectness, c0, nc, threshold,
                scale, zero_point, activation (0 none, 1 sigmoid), conf, sx, sy, normalized, iou,
                max_det, max_candidates, class_aware.

        Returns:
            ``(boxes, scores, classes)`` copies, best first, after NMS.
        """
        n = _k.decode_single(x2d, *args, self.best, self.index, self.cls, self.boxes, self.scores, self.keep,
                             self.ranked_cls, self.ranked)
        if n == -1:
            raise DecodeError("outputs[0]: output holds NaN or inf")
        if n == -2:
            raise DecodeError("outputs[0]: box coordinates hold NaN or inf")
        return self.boxes[:n].copy(), self.scores[:n].copy(), self.cls[:n].copy()


def nms(boxes: np.ndarray, classes: np.ndarray, iou: float, max_det: int, class_aware: bool) -> np.ndarray:
    """Indices kept by greedy NMS over boxes in priority order."""
    keep = np.empty(boxes.shape[0], np.intp)
    m = _k.nms(boxes, classes, float(iou), int(max_det), bool(class_aware), keep)
    return keep[:m]


def nms_clusters(boxes: np.ndarray, classes: np.ndarray, iou: float, max_det: int, class_aware: bool) -> np.ndarray:
    """Weighted-NMS cluster leader of every box (boxes in priority order), -1 past max_det."""
    leader = np.empty(boxes.shape[0], np.intp)
    _k.nms_clusters(boxes, classes, float(iou), int(max_det), bool(class_aware), leader)
    return leader
