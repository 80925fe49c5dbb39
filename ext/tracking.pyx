# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Tracking kernels: the box Kalman filter (initiate, predict, update in place) and track-to-detection IoU.

Private: only `edgert.tracking.kalman` and `edgert.tracking.association` import this module. Shapes
and row indices are checked here (IndexError; the wrappers turn it into TrackingError), before any
loop runs. Every function has a NumPy twin in `edgert._reference`.
Layout: ``means (T, 8)`` centre x, centre y, aspect, height and their velocities; ``covs (T, 12)``
per coordinate k the variance [k], its covariance with its velocity [4 + k] and the velocity's
variance [8 + k] (the 8x8 covariance is four 2x2 blocks; see `edgert.tracking.kalman`).
"""
from libc.stdint cimport int64_t

cdef double POS = 1.0 / 20
cdef double VEL = 1.0 / 160
cdef double TINY = 2.2250738585072014e-308


cdef int _check_rows(const Py_ssize_t[::1] rows, Py_ssize_t n, str what) except -1:
    cdef Py_ssize_t j
    for j in range(rows.shape[0]):
        if rows[j] < 0 or rows[j] >= n:
            raise IndexError(f"{what}: row {rows[j]} outside 0..{n - 1}")
    return 0


def initiate(const float[:, ::1] boxes, const Py_ssize_t[::1] rows, double[:, ::1] means, double[:, ::1] covs):
    """Write the initial state of a track from ``boxes[rows[j]]`` into row j of `means` and `covs`."""
    cdef Py_ssize_t j, k, d
    cdef double h2
    _check_rows(rows, boxes.shape[0], "boxes")
    if means.shape[0] < rows.shape[0] or covs.shape[0] < rows.shape[0] or means.shape[1] != 8 or covs.shape[1] != 12:
        raise IndexError("initiate: means and covs must be (K, 8) and (K, 12)")
    with nogil:
        for j in range(rows.shape[0]):
            d = rows[j]
            _xyah(boxes, d, &means[j, 0])
            h2 = means[j, 3] * means[j, 3]
            for k in range(4):
                means[j, 4 + k] = 0.0
                covs[j, 4 + k] = 0.0
                if k == 2:
                    covs[j, k] = 1e-2 * 1e-2
                    covs[j, 8 + k] = 1e-5 * 1e-5
                else:
                    covs[j, k] = h2 * ((2 * POS) * (2 * POS))
                    covs[j, 8 + k] = h2 * ((10 * VEL) * (10 * VEL))


def predict(double[:, ::1] means, double[:, ::1] covs):
    """One frame ahead for every row, in place."""
    cdef Py_ssize_t t, k
    cdef double h2, q_pos, q_vel, cross
    if means.shape[1] != 8 or covs.shape[1] != 12 or covs.shape[0] != means.shape[0]:
        raise IndexError("predict: means and covs must be (T, 8) and (T, 12)")
    with nogil:
        for t in range(means.shape[0]):
            h2 = means[t, 3] * means[t, 3]
            for k in range(4):
                if k == 2:
                    q_pos, q_vel = 1e-2 * 1e-2, 1e-5 * 1e-5
                else:
                    q_pos, q_vel = h2 * (POS * POS), h2 * (VEL * VEL)
                cross = covs[t, 4 + k] + covs[t, 8 + k]
                covs[t, k] = covs[t, k] + covs[t, 4 + k] + cross + q_pos
                covs[t, 4 + k] = cross
                covs[t, 8 + k] = covs[t, 8 + k] + q_vel
                means[t, k] = means[t, k] + means[t, 4 + k]


def update(double[:, ::1] means, double[:, ::1] covs, const Py_ssize_t[::1] slots, const float[:, ::1] boxes,
           const Py_ssize_t[::1] dets):
    """Correct row ``slots[j]`` with the box ``boxes[dets[j]]``, in place."""
    cdef Py_ssize_t j, k, t
    cdef double z[4]
    cdef double h2, r, s, gain_pos, gain_vel, innovation, keep
    if means.shape[1] != 8 or covs.shape[1] != 12 or covs.shape[0] != means.shape[0]:
        raise IndexError("update: means and covs must be (T, 8) and (T, 12)")
    if dets.shape[0] != slots.shape[0]:
        raise IndexError(f"update: {slots.shape[0]} slots but {dets.shape[0]} detections")
    _check_rows(slots, means.shape[0], "tracks")
    _check_rows(dets, boxes.shape[0], "boxes")
    with nogil:
        for j in range(slots.shape[0]):
            t = slots[j]
            _xyah(boxes, dets[j], z)
            h2 = means[t, 3] * means[t, 3]
            for k in range(4):
                r = 1e-1 * 1e-1 if k == 2 else h2 * (POS * POS)
                s = covs[t, k] + r
                gain_pos = covs[t, k] / s
                gain_vel = covs[t, 4 + k] / s
                innovation = z[k] - means[t, k]
                means[t, k] = means[t, k] + gain_pos * innovation
                means[t, 4 + k] = means[t, 4 + k] + gain_vel * innovation
                keep = 1.0 - gain_pos
                covs[t, 8 + k] = covs[t, 8 + k] - gain_vel * covs[t, 4 + k]
                covs[t, k] = covs[t, k] * keep
                covs[t, 4 + k] = covs[t, 4 + k] * keep


def similarity(const double[:, ::1] means, const float[:, ::1] boxes, const int64_t[::1] track_groups,
               const int64_t[::1] det_groups, double[:, ::1] out):
    """IoU of every track's predicted box with every detection box; 0 across class groups."""
    cdef Py_ssize_t t, d
    cdef double x0, y0, x1, y1, half_w, half_h, area, iw, ih, inter, union
    if (means.shape[1] != 8 or track_groups.shape[0] != means.shape[0] or det_groups.shape[0] != boxes.shape[0]
            or out.shape[0] != means.shape[0] or out.shape[1] != boxes.shape[0]):
        raise IndexError("similarity: shapes of means, boxes, groups and out do not fit")
    with nogil:
        for t in range(means.shape[0]):
            half_h = means[t, 3] * 0.5
            half_w = means[t, 2] * half_h
            x0, y0 = means[t, 0] - half_w, means[t, 1] - half_h
            x1, y1 = means[t, 0] + half_w, means[t, 1] + half_h
            area = (x1 - x0) * (y1 - y0)
            for d in range(boxes.shape[0]):
                if track_groups[t] != det_groups[d]:
                    out[t, d] = 0.0
                    continue
                iw = min(x1, <double>boxes[d, 2]) - max(x0, <double>boxes[d, 0])
                ih = min(y1, <double>boxes[d, 3]) - max(y0, <double>boxes[d, 1])
                if iw <= 0.0 or ih <= 0.0:
                    out[t, d] = 0.0
                    continue
                inter = iw * ih
                union = area + (<double>boxes[d, 2] - boxes[d, 0]) * (<double>boxes[d, 3] - boxes[d, 1]) - inter
                out[t, d] = inter / max(union, TINY)


cdef inline void _xyah(const float[:, ::1] boxes, Py_ssize_t d, double* z) noexcept nogil:
    cdef double x0 = boxes[d, 0], y0 = boxes[d, 1], x1 = boxes[d, 2], y1 = boxes[d, 3]
    z[0] = (x0 + x1) * 0.5
    z[1] = (y0 + y1) * 0.5
    z[3] = y1 - y0
    z[2] = (x1 - x0) / z[3]
