# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Greedy CTC decoding of a recogniser's ``(T, C)`` output: best class per step, repeats collapsed, blanks dropped.

The argmax runs LANES (64) values at a time in independent lanes (elementwise blends, which vectorise).

Private: only `edgert.postprocess.ctc` imports this module; it checks shapes, dtypes and the
dictionary. The NumPy twin is `edgert._reference_ctc.greedy_decode`.
"""
from libc.math cimport expf, isfinite
from libc.stdint cimport int8_t, int16_t, int32_t, uint8_t

ctypedef fused qtype:
    int8_t
    uint8_t
    int16_t
    float

#: Confidence modes: the output already holds probabilities (a softmax ends the graph), or logits.
cdef enum:
    MODE_PROBABILITIES = 0
    MODE_SOFTMAX = 1
PROBABILITIES = MODE_PROBABILITIES
SOFTMAX = MODE_SOFTMAX


cdef inline float real(qtype v, float scale, int32_t zp) noexcept nogil:
    if qtype is float:
        return v
    else:
        return <float>(<int32_t>v - zp) * scale


cdef inline float diff(qtype v, qtype top, float scale) noexcept nogil:
    if qtype is float:
        return v - top
    else:
        return <float>(<int32_t>v - <int32_t>top) * scale


DEF LANES = 64


cdef inline void lanes_max(const qtype* r, qtype* m, float* z, int32_t* at, int32_t start) noexcept nogil:
    """Elementwise over LANES values: m = max(m, r), at = start + i where r is larger (the first of equal
    values stays), z += r * 0. A plain elementwise loop of blends, so it vectorises."""
    cdef Py_ssize_t i
    cdef qtype v
    cdef bint larger
    for i in range(LANES):
        v = r[i]
        larger = v > m[i]
        m[i] = v if larger else m[i]
        at[i] = <int32_t>(start + i) if larger else at[i]
        if qtype is float:
            z[i] = z[i] + v * <float>0.0


cdef inline Py_ssize_t row_argmax(const qtype* r, Py_ssize_t n, bint* bad) noexcept nogil:
    """Index of the largest value of a row (the first of equal ones), LANES at a time; `bad` set when a
    float row holds NaN or inf (``v * 0`` is NaN for both, and the lane sums keep it)."""
    cdef qtype m[LANES]
    cdef float z[LANES]
    cdef int32_t at[LANES]
    cdef Py_ssize_t i, k, nb = n - n % LANES, best = 0
    cdef qtype v, top = r[0]
    cdef float zs = 0.0
    if nb:
        for k in range(LANES):
            m[k] = r[k]
            at[k] = <int32_t>k
            z[k] = r[k] * <float>0.0
        for i in range(LANES, nb, LANES):
            lanes_max(r + i, m, z, at, <int32_t>i)
        top, best = m[0], at[0]
        for k in range(1, LANES):
            zs = zs + z[k]
            if m[k] > top or (m[k] == top and at[k] < best):
                top, best = m[k], at[k]
        zs = zs + z[0]
    for i in range(nb, n):
        v = r[i]
        if qtype is float:
            zs = zs + v * <float>0.0
        if v > top or i == 0:
            top, best = v, i
    if qtype is float:
        bad[0] = not (zs == 0.0)
    return best


cdef Py_ssize_t _decode(const qtype[:, ::1] x, Py_ssize_t blank, int mode, float scale, int32_t zp,
                        int32_t* labels, float* conf) noexcept nogil:
    cdef Py_ssize_t t, c, T = x.shape[0], C = x.shape[1], n = 0, best, prev = -1
    cdef qtype top
    cdef float p, total
    cdef bint bad = False
    cdef const qtype* r
    for t in range(T):
        r = &x[t, 0]
        best = row_argmax(r, C, &bad)
        if bad:
            return -1
        top = r[best]
        if best == blank:
            prev = best
            continue
        if mode == MODE_SOFTMAX:
            # Differences to the best value: exact in the integer domain, then scaled (no rounding of
            # the two real values first, so the best class's own term is exactly exp(0) = 1).
            total = 0.0
            for c in range(C):
                total = total + expf(diff(x[t, c], top, scale))
            p = 1.0 / total
        else:
            p = real(top, scale, zp)
        if best == prev:
            if p > conf[n - 1]:
                conf[n - 1] = p
            continue
        labels[n] = <int32_t>best
        conf[n] = p
        n += 1
        prev = best
    return n


def greedy_decode(const qtype[:, ::1] x, Py_ssize_t blank, int mode, float scale, int32_t zp,
                  int32_t[::1] labels, float[::1] conf):
    """Decode one ``(T, C)`` output into `labels` and `conf` (each of length >= T).

    Per step the best class (the lowest index among equal values); a run of one class gives one
    label unless it is the blank; a blank between two equal classes separates them. A label's
    confidence is the largest over the steps of its run of: the real value of the best class
    (`mode` PROBABILITIES) or its softmax probability over the step's classes (`mode` SOFTMAX:
    ``1 / sum_c exp(d_c)``, ``d_c`` the
    difference to the best value, taken on the integers and then scaled for int outputs).
    int outputs are real values ``(q - zp) * scale``.

    Returns:
        The number of labels, or -1 when a float output holds NaN or inf.
    """
    cdef Py_ssize_t n
    with nogil:
        n = _decode(x, blank, mode, scale, zp, &labels[0], &conf[0])
    return n
