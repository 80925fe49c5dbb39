# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Decoding kernels: dequantise, top-k, candidate selection in the quantised domain, greedy NMS.

Private: only `edgert.postprocess` imports this module; it checks shapes, dtypes and thresholds.
Every function has a NumPy twin in `edgert._reference`.
"""
cimport numpy as cnp
from libc.math cimport expf, isfinite, isnan
from libc.stdlib cimport qsort
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t

cnp.import_array()

ctypedef fused qtype:
    int8_t
    uint8_t
    int16_t
    float


def dequantize(const qtype[::1] q, const float[::1] scale, const int32_t[::1] zero_point, Py_ssize_t inner,
               float[::1] out):
    """out[i] = float32(q[i] - zp[a]) * scale[a], a = (i // inner) % len(scale): per tensor or per axis."""
    cdef Py_ssize_t i, j, n = q.shape[0], na = scale.shape[0], a = 0, blocks
    cdef float s
    cdef int32_t z
    if na == 1:
        s, z = scale[0], zero_point[0]
        with nogil:
            for i in range(n):
                out[i] = <float>(<int32_t>q[i] - z) * s
        return
    blocks = n // inner
    with nogil:
        for j in range(blocks):
            a = j % na
            s, z = scale[a], zero_point[a]
            for i in range(j * inner, (j + 1) * inner):
                out[i] = <float>(<int32_t>q[i] - z) * s


def top_k(const qtype[::1] x, int k, Py_ssize_t[::1] out):
    """Indices of the k largest values, largest first, lower index first among equals. Returns k used.

    One pass with a small sorted buffer: O(n) for the usual k (a few) and n (classes).
    """
    cdef Py_ssize_t i, j, n = x.shape[0], m = 0
    cdef qtype v
    if k > n:
        k = <int>n
    with nogil:
        for i in range(n):
            v = x[i]
            if qtype is float:
                if isnan(v):
                    continue
            if m == k and not v > x[out[m - 1]]:
                continue
            j = m if m < k else k - 1
            if m < k:
                m += 1
            # Shift smaller entries down; equal values keep their (lower) earlier index ahead.
            while j > 0 and v > x[out[j - 1]]:
                out[j] = out[j - 1]
                j -= 1
            out[j] = i
    return m


cdef void max_rows8(const qtype* r0, const qtype* r1, const qtype* r2, const qtype* r3, const qtype* r4,
                    const qtype* r5, const qtype* r6, const qtype* r7, qtype* best, Py_ssize_t n) noexcept nogil:
    """best = max(best, r0..r7) elementwise; branch-free, so the loop vectorises, and best is loaded
    and stored once per eight rows."""
    cdef Py_ssize_t i
    cdef qtype a, b, c, d
    for i in range(n):
        a = r0[i] if r0[i] > r1[i] else r1[i]
        b = r2[i] if r2[i] > r3[i] else r3[i]
        c = r4[i] if r4[i] > r5[i] else r5[i]
        d = r6[i] if r6[i] > r7[i] else r7[i]
        a = a if a > b else b
        c = c if c > d else d
        a = a if a > c else c
        best[i] = a if a > best[i] else best[i]


cdef Py_ssize_t _select_cm(const qtype[:, ::1] x, Py_ssize_t c0, Py_ssize_t nc, qtype threshold,
                           qtype[::1] best, Py_ssize_t[::1] index, int32_t[::1] cls) noexcept nogil:
    """Candidates of a (channels, N) tensor whose best class value (rows c0..c0+nc) >= threshold.

    Fills best (per column, the max over the class rows), then index/cls for candidates in column
    order (cls: the first class reaching the max). Returns the number of candidates, or -1 if a
    float input holds NaN or inf.
    """
    cdef Py_ssize_t c, i, n = x.shape[1], m = 0, last
    cdef const qtype* row
    cdef qtype v, b
    cdef bint bad = False  # a float value that is NaN or inf
    row = &x[c0, 0]
    for i in range(n):
        best[i] = row[i]
    c = c0 + 1
    last = c0 + nc - 1
    while c <= last:
        # Eight rows per sweep (the last row repeated to fill a short final sweep).
        max_rows8(&x[c, 0], &x[min(c + 1, last), 0], &x[min(c + 2, last), 0], &x[min(c + 3, last), 0],
                  &x[min(c + 4, last), 0], &x[min(c + 5, last), 0], &x[min(c + 6, last), 0],
                  &x[min(c + 7, last), 0], &best[0], n)
        c += 8
    if qtype is float:
        for i in range(n):
            bad |= not isfinite(best[i])
        for c in range(c0, c0 + nc):
            for i in range(n):
                bad |= not isfinite(x[c, i])
    for i in range(n):
        if best[i] >= threshold:
            index[m] = i
            m += 1
    for i in range(m):
        b = best[index[i]]
        for c in range(c0, c0 + nc):
            if x[c, index[i]] == b:
                cls[i] = <int32_t>(c - c0)
                break
    return -1 if bad else m


def select_channel_major(const qtype[:, ::1] x, Py_ssize_t c0, Py_ssize_t nc, qtype threshold,
                         qtype[::1] best, Py_ssize_t[::1] index, int32_t[::1] cls):
    """Candidates of a (channels, N) tensor whose best class value (rows c0..c0+nc) >= threshold.

    Fills best (per column, the max over the class rows), then index/cls for candidates in column
    order (cls: the first class reaching the max). Returns the number of candidates, or -1 if a
    float input holds NaN or inf.
    """
    cdef Py_ssize_t m
    with nogil:
        m = _select_cm(x, c0, nc, threshold, best, index, cls)
    return m


cdef Py_ssize_t _select_rm(const qtype[:, ::1] x, Py_ssize_t c0, Py_ssize_t nc, qtype threshold,
                           qtype[::1] best, Py_ssize_t[::1] index, int32_t[::1] cls) noexcept nogil:
    """As `select_channel_major` for an (N, channels) tensor: each row holds one candidate's values."""
    cdef Py_ssize_t c, i, n = x.shape[0], m = 0, arg
    cdef const qtype* row
    cdef qtype b
    cdef bint bad = False  # a float value that is NaN or inf
    for i in range(n):
        row = &x[i, c0]
        b = row[0]
        arg = 0
        for c in range(1, nc):
            if row[c] > b:
                b = row[c]
                arg = c
        if qtype is float:
            for c in range(nc):
                bad |= not isfinite(row[c])
        best[i] = b
        if b >= threshold:
            index[m] = i
            cls[m] = <int32_t>arg
            m += 1
    return -1 if bad else m


def select_row_major(const qtype[:, ::1] x, Py_ssize_t c0, Py_ssize_t nc, qtype threshold,
                     qtype[::1] best, Py_ssize_t[::1] index, int32_t[::1] cls):
    """As `select_channel_major` for an (N, channels) tensor: each row holds one candidate's values."""
    cdef Py_ssize_t m
    with nogil:
        m = _select_rm(x, c0, nc, threshold, best, index, cls)
    return m


cdef inline float box_iou(const float* a, const float* b) noexcept nogil:
    cdef float iw = min(a[2], b[2]) - max(a[0], b[0])
    cdef float ih = min(a[3], b[3]) - max(a[1], b[1])
    cdef float inter, union
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


cdef Py_ssize_t greedy_nms(const float* boxes, const int32_t* classes, Py_ssize_t n, float iou,
                           Py_ssize_t max_det, bint class_aware, Py_ssize_t* keep) noexcept nogil:
    """Greedy NMS over n xyxy boxes (rows of 4 floats) in priority order; returns how many are kept.

    A box is kept when its IoU with every kept box (of its class, if class_aware) is <= iou.
    """
    cdef Py_ssize_t i, j, m = 0
    cdef bint ok
    for i in range(n):
        if m >= max_det:
            break
        ok = True
        for j in range(m):
            if class_aware and classes[keep[j]] != classes[i]:
                continue
            if box_iou(boxes + 4 * i, boxes + 4 * keep[j]) > iou:
                ok = False
                break
        if ok:
            keep[m] = i
            m += 1
    return m


def nms(const float[:, ::1] boxes, const int32_t[::1] classes, float iou, Py_ssize_t max_det, bint class_aware,
        Py_ssize_t[::1] keep):
    """Greedy NMS over boxes already in priority order (best first). Returns the number kept."""
    cdef Py_ssize_t m, n = boxes.shape[0]
    if n == 0:
        return 0
    with nogil:
        m = greedy_nms(&boxes[0, 0], &classes[0], n, iou, max_det, class_aware, &keep[0])
    return m


def nms_clusters(const float[:, ::1] boxes, const int32_t[::1] classes, float iou, Py_ssize_t max_det,
                 bint class_aware, Py_ssize_t[::1] leader):
    """Weighted-NMS clustering over boxes in priority order: leader[j] is the index of the box that
    absorbs box j (itself for a cluster's leader), or -1 once max_det clusters exist. Returns the
    number of clusters.

    The best box not yet absorbed leads a new cluster and absorbs every unabsorbed box (of its
    class, if class_aware) whose IoU with it is > iou.
    """
    cdef Py_ssize_t i, j, n = boxes.shape[0], m = 0
    with nogil:
        for i in range(n):
            leader[i] = -2
        for i in range(n):
            if leader[i] != -2:
                continue
            if m >= max_det:
                leader[i] = -1
                continue
            leader[i] = i
            m += 1
            for j in range(i + 1, n):
                if leader[j] != -2 or (class_aware and classes[j] != classes[i]):
                    continue
                if box_iou(&boxes[i, 0], &boxes[j, 0]) > iou:
                    leader[j] = i
    return m


# ---- single-tensor YOLO, end to end ------------------------------------------------------------



cdef struct Ranked:
    float score
    Py_ssize_t index


cdef int by_priority(const void* a, const void* b) noexcept nogil:
    """Higher score first; lower candidate index first among equal scores."""
    cdef const Ranked* x = <const Ranked*>a
    cdef const Ranked* y = <const Ranked*>b
    if x.score > y.score:
        return -1
    if x.score < y.score:
        return 1
    return -1 if x.index < y.index else (1 if x.index > y.index else 0)


cdef inline float real_value(qtype v, float scale, int32_t zp) noexcept nogil:
    if qtype is float:
        return v
    else:
        return <float>(<int32_t>v - zp) * scale


cdef inline float activate(float v, int activation) noexcept nogil:
    return 1.0 / (1.0 + expf(-v)) if activation == 1 else v


cdef Py_ssize_t _decode_single(const qtype[:, ::1] x, bint channel_major, bint objectness, Py_ssize_t c0,
                               Py_ssize_t nc, qtype threshold, float scale, int32_t zp, int activation, float conf,
                               float sx, float sy, bint normalized, float iou, Py_ssize_t max_det,
                               Py_ssize_t max_candidates, bint class_aware, qtype[::1] best, Py_ssize_t[::1] index,
                               int32_t[::1] cls, float[:, ::1] boxes, float[::1] scores, Py_ssize_t[::1] keep,
                               int32_t[::1] ranked_cls, Ranked* ranked) noexcept nogil:

    cdef Py_ssize_t i, j, k, m, n = 0, kept = 0, N = x.shape[1] if channel_major else x.shape[0]
    cdef Py_ssize_t pos, arg
    cdef qtype b
    cdef float s, v, cx, cy, w, h
    cdef bint ok
    if channel_major:
        m = _select_cm(x, c0, nc, threshold, best, index, cls)
    else:
        m = _select_rm(x, c0, nc, threshold, best, index, cls)
    if m < 0:
        return -1
    # Scores; drop candidates below conf (the threshold was conservative).
    for i in range(m):
        pos = index[i]
        if objectness:
            # v5: cls[i] is 0 (objectness column); find the best class of this row.
            arg = 0
            b = x[pos, c0 + 1]
            if qtype is float:
                if not isfinite(b):  # -inf in the first class would lose to any other class unseen
                    return -1
            for j in range(c0 + 2, x.shape[1]):
                if qtype is float:
                    if not isfinite(x[pos, j]):
                        return -1
                if x[pos, j] > b:
                    b = x[pos, j]
                    arg = j - c0 - 1
            s = real_value(best[pos], scale, zp) * real_value(b, scale, zp)
            if not isfinite(s):
                return -1
            cls[i] = <int32_t>arg
        else:
            s = activate(real_value(best[pos], scale, zp), activation)
        if s >= conf:
            ranked[n].score = s
            ranked[n].index = i
            n += 1
    qsort(ranked, n, sizeof(Ranked), by_priority)
    if n > max_candidates:
        n = max_candidates
    # Boxes of the ranked candidates, in rank order.
    for k in range(n):
        i = ranked[k].index
        pos = index[i]
        if channel_major:
            cx = real_value(x[0, pos], scale, zp)
            cy = real_value(x[1, pos], scale, zp)
            w = real_value(x[2, pos], scale, zp)
            h = real_value(x[3, pos], scale, zp)
        else:
            cx = real_value(x[pos, 0], scale, zp)
            cy = real_value(x[pos, 1], scale, zp)
            w = real_value(x[pos, 2], scale, zp)
            h = real_value(x[pos, 3], scale, zp)
        if not (isfinite(cx) and isfinite(cy) and isfinite(w) and isfinite(h)):
            return -2
        boxes[k, 0] = cx - w * 0.5
        boxes[k, 1] = cy - h * 0.5
        boxes[k, 2] = cx + w * 0.5
        boxes[k, 3] = cy + h * 0.5
    if normalized:
        for k in range(n):
            boxes[k, 0] *= sx
            boxes[k, 1] *= sy
            boxes[k, 2] *= sx
            boxes[k, 3] *= sy
    # Greedy NMS in rank order; kept entries are compacted to the front.
    for k in range(n):
        ranked_cls[k] = cls[ranked[k].index]
    kept = greedy_nms(&boxes[0, 0], &ranked_cls[0], n, iou, max_det, class_aware, &keep[0])
    for j in range(kept):
        k = keep[j]
        scores[j] = ranked[k].score
        cls[j] = ranked_cls[k]
        if j != k:
            boxes[j, 0] = boxes[k, 0]
            boxes[j, 1] = boxes[k, 1]
            boxes[j, 2] = boxes[k, 2]
            boxes[j, 3] = boxes[k, 3]
    return kept


def decode_single(const qtype[:, ::1] x, bint channel_major, bint objectness, Py_ssize_t c0, Py_ssize_t nc,
                  qtype threshold, float scale, int32_t zp, int activation, float conf, float sx, float sy,
                  bint normalized, float iou, Py_ssize_t max_det, Py_ssize_t max_candidates, bint class_aware,
                  qtype[::1] best, Py_ssize_t[::1] index, int32_t[::1] cls, float[:, ::1] boxes,
                  float[::1] scores, Py_ssize_t[::1] keep, int32_t[::1] ranked_cls, unsigned char[::1] rank_mem):
    """Decode a single-tensor YOLO output (v8 channel- or row-major, v5 row-major with objectness).

    Candidates: best class value (v5: objectness) >= threshold, in the tensor's own number format.
    Their scores (activation(real value); v5: objectness * best class) are kept when >= conf, their
    xywh boxes turned into xyxy (times sx, sy when normalized), ranked (score, then index) and
    passed through greedy NMS.

    The results are written in priority order to boxes[:n], scores[:n], cls[:n]; returns n, or
    -1 when a float output holds NaN or inf, -2 when kept boxes are not finite.
    """
    cdef Py_ssize_t n = x.shape[1] if channel_major else x.shape[0], r
    if (rank_mem.shape[0] < (n + 1) * <Py_ssize_t>sizeof(Ranked) or boxes.shape[0] < n or keep.shape[0] < n
            or ranked_cls.shape[0] < n or n == 0):
        raise ValueError("decode buffers too small")
    with nogil:
        r = _decode_single(x, channel_major, objectness, c0, nc, threshold, scale, zp, activation, conf, sx, sy,
                           normalized, iou, max_det, max_candidates, class_aware, best, index, cls, boxes, scores,
                           keep, ranked_cls, <Ranked*>&rank_mem[0])
    return r


RANK_BYTES = sizeof(Ranked)
