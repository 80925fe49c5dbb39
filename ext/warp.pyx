# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Warp kernel: affine warps of one frame into an (N, H, W, C) batch, bilinear + convert + quantise, one pass.

Private: only `edgert.warp` imports this module; it checks arrays, dtypes and strides first.

Geometry (the spec; `edgert._reference_regions.warp` is the twin): each image k has a matrix M that
maps an output pixel index (x, y) to a source pixel index (pixel i centred on i: corner-mapped, as
``cv2.warpAffine`` with ``WARP_INVERSE_MAP``). Source positions are Q24 fixed point:
``P = rint(M[.,2] 2^24) + y rint(M[.,1] 2^24) + x rint(M[.,0] 2^24)``; taps ``P >> 24`` and the next,
weights the fraction rounded to Q11 on each axis, value ``(t0 (2048 - wy) + t1 wy + 2^21) >> 22`` with
``t = v0 (2048 - wx) + v1 wx``. A tap outside the plane reads the border value (BORDER_CONSTANT).
4:2:0 chroma is sampled at ``(P >> 1) - 2^22`` (chroma samples sit between luma samples).

Also the similarity least squares of `edgert.alignment` (`similarity`), a closed form per face.
"""
cimport numpy as cnp
from libc.math cimport rint, sqrt
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t
from libc.string cimport memcpy

cnp.import_array()

cdef extern from *:
    void prefetch "__builtin_prefetch"(const void*) nogil

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
    # Called through pointers on purpose: inlined, gcc no longer vectorises them.
    cdef quads_fn quads[5]

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
        self._keep = [lut, pad_rows, buf, weights]
        self.rows = <uint8_t*>cnp.PyArray_DATA(buf)
        self.top = self.rows + 8 * self.om.out_w
        self.bot = self.top + 8 * self.om.out_w
        self.wxs = <int32_t*>cnp.PyArray_DATA(weights)
        self.wys = self.wxs + self.om.out_w
        self.ixs = self.wys + self.om.out_w
        self.iys = self.ixs + self.om.out_w
        self.quads[1], self.quads[2], self.quads[3], self.quads[4] = quads1, quads2, quads3, quads4

    def run(self, cnp.ndarray frame, Py_ssize_t pitch, Py_ssize_t chroma_u, Py_ssize_t chroma_v,
            Py_ssize_t chroma_pitch, cnp.ndarray matrices, cnp.ndarray out):
        """Warp the frame into ``out[k]`` by ``matrices[k]`` (float64 ``(N, 2, 3)``, C-contiguous).

        Returns False when another thread is inside `run` (nothing done), else True.
        """
        cdef const uint8_t* src = <const uint8_t*>cnp.PyArray_DATA(frame)
        cdef char* dst = <char*>cnp.PyArray_DATA(out)
        cdef const double* m = <const double*>cnp.PyArray_DATA(matrices)
        cdef int k, n = matrices.shape[0]
        cdef Py_ssize_t image = out.nbytes // n if n else 0
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
        try:
            with nogil:
                for k in range(n):
                    self._image(m + 6 * k, dst + k * image)
        finally:
            self.busy = False
        return True

    cdef void _image(self, const double* m, char* image) noexcept nogil:
        cdef int y, x, c, p, W = self.om.out_w, H = self.om.out_h
        cdef int64_t ax = <int64_t>rint(m[0] * 16777216.0), bx = <int64_t>rint(m[1] * 16777216.0)
        cdef int64_t cx = <int64_t>rint(m[2] * 16777216.0)
        cdef int64_t ay = <int64_t>rint(m[3] * 16777216.0), by = <int64_t>rint(m[4] * 16777216.0)
        cdef int64_t cy = <int64_t>rint(m[5] * 16777216.0)
        cdef uint8_t* a[MAX_CH]
        cdef uint8_t* b[MAX_CH]
        cdef uint8_t* rows[3]
        cdef uint8_t* R = self.rows
        for y in range(H):
            if y + 1 < H:
                self._prefetch_row(cx + (y + 1) * bx, ax, cy + (y + 1) * by, ay, W)
            self._sample(&self.planes[0], cx + y * bx, ax, cy + y * by, ay, False, R)
            for c in range(self.planes[0].nch):
                a[c] = R + self.planes[0].inner[c] * W
            if self.chroma == 1:
                self._sample(&self.planes[1], cx + y * bx, ax, cy + y * by, ay, True, R + 3 * W)
                b[0], b[1] = R + (3 + self.planes[1].inner[0]) * W, R + (3 + self.planes[1].inner[1]) * W
            elif self.chroma == 2:
                self._sample(&self.planes[1], cx + y * bx, ax, cy + y * by, ay, True, R + 3 * W)
                self._sample(&self.planes[2], cx + y * bx, ax, cy + y * by, ay, True, R + 4 * W)
                b[0], b[1] = R + 3 * W, R + 4 * W
            convert_rows(&self.om, a, b, R + 5 * W, W, rows)
            write_rows(&self.om, rows, image, y, 0, W)


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

    cdef void _sample(self, const Plane* pl, int64_t px, int64_t dpx, int64_t py, int64_t dpy, bint chroma,
                      uint8_t* lanes) noexcept nogil:
        """One output row of a plane: an 8-bit row per byte lane of its pixels, at lanes[k * W]."""
        cdef int W = self.om.out_w
        positions(px, dpx, py, dpy, chroma, W, self.ixs, self.iys, self.wxs, self.wys)
        window_row(pl, self.ixs, self.iys, W, self.top, self.bot)
        self.quads[pl.step](self.top, self.bot, self.wxs, self.wys, lanes, lanes + W, lanes + 2 * W, W)


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
    """Copy each output's 2x2 source window into dense slots (top and bottom row); taps outside read the border."""
    # Everything in locals: the byte stores below could alias the struct's fields otherwise.
    cdef int i, c, k, ix, iy, nch = pl.nch, step = pl.step, last_x = pl.w - 1, last_y = pl.h - 1
    cdef int slot = 2 if step == 1 else (4 if step == 2 else 8), row_bytes = pl.w * step
    cdef const uint8_t* base = pl.base
    cdef const uint8_t* s
    cdef Py_ssize_t pitch = pl.pitch
    for i in range(n):
        ix, iy = ixs[i], iys[i]
        if ix >= 0 and iy >= 0 and ix < last_x and iy < last_y and ix * step + slot <= row_bytes:
            s = base + iy * pitch + ix * step
            if slot == 8:  # constant sizes: each copy is one load and one store
                memcpy(top + 8 * i, s, 8)
                memcpy(bot + 8 * i, s + pitch, 8)
            elif slot == 4:
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
    size given) outside ``[0, w] x [0, h]``. A face with a negative spread gets an inverse that maps
    every output pixel far outside any frame. All arrays float64, C-contiguous; src (N, K, 2).
    """
    cdef int n = src.shape[0], K = src.shape[1], k, j
    cdef const double* s = <const double*>cnp.PyArray_DATA(src)
    cdef const double* d = <const double*>cnp.PyArray_DATA(dst)
    cdef double* o = <double*>cnp.PyArray_DATA(out)
    cdef double* sp = <double*>cnp.PyArray_DATA(spread)
    cdef double* iv = <double*>cnp.PyArray_DATA(inverse)
    cdef double det, mx, my, qx, qy, px, py, ux, uy, s2, dot, crs, sxx, syy, sxy, half, root, lo, hi
    with nogil:
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
                _far(iv + 6 * k)
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
                _far(iv + 6 * k)
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
