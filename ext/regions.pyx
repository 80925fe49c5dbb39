# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Region kernel: many boxes of one frame -> one (N, H, W, C) batch, crop + resize + convert + quantise.

Private: only `edgert.regions` imports this module; it checks arrays, dtypes and strides first.

Per box, with the GIL released, the sampling maps are computed here (boxes change every frame).
Per output row and plane: the two source rows are blended vertically over the bytes the box reads
(16-bit lanes), each output's two horizontal taps are copied from that row into dense slots (3-
and 4-byte pixels: one 8-lane window holding both taps; 1- and 2-byte pixels: left and right slots
of `K` lanes), blended horizontally (16-bit lanes), rounded, interleaved, then converted and mapped
through the value tables (or the affine form of the table, exactly, in 16-bit lanes when all
channels share it) into the batch. Every stage is one fixed-stride loop that gcc vectorises. With
AVX2, 3 interleaved 8-bit output channels of 3- and 4-byte pixels go from the blended row to output
bytes in one pass (copy, blend, rounding and interleave in registers: `edgert_row3/4`), then the
tables.

Geometry (the spec; `edgert.regions` documents it for users and `edgert._reference_regions` is the
twin): for output index i of an axis with content start ``sx``, length ``sw`` over ``n`` outputs,
``r = sw / n`` and the source position (in pixel indices, pixel k centred on k) is
``P_i = rint((sx + o * r - o) * 2^16) + i * rint(r * 2^16)`` in Q16, with ``o = 0.5`` for
half-pixel centres and ``o = 0`` corner-mapped (where a letterbox is MediaPipe's exact-scale one,
`geometry.place`). An output pixel whose position lies outside ``[-0.5, size - 0.5)`` (half) or
``[-0.5, size)`` (corner) of the frame is padding. Taps are ``P >> 16`` and the next one, clamped to
the box's pixel hull inside the frame (borders replicated, as a crop resized alone); the weight of the
second tap is the fraction rounded to Q8 for rows and to Q15 for columns. Values:
``t = (256 v0 + (v1 - v0) fy) >> 1`` (Q7), ``h = tl + ((((tr - tl) fx) >> 14) + 1) >> 1`` (a rounded
Q15 multiply), the sample ``(h + 64) >> 7``. Nearest takes ``(P + 2^15) >> 16``, clamped.
4:2:0 chroma is sampled at ``(P - 2^15) >> 1`` over the hull halved (its samples sit between lumas).
"""
cimport numpy as cnp
from libc.math cimport ceil, floor, fmax, fmin, isfinite, rint
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint16_t
from libc.string cimport memcpy, memset

cnp.import_array()

cdef extern from *:
    """
    typedef short *__restrict edgert_i16_out;
    typedef const short *__restrict edgert_i16_in;
    """
    void prefetch "__builtin_prefetch"(const void*) nogil
    ctypedef int16_t* i16_out "edgert_i16_out"
    ctypedef const int16_t* i16_in "edgert_i16_in"

# 3- and 4-byte pixels with AVX2: the taps of a row copied, blended, rounded and interleaved in
# registers (`windows8`, `blend_win3/4`, `lane1` and `bytes_012/210` without the stores and reloads
# between them), two 16-byte windows a ymm. The same integers: vpmulhrsw is the spec's rounded Q15
# multiply. Without AVX2 `EDGERT_ROW_AVX2` is 0 and the portable stages run.
cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #if defined(__AVX2__)
    #include <immintrin.h>
    #define EDGERT_ROW_AVX2 1
    static inline __m256i edgert_pair(const int16_t *t, int32_t x0, int32_t x1)
    {
        return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(t + x0))),
                                       _mm_loadu_si128((const __m128i *)(t + x1)), 1);
    }
    static inline __m256i edgert_wpair(const int16_t *w)
    {
        return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadl_epi64((const __m128i *)w)),
                                       _mm_loadl_epi64((const __m128i *)(w + 8)), 1);
    }
    /* Output bytes (c0, c1, c2) of n pixels into o[0, 3n) (no store past it); SHIFT: bytes between taps. */
    #define EDGERT_ROW_BODY(SHIFT)                                                                  \
        const __m256i r64 = _mm256_set1_epi16(64);                                                  \
        const __m256i pick = _mm256_setr_epi8(c0, c1, c2, 8 + c0, 8 + c1, 8 + c2, -1, -1, -1, -1, -1, -1, -1, -1, \
                                              -1, -1, c0, c1, c2, 8 + c0, 8 + c1, 8 + c2, -1, -1, -1, -1, -1, -1, \
                                              -1, -1, -1, -1);                                      \
        int i = 0, ch[3] = {c0, c1, c2};                                                            \
        for (; i + 4 <= n; i += 4) {                                                                \
            /* a: pixels i, i + 2; b: i + 1, i + 3 (after packus each lane holds two pixels in order) */ \
            __m256i a = edgert_pair(t, x[i], x[i + 2]), b = edgert_pair(t, x[i + 1], x[i + 3]);     \
            __m256i wa = edgert_wpair(w + 4 * i), wb = edgert_wpair(w + 4 * i + 4);                 \
            a = _mm256_add_epi16(a, _mm256_mulhrs_epi16(_mm256_sub_epi16(_mm256_srli_si256(a, SHIFT), a), wa)); \
            b = _mm256_add_epi16(b, _mm256_mulhrs_epi16(_mm256_sub_epi16(_mm256_srli_si256(b, SHIFT), b), wb)); \
            a = _mm256_srli_epi16(_mm256_add_epi16(a, r64), 7);                                     \
            b = _mm256_srli_epi16(_mm256_add_epi16(b, r64), 7);                                     \
            __m256i q = _mm256_shuffle_epi8(_mm256_packus_epi16(a, b), pick);                       \
            __m128i q0 = _mm256_castsi256_si128(q), q1 = _mm256_extracti128_si256(q, 1);            \
            if (i + 4 < n) {  /* 8-byte stores: their last 2 bytes are pixel i + 4's, written next */ \
                _mm_storel_epi64((__m128i *)(o + 3 * i), q0);                                       \
                _mm_storel_epi64((__m128i *)(o + 3 * i + 6), q1);                                   \
            } else {                                                                                \
                uint8_t tmp[16];                                                                    \
                _mm_storel_epi64((__m128i *)tmp, q0);                                               \
                _mm_storel_epi64((__m128i *)(tmp + 6), q1);                                         \
                memcpy(o + 3 * i, tmp, 12);                                                         \
            }                                                                                       \
        }                                                                                           \
        for (; i < n; i++) {                                                                        \
            for (int k = 0; k < 3; k++) {                                                           \
                int16_t v0 = t[x[i] + ch[k]], d = (int16_t)(t[x[i] + SHIFT / 2 + ch[k]] - v0);      \
                int16_t h = (int16_t)(v0 + (int16_t)((((int32_t)d * w[4 * i + ch[k]] >> 14) + 1) >> 1)); \
                o[3 * i + k] = (uint8_t)((uint16_t)(h + 64) >> 7);                                  \
            }                                                                                       \
        }
    #else
    #define EDGERT_ROW_AVX2 0
    #define EDGERT_ROW_BODY(SHIFT)
    #endif
    static void edgert_row3(const int16_t *t, const int32_t *x, const int16_t *w, int c0, int c1, int c2,
                            uint8_t *o, int n) { EDGERT_ROW_BODY(6) }
    static void edgert_row4(const int16_t *t, const int32_t *x, const int16_t *w, int c0, int c1, int c2,
                            uint8_t *o, int n) { EDGERT_ROW_BODY(8) }
    """
    bint ROW_AVX2 "EDGERT_ROW_AVX2"
    void row3_avx2 "edgert_row3"(const int16_t*, const int32_t*, const int16_t*, int, int, int, uint8_t*, int) nogil
    void row4_avx2 "edgert_row4"(const int16_t*, const int32_t*, const int16_t*, int, int, int, uint8_t*, int) nogil

ctypedef void (*row_fn)(const int16_t*, const int32_t*, const int16_t*, int, int, int, uint8_t*, int) noexcept nogil

include "kernel_types.pxi"
include "preprocess_rows.pxi"
include "batch_output.pxi"

cdef enum:
    STRETCH = 0
    LETTERBOX = 1
    CENTER_CROP = 2
    # run(): the box at `bad` is refused for this reason (nothing written)
    BOX_OK = 0
    BOX_EMPTY = 1       # zero or negative width or height, or not finite
    BOX_OUTSIDE = 2     # no pixel of the frame inside
    X_BITS = 15         # column weights (a rounded Q15 multiply on 16-bit lanes)
    Y_BITS = 8          # row weights (the row blend is exact in 16-bit lanes)


ctypedef void (*compact_k_fn)(const int16_t*, const int32_t*, int, i16_out, i16_out, int) noexcept nogil


cdef struct Axis:
    # One axis of one box for one plane: taps per output of the content, and the range sampled.
    int32_t* first      # first tap (y: row; x: byte offset of the pixel in the row)
    int32_t* second     # second tap (rows; for x a scratch row, unused)
    int32_t* weight     # weight of the second tap (Q8 rows, Q15 columns)
    int a, b            # outputs [a, b) of the content lie inside the frame


cdef struct Plane:
    # One sampled plane of the frame for the current box: where its row bytes are and how they map.
    int step            # bytes between horizontally adjacent pixels
    int K               # lanes per slot: the bytes of one pixel that are kept (1, 2 or 4)
    int row_bytes       # bytes of a row that belong to the plane
    int lo, hi          # bytes [lo, hi) of a row that the blend reads (hi may pass row_bytes)
    const int32_t* x    # per output: the first tap's byte offset from lo
    const int16_t* wk   # per slot lane: the Q15 column weight
    compact_k_fn compact



# ---- row stages (one loop each, called through pointers: inlined, gcc stops vectorising them) ----

cdef void blend_column(u8_in r0, u8_in r1, int32_t fy, i16_out t, int n) noexcept nogil:
    """t = (r0 * (256 - fy) + r1 * fy) / 2, Q7: exact in wrapping 16-bit lanes before the halving."""
    cdef int k
    cdef uint16_t f = <uint16_t>fy
    for k in range(n):
        t[k] = <int16_t>(<uint16_t>((r0[k] << 8) + <uint16_t>(r1[k] - r0[k]) * f) >> 1)


cdef void taps1(const int16_t* t, const int32_t* x, int step, i16_out l, i16_out r, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        l[i] = t[x[i]]
        r[i] = t[x[i] + 1]


cdef void taps2(const int16_t* t, const int32_t* x, int step, i16_out l, i16_out r, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        memcpy(l + 2 * i, t + x[i], 4)
        memcpy(r + 2 * i, t + x[i] + 2, 4)


cdef void windows8(const int16_t* t, const int32_t* x, int step, i16_out l, i16_out r, int n) noexcept nogil:
    """3- and 4-byte pixels: one 8-lane copy per output holds both taps (lanes 0-3 and step..step+3)."""
    cdef int i
    for i in range(n):
        memcpy(l + 8 * i, t + x[i], 16)


# blend_win3 and blend_win4 differ only in the second tap's offset (3 or 4 lanes), written as a constant
# in each so the compiler sees fixed lane distances in this hot loop.
cdef void blend_win3(i16_in s, i16_in r_unused, i16_in w, i16_out h, int n) noexcept nogil:
    cdef int i, k
    cdef int16_t d
    for i in range(n):
        for k in range(4):
            d = s[8 * i + 3 + k] - s[8 * i + k]
            h[4 * i + k] = s[8 * i + k] + <int16_t>((((<int32_t>d * w[4 * i + k]) >> 14) + 1) >> 1)


cdef void blend_win4(i16_in s, i16_in r_unused, i16_in w, i16_out h, int n) noexcept nogil:
    cdef int i, k
    cdef int16_t d
    for i in range(n):
        for k in range(4):
            d = s[8 * i + 4 + k] - s[8 * i + k]
            h[4 * i + k] = s[8 * i + k] + <int16_t>((((<int32_t>d * w[4 * i + k]) >> 14) + 1) >> 1)


cdef void blend_row(i16_in l, i16_in r, i16_in w, i16_out h, int m) noexcept nogil:
    """h = l + (r - l) * w, a rounded Q15 multiply (kept in 16 bits: gcc then emits one multiply a lane)."""
    cdef int j
    cdef int16_t d
    for j in range(m):
        d = r[j] - l[j]
        h[j] = l[j] + <int16_t>((((<int32_t>d * w[j]) >> 14) + 1) >> 1)


cdef inline uint8_t q7(int16_t h) noexcept nogil:
    """A Q7 sample rounded to 8 bits."""
    return <uint8_t>(<uint16_t>(h + 64) >> 7)


# Slots -> 8-bit rows: interleaved output channels (4-lane slots), or one channel's row.
cdef void slots_any(i16_in h, const int32_t* inner, u8_out o, int n) noexcept nogil:
    cdef int i
    cdef int32_t a = inner[0], b = inner[1], c = inner[2]
    for i in range(n):
        o[3 * i] = q7(h[4 * i + a])
        o[3 * i + 1] = q7(h[4 * i + b])
        o[3 * i + 2] = q7(h[4 * i + c])


cdef void lane1(i16_in h, u8_out o, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        o[i] = q7(h[i])


cdef void lane2(i16_in h, u8_out o, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        o[i] = q7(h[2 * i])


cdef void lane4(i16_in h, u8_out o, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        o[i] = q7(h[4 * i])


ctypedef void (*lane_fn)(i16_in, u8_out, int) noexcept nogil


cdef void affine_flat(u8_in v, const int32_t* m, const int32_t* b, int32_t lo, int32_t hi, u8_out o,
                      int n) noexcept nogil:
    """o = clamp((v * m + b) >> 16) with one (m, b) per position: the table of an interleaved row."""
    cdef int j
    for j in range(n):
        o[j] = <uint8_t>clamp_i((v[j] * m[j] + b[j]) >> 16, lo, hi)


cdef void affine16(u8_in v, const uint16_t* k, int16_t lo, int16_t hi, u8_out o, int n) noexcept nogil:
    """`affine_flat` with one (M, B) for every channel, exactly, in 16-bit lanes (twice the lanes a vector).

    With ``M = Mi 2^16 + Mh 2^8 + Ml`` and ``B = Bi 2^16 + Bh 2^8 + Bl`` (``Bi`` signed, the rest
    bytes): ``(v M + B) >> 16 = v Mi + Bi + ((v Mh + Bh + ((v Ml + Bl) >> 8)) >> 8)``, every partial
    sum below 2^16 for v < 256.
    """
    cdef int j
    cdef uint16_t ml = k[0], bl = k[1], mh = k[2], bh = k[3], x, t
    cdef int16_t mi = <int16_t>k[4], bi = <int16_t>k[5], q
    for j in range(n):
        x = v[j]
        t = <uint16_t>(x * ml + bl) >> 8
        t = <uint16_t>(x * mh + bh + t) >> 8
        q = <int16_t>(x * mi + t + bi)
        q = lo if q < lo else q
        q = hi if q > hi else q
        o[j] = <uint8_t>q


cdef void bytes_012(u8_in q, u8_out o, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        o[3 * i] = q[4 * i]
        o[3 * i + 1] = q[4 * i + 1]
        o[3 * i + 2] = q[4 * i + 2]


cdef void bytes_210(u8_in q, u8_out o, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        o[3 * i] = q[4 * i + 2]
        o[3 * i + 1] = q[4 * i + 1]
        o[3 * i + 2] = q[4 * i]


cdef void lookup_flat3(u8_in v, const uint8_t* lut, u8_out o, int n) noexcept nogil:
    cdef int i
    cdef const uint8_t* l1 = lut + 256
    cdef const uint8_t* l2 = lut + 512
    for i in range(n):
        o[3 * i] = lut[v[3 * i]]
        o[3 * i + 1] = l1[v[3 * i + 1]]
        o[3 * i + 2] = l2[v[3 * i + 2]]


cdef inline void exact_span(double n_src, int n_dst, double scale, double x0, int* first, int* count, double* start,
                            double* length) noexcept nogil:
    """One axis of MediaPipe's exact-scale letterbox (`edgert.geometry._exact_span`), for a box at x0."""
    cdef double offset = (n_dst - n_src * scale) / 2
    cdef int a = <int>fmax(0, ceil(offset - 0.5 * scale - 1e-9))
    cdef int b = <int>fmin(n_dst - 1, floor(offset + (n_src - 0.5) * scale + 1e-9))
    if b < a:
        a = b = <int>fmin(n_dst - 1, fmax(0, floor(n_dst / 2.0)))
    first[0], count[0] = a, b - a + 1
    start[0], length[0] = x0 + (a - offset) / scale, (b - a + 1) / scale


cdef class RegionKernel:
    """One source format and one model input; `run` fills a batch from boxes of a frame.

    Args (prepared and checked by `edgert.regions`):
        frame_size: ``(width, height)`` of the frames, both >= 2.
        step: Bytes per pixel of the packed (or luma) plane.
        inner: Byte offset of each sampled channel inside a pixel (group 0).
        chroma: 0 (none), 1 (NV12/NV21: one interleaved plane) or 2 (I420: U and V planes).
        mode: 0 stretch, 1 letterbox, 2 center-crop, applied to each box.
        nearest: Nearest sampling instead of bilinear.
        centre_offset: 0.5 (half-pixel centres) or 0.0 (corner-mapped).
        lut, pad_rows, out_size, nhwc, identity, affine, yuv, bgr_order, conv: the output tables
            (see `batch_output.pxi`).
    """

    cdef OutMap om
    cdef int fw, fh, step, nch, chroma, mode, cstep
    cdef bint nearest, packed3   # packed3: 3 interleaved 8-bit output channels straight from 4-lane slots
    cdef double centre
    cdef int32_t inner[MAX_CH]
    cdef int32_t c_inner[2]
    cdef bint busy
    cdef list _keep
    cdef int32_t* maps          # x taps / weights / offsets per plane (3 x 2 x out_w), y taps (2 x 3 x out_h)
    cdef int16_t* wk            # expanded column weights: 2 planes x 4 x out_w
    cdef int16_t* tbuf          # one vertically blended row (Q7)
    cdef int16_t* left
    cdef int16_t* right
    cdef int16_t* slots         # Q7 samples: 3 planes x 4 x out_w
    cdef uint8_t* lanes         # planar channel rows, then 3 x out_w converted / interleaved
    cdef int32_t* aff_m         # affine form per interleaved position (3 x out_w)
    cdef int32_t* aff_b
    cdef public int bad, reason
    cdef compact_k_fn taps[3]
    cdef void (*blend_c)(u8_in, u8_in, int32_t, i16_out, int) noexcept nogil
    cdef void (*blend_r)(i16_in, i16_in, i16_in, i16_out, int) noexcept nogil
    cdef void (*blend_w3)(i16_in, i16_in, i16_in, i16_out, int) noexcept nogil
    cdef void (*blend_w4)(i16_in, i16_in, i16_in, i16_out, int) noexcept nogil
    cdef pick_fn bytes3
    cdef void (*slotsx)(i16_in, const int32_t*, u8_out, int) noexcept nogil
    cdef void (*aff3)(u8_in, const int32_t*, const int32_t*, int32_t, int32_t, u8_out, int) noexcept nogil
    cdef void (*lut3)(u8_in, const uint8_t*, u8_out, int) noexcept nogil
    cdef void (*aff16)(u8_in, const uint16_t*, int16_t, int16_t, u8_out, int) noexcept nogil
    cdef uint16_t aff16_k[6]    # the one affine form of all channels, split for `affine16`, when it exists
    cdef bint uniform16
    cdef lane_fn lane[5]
    cdef row_fn row_out         # packed3 with channels 012 or 210, AVX2: a row's taps to 8-bit output channels

    def __init__(self, tuple frame_size, int step, list inner, int chroma, int mode, bint nearest,
                 double centre_offset, cnp.ndarray lut, cnp.ndarray pad_rows, tuple out_size, bint nhwc,
                 bint identity, affine, tuple yuv, bint bgr_order, int conv):
        import numpy as np
        cdef int c, j, w, h
        self.fw, self.fh = frame_size
        if self.fw < 2 or self.fh < 2 or not 1 <= step <= 4 or not 1 <= len(inner) <= 3 or not 0 <= chroma <= 2:
            raise ValueError("bad region kernel configuration")
        if max(inner) >= step or min(inner) < 0:
            raise ValueError("channel offsets outside the pixel")
        init_outmap(&self.om, lut, pad_rows, out_size, nhwc, identity, affine, yuv, bgr_order, conv)
        self._keep = [lut, pad_rows]
        self.step, self.nch, self.chroma, self.mode = step, len(inner), chroma, mode
        self.nearest, self.centre = nearest, centre_offset
        for c in range(self.nch):
            self.inner[c] = inner[c]
        self.cstep = 2 if chroma == 1 else 1
        self.packed3 = (chroma == 0 and step >= 3 and conv == CONV_COPY and self.om.out_ch == 3 and nhwc
                        and self.om.itemsize == 1)
        self.taps[1], self.taps[2] = taps1, taps2
        self.blend_c, self.blend_r, self.blend_w3, self.blend_w4 = blend_column, blend_row, blend_win3, blend_win4
        self.bytes3 = NULL
        if list(inner) == [0, 1, 2]:
            self.bytes3 = bytes_012
        elif list(inner) == [2, 1, 0]:
            self.bytes3 = bytes_210
        self.slotsx, self.aff3, self.lut3 = slots_any, affine_flat, lookup_flat3
        self.lane[1], self.lane[2], self.lane[4] = lane1, lane2, lane4
        w, h = self.om.out_w, self.om.out_h
        # one arena, every buffer on its own 64-byte line: where malloc put separate arrays decided
        # 8% of the time (cache-line splits and 4K aliasing between the row stages' streams)
        sizes = [4 * (7 * w + 6 * h + 16), 2 * (8 * w + 32), 2 * (4 * self.fw + 64), 4 * (8 * w + 32),
                 2 * (12 * w + 64), 12 * w + 64, 4 * (6 * w + 8)]
        offs, at = [], 0
        for nb in sizes:
            offs.append(at)
            at += (nb + 63) // 64 * 64
        arena = np.zeros(at + 64, np.uint8)
        base = (-arena.ctypes.data) % 64
        maps, wk, tb, lr, slots, lanes, aff = (
            arena[base + o:base + o + nb].view(dt) for o, nb, dt in zip(
                offs, sizes, (np.int32, np.int16, np.int16, np.int16, np.int16, np.uint8, np.int32)))
        if self.om.affine:
            for j in range(3 * w):
                aff[j] = self.om.affine_k[2 * (j % 3)]
                aff[3 * w + j] = self.om.affine_k[2 * (j % 3) + 1]
        self._keep += [maps, wk, tb, lr, slots, lanes, aff]
        self.aff16 = affine16
        self.uniform16 = False
        if self.om.affine and self.packed3:
            km, kb, lo, hi = affine[0], affine[1], affine[6], affine[7]
            mi, bi = km >> 16, kb >> 16
            # one form for all channels, and every intermediate of affine16 inside 16 bits
            self.uniform16 = (tuple(affine[0:6]) == (km, kb) * 3 and 0 <= mi < 32 and -32768 <= lo <= hi < 32768
                              and -32768 <= bi and 255 * mi + 255 + bi < 32768)
            for c, v in enumerate(((km & 0xFFFF) & 255, (kb & 0xFFFF) & 255, (km & 0xFFFF) >> 8, (kb & 0xFFFF) >> 8,
                                   mi & 0xFFFF, bi & 0xFFFF)):
                self.aff16_k[c] = v
        self.row_out = NULL
        if ROW_AVX2 and self.packed3 and self.bytes3 != NULL:
            self.row_out = row3_avx2 if step == 3 else row4_avx2
        self.maps = <int32_t*>cnp.PyArray_DATA(maps)
        self.wk = <int16_t*>cnp.PyArray_DATA(wk)
        self.tbuf = <int16_t*>cnp.PyArray_DATA(tb)
        self.left = <int16_t*>cnp.PyArray_DATA(lr)
        self.right = self.left + 8 * w + 32
        self.slots = <int16_t*>cnp.PyArray_DATA(slots)
        self.lanes = <uint8_t*>cnp.PyArray_DATA(lanes)
        self.aff_m = <int32_t*>cnp.PyArray_DATA(aff)
        self.aff_b = self.aff_m + 3 * w

    def run(self, cnp.ndarray frame, Py_ssize_t pitch, Py_ssize_t chroma_u, Py_ssize_t chroma_v,
            Py_ssize_t chroma_pitch, cnp.ndarray boxes, cnp.ndarray out):
        """Fill ``out[k]`` from ``boxes[k]`` (float64 ``(N, 4)`` xyxy, C-contiguous) for every k.

        Returns False when another thread is inside `run` (nothing done). When a box is refused,
        nothing is written, `bad` is its index and `reason` BOX_EMPTY or BOX_OUTSIDE; else bad = -1.
        """
        cdef const uint8_t* src = <const uint8_t*>cnp.PyArray_DATA(frame)
        cdef char* dst = <char*>cnp.PyArray_DATA(out)
        cdef const double* bx = <const double*>cnp.PyArray_DATA(boxes)
        cdef int n = boxes.shape[0]
        cdef Py_ssize_t image = out.nbytes // n if n else 0
        cdef Py_ssize_t seg0 = min(chroma_u, chroma_v)
        cdef int k
        if self.busy:
            return False
        self.busy = True
        self.c_inner[0] = chroma_u - seg0 if self.chroma == 1 else 0
        self.c_inner[1] = chroma_v - seg0 if self.chroma == 1 else 0
        try:
            with nogil:
                self.bad = self._check(bx, n)
                if self.bad < 0:
                    for k in range(n):
                        self._box(src, pitch, chroma_u, chroma_v, chroma_pitch, bx + 4 * k, dst + k * image)
        finally:
            self.busy = False
        return True

    cdef int _check(self, const double* bx, int n) noexcept nogil:
        cdef int k
        cdef double x0, y0, x1, y1
        for k in range(n):
            x0, y0, x1, y1 = bx[4 * k], bx[4 * k + 1], bx[4 * k + 2], bx[4 * k + 3]
            if not (isfinite(x0) and isfinite(y0) and isfinite(x1) and isfinite(y1)) or x1 <= x0 or y1 <= y0:
                self.reason = BOX_EMPTY
                return k
            if x1 <= 0 or y1 <= 0 or x0 >= self.fw or y0 >= self.fh or x0 < -1e6 or y0 < -1e6 or x1 > 1e6 or y1 > 1e6:
                self.reason = BOX_OUTSIDE
                return k
        self.reason = BOX_OK
        return -1

    cdef void _place(self, const double* box, double* s, int* d) noexcept nogil:
        """Source rect s = (x, y, w, h) and content rect d = (x, y, w, h) of one box (`geometry.place`)."""
        cdef double bw = box[2] - box[0], bh = box[3] - box[1], k, cw, ch
        cdef int W = self.om.out_w, H = self.om.out_h
        s[0], s[1], s[2], s[3] = box[0], box[1], bw, bh
        d[0], d[1], d[2], d[3] = 0, 0, W, H
        if self.mode == LETTERBOX and self.centre == 0.0:
            k = fmin(W / bw, H / bh)
            exact_span(bw, W, k, box[0], &d[0], &d[2], &s[0], &s[2])
            exact_span(bh, H, k, box[1], &d[1], &d[3], &s[1], &s[3])
        elif self.mode == LETTERBOX:
            k = fmin(W / bw, H / bh)
            d[2] = <int>min(W, max(1, <int>rint(bw * k)))
            d[3] = <int>min(H, max(1, <int>rint(bh * k)))
            d[0], d[1] = (W - d[2]) // 2, (H - d[3]) // 2
        elif self.mode == CENTER_CROP:
            k = fmax(W / bw, H / bh)
            cw, ch = fmin(bw, W / k), fmin(bh, H / k)
            s[0], s[1], s[2], s[3] = box[0] + (bw - cw) / 2, box[1] + (bh - ch) / 2, cw, ch

    cdef void _axis(self, double start, double length, int n, int lo, int hi, int size, bint chroma,
                    int step, int bits, Axis* ax) noexcept nogil:
        """Taps of one axis of a plane (see the module docstring); `size`: the frame's pixels on this axis."""
        cdef double r = length / n
        cdef int64_t org = <int64_t>rint((start + self.centre * r - self.centre) * 65536.0)
        cdef int64_t stp = <int64_t>rint(r * 65536.0), p
        # content: positions in [-1/2, size - 1/2) of the frame (half), [-1/2, size) (corner)
        cdef int64_t limit = <int64_t>size * 65536 - (32768 if self.centre != 0.0 else 0)
        cdef int i, i0, w, one = 1 << bits, ch = 1 if chroma else 0, drop = 16 - bits, half = 1 << (15 - bits)
        cdef int64_t below = 32768 if chroma else 0
        cdef int32_t* first = ax.first
        cdef int32_t* second = ax.second
        cdef int32_t* weight = ax.weight
        # positions rise with i: the content is one run of outputs
        i = 0
        while i < n and org + i * stp < -32768:
            i += 1
        ax.a = i
        while i < n and org + i * stp < limit:
            i += 1
        ax.b = i
        if self.nearest:
            for i in range(n):
                p = (org + i * stp - below) >> ch
                i0 = <int>((p + 32768) >> 16)
                i0 = lo if i0 < lo else (hi if i0 > hi else i0)
                first[i], second[i], weight[i] = i0 * step, i0, 0
        else:
            for i in range(n):
                p = (org + i * stp - below) >> ch
                i0 = <int>(p >> 16)
                w = <int>(((p & 0xFFFF) + half) >> drop)
                i0 += w >> bits  # a fraction that rounds up to one is the next pixel
                w = 0 if (i0 < lo or i0 >= hi) else w & (one - 1)
                i0 = lo if i0 < lo else (hi if i0 > hi else i0)
                first[i], second[i], weight[i] = i0 * step, i0 + (w != 0), w
        if ax.b <= ax.a:
            ax.a = ax.b = 0

    cdef void _plane(self, const Axis* ax, int step, int K, int size, int32_t* x, int16_t* wk,
                     Plane* pl) noexcept nogil:
        """The row range and dense column maps of one plane for the content columns [ax.a, ax.b)."""
        cdef int i, l, n = ax.b - ax.a
        pl.step, pl.K, pl.row_bytes = step, K, size * step
        pl.compact = self.taps[K] if K < 4 else NULL  # 4 lanes: `windows8`
        pl.lo = ax.first[ax.a] if n else 0
        pl.hi = (ax.first[ax.b - 1] + (8 if K == 4 else step + K)) if n else 0
        cdef const int32_t* f = ax.first + ax.a
        cdef const int32_t* w = ax.weight + ax.a
        cdef int lo = pl.lo
        for i in range(n):
            x[i] = f[i] - lo
        if K == 4:
            for i in range(n):
                wk[4 * i] = wk[4 * i + 1] = wk[4 * i + 2] = wk[4 * i + 3] = <int16_t>w[i]
        else:
            for i in range(n):
                for l in range(K):
                    wk[K * i + l] = <int16_t>w[i]
        pl.x, pl.wk = x, wk

    cdef void _box(self, const uint8_t* src, Py_ssize_t pitch, Py_ssize_t cu, Py_ssize_t cv, Py_ssize_t cp,
                   const double* box, char* image) noexcept nogil:
        cdef double s[4]
        cdef int d[4]
        cdef int lo_x, hi_x, lo_y, hi_y, W = self.om.out_w, H = self.om.out_h, y, dy, c, g, n, first, K
        cdef Axis ax[2]
        cdef Axis ay[2]
        cdef Plane pl[2]
        cdef int32_t* m = self.maps
        cdef uint8_t* a[MAX_CH]
        cdef uint8_t* b[MAX_CH]
        cdef uint8_t* rows[3]
        cdef uint8_t* L = self.lanes
        cdef int16_t* q0 = self.slots
        cdef int16_t* q1 = self.slots + 4 * W + 16
        cdef int16_t* q2 = self.slots + 8 * W + 32
        cdef uint8_t* o8
        cdef int ngroups = 2 if self.chroma else 1
        self._place(box, s, d)
        lo_x = <int>fmax(0, floor(box[0]))
        hi_x = <int>fmin(self.fw, ceil(box[2])) - 1
        lo_y = <int>fmax(0, floor(box[1]))
        hi_y = <int>fmin(self.fh, ceil(box[3])) - 1
        for g in range(ngroups):
            ax[g].first, ax[g].weight, ax[g].second = m + 3 * g * W, m + (3 * g + 1) * W, m + 6 * W + 6 * H + 8
            ay[g].first, ay[g].second, ay[g].weight = m + 6 * W + 3 * g * H, m + 6 * W + (3 * g + 1) * H, \
                m + 6 * W + (3 * g + 2) * H
        self._axis(s[0], s[2], d[2], lo_x, hi_x, self.fw, False, self.step, X_BITS, &ax[0])
        self._axis(s[1], s[3], d[3], lo_y, hi_y, self.fh, False, 1, Y_BITS, &ay[0])
        K = 4 if self.step >= 3 else self.step
        self._plane(&ax[0], self.step, K, self.fw, m + 2 * W, self.wk, &pl[0])
        if self.chroma:
            self._axis(s[0], s[2], d[2], lo_x >> 1, hi_x >> 1, self.fw, True, self.cstep,
                       X_BITS, &ax[1])
            self._axis(s[1], s[3], d[3], lo_y >> 1, hi_y >> 1, self.fh, True, 1, Y_BITS,
                       &ay[1])
            ax[1].a, ax[1].b = ax[0].a, ax[0].b
            self._plane(&ax[1], self.cstep, self.cstep, self.fw // 2, m + 5 * W, self.wk + 4 * W + 16, &pl[1])
        n = ax[0].b - ax[0].a
        first = d[0] + ax[0].a
        for y in range(H):
            dy = y - d[1]
            if dy < ay[0].a or dy >= ay[0].b or n == 0:
                pad_span(&self.om, image, y, 0, W)
                continue
            pad_span(&self.om, image, y, 0, first)
            pad_span(&self.om, image, y, first + n, W)
            if self.row_out != NULL:
                o8 = <uint8_t*>image + (<Py_ssize_t>y * W + first) * 3
                self._sample(src, pitch, dy, &pl[0], &ay[0], NULL, n)
                c = 2 if self.bytes3 == bytes_210 else 0
                self.row_out(self.tbuf, pl[0].x, pl[0].wk, c, 1, 2 - c, o8 if self.om.identity else L + 4 * W, n)
                if not self.om.identity:
                    self._table3(L + 4 * W, o8, n)
                continue
            self._sample(src, pitch, dy, &pl[0], &ay[0], q0, n)
            if self.packed3:
                o8 = <uint8_t*>image + (<Py_ssize_t>y * W + first) * 3
                if self.om.identity:
                    self._interleave(q0, o8, n)
                    continue
                self._interleave(q0, L + 4 * W, n)
                self._table3(L + 4 * W, o8, n)
                continue
            for c in range(self.nch):
                a[c] = L + c * W
                self.lane[K](q0 + self.inner[c], a[c], n)
            b[0], b[1] = L + 3 * W, L + 4 * W
            if self.chroma == 1:
                self._sample(src + min(cu, cv), cp, dy, &pl[1], &ay[1], q1, n)
                self.lane[2](q1 + self.c_inner[0], b[0], n)
                self.lane[2](q1 + self.c_inner[1], b[1], n)
            elif self.chroma == 2:
                self._sample(src + cu, cp, dy, &pl[1], &ay[1], q1, n)
                self._sample(src + cv, cp, dy, &pl[1], &ay[1], q2, n)
                self.lane[1](q1, b[0], n)
                self.lane[1](q2, b[1], n)
            convert_rows(&self.om, a, b, L + 5 * W, n, rows)
            write_rows(&self.om, rows, image, y, first, n)

    cdef inline void _table3(self, const uint8_t* v, uint8_t* o8, int n) noexcept nogil:
        """An interleaved 3-channel row of n pixels through the value tables."""
        if self.uniform16:
            self.aff16(v, self.aff16_k, self.om.affine_k[6], self.om.affine_k[7], o8, 3 * n)
        elif self.om.affine:
            self.aff3(v, self.aff_m, self.aff_b, self.om.affine_k[6], self.om.affine_k[7], o8, 3 * n)
        else:
            self.lut3(v, self.om.lut8, o8, n)

    cdef inline void _interleave(self, const int16_t* q, uint8_t* o, int n) noexcept nogil:
        if self.bytes3 != NULL:  # rounding all lanes, then a byte shuffle: cheaper than one strided pass
            self.lane[1](q, self.lanes + 8 * self.om.out_w, 4 * n)
            self.bytes3(self.lanes + 8 * self.om.out_w, o, n)
        else:
            self.slotsx(q, self.inner, o, n)

    cdef void _sample(self, const uint8_t* plane, Py_ssize_t pitch, int dy, const Plane* pl, const Axis* ay,
                      int16_t* q, int n) noexcept nogil:
        """Q7 samples of one plane for content row dy: n slots of `pl.K` lanes at q."""
        cdef const uint8_t* r0 = plane + ay.first[dy] * pitch + pl.lo
        cdef const uint8_t* r1 = plane + ay.second[dy] * pitch + pl.lo
        cdef int span = min(pl.hi, pl.row_bytes) - pl.lo
        cdef const uint8_t* p
        cdef const uint8_t* p_end
        cdef int k
        if dy + 1 < ay.b:  # the next content row's source rows: their cache lines load meanwhile
            for k in range(2):
                p = plane + (ay.first[dy + 1] if k == 0 else ay.second[dy + 1]) * pitch + pl.lo
                p_end = p + span
                while p < p_end:
                    prefetch(p)
                    p += 64
        self.blend_c(r0, r1, ay.weight[dy], self.tbuf, span)
        if pl.hi - pl.lo > span:  # taps past the row's end (weight 0) read zeros, not old values
            memset(self.tbuf + span, 0, (pl.hi - pl.lo - span) * sizeof(int16_t))
        if q == NULL:  # the caller reads the blended row (`row_out`)
            return
        if pl.K == 4:
            windows8(self.tbuf, pl.x, pl.step, self.left, self.right, n)
            if pl.step == 3:
                self.blend_w3(self.left, self.right, pl.wk, q, n)
            else:
                self.blend_w4(self.left, self.right, pl.wk, q, n)
            return
        pl.compact(self.tbuf, pl.x, pl.step, self.left, self.right, n)
        self.blend_r(self.left, self.right, pl.wk, q, pl.K * n)
