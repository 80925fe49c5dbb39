"""IoU between boxes and the optimal one-to-one assignment of tracks to detections."""
from __future__ import annotations

import numpy as np

from edgert._ext import tracking as _k
from edgert.core.errors import ExtraNotInstalled, TrackingError

try:
    from scipy.optimize import linear_sum_assignment
except ImportError as exc:  # the tracker is the surveillance extra's
    raise ExtraNotInstalled("the tracker needs scipy, which is not installed: "
                            "pip install 'edgert[surveillance]'") from exc

_EMPTY = np.zeros(0, np.intp)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in `a` with every box in `b`.

    Args:
        a: ``(N, 4)`` xyxy boxes.
        b: ``(M, 4)`` xyxy boxes.

    Returns:
        ``(N, M)`` float64 IoU in [0, 1] (0 where both boxes have no area).
    """
    at, bt = np.asarray(a, np.float64).T, np.asarray(b, np.float64).T
    inter = np.minimum(at[2][:, None], bt[2])
    inter -= np.maximum(at[0][:, None], bt[0])
    np.maximum(inter, 0.0, out=inter)
    height = np.minimum(at[3][:, None], bt[3])
    height -= np.maximum(at[1][:, None], bt[1])
    np.maximum(height, 0.0, out=height)
    inter *= height
    union = ((at[2] - at[0]) * (at[3] - at[1]))[:, None] + (bt[2] - bt[0]) * (bt[3] - bt[1])
    union -= inter
    np.maximum(union, np.finfo(np.float64).tiny, out=union)  # no area on either side: 0 / tiny = 0
    inter /= union
    return inter


def track_similarity(means: np.ndarray, boxes: np.ndarray, track_groups: np.ndarray,
                     det_groups: np.ndarray) -> np.ndarray:
    """IoU of each track's box (from its Kalman state) with each detection, 0 across class groups.

    Args:
        means: float64 ``(T, 8)`` C-contiguous Kalman states (centre x, centre y, aspect, height, ...).
        boxes: float32 ``(N, 4)`` xyxy detection boxes.
        track_groups: int64 ``(T,)`` class group of each track.
        det_groups: int64 ``(N,)`` class group of each detection.

    Returns:
        ``(T, N)`` float64.
    """
    boxes = np.ascontiguousarray(boxes, np.float32)
    out = np.empty((means.shape[0], boxes.shape[0]))
    try:
        _k.similarity(means, boxes, np.ascontiguousarray(track_groups, np.int64),
                      np.ascontiguousarray(det_groups, np.int64), out)
    except (IndexError, ValueError, TypeError) as exc:
        raise TrackingError(f"track_similarity: {exc}") from None
    return out


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
    margin = np.minimum(cost - max_cost, 0.0)
    margin[np.isnan(margin)] = 0.0  # forbidden pairs gain nothing
    return assign_margin(margin)


def assign_margin(margin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`assign` on precomputed margins ``min(cost - max_cost, 0)`` (<= 0, no NaN): the pairs with
    margin below 0 of the matching with the lowest total margin."""
    rows, cols = linear_sum_assignment(margin)
    keep = margin[rows, cols] < 0
    return rows[keep], cols[keep]
