"""Constant-velocity Kalman filter on boxes, vectorised over all tracks.

State per track (8): centre x, centre y, aspect (width / height), height, and their velocities per
frame. Measurement (4): the first four. Noise scales with the box height (the parametrisation of
SORT/ByteTrack's ``xyah`` filter: position std 1/20 of the height, velocity std 1/160), so one filter
fits near and far objects. All functions take and return stacked arrays: ``means (T, 8)`` and
``covs (T, 8, 8)``, float64.
"""
from __future__ import annotations

import numpy as np

POSITION_STD = 1.0 / 20
VELOCITY_STD = 1.0 / 160

# x' = F x with unit time step; z = H x.
F = np.eye(8)
F[:4, 4:] = np.eye(4)
H = np.eye(4, 8)
_FT = np.ascontiguousarray(F.T)


def xyxy_to_xyah(boxes: np.ndarray) -> np.ndarray:
    """``(N, 4)`` xyxy boxes as ``(N, 4)`` float64 centre x, centre y, aspect, height."""
    b = np.asarray(boxes, np.float64)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    return np.stack([(b[:, 0] + b[:, 2]) * 0.5, (b[:, 1] + b[:, 3]) * 0.5, w / h, h], 1)


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """``(N, >=4)`` centre x, centre y, aspect, height (extra columns ignored) as ``(N, 4)`` xyxy."""
    cx, cy, a, h = xyah[:, 0], xyah[:, 1], xyah[:, 2], xyah[:, 3]
    half_w, half_h = a * h * 0.5, h * 0.5
    return np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], 1)


def initiate(measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New tracks from their first measurements.

    Args:
        measurements: ``(N, 4)`` xyah.

    Returns:
        ``(means (N, 8), covs (N, 8, 8))``: zero velocity, uncertainty scaled by height.
    """
    z = np.asarray(measurements, np.float64).reshape(-1, 4)
    n = z.shape[0]
    means = np.zeros((n, 8))
    means[:, :4] = z
    h = z[:, 3]
    std = np.empty((n, 8))
    std[:, [0, 1, 3]] = (2 * POSITION_STD) * h[:, None]
    std[:, 2] = 1e-2
    std[:, [4, 5, 7]] = (10 * VELOCITY_STD) * h[:, None]
    std[:, 6] = 1e-5
    covs = np.zeros((n, 8, 8))
    covs[:, np.arange(8), np.arange(8)] = std * std
    return means, covs


def predict(means: np.ndarray, covs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One step ahead: ``x = F x``, ``P = F P F' + Q`` (Q from each track's height)."""
    h = means[:, 3]
    var = np.empty((means.shape[0], 8))
    var[:, [0, 1, 3]] = (POSITION_STD * h)[:, None] ** 2
    var[:, 2] = 1e-4
    var[:, [4, 5, 7]] = (VELOCITY_STD * h)[:, None] ** 2
    var[:, 6] = 1e-10
    means = means @ _FT
    covs = F @ covs @ _FT
    covs[:, np.arange(8), np.arange(8)] += var
    return means, covs


def update(means: np.ndarray, covs: np.ndarray, measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correct each track with its measurement (one row each, same order).

    ``S = H P H' + R``, ``K = P H' S^-1``, ``x += K (z - H x)``, ``P -= K S K'``.

    Args:
        means: ``(N, 8)`` predicted states.
        covs: ``(N, 8, 8)`` their covariances.
        measurements: ``(N, 4)`` xyah.

    Returns:
        ``(means, covs)`` corrected (new arrays).
    """
    h = means[:, 3]
    s = covs[:, :4, :4].copy()
    r = (POSITION_STD * h) ** 2
    s[:, 0, 0] += r
    s[:, 1, 1] += r
    s[:, 2, 2] += 1e-2
    s[:, 3, 3] += r
    pht = covs[:, :, :4]  # P H'
    gain = np.linalg.solve(s, pht.transpose(0, 2, 1)).transpose(0, 2, 1)  # S is symmetric: K' = S^-1 (P H')'
    innovation = measurements - means[:, :4]
    means = means + np.einsum("nij,nj->ni", gain, innovation)
    covs = covs - gain @ pht.transpose(0, 2, 1)  # K S K' = K (P H')'
    return means, covs
