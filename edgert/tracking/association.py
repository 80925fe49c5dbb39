"""IoU between boxes and the optimal one-to-one assignment of tracks to detections."""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

_EMPTY = np.zeros(0, np.intp)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in `a` with every box in `b`.

    Args:
        a: ``(N, 4)`` xyxy boxes.
        b: ``(M, 4)`` xyxy boxes.

    Returns:
        ``(N, M)`` float64 IoU in [0, 1] (0 where both boxes have no area).
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def assign(cost: np.ndarray, max_cost: float) -> tuple[np.ndarray, np.ndarray]:
    """Optimal matching of rows to columns under a cost limit.

    Maximises the total margin ``max_cost - cost`` over the matched pairs (as ``lapjv`` with a cost
    limit does); a pair costing `max_cost` or more is never made.

    Args:
        cost: ``(N, M)`` costs (NaN forbids a pair).
        max_cost: Pairs must cost less than this.

    Returns:
        ``(rows, cols)``: matched indices, rows ascending.
    """
    if cost.size == 0:
        return _EMPTY, _EMPTY
    margin = np.minimum(cost - max_cost, 0.0)  # <= 0; NaN -> 0 below: forbidden pairs gain nothing
    margin[np.isnan(margin)] = 0.0
    rows, cols = linear_sum_assignment(margin)
    keep = margin[rows, cols] < 0
    return rows[keep], cols[keep]
