# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Region kernel: many boxes of one frame -> one (N, H, W, C) batch, crop + resize + convert + quantise.

Private: only `edgert.regions` imports this module; it checks arrays, dtypes and strides first.

Per box, with the GIL released, the sampling maps are computed here (boxes change every frame),
then each output row goes through the stages of the full-frame kernel (`preprocess_rows.pxi`):
two-pixel windows of the two source rows are copied into a dense buffer and blended (bilinear,
Q11 on both axes), colour-converted, and mapped through the value tables into the batch.

Geometry (the spec; `edgert.regions` documents it for users and `edgert._reference_regions` is the
twin): for output index i of an axis with content start ``sx``, length ``sw`` over ``n`` outputs,
``r = sw / n`` and the source position (in pixel indices, pixel k centred on k) is
``P_i = rint((sx + o * r - o) * 2^16) + i * rint(r * 2^16)`` in Q16, with ``o = 0.5`` for
half-pixel centres and ``o = 0`` corner-mapped. An output pixel whose position lies outside
``[-0.5, size - 0.5)`` of the frame is padding. Taps are ``P >> 16`` and the next one, clamped to
the box's pixel hull inside the frame (borders replicated, as a crop resized alone); the weight of the
second tap is the fraction rounded to Q11; the value ``(t0 (2048 - wy) + t1 wy + 2^21) >> 22`` with
``t = v0 (2048 - wx) + v1 wx``. Nearest takes ``(P + 2^15) >> 16``, clamped.
4:2:0 chroma is sampled at ``(P - 2^15) >> 1`` over the hull halved (its samples sit between lumas).
"""
cimport numpy as cnp
from libc.math cimport ceil, floor, fmax, fmin, isfinite, rint
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t
from libc.string cimport memcpy

cnp.import_array()

cdef extern from *:
    void prefetch "__builtin_prefetch"(const void*) nogil

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


cdef struct Axis:
    # One axis of one box for one plane: taps per output of the content, and the range sampled.
    int32_t* first      # first tap (pixel index; the window's first pixel for x)
    int32_t* second     # second tap (y only)
    int32_t* weight     # Q11 weight of the second tap
    int a, b            # outputs [a, b) of the content lie inside the frame
    int n_wide          # x, 3-byte pixels: windows from a on whose 8-byte copy stays inside the row


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
    cdef bint nearest
    cdef double centre
    cdef int32_t inner[MAX_CH]
    cdef int32_t c_inner[2]
    cdef bint busy
    cdef list _keep
    cdef int32_t* maps          # x windows / weights per plane (2 x 2 x out_w), y taps (2 x 3 x out_h)
    cdef uint8_t* win0
    cdef uint8_t* win1
    cdef uint8_t* lanes         # 2 planes x 2 segments x 4 lanes x out_w, then 3 x out_w converted
    cdef public int bad, reason
    # Row stages per plane step (1..4 bytes), called through pointers on purpose: inlined into their
    # caller, gcc no longer vectorises the blends.
    cdef compact_fn compact[5]
    cdef quads_fn quads[5]
    cdef int32_t* wy_row        # the row's y weight, once per output column (the blend takes arrays)

    def __init__(self, tuple frame_size, int step, list inner, int chroma, int mode, bint nearest,
                 double centre_offset, cnp.ndarray lut, cnp.ndarray pad_rows, tuple out_size, bint nhwc,
                 bint identity, affine, tuple yuv, bint bgr_order, int conv):
        import numpy as np
        cdef int c, w, h
        self.fw, self.fh = frame_size
        if self.fw < 2 or self.fh < 2 or not 1 <= step <= 4 or not 1 <= len(inner) <= 3 or not 0 <= chroma <= 2:
            raise ValueError("bad region kernel configuration")
        init_outmap(&self.om, lut, pad_rows, out_size, nhwc, identity, affine, yuv, bgr_order, conv)
        self._keep = [lut, pad_rows]
        self.step, self.nch, self.chroma, self.mode = step, len(inner), chroma, mode
        self.nearest, self.centre = nearest, centre_offset
        for c in range(self.nch):
            self.inner[c] = inner[c]
        self.cstep = 2 if chroma == 1 else 1
        self.compact[1], self.compact[2], self.compact[3], self.compact[4] = compact2, compact4, compact6, compact8
        self.quads[1], self.quads[2], self.quads[3], self.quads[4] = quads1, quads2, quads3, quads4
        w, h = self.om.out_w, self.om.out_h
        maps = np.zeros(5 * w + 6 * h + 16, np.int32)
        windows = np.zeros(2 * (8 * w + 64), np.uint8)
        lanes = np.zeros(19 * w + 64, np.uint8)
        self._keep += [maps, windows, lanes]
        self.maps = <int32_t*>cnp.PyArray_DATA(maps)
        self.wy_row = self.maps + 4 * w + 6 * h + 8
        self.win0 = <uint8_t*>cnp.PyArray_DATA(windows)
        self.win1 = self.win0 + 8 * w + 64
        self.lanes = <uint8_t*>cnp.PyArray_DATA(lanes)

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
        if self.mode == LETTERBOX:
            k = fmin(W / bw, H / bh)
            d[2] = <int>min(W, max(1, <int>rint(bw * k)))
            d[3] = <int>min(H, max(1, <int>rint(bh * k)))
            d[0], d[1] = (W - d[2]) // 2, (H - d[3]) // 2
        elif self.mode == CENTER_CROP:
            k = fmax(W / bw, H / bh)
            cw, ch = fmin(bw, W / k), fmin(bh, H / k)
            s[0], s[1], s[2], s[3] = box[0] + (bw - cw) / 2, box[1] + (bh - ch) / 2, cw, ch

    cdef void _axis(self, double start, double length, int n, int size, int lo, int hi, bint is_y, bint chroma,
                    int step, Axis* ax) noexcept nogil:
        """Taps of one axis (see the module docstring); x axes get two-pixel windows."""
        cdef double r = length / n
        cdef int64_t org = <int64_t>rint((start + self.centre * r - self.centre) * 65536.0)
        cdef int64_t stp = <int64_t>rint(r * 65536.0), p, limit = <int64_t>self.fw * 65536 - 32768
        cdef int i, i0, i1, w, bits = 11, one = 1 << 11, plane = size
        if is_y:
            limit = <int64_t>self.fh * 65536 - 32768
        ax.a, ax.b = n, n
        for i in range(n):
            p = org + i * stp
            if p >= -32768 and p < limit:
                if ax.a == n:
                    ax.a = i
                ax.b = i + 1
            if chroma:
                p = (p - 32768) >> 1
            if self.nearest:
                i0 = <int>((p + 32768) >> 16)
                w = 0
            else:
                i0 = <int>(p >> 16)
                w = <int>(((p & 0xFFFF) + (1 << (15 - bits))) >> (16 - bits))
                if w == one:
                    i0 += 1
                    w = 0
            if i0 < lo:
                i0, w = lo, 0
            elif i0 >= hi:
                i0, w = hi, 0
            i1 = i0 + 1 if w else i0
            if is_y:
                ax.first[i], ax.second[i], ax.weight[i] = i0, i1, w
            elif i1 == i0 and i0 + 1 >= plane:  # the window ends on the last pixel of the row
                ax.first[i], ax.weight[i] = (i0 - 1) * step, one
            else:
                ax.first[i], ax.weight[i] = i0 * step, w
        if ax.b <= ax.a:
            ax.a = ax.b = 0
        ax.n_wide = 0
        while ax.a + ax.n_wide < ax.b and ax.first[ax.a + ax.n_wide] + 8 <= plane * step:
            ax.n_wide += 1

    cdef void _box(self, const uint8_t* src, Py_ssize_t pitch, Py_ssize_t cu, Py_ssize_t cv, Py_ssize_t cp,
                   const double* box, char* image) noexcept nogil:
        cdef double s[4]
        cdef int d[4]
        cdef int lo_x, hi_x, lo_y, hi_y, W = self.om.out_w, H = self.om.out_h, y, dy, c, g, n, first
        cdef Axis ax[2]
        cdef Axis ay[2]
        cdef int32_t* m = self.maps
        cdef uint8_t* a[MAX_CH]
        cdef uint8_t* b[MAX_CH]
        cdef uint8_t* rows[3]
        cdef uint8_t* L = self.lanes
        cdef int ngroups = 2 if self.chroma else 1
        self._place(box, s, d)
        lo_x = <int>fmax(0, floor(box[0]))
        hi_x = <int>fmin(self.fw, ceil(box[2])) - 1
        lo_y = <int>fmax(0, floor(box[1]))
        hi_y = <int>fmin(self.fh, ceil(box[3])) - 1
        for g in range(ngroups):
            ax[g].first, ax[g].weight = m + 2 * g * W, m + (2 * g + 1) * W
            ay[g].first, ay[g].second, ay[g].weight = m + 4 * W + 3 * g * H, m + 4 * W + (3 * g + 1) * H, \
                m + 4 * W + (3 * g + 2) * H
        self._axis(s[0], s[2], d[2], self.fw, lo_x, hi_x, False, False, self.step, &ax[0])
        self._axis(s[1], s[3], d[3], self.fh, lo_y, hi_y, True, False, 1, &ay[0])
        if self.chroma:
            self._axis(s[0], s[2], d[2], self.fw // 2, lo_x >> 1, hi_x >> 1, False, True, self.cstep, &ax[1])
            self._axis(s[1], s[3], d[3], self.fh // 2, lo_y >> 1, hi_y >> 1, True, True, 1, &ay[1])
        n = ax[0].b - ax[0].a
        first = d[0] + ax[0].a
        for y in range(H):
            dy = y - d[1]
            if dy < ay[0].a or dy >= ay[0].b or n == 0:
                pad_span(&self.om, image, y, 0, W)
                continue
            pad_span(&self.om, image, y, 0, first)
            pad_span(&self.om, image, y, first + n, W)
            self._sample(src, pitch, self.step, dy, &ax[0], &ay[0], L, n)
            for c in range(self.nch):
                a[c] = L + self.inner[c] * n
            if self.chroma == 1:
                self._sample(src + min(cu, cv), cp, 2, dy, &ax[1], &ay[1], L + 8 * n, n)
                b[0], b[1] = L + (8 + self.c_inner[0]) * n, L + (8 + self.c_inner[1]) * n
            elif self.chroma == 2:
                self._sample(src + cu, cp, 1, dy, &ax[1], &ay[1], L + 8 * n, n)
                self._sample(src + cv, cp, 1, dy, &ax[1], &ay[1], L + 12 * n, n)
                b[0], b[1] = L + 8 * n, L + 12 * n
            convert_rows(&self.om, a, b, L + 16 * n, n, rows)
            write_rows(&self.om, rows, image, y, first, n)

    cdef void _sample(self, const uint8_t* plane, Py_ssize_t pitch, int step, int dy, const Axis* ax,
                      const Axis* ay, uint8_t* lanes, int n) noexcept nogil:
        """Bilinear (or nearest) samples of one plane for content row dy, columns [ax.a, ax.b): one
        8-bit row of n per byte lane of a pixel, at lanes[k * n]."""
        cdef const uint8_t* r0 = plane + ay.first[dy] * pitch
        cdef const uint8_t* r1 = plane + ay.second[dy] * pitch
        cdef int32_t fy = ay.weight[dy]
        cdef uint8_t* w1 = self.win1
        cdef const int32_t* px = ax.first + ax.a
        cdef int i, n_wide = ax.n_wide
        cdef const uint8_t* q
        cdef const uint8_t* q_end
        cdef int k
        if dy + 1 < ay.b:  # the next content row's source rows: their cache lines load meanwhile
            for k in range(2):
                q = plane + (ay.first[dy + 1] if k == 0 else ay.second[dy + 1]) * pitch
                q_end = q + px[n - 1] + 8
                q = q + px[0]
                while q < q_end:
                    prefetch(q)
                    q += 64
        if fy == 0 or r0 == r1:
            w1 = self.win0
            fy = 0
        self.compact[step](r0, px, self.win0, n, n_wide)
        if fy:
            self.compact[step](r1, px, w1, n, n_wide)
        for i in range(n):
            self.wy_row[i] = fy
        self.quads[step](self.win0, w1, ax.weight + ax.a, self.wy_row, lanes, lanes + n, lanes + 2 * n, n)
