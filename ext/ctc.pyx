# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Greedy CTC decoding of a recogniser's ``(T, C)`` output: best class per step, repeats collapsed, blanks dropped.

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


cdef Py_ssize_t _decode(const qtype[:, ::1] x, Py_ssize_t blank, int mode, float scale, int32_t zp,
                        int32_t* labels, float* conf) noexcept nogil:
    cdef Py_ssize_t t, c, T = x.shape[0], C = x.shape[1], n = 0, best, prev = -1
    cdef qtype v, top
    cdef float p, total
    for t in range(T):
        best = 0
        top = x[t, 0]
        if qtype is float:
            if not isfinite(top):
                return -1
        for c in range(1, C):
            v = x[t, c]
            if qtype is float:
                if not isfinite(v):
                    return -1
            if v > top:
                top = v
                best = c
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
    (`mode` PROBABILITIES) or its softmax probability over the step's classes (`mode` SOFTMAX: ``1 / sum_c exp(d_c)``, ``d_c`` the
    difference to the best value, taken on the integers and then scaled for int outputs).
    int outputs are real values ``(q - zp) * scale``.

    Returns:
        The number of labels, or -1 when a float output holds NaN or inf.
    """
    cdef Py_ssize_t n
    with nogil:
        n = _decode(x, blank, mode, scale, zp, &labels[0], &conf[0])
    return n
