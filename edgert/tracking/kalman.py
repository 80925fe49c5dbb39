"""Constant-velocity Kalman filter on boxes, vectorised over all tracks.

State per track (8): centre x, centre y, aspect (width / height), height, and their velocities per
frame; the measurement is the first four. Noise scales with the box height (the parametrisation of
SORT/ByteTrack's ``xyah`` filter: position std 1/20 of the height, velocity std 1/160), so one filter
fits near and far objects.

The motion model, the noises and the measurement treat the four coordinates independently, so the
8x8 covariance only ever couples a coordinate with its own velocity: it is four 2x2 blocks, and the
filter keeps just their distinct entries, ``covs (T, 12)``: for coordinate k its variance [k], its
covariance with its velocity [4 + k], the velocity's variance [8 + k]. The equations are the
standard ones (`full_covariance` gives the 8x8 matrices back). The compiled kernel
(``ext/tracking.pyx``, NumPy twin in `edgert._reference`) runs them in place on the tracker's own
arrays: rows of ``(T, 8)`` and ``(T, 12)`` float64 with unit stride along the row.
"""
from __future__ import annotations

import numpy as np

from edgert._ext import tracking as _k
from edgert.core.errors import TrackingError

POSITION_STD = 1.0 / 20
VELOCITY_STD = 1.0 / 160


def xyxy_to_xyah(boxes: np.ndarray) -> np.ndarray:
    """``(N, 4)`` xyxy boxes as ``(N, 4)`` float64 centre x, centre y, aspect, height."""
    b = np.asarray(boxes, np.float64)
    out = np.empty(b.shape)
    out[:, :2] = (b[:, :2] + b[:, 2:]) * 0.5
    out[:, 3] = b[:, 3] - b[:, 1]
    out[:, 2] = (b[:, 2] - b[:, 0]) / out[:, 3]
    return out


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """``(N, >=4)`` centre x, centre y, aspect, height (extra columns ignored) as ``(N, 4)`` xyxy."""
    half = np.empty((xyah.shape[0], 2))
    half[:, 1] = xyah[:, 3] * 0.5
    half[:, 0] = xyah[:, 2] * half[:, 1]
    return np.concatenate([xyah[:, :2] - half, xyah[:, :2] + half], 1)


def initiate(boxes: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New tracks, one per box ``boxes[rows]``: zero velocity, uncertainty scaled by height.

    Args:
        boxes: float32 ``(N, 4)`` xyxy boxes with positive height.
        rows: intp indices into `boxes`.

    Returns:
        ``(means (K, 8), covs (K, 12))``.
    """
    boxes, rows = _boxes(boxes), np.ascontiguousarray(rows, np.intp)
    means, covs = np.empty((rows.size, 8)), np.empty((rows.size, 12))
    _kernel(_k.initiate, boxes, rows, means, covs)
    return means, covs


def predict(means: np.ndarray, covs: np.ndarray) -> None:
    """One frame ahead, in place: ``x = F x``, ``P = F P F' + Q`` (Q from each track's height).

    Raises:
        TrackingError: `means` or `covs` not C-contiguous float64 ``(T, 8)`` and ``(T, 12)``.
    """
    _kernel(_k.predict, means, covs)


def update(means: np.ndarray, covs: np.ndarray, slots: np.ndarray, boxes: np.ndarray, dets: np.ndarray) -> None:
    """Correct rows `slots` with the boxes ``boxes[dets]`` (same order), in place.

    ``S = H P H' + R``, ``K = P H' S^-1``, ``x += K (z - H x)``, ``P -= K S K'``.

    Raises:
        TrackingError: bad shapes or dtypes, or an index out of range (checked before anything is written).
    """
    _kernel(_k.update, means, covs, np.ascontiguousarray(slots, np.intp), _boxes(boxes),
            np.ascontiguousarray(dets, np.intp))


def full_covariance(covs: np.ndarray) -> np.ndarray:
    """The ``(N, 8, 8)`` covariance matrices that ``(N, 12)`` `covs` stand for."""
    full = np.zeros((covs.shape[0], 8, 8))
    i = np.arange(4)
    full[:, i, i] = covs[:, :4]
    full[:, i, i + 4] = full[:, i + 4, i] = covs[:, 4:8]
    full[:, i + 4, i + 4] = covs[:, 8:]
    return full


def _kernel(fn, *args) -> None:
    """Run a kernel; its shape, dtype and index errors become one-line `TrackingError`s."""
    try:
        fn(*args)
    except (IndexError, ValueError, TypeError) as exc:
        raise TrackingError(f"kalman.{fn.__name__}: {exc} (means: float64 (T, 8), covs: float64 (T, 12), "
                            "C-contiguous)") from None


def _boxes(boxes) -> np.ndarray:
    return np.ascontiguousarray(boxes, np.float32).reshape(-1, 4)
