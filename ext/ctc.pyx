# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Greedy CTC decoding of a recogniser's ``(T, C)`` output: best class per step, repeats collapsed, blanks dropped.

Per step the argmax is two passes over the row: its maximum (elementwise maxima in LANES independent
lanes, no index kept: one vector max per vector of scores, as fast as the memory delivers them), then
the first index holding it (compares as wide as the values, OR-ed a chunk at a time, the row now in
L1). Both loops vectorise (`EDGERT_VEC_REPORT=1 pip install -e .`). Keeping an index per lane in the
first pass, and finding the block that holds the maximum first, were both slower on 40 x 6625 float32
(42 us and ~20 us against ~14 us); `python benchmarks/plates.py --only-ctc` times it against NumPy.

Private: only `edgert.postprocess.ctc` imports this module; it checks shapes, dtypes and the
dictionary. The NumPy twin is `edgert._reference_ctc.greedy_decode`.
"""
cimport numpy as cnp
from libc.math cimport expf
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
from libc.stdint cimport int8_t, int16_t, int32_t, uint8_t, uint16_t, uint32_t

cnp.import_array()

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

DEF LANES = 64  # elementwise maxima per block (a power of two)
DEF CHUNK = 128  # values per step of the search for the first maximum
DEF SUB = 16  # values per step of that search inside the chunk holding it
DEF STACK = 512  # steps decoded into scratch on the stack (longer lines: malloc)


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


cdef inline void lanes_max(const qtype* r, qtype* m, float* z) noexcept nogil:
    """m = max(m, r) and, for floats, z += r * 0, elementwise over LANES values (vectorises)."""
    cdef Py_ssize_t k
    cdef qtype v
    for k in range(LANES):
        v = r[k]
        m[k] = v if v > m[k] else m[k]
        if qtype is float:
            z[k] = z[k] + v * <float>0.0


cdef inline void halve(qtype* m, float* z, Py_ssize_t h) noexcept nogil:
    """Folds lanes h..2h-1 onto 0..h-1 (elementwise, so it vectorises for floats too)."""
    cdef Py_ssize_t k
    for k in range(h):
        m[k] = m[k + h] if m[k + h] > m[k] else m[k]
        if qtype is float:
            z[k] = z[k] + z[k + h]


cdef inline qtype row_max(const qtype* r, Py_ssize_t n, bint* bad) noexcept nogil:
    """The largest value of a row, in LANES elementwise maxima (no index: one vector max per vector of
    scores); `bad` set when a float row holds NaN or inf (``v * 0`` is NaN for both, and the lane sums
    keep it; NaN itself never wins a ``>``)."""
    cdef qtype m[LANES]
    cdef float z[LANES]
    cdef Py_ssize_t i, k
    cdef qtype top = r[0]
    cdef float zs = 0.0
    if n < LANES:
        for i in range(n):
            top = r[i] if r[i] > top else top
            if qtype is float:
                zs = zs + r[i] * <float>0.0
        if qtype is float:
            bad[0] = not (zs == 0.0)
        return top
    for k in range(LANES):
        m[k] = r[k]
        if qtype is float:
            z[k] = r[k] * <float>0.0
    for i in range(LANES, n - LANES + 1, LANES):
        lanes_max(r + i, m, z)
    if n % LANES:
        lanes_max(r + n - LANES, m, z)  # the last LANES values again (a max is idempotent): no scalar tail
    if qtype is float:
        # A running float max over the lanes stays scalar (it is not associative for gcc without
        # -ffast-math); halving down to 8 lanes is elementwise.
        halve(m, z, 32)
        halve(m, z, 16)
        halve(m, z, 8)
        for k in range(8):
            top = m[k] if m[k] > top else top
            zs = zs + z[k]
        bad[0] = not (zs == 0.0)
    else:
        for k in range(LANES):
            top = m[k] if m[k] > top else top
    return top


cdef inline bint holds(const qtype* r, Py_ssize_t n, qtype top) noexcept nogil:
    """Whether r[0:n] holds `top`. The flags are as wide as the values (a bint would widen every
    compare of bytes to 32 bits), OR-ed lanewise: it vectorises."""
    cdef Py_ssize_t k
    cdef uint8_t h8 = 0
    cdef uint16_t h16 = 0
    cdef uint32_t h32 = 0
    if qtype is float:
        for k in range(n):
            h32 = h32 | <uint32_t>(r[k] == top)
        return h32 != 0
    elif qtype is int16_t:
        for k in range(n):
            h16 = h16 | <uint16_t>(r[k] == top)
        return h16 != 0
    else:
        for k in range(n):
            h8 = h8 | <uint8_t>(r[k] == top)
        return h8 != 0


cdef inline Py_ssize_t first_of(const qtype* r, Py_ssize_t n, qtype top) noexcept nogil:
    """Index of the first value equal to `top` (which the row holds): CHUNK values at a time, then
    SUB at a time inside the chunk that holds it, then one by one."""
    cdef Py_ssize_t i = 0
    while i + CHUNK <= n and not holds(r + i, CHUNK, top):
        i += CHUNK
    while i + SUB <= n and not holds(r + i, SUB, top):
        i += SUB
    while r[i] != top:
        i += 1
    return i


cdef Py_ssize_t _decode(const qtype* x, Py_ssize_t T, Py_ssize_t C, Py_ssize_t blank, int mode, float scale,
                        int32_t zp, int32_t* labels, float* conf) noexcept nogil:
    cdef Py_ssize_t t, c, n = 0, best, prev = -1
    cdef qtype top
    cdef float p, total
    cdef bint bad = False, table = False
    cdef const qtype* r
    cdef float e[256]  # 8-bit outputs: e[d] = exp(-d * scale), the softmax term of a value d below the best
    for t in range(T):
        r = x + t * C
        top = row_max(r, C, &bad)
        if bad:
            return -1  # (`top` may be NaN, which first_of would never find)
        best = first_of(r, C, top)
        if best == blank:
            prev = best
            continue
        if mode == MODE_SOFTMAX:
            # Differences to the best value: exact in the integer domain, then scaled (no rounding of
            # the two real values first, so the best class's own term is exactly exp(0) = 1).
            total = 0.0
            if qtype is int8_t or qtype is uint8_t:
                # 256 possible differences: one expf each (the same values, added in the same order).
                if not table:
                    for c in range(256):
                        e[c] = expf(<float>(-c) * scale)
                    table = True
                for c in range(C):
                    total = total + e[<int32_t>top - <int32_t>r[c]]
            else:
                for c in range(C):
                    total = total + expf(diff(r[c], top, scale))
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


def greedy_decode(cnp.ndarray x, Py_ssize_t line, Py_ssize_t blank, int mode, float scale, int32_t zp,
                  tuple characters):
    """Decode line `line` of a C-contiguous ``(T, C)`` or ``(N, T, C)`` output.

    Per step the best class (the lowest index among equal values); a run of one class gives one
    label unless it is the blank; a blank between two equal classes separates them. A label's
    confidence is the largest over the steps of its run of: the real value of the best class
    (`mode` PROBABILITIES) or its softmax probability over the step's classes (`mode` SOFTMAX:
    ``1 / sum_c exp(d_c)``, ``d_c`` the
    difference to the best value, taken on the integers and then scaled for int outputs).
    int outputs are real values ``(q - zp) * scale``.

    Takes the array itself (no buffer acquisition, no fused-type dispatch: those cost more than the
    decode of a short line); the caller has checked it, and this re-checks only what keeps the
    pointers in bounds (ValueError otherwise).

    Returns:
        ``(text, confidences float32, labels int32)``, text the join of ``characters[label]``; or None
        when a float output holds NaN or inf.
    """
    cdef int nd = cnp.PyArray_NDIM(x), kind = cnp.PyArray_TYPE(x)
    cdef cnp.npy_intp* shape = cnp.PyArray_DIMS(x)
    cdef Py_ssize_t T, C, n = 0, i
    cdef char* base
    cdef int32_t lab_s[STACK]
    cdef float cf_s[STACK]
    cdef int32_t* lab = lab_s
    cdef float* cf = cf_s
    cdef cnp.npy_intp size
    cdef cnp.ndarray labels, conf
    if nd not in (2, 3) or not cnp.PyArray_IS_C_CONTIGUOUS(x):
        raise ValueError("ctc kernel: x must be a C-contiguous (T, C) or (N, T, C) array")
    T, C = shape[nd - 2], shape[nd - 1]
    if T < 1 or C < 1 or not 0 <= line < (shape[0] if nd == 3 else 1) or not 0 <= blank < C \
            or len(characters) != C:
        raise ValueError("ctc kernel: empty output, line or blank out of range, or not C characters")
    if kind not in (cnp.NPY_FLOAT32, cnp.NPY_INT8, cnp.NPY_UINT8, cnp.NPY_INT16):
        raise ValueError(f"ctc kernel: dtype {x.dtype} (int8, uint8, int16 or float32)")
    base = <char*>cnp.PyArray_DATA(x) + line * T * C * cnp.PyArray_ITEMSIZE(x)
    # Decoded into scratch of T values (on the stack for the usual line lengths); the results are
    # arrays of exactly n.
    if T > STACK:
        lab, cf = <int32_t*>malloc(T * sizeof(int32_t)), <float*>malloc(T * sizeof(float))
        if lab == NULL or cf == NULL:
            free(lab)
            free(cf)
            raise MemoryError()
    with nogil:
        if kind == cnp.NPY_FLOAT32:
            n = _decode(<const float*>base, T, C, blank, mode, scale, zp, lab, cf)
        elif kind == cnp.NPY_INT8:
            n = _decode(<const int8_t*>base, T, C, blank, mode, scale, zp, lab, cf)
        elif kind == cnp.NPY_UINT8:
            n = _decode(<const uint8_t*>base, T, C, blank, mode, scale, zp, lab, cf)
        else:
            n = _decode(<const int16_t*>base, T, C, blank, mode, scale, zp, lab, cf)
    try:
        if n < 0:
            return None
        size = n
        labels = cnp.PyArray_EMPTY(1, &size, cnp.NPY_INT32, 0)
        conf = cnp.PyArray_EMPTY(1, &size, cnp.NPY_FLOAT32, 0)
        memcpy(cnp.PyArray_DATA(labels), lab, n * sizeof(int32_t))
        memcpy(cnp.PyArray_DATA(conf), cf, n * sizeof(float))
        text = "".join([characters[lab[i]] for i in range(n)])
    finally:
        if lab != lab_s:
            free(lab)
            free(cf)
    return text, conf, labels
