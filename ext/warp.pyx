# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Warp kernel: affine and projective warps of one frame into an (N, H, W, C) batch, bilinear + tables, one pass.

Private: only `edgert.warp` imports this module; it checks arrays, dtypes and strides first.

Geometry (the spec; `edgert._reference_warp.warp` is the twin): each image k has a matrix M that
maps an output pixel index (x, y) to a source pixel index (pixel i centred on i: corner-mapped, as
``cv2.warpAffine`` with ``WARP_INVERSE_MAP``). Source positions are Q24 fixed point:
``P = rint(M[.,2] 2^24) + y rint(M[.,1] 2^24) + x rint(M[.,0] 2^24)``; taps ``P >> 24`` and the next,
weights the fraction rounded to Q11 on each axis, value ``(t0 (2048 - wy) + t1 wy + 2^21) >> 22`` with
``t = v0 (2048 - wx) + v1 wx``. A tap outside the plane reads the border value (BORDER_CONSTANT).
4:2:0 chroma is sampled at ``(P >> 1) - 2^22`` (chroma samples sit between luma samples).

Projective warps (`run` with (N, 3, 3) matrices H; `edgert._reference_warp.perspective` is the twin): per
output row y, ``X0 = H01 y + H02``, ``Y0 = H11 y + H12``, ``W0 = H21 y + H22`` and per pixel x, in float64
without fused multiply-adds, ``r = 1 / (H20 x + W0)``, ``u = (H00 x + X0) r``, ``v = (H10 x + Y0) r``,
each clamped to ``[-1e6, 1e6]``, ``P = rint(u 2^24)``: then taps and weights as above. A pixel whose
denominator is not positive (or NaN) reads the border. An image may fill only its first `width` columns:
the rest is padding (the output tables' pad row).

Also the similarity least squares of `edgert.alignment` (`similarity`, and `WarpKernel.align`: estimate
and warp in one call), a closed form per face, and the rectangle-to-quad homographies of `edgert.warp`
(`homographies`).
"""
cimport numpy as cnp
from libc.math cimport fabs, isfinite, rint, sqrt
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t
from libc.string cimport memcpy

cnp.import_array()

cdef extern from *:
    void prefetch "__builtin_prefetch"(const void*) nogil

cdef extern from *:
    """
    /* Q24 source positions of one output row of a projective warp. fp-contract off: the NumPy twin
       computes the same products and sums, rounded one by one. */
    __attribute__((optimize("fp-contract=off")))
    static void edgert_proj_row(const double *m, int y, int n, double *__restrict qx, double *__restrict qy) {
        const double lim = 1e6, one = 16777216.0;
        double x0 = m[1] * y + m[2], y0 = m[4] * y + m[5], w0 = m[7] * y + m[8];
        for (int i = 0; i < n; i++) {  /* branch-free and in doubles (exact integers): it vectorises */
            double x = (double)i, w = m[6] * x + w0, r = 1.0 / w;
            double u = (m[0] * x + x0) * r, v = (m[3] * x + y0) * r;
            u = w > 0 ? u : -lim;
            v = w > 0 ? v : -lim;
            u = u > lim ? lim : (u >= -lim ? u : -lim);  /* NaN -> -lim */
            v = v > lim ? lim : (v >= -lim ? v : -lim);
            qx[i] = __builtin_rint(u * one);
            qy[i] = __builtin_rint(v * one);
        }
    }

    /* `positions` of Q24 positions held as integer-valued doubles (|P| < 2^45: every step is exact).
       Not inlined, one loop per plane kind, floor() free to ignore FP exceptions: so gcc vectorises it. */
    #define EDGERT_TAPS_LOOP(SHIFT)                                                              \
        for (int i = 0; i < n; i++) {                                                            \
            double px = SHIFT(qx[i]), py = SHIFT(qy[i]);                                         \
            double tx = __builtin_floor(px * inv), ty = __builtin_floor(py * inv);              \
            double wx = __builtin_floor((px - tx * one + 4096.0) * (1.0 / 8192.0));             \
            double wy = __builtin_floor((py - ty * one + 4096.0) * (1.0 / 8192.0));             \
            double cx = wx >= 2048.0 ? 1.0 : 0.0, cy = wy >= 2048.0 ? 1.0 : 0.0;                 \
            ixs[i] = (int)(tx + cx);                                                             \
            iys[i] = (int)(ty + cy);                                                             \
            wxs[i] = (int)(wx - cx * 2048.0);                                                    \
            wys[i] = (int)(wy - cy * 2048.0);                                                    \
        }
    #define EDGERT_LUMA(p) (p)
    #define EDGERT_CHROMA(p) (__builtin_floor((p) * 0.5) - 4194304.0)
    __attribute__((noinline, optimize("no-trapping-math")))
    static void edgert_taps(const double *__restrict qx, const double *__restrict qy, int chroma, int n,
                            int *__restrict ixs, int *__restrict iys, int *__restrict wxs, int *__restrict wys) {
        const double one = 16777216.0, inv = 1.0 / 16777216.0;
        if (chroma) {
            EDGERT_TAPS_LOOP(EDGERT_CHROMA)
        } else {
            EDGERT_TAPS_LOOP(EDGERT_LUMA)
        }
    }

    /* The windows that lie inside the plane, four words each; returns how many were skipped. A function
       of its own: inlined into its caller, gcc runs out of registers in the loop. */
    __attribute__((noinline))
    static int edgert_inner_words(const unsigned char *base, Py_ssize_t pitch, int step, int right, int sh,
                                  unsigned last_x, unsigned last_y, const int *ixs, const int *iys, int n,
                                  unsigned *__restrict win) {
        int skipped = 0;
        for (int i = 0; i < n; i++) {
            unsigned ix = (unsigned)ixs[i], iy = (unsigned)iys[i], a, b, c, d;
            if (ix < last_x && iy < last_y) {
                const unsigned char *s = base + (Py_ssize_t)iy * pitch + (Py_ssize_t)ix * step;
                __builtin_memcpy(&a, s, 4);
                __builtin_memcpy(&b, s + right, 4);
                __builtin_memcpy(&c, s + pitch, 4);
                __builtin_memcpy(&d, s + pitch + right, 4);
                win[4 * i] = a;
                win[4 * i + 1] = b >> sh;
                win[4 * i + 2] = c;
                win[4 * i + 3] = d >> sh;
            } else {
                skipped++;
            }
        }
        return skipped;
    }
    """
    int inner_words "edgert_inner_words"(const uint8_t* base, Py_ssize_t pitch, int step, int right, int sh,
                                         unsigned int last_x, unsigned int last_y, const int32_t* ixs,
                                         const int32_t* iys, int n, uint32_t* win) noexcept nogil
    void proj_row "edgert_proj_row"(const double* m, int y, int n, double* qx, double* qy) noexcept nogil
    void taps_of "edgert_taps"(const double* qx, const double* qy, int chroma, int n, int32_t* ixs, int32_t* iys,
                               int32_t* wxs, int32_t* wys) noexcept nogil

include "kernel_types.pxi"
include "preprocess_rows.pxi"
include "batch_output.pxi"

DEF FRAC = 24



cdef struct Plane:
    const uint8_t* base     # first byte of the plane's first row (per frame)
    Py_ssize_t pitch
    int w, h, step, nch
    int32_t inner[MAX_CH]
    int32_t border[MAX_CH]


cdef class WarpKernel:
    """One source format and one model input; `run` warps a frame into a batch, one matrix per image.

    Args (prepared and checked by `edgert.warp`):
        frame_size: ``(width, height)`` of the frames.
        step, inner, chroma: the plane layout, as for the region kernel.
        border: 8-bit border value of each sampled channel: group 0's, then U and V for 4:2:0.
        lut, pad_rows, out_size, nhwc, identity, affine, yuv, bgr_order, conv: the output tables.
    """

    cdef OutMap om
    cdef Plane planes[3]
    cdef int nplanes, fw, fh, chroma
    cdef bint busy
    cdef list _keep
    cdef uint8_t* rows
    cdef uint8_t* top
    cdef uint8_t* bot
    cdef int32_t* wxs
    cdef int32_t* wys
    cdef int32_t* ixs
    cdef int32_t* iys
    cdef double* qxs
    cdef double* qys
    cdef uint32_t* win      # packed pixels' 2x2 windows as 4 words per output (t0, t1, b0, b1), planar
    # Called through pointers on purpose: inlined, gcc no longer vectorises them.
    cdef quads_fn quads[3]

    def __init__(self, tuple frame_size, int step, list inner, int chroma, list border, cnp.ndarray lut,
                 cnp.ndarray pad_rows, tuple out_size, bint nhwc, bint identity, affine, tuple yuv, bint bgr_order,
                 int conv):
        import numpy as np
        cdef int c, i
        self.fw, self.fh = frame_size
        if self.fw < 1 or self.fh < 1 or not 1 <= step <= 4 or not 1 <= len(inner) <= 3 or not 0 <= chroma <= 2:
            raise ValueError("bad warp kernel configuration")
        init_outmap(&self.om, lut, pad_rows, out_size, nhwc, identity, affine, yuv, bgr_order, conv)
        self.chroma = chroma
        self.planes[0].w, self.planes[0].h, self.planes[0].step, self.planes[0].nch = self.fw, self.fh, step, len(inner)
        for c in range(len(inner)):
            self.planes[0].inner[c] = inner[c]
            self.planes[0].border[c] = border[c]
        self.nplanes = 1 if chroma == 0 else (2 if chroma == 1 else 3)
        for i in range(1, self.nplanes):
            self.planes[i].w, self.planes[i].h = self.fw // 2, self.fh // 2
            self.planes[i].step = 2 if chroma == 1 else 1
            self.planes[i].nch = 2 if chroma == 1 else 1
            for c in range(self.planes[i].nch):
                self.planes[i].inner[c] = 0
                self.planes[i].border[c] = border[len(inner) + (i - 1) + c]
        buf = np.zeros(24 * self.om.out_w + 64, np.uint8)
        weights = np.zeros(4 * self.om.out_w + 16, np.int32)
        q = np.zeros(2 * self.om.out_w + 8, np.float64)
        words = np.zeros(4 * self.om.out_w + 16, np.uint32)
        self._keep = [lut, pad_rows, buf, weights, q, words]
        self.win = <uint32_t*>cnp.PyArray_DATA(words)
        self.rows = <uint8_t*>cnp.PyArray_DATA(buf)
        self.top = self.rows + 8 * self.om.out_w
        self.bot = self.top + 8 * self.om.out_w
        self.wxs = <int32_t*>cnp.PyArray_DATA(weights)
        self.wys = self.wxs + self.om.out_w
        self.ixs = self.wys + self.om.out_w
        self.iys = self.ixs + self.om.out_w
        self.qxs = <double*>cnp.PyArray_DATA(q)
        self.qys = self.qxs + self.om.out_w
        self.quads[1], self.quads[2] = quads1, quads2

    cdef bint _enter(self, cnp.ndarray frame, Py_ssize_t pitch, Py_ssize_t chroma_u, Py_ssize_t chroma_v,
                     Py_ssize_t chroma_pitch):
        """Point the planes at `frame`; False when another thread is inside the kernel."""
        cdef const uint8_t* src = <const uint8_t*>cnp.PyArray_DATA(frame)
        cdef Py_ssize_t seg = min(chroma_u, chroma_v)
        if self.busy:
            return False
        self.busy = True
        self.planes[0].base, self.planes[0].pitch = src, pitch
        if self.chroma == 1:
            self.planes[1].base, self.planes[1].pitch = src + seg, chroma_pitch
            self.planes[1].inner[0], self.planes[1].inner[1] = chroma_u - seg, chroma_v - seg
        elif self.chroma == 2:
            self.planes[1].base, self.planes[1].pitch = src + chroma_u, chroma_pitch
            self.planes[2].base, self.planes[2].pitch = src + chroma_v, chroma_pitch
        return True

    def run(self, cnp.ndarray frame, Py_ssize_t pitch, Py_ssize_t chroma_u, Py_ssize_t chroma_v,
            Py_ssize_t chroma_pitch, cnp.ndarray matrices, cnp.ndarray out, cnp.ndarray widths=None):
        """Warp the frame into ``out[k]`` by ``matrices[k]``: float64 ``(N, 2, 3)`` (affine) or ``(N, 3, 3)``
        (projective), C-contiguous. `widths` (int32 ``(N,)``, projective only): columns each image fills.

        Returns False when another thread is inside `run` (nothing done), else True.
        """
        cdef char* dst = <char*>cnp.PyArray_DATA(out)
        cdef const double* m = <const double*>cnp.PyArray_DATA(matrices)
        cdef int k, n = matrices.shape[0], W = self.om.out_w
        cdef bint projective = matrices.shape[1] == 3
        cdef const int32_t* wd = <const int32_t*>cnp.PyArray_DATA(widths) if widths is not None else NULL
        cdef Py_ssize_t image = out.nbytes // n if n else 0
        if not self._enter(frame, pitch, chroma_u, chroma_v, chroma_pitch):
            return False
        try:
            with nogil:
                for k in range(n):
                    if projective:
                        self._image_projective(m + 9 * k, dst + k * image,
                                               W if wd == NULL else max(0, min(W, wd[k])))
                    else:
                        self._image(m + 6 * k, dst + k * image)
        finally:
            self.busy = False
        return True

    def align(self, cnp.ndarray frame, Py_ssize_t pitch, Py_ssize_t chroma_u, Py_ssize_t chroma_v,
              Py_ssize_t chroma_pitch, cnp.ndarray points, cnp.ndarray template, cnp.ndarray forward,
              cnp.ndarray inverse, cnp.ndarray spread, double min_spread, cnp.ndarray out):
        """`similarity` of each face of `points` onto `template` (frame size from the kernel), then the warp
        of every face by its inverse into ``out[k]``; a face whose spread is below `min_spread` warps to
        the border.

        Returns the number of faces refused, or -1 when another thread is inside the kernel (nothing done).
        """
        cdef int k, n = points.shape[0], refused = 0
        cdef char* dst = <char*>cnp.PyArray_DATA(out)
        cdef double* iv = <double*>cnp.PyArray_DATA(inverse)
        cdef double* sp = <double*>cnp.PyArray_DATA(spread)
        cdef Py_ssize_t image = out.nbytes // n if n else 0
        if not self._enter(frame, pitch, chroma_u, chroma_v, chroma_pitch):
            return -1
        try:
            with nogil:
                fit_similarity(<const double*>cnp.PyArray_DATA(points), <const double*>cnp.PyArray_DATA(template),
                               n, points.shape[1], self.fw, self.fh, <double*>cnp.PyArray_DATA(forward), iv, sp)
                for k in range(n):
                    if not sp[k] >= min_spread:
                        refused += 1
                        _far(iv + 6 * k)
                    self._image(iv + 6 * k, dst + k * image)
        finally:
            self.busy = False
        return refused

    cdef void _image(self, const double* m, char* image) noexcept nogil:
        cdef int y, p, W = self.om.out_w, H = self.om.out_h
        cdef int64_t ax = <int64_t>rint(m[0] * 16777216.0), bx = <int64_t>rint(m[1] * 16777216.0)
        cdef int64_t cx = <int64_t>rint(m[2] * 16777216.0)
        cdef int64_t ay = <int64_t>rint(m[3] * 16777216.0), by = <int64_t>rint(m[4] * 16777216.0)
        cdef int64_t cy = <int64_t>rint(m[5] * 16777216.0)
        for y in range(H):
            if y + 1 < H:
                self._prefetch_row(cx + (y + 1) * bx, ax, cy + (y + 1) * by, ay, W)
            for p in range(self.nplanes):
                positions(cx + y * bx, ax, cy + y * by, ay, p > 0, W, self.ixs, self.iys, self.wxs, self.wys)
                self._sample(p, W)
            self._write(image, y, W)

    cdef void _image_projective(self, const double* m, char* image, int n) noexcept nogil:
        cdef int y, p, H = self.om.out_h
        for y in range(H):
            if n > 0:
                proj_row(m, y, n, self.qxs, self.qys)
                for p in range(self.nplanes):
                    taps_of(self.qxs, self.qys, p > 0, n, self.ixs, self.iys, self.wxs, self.wys)
                    self._sample(p, n)
                self._write(image, y, n)
            pad_span(&self.om, image, y, n, self.om.out_w)

    cdef void _write(self, char* image, int y, int n) noexcept nogil:
        """Colour-convert and map the sampled lanes of output row `y` (first `n` columns) into the image."""
        cdef int c, W = self.om.out_w
        cdef uint8_t* a[MAX_CH]
        cdef uint8_t* b[MAX_CH]
        cdef uint8_t* rows[3]
        cdef uint8_t* R = self.rows
        for c in range(self.planes[0].nch):
            a[c] = R + self.planes[0].inner[c] * W
        if self.chroma == 1:
            b[0], b[1] = R + (3 + self.planes[1].inner[0]) * W, R + (3 + self.planes[1].inner[1]) * W
        elif self.chroma == 2:
            b[0], b[1] = R + 3 * W, R + 4 * W
        convert_rows(&self.om, a, b, R + 5 * W, n, rows)
        write_rows(&self.om, rows, image, y, 0, n)

    cdef void _prefetch_row(self, int64_t px, int64_t dpx, int64_t py, int64_t dpy, int n) noexcept nogil:
        """Ask for the cache lines of the packed (or luma) plane that the next output row reads."""
        cdef const Plane* pl = &self.planes[0]
        cdef int i, ix, iy
        cdef const uint8_t* s
        for i in range(0, n + 7, 8):
            ix = <int>((px + min(i, n - 1) * dpx) >> FRAC)
            iy = <int>((py + min(i, n - 1) * dpy) >> FRAC)
            if ix >= 0 and iy >= 0 and ix < pl.w and iy < pl.h - 1:
                s = pl.base + iy * pl.pitch + ix * pl.step
                prefetch(s)
                prefetch(s + pl.pitch)

    cdef void _sample(self, int p, int n) noexcept nogil:
        """One output row of plane `p` at the taps in ixs/iys/wxs/wys: an 8-bit row per byte lane of its
        pixels (plane 0 at rows[k W], plane 1 at rows[(3 + k) W], plane 2 at rows[4 W])."""
        cdef int W = self.om.out_w
        cdef const Plane* pl = &self.planes[p]
        cdef uint8_t* lanes = self.rows + (0 if p == 0 else (3 if p == 1 else 4)) * W
        if pl.step >= 3:  # 3- and 4-byte pixels: one word per tap, blended lane by lane (it vectorises)
            window_words(pl, self.ixs, self.iys, n, self.win)
            blend_words(self.win, self.wxs, self.wys, lanes, lanes + W, lanes + 2 * W, n)
        else:
            window_row(pl, self.ixs, self.iys, n, self.top, self.bot)
            self.quads[pl.step](self.top, self.bot, self.wxs, self.wys, lanes, lanes + W, lanes + 2 * W, n)


cdef inline int32_t tap(const Plane* pl, int ix, int iy, int c) noexcept nogil:
    if ix < 0 or iy < 0 or ix >= pl.w or iy >= pl.h:
        return pl.border[c]
    return pl.base[iy * pl.pitch + ix * pl.step + pl.inner[c]]


cdef void positions(int64_t px, int64_t dpx, int64_t py, int64_t dpy, bint chroma, int n, i32_out ixs,
                    i32_out iys, i32_out wxs, i32_out wys) noexcept nogil:
    """Taps and Q11 weights along one output row: positions px + i dpx, py + i dpy (branch-free: it vectorises)."""
    cdef int i
    cdef int64_t qx, qy, mask = (1 << FRAC) - 1, half = 1 << (FRAC - 12), quarter = 1 << (FRAC - 2)
    cdef int32_t wx, wy, cx, cy
    cdef int sh = 1 if chroma else 0
    for i in range(n):
        qx = ((px + i * dpx) >> sh) - quarter * sh
        qy = ((py + i * dpy) >> sh) - quarter * sh
        wx = <int32_t>(((qx & mask) + half) >> (FRAC - 11))
        wy = <int32_t>(((qy & mask) + half) >> (FRAC - 11))
        cx, cy = wx >> 11, wy >> 11  # 1 when the weight rounded up to a whole pixel
        ixs[i] = <int32_t>(qx >> FRAC) + cx
        iys[i] = <int32_t>(qy >> FRAC) + cy
        wxs[i], wys[i] = wx - (cx << 11), wy - (cy << 11)


cdef void window_row(const Plane* pl, const int32_t* ixs, const int32_t* iys, int n, u8_out top,
                     u8_out bot) noexcept nogil:
    """Copy each output's 2x2 window of a 1- or 2-byte-pixel plane into dense slots (top and bottom row);
    taps outside read the border."""
    # Everything in locals: the byte stores below could alias the struct's fields otherwise.
    cdef int i, c, k, ix, iy, nch = pl.nch, step = pl.step, last_x = pl.w - 1, last_y = pl.h - 1
    cdef int slot = 2 * step, row_bytes = pl.w * step
    cdef const uint8_t* base = pl.base
    cdef const uint8_t* s
    cdef Py_ssize_t pitch = pl.pitch
    for i in range(n):
        ix, iy = ixs[i], iys[i]
        if ix >= 0 and iy >= 0 and ix < last_x and iy < last_y and ix * step + slot <= row_bytes:
            s = base + iy * pitch + ix * step
            if slot == 4:  # constant sizes: each copy is one load and one store
                memcpy(top + 4 * i, s, 4)
                memcpy(bot + 4 * i, s + pitch, 4)
            else:
                memcpy(top + 2 * i, s, 2)
                memcpy(bot + 2 * i, s + pitch, 2)
        else:
            for c in range(nch):
                for k in range(2):
                    top[slot * i + k * step + pl.inner[c]] = <uint8_t>tap(pl, ix + k, iy, c)
                    bot[slot * i + k * step + pl.inner[c]] = <uint8_t>tap(pl, ix + k, iy + 1, c)


cdef extern from *:
    """
    typedef unsigned int *__restrict edgert_u32_out;
    typedef const unsigned int *__restrict edgert_u32_in;
    """
    ctypedef uint32_t* u32_out "edgert_u32_out"
    ctypedef const uint32_t* u32_in "edgert_u32_in"


cdef inline uint32_t word_at(const uint8_t* s) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, s, 4)
    return v


cdef inline uint32_t tap_word(const Plane* pl, int ix, int iy) noexcept nogil:
    """The pixel (ix, iy) as a little-endian word of its bytes, border values where it is outside."""
    cdef uint32_t v = 0
    cdef int c
    for c in range(pl.nch):
        v |= <uint32_t>tap(pl, ix, iy, c) << (8 * pl.inner[c])
    return v


cdef void window_words(const Plane* pl, const int32_t* ixs, const int32_t* iys, int n, u32_out win) noexcept nogil:
    """Each output's 2x2 window of a 3- or 4-byte-pixel plane as four words ``win[4 i:4 i + 4]`` (top left,
    top right, bottom left, bottom right; byte k of a word: lane k)."""
    if pl.step == 3:  # the right pixel's word is read one byte early: no byte past the pixel is read
        _words(pl, ixs, iys, n, win, 3, 2, 8)
    else:
        _words(pl, ixs, iys, n, win, 4, 4, 0)


cdef inline void _words(const Plane* pl, const int32_t* ixs, const int32_t* iys, int n, u32_out win, int step,
                        int right, int sh) noexcept nogil:
    cdef int i, ix, iy
    cdef unsigned int last_x = pl.w - 1, last_y = pl.h - 1
    if inner_words(pl.base, pl.pitch, step, right, sh, last_x, last_y, ixs, iys, n, win) == 0:
        return
    for i in range(n):  # windows reaching past the plane: tap by tap
        ix, iy = ixs[i], iys[i]
        if not (<unsigned int>ix < last_x and <unsigned int>iy < last_y):
            win[4 * i], win[4 * i + 1] = tap_word(pl, ix, iy), tap_word(pl, ix + 1, iy)
            win[4 * i + 2], win[4 * i + 3] = tap_word(pl, ix, iy + 1), tap_word(pl, ix + 1, iy + 1)


cdef inline uint8_t blend_lane(uint32_t t0, uint32_t t1, uint32_t b0, uint32_t b1, int k, int32_t fx,
                               int32_t fy) noexcept nogil:
    """`quad` of lane k: v0 (2048 - f) + v1 f written v0 2048 + (v1 - v0) f (the same integer)."""
    cdef int32_t v00 = (t0 >> (8 * k)) & 255, v01 = (t1 >> (8 * k)) & 255
    cdef int32_t v10 = (b0 >> (8 * k)) & 255, v11 = (b1 >> (8 * k)) & 255
    cdef int32_t top = (v00 << 11) + (v01 - v00) * fx, bot = (v10 << 11) + (v11 - v10) * fx
    return <uint8_t>(((top << 11) + (bot - top) * fy + (1 << 21)) >> 22)


cdef void blend_words(u32_in w, const int32_t* wx, const int32_t* wy, u8_out p0, u8_out p1, u8_out p2,
                      int n) noexcept nogil:
    cdef int i
    for i in range(n):
        p0[i] = blend_lane(w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3], 0, wx[i], wy[i])
        p1[i] = blend_lane(w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3], 1, wx[i], wy[i])
        p2[i] = blend_lane(w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3], 2, wx[i], wy[i])


cdef inline void _far(double* m) noexcept nogil:
    m[0] = m[1] = m[3] = m[4] = 0
    m[2] = m[5] = -1e5


def similarity(cnp.ndarray src, cnp.ndarray dst, cnp.ndarray out, cnp.ndarray inverse, cnp.ndarray spread,
               double frame_w=-1, double frame_h=-1):
    """Least-squares similarity per face: ``out[k]`` (2x3) maps ``src[k]`` (K, 2) onto ``dst`` (K, 2),
    ``inverse[k]`` maps back.

    The 2-D closed form of Umeyama's solution: with centred points p, q and s2 = sum |p|^2,
    ``a = sum(p . q) / s2``, ``b = sum(p x q) / s2``, ``M = [[a, -b, tx], [b, a, ty]]``. ``spread[k]``
    is sqrt(smaller / larger eigenvalue) of the scatter of the centred source points (0: collinear or
    coincident) and -1 when their scatter is zero; -2 when a point is not finite or (with a frame
    size given) outside ``[0, w] x [0, h]``. A face with a negative spread gets a zero `out` and an
    inverse that maps every output pixel far outside any frame. All arrays float64, C-contiguous; src (N, K, 2).
    """
    with nogil:
        fit_similarity(<const double*>cnp.PyArray_DATA(src), <const double*>cnp.PyArray_DATA(dst), src.shape[0],
                       src.shape[1], frame_w, frame_h, <double*>cnp.PyArray_DATA(out),
                       <double*>cnp.PyArray_DATA(inverse), <double*>cnp.PyArray_DATA(spread))


cdef void fit_similarity(const double* s, const double* d, int n, int K, double frame_w, double frame_h, double* o,
                         double* iv, double* sp) noexcept nogil:
    """`similarity` on raw arrays."""
    cdef int k, j
    cdef double det, mx, my, qx, qy, px, py, ux, uy, s2, dot, crs, sxx, syy, sxy, half, root, lo, hi
    qx = qy = 0
    for j in range(K):
        qx += d[2 * j]
        qy += d[2 * j + 1]
    qx, qy = qx / K, qy / K
    for k in range(n):
        mx = my = 0
        sp[k] = 0
        for j in range(K):
            px, py = s[2 * (k * K + j)], s[2 * (k * K + j) + 1]
            if not (px >= 0 and py >= 0 and (frame_w < 0 or px <= frame_w) and (frame_h < 0 or py <= frame_h)):
                if not (frame_w < 0 and px == px and py == py and px - px == 0 and py - py == 0):
                    sp[k] = -2
        if sp[k] == -2:
            _refuse(o + 6 * k, iv + 6 * k)
            continue
        for j in range(K):
            mx += s[2 * (k * K + j)]
            my += s[2 * (k * K + j) + 1]
        mx, my = mx / K, my / K
        s2 = dot = crs = sxx = syy = sxy = 0
        for j in range(K):
            px, py = s[2 * (k * K + j)] - mx, s[2 * (k * K + j) + 1] - my
            ux, uy = d[2 * j] - qx, d[2 * j + 1] - qy
            sxx += px * px
            syy += py * py
            sxy += px * py
            dot += px * ux + py * uy
            crs += px * uy - py * ux
        s2 = sxx + syy
        if s2 <= 0:
            sp[k] = -1
            _refuse(o + 6 * k, iv + 6 * k)
            continue
        half = (sxx - syy) / 2
        root = sqrt(half * half + sxy * sxy)
        hi, lo = s2 / 2 + root, s2 / 2 - root
        sp[k] = sqrt(lo / hi) if lo > 0 else 0.0
        dot, crs = dot / s2, crs / s2
        o[6 * k], o[6 * k + 1], o[6 * k + 2] = dot, -crs, qx - (dot * mx - crs * my)
        o[6 * k + 3], o[6 * k + 4], o[6 * k + 5] = crs, dot, qy - (crs * mx + dot * my)
        det = dot * dot + crs * crs
        if det <= 0:
            sp[k] = -1
            _far(iv + 6 * k)
            continue
        # [[a, -b], [b, a]]^-1 = [[a, b], [-b, a]] / (a^2 + b^2); t' = -A^-1 t
        iv[6 * k], iv[6 * k + 1], iv[6 * k + 3], iv[6 * k + 4] = dot / det, crs / det, -crs / det, dot / det
        iv[6 * k + 2] = -(iv[6 * k] * o[6 * k + 2] + iv[6 * k + 1] * o[6 * k + 5])
        iv[6 * k + 5] = -(iv[6 * k + 3] * o[6 * k + 2] + iv[6 * k + 4] * o[6 * k + 5])


cdef inline void _refuse(double* o, double* iv) noexcept nogil:
    cdef int j
    for j in range(6):
        o[j] = 0
    _far(iv)


def homographies(cnp.ndarray corners, double w, double h, bint half, cnp.ndarray out, cnp.ndarray status):
    """Homographies ``out[k]`` (3x3, output pixel index -> source pixel index) that map a ``w x h`` output
    onto the quad ``corners[k]`` (tl, tr, br, bl), and ``status[k]``.

    `half`: the output's outline ``[0, w] x [0, h]`` maps onto the quad, corners in continuous
    coordinates (pixel i covers [i, i + 1)); else output pixel (0, 0) maps onto tl and (w - 1, h - 1)
    onto br, corners in pixel indices. The unit square to the quad in closed form (Heckbert's
    "projective mapping"), composed with the output scaling, normalised to ``out[k][2, 2] = 1``.
    Status: 0 ok; 1 a corner not finite or beyond +-1e6; 2 self-intersecting or not convex; 3 three
    corners on a line or two coinciding. corners float64 (N, 4, 2), out float64 (N, 3, 3), status int32 (N,).
    """
    cdef int n = corners.shape[0], k, refused = 0
    cdef const double* c = <const double*>cnp.PyArray_DATA(corners)
    cdef double* o = <double*>cnp.PyArray_DATA(out)
    cdef int32_t* st = <int32_t*>cnp.PyArray_DATA(status)
    with nogil:
        for k in range(n):
            st[k] = _homography(c + 8 * k, w, h, half, o + 9 * k)
            refused += st[k] != 0
    return refused


cdef int _homography(const double* q, double w, double h, bint half, double* o) noexcept nogil:
    cdef int i
    cdef double cr[4]
    cdef double ex, ey, fx, fy, side, longest = 0, sx, sy, off, a, b, cc, d, e, f, g, hh, den
    cdef double dx1, dx2, dx3, dy1, dy2, dy3, t
    for i in range(8):
        if not (isfinite(q[i]) and fabs(q[i]) <= 1e6):
            return 1
    for i in range(4):
        ex, ey = q[2 * ((i + 1) % 4)] - q[2 * i], q[2 * ((i + 1) % 4) + 1] - q[2 * i + 1]
        fx, fy = q[2 * ((i + 2) % 4)] - q[2 * ((i + 1) % 4)], q[2 * ((i + 2) % 4) + 1] - q[2 * ((i + 1) % 4) + 1]
        cr[i] = ex * fy - ey * fx
        side = sqrt(ex * ex + ey * ey)
        longest = side if side > longest else longest
    for i in range(4):
        if fabs(cr[i]) <= 1e-9 * longest * longest or longest == 0:
            return 3
    for i in range(1, 4):
        if (cr[i] > 0) != (cr[0] > 0):
            return 2
    dx1, dx2, dx3 = q[2] - q[4], q[6] - q[4], q[0] - q[2] + q[4] - q[6]
    dy1, dy2, dy3 = q[3] - q[5], q[7] - q[5], q[1] - q[3] + q[5] - q[7]
    den = dx1 * dy2 - dx2 * dy1
    g = (dx3 * dy2 - dx2 * dy3) / den
    hh = (dx1 * dy3 - dx3 * dy1) / den
    a, b, cc = q[2] - q[0] + g * q[2], q[6] - q[0] + hh * q[6], q[0]
    d, e, f = q[3] - q[1] + g * q[3], q[7] - q[1] + hh * q[7], q[1]
    # output index (x, y) -> unit square (u, v) = ((x + off) sx, (y + off) sy); source index = mapped - off
    off = 0.5 if half else 0.0
    sx = 1.0 / w if half else (1.0 / (w - 1) if w > 1 else 0.0)
    sy = 1.0 / h if half else (1.0 / (h - 1) if h > 1 else 0.0)
    o[0], o[1], o[2] = a * sx, b * sy, a * sx * off + b * sy * off + cc
    o[3], o[4], o[5] = d * sx, e * sy, d * sx * off + e * sy * off + f
    o[6], o[7], o[8] = g * sx, hh * sy, g * sx * off + hh * sy * off + 1.0
    for i in range(3):
        o[i] -= off * o[6 + i]
        o[3 + i] -= off * o[6 + i]
    t = o[8]
    for i in range(9):
        o[i] /= t
    return 0
