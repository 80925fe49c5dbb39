# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Fused preprocessing kernel: sample + colour-convert + normalise/quantise, one pass per output row.

Private: only `edgert.preprocess` imports this module. It trusts its caller, which has checked
dtypes, shapes and strides, so every address computed here lies inside the arrays it was given.

Per output row, with the GIL released:
  1. sample: each plane group (packed pixels, luma, chroma) is sampled at the output columns
     (nearest / bilinear Q11 / area Q16) into a small uint8 scratch row;
  2. convert: YUV->RGB or RGB->gray in Q14 integer arithmetic, or nothing;
  3. write: one 256-entry table per channel (normalisation + quantisation folded in) maps the
     8-bit values to the output dtype, written with the output's strides (NHWC or NCHW).
"""
cimport numpy as cnp
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t
from libc.string cimport memcpy, memset

cnp.import_array()

cdef enum:
    MAX_CH = 4

cdef enum:
    NEAREST = 0
    BILINEAR = 1
    AREA = 2

cdef enum:
    CONV_COPY = 0       # sampled channels are already the output channels
    CONV_GRAY2RGB = 1   # one sampled channel, replicated
    CONV_RGB2GRAY = 2   # sampled R, G, B -> luma
    CONV_YUV2RGB = 3    # sampled Y + interleaved U, V -> R, G, B

# Q14 coefficients (edgert._reference holds the same numbers and the derivation).
cdef int32_t GRAY_R = 4899, GRAY_G = 9617, GRAY_B = 1868


cdef struct Group:
    int nch                 # channels sampled (1..4)
    int32_t chan[MAX_CH]    # byte offset of each channel from the frame start (plane base + in-pixel offset)
    int nseg                # area only: distinct row segments to accumulate (1, or 2 for I420 chroma)
    int32_t seg[2]          # area only: byte offset of each segment from the frame start
    int32_t seg_of[MAX_CH]  # area only: segment of each channel
    int32_t inner[MAX_CH]   # area only: byte offset of each channel inside its segment
    int32_t span_lo         # area only: first byte of a row that any output reads
    int32_t span_len        # area only: bytes per row read
    Py_ssize_t pitch        # bytes between rows of this group's plane
    int step                # bytes between horizontally adjacent pixels of this group's plane
    const int32_t* x0
    const int32_t* x1
    const int32_t* wx
    const int32_t* wxm
    const int32_t* wxl
    const int32_t* y0
    const int32_t* y1
    const int32_t* wy
    const int32_t* wym
    const int32_t* wyl


cdef inline void sample_nearest(const uint8_t* frame, const Group* g, int n, int dy,
                                uint8_t* dst) noexcept nogil:
    cdef const uint8_t* row = frame + g.y0[dy] * g.pitch
    cdef int i, c, nch = g.nch
    cdef const int32_t* x0 = g.x0
    if nch == 3:
        for i in range(n):
            dst[3 * i] = row[x0[i] + g.chan[0]]
            dst[3 * i + 1] = row[x0[i] + g.chan[1]]
            dst[3 * i + 2] = row[x0[i] + g.chan[2]]
    else:
        for i in range(n):
            for c in range(nch):
                dst[nch * i + c] = row[x0[i] + g.chan[c]]


cdef inline void bilinear_1row(const uint8_t* r0, const int32_t* chan, int nch, const int32_t* x0,
                               const int32_t* x1, const int32_t* wx, int n, uint8_t* dst) noexcept nogil:
    cdef int i, c
    cdef int32_t a, b, f, o
    for i in range(n):
        a = x0[i]
        b = x1[i]
        f = wx[i]
        for c in range(nch):
            o = chan[c]
            dst[nch * i + c] = <uint8_t>((r0[a + o] * (2048 - f) + r0[b + o] * f + 1024) >> 11)


cdef inline void bilinear_2row(const uint8_t* r0, const uint8_t* r1, int32_t fy, const int32_t* chan,
                               int nch, const int32_t* x0, const int32_t* x1, const int32_t* wx, int n,
                               uint8_t* dst) noexcept nogil:
    cdef int i, c
    cdef int32_t a, b, f, o, top, bot, gy = 2048 - fy
    for i in range(n):
        a = x0[i]
        b = x1[i]
        f = wx[i]
        for c in range(nch):
            o = chan[c]
            top = r0[a + o] * (2048 - f) + r0[b + o] * f
            bot = r1[a + o] * (2048 - f) + r1[b + o] * f
            dst[nch * i + c] = <uint8_t>((top * gy + bot * fy + (1 << 21)) >> 22)


cdef inline void sample_bilinear(const uint8_t* frame, const Group* g, int n, int dy,
                                 uint8_t* dst) noexcept nogil:
    cdef const uint8_t* r0 = frame + g.y0[dy] * g.pitch
    cdef const uint8_t* r1 = frame + g.y1[dy] * g.pitch
    cdef int32_t fy = g.wy[dy]
    # Constant channel counts let the compiler unroll the channel loop.
    if fy == 0 or r0 == r1:
        if g.nch == 3:
            bilinear_1row(r0, g.chan, 3, g.x0, g.x1, g.wx, n, dst)
        elif g.nch == 2:
            bilinear_1row(r0, g.chan, 2, g.x0, g.x1, g.wx, n, dst)
        else:
            bilinear_1row(r0, g.chan, g.nch, g.x0, g.x1, g.wx, n, dst)
    else:
        if g.nch == 3:
            bilinear_2row(r0, r1, fy, g.chan, 3, g.x0, g.x1, g.wx, n, dst)
        elif g.nch == 2:
            bilinear_2row(r0, r1, fy, g.chan, 2, g.x0, g.x1, g.wx, n, dst)
        else:
            bilinear_2row(r0, r1, fy, g.chan, g.nch, g.x0, g.x1, g.wx, n, dst)


cdef inline void accumulate_rows(const uint8_t* frame, const Group* g, int dy, int32_t* acc) noexcept nogil:
    """acc[s][j] = sum over the covered rows of weight(row) * row[seg s][span_lo + j]."""
    cdef int s, k, j, cnt = g.y1[dy], y = g.y0[dy], span = g.span_len
    cdef int32_t wf = g.wy[dy], wm = g.wym[dy], wl = g.wyl[dy]
    cdef const uint8_t* r
    cdef int32_t* a
    for s in range(g.nseg):
        a = acc + s * span
        r = frame + g.seg[s] + y * g.pitch + g.span_lo
        for j in range(span):
            a[j] = r[j] * wf
        for k in range(1, cnt - 1):
            r = frame + g.seg[s] + (y + k) * g.pitch + g.span_lo
            for j in range(span):
                a[j] += r[j] * wm
        if cnt > 1:
            r = frame + g.seg[s] + (y + cnt - 1) * g.pitch + g.span_lo
            for j in range(span):
                a[j] += r[j] * wl


cdef inline void sample_area(const uint8_t* frame, const Group* g, int n, int dy,
                             int32_t* acc, uint8_t* dst) noexcept nogil:
    cdef int i, c, k, cnt, step = g.step
    cdef const int32_t* p
    cdef int64_t v, mid
    accumulate_rows(frame, g, dy, acc)
    for i in range(n):
        cnt = g.x1[i]
        for c in range(g.nch):
            p = acc + g.seg_of[c] * g.span_len + (g.x0[i] - g.span_lo) + g.inner[c]
            v = <int64_t>p[0] * g.wx[i]
            if cnt > 1:
                mid = 0
                for k in range(1, cnt - 1):
                    mid += p[k * step]
                v += mid * g.wxm[i] + <int64_t>p[(cnt - 1) * step] * g.wxl[i]
            dst[g.nch * i + c] = <uint8_t>((v + (<int64_t>1 << 31)) >> 32)


cdef inline uint8_t clamp8(int32_t v) noexcept nogil:
    return <uint8_t>(0 if v < 0 else (255 if v > 255 else v))


cdef int32_t* _int32_ptr(cnp.ndarray arr) except NULL:
    if arr.dtype.num != cnp.NPY_INT32 or not arr.flags.c_contiguous:
        raise TypeError("sampling maps must be C-contiguous int32 arrays")
    return <int32_t*>cnp.PyArray_DATA(arr)


cdef class FusedPreprocess:
    """Holds one stream's maps and tables; `run` turns one frame into one model input.

    Args (all prepared and checked by `edgert.preprocess`):
        groups: One dict per plane group with keys ``step, seg, seg_of, inner, span_lo, span_len``
            and the int32 maps ``x0, x1, wx, wxm, wxl, y0, y1, wy, wym, wyl`` (x maps in bytes).
        interp: 0 nearest, 1 bilinear, 2 area.
        conv: CONV_* colour conversion.
        dst_rect: ``(x, y, w, h)`` of the content inside the output.
        out_size: ``(width, height)`` of the output.
        nhwc: True for channels-last output, False for channels-first.
        lut: ``(channels, 256)`` table in the output dtype (1-byte or float32).
        identity_lut: True when the table is the identity on uint8 (values are copied).
        pad_rows: Bytes of one output row of padding per channel plane (NCHW) or interleaved (NHWC).
        yuv: ``(y_gain, r_v, g_u, g_v, b_u, y_offset)`` Q14 coefficients.
        bgr_order: Write B, G, R instead of R, G, B after YUV conversion.
    """

    cdef Group groups[2]
    cdef int ngroups, interp, conv, n_x, n_y, out_ch, dst_x, dst_y, out_w, out_h, itemsize
    cdef bint nhwc, identity_lut, bgr_order
    cdef int32_t yuv[6]
    cdef list _keep
    cdef const uint8_t* lut8
    cdef const float* lutf
    cdef const char* pad_rows
    cdef uint8_t* scratch
    cdef int32_t* acc

    def __init__(self, list groups, int interp, int conv, tuple dst_rect, tuple out_size, bint nhwc,
                 cnp.ndarray lut, bint identity_lut, cnp.ndarray pad_rows, tuple yuv, bint bgr_order):
        import numpy as np
        cdef int gi, c
        cdef Group* g
        self._keep = [lut, pad_rows]
        self.ngroups = len(groups)
        if not 1 <= self.ngroups <= 2:
            raise ValueError("one or two plane groups")
        self.interp, self.conv, self.nhwc = interp, conv, nhwc
        self.dst_x, self.dst_y, self.n_x, self.n_y = dst_rect
        self.out_w, self.out_h = out_size
        self.out_ch = lut.shape[0]
        self.itemsize = lut.itemsize
        self.identity_lut, self.bgr_order = identity_lut, bgr_order
        for c in range(6):
            self.yuv[c] = yuv[c]
        if not lut.flags.c_contiguous or lut.shape[1] != 256 or self.itemsize not in (1, 4):
            raise ValueError("lut must be C-contiguous (channels, 256) of 1-byte or float32 entries")
        if not pad_rows.flags.c_contiguous or pad_rows.nbytes != self.out_w * self.out_ch * self.itemsize:
            raise ValueError("pad_rows must hold one output row per channel")
        self.lut8 = <const uint8_t*>cnp.PyArray_DATA(lut)
        self.lutf = <const float*>cnp.PyArray_DATA(lut)
        self.pad_rows = <const char*>cnp.PyArray_DATA(pad_rows)
        acc_len = 1
        for gi in range(self.ngroups):
            spec = groups[gi]
            g = &self.groups[gi]
            g.nch = len(spec["inner"])
            g.nseg = len(spec["seg"])
            if not 1 <= g.nch <= MAX_CH or not 1 <= g.nseg <= 2:
                raise ValueError("bad group")
            g.step = spec["step"]
            g.pitch = 0
            for c in range(g.nseg):
                g.seg[c] = spec["seg"][c]
            for c in range(g.nch):
                g.seg_of[c] = spec["seg_of"][c]
                g.inner[c] = spec["inner"][c]
                g.chan[c] = g.seg[g.seg_of[c]] + g.inner[c]
            g.span_lo = spec["span_lo"]
            g.span_len = spec["span_len"]
            acc_len = max(acc_len, g.nseg * g.span_len)
            maps = [spec[k] for k in ("x0", "x1", "wx", "wxm", "wxl", "y0", "y1", "wy", "wym", "wyl")]
            self._keep.extend(maps)
            for k in range(10):
                if len(maps[k]) != (self.n_x if k < 5 else self.n_y):
                    raise ValueError("map length does not match the content size")
            g.x0 = _int32_ptr(maps[0])
            g.x1 = _int32_ptr(maps[1])
            g.wx = _int32_ptr(maps[2])
            g.wxm = _int32_ptr(maps[3])
            g.wxl = _int32_ptr(maps[4])
            g.y0 = _int32_ptr(maps[5])
            g.y1 = _int32_ptr(maps[6])
            g.wy = _int32_ptr(maps[7])
            g.wym = _int32_ptr(maps[8])
            g.wyl = _int32_ptr(maps[9])
        scratch = np.zeros(self.n_x * (MAX_CH + 2 + 3) + 64, np.uint8)
        acc = np.zeros(acc_len, np.int32)
        self._keep.extend([scratch, acc])
        self.scratch = <uint8_t*>cnp.PyArray_DATA(scratch)
        self.acc = <int32_t*>cnp.PyArray_DATA(acc)

    def run(self, cnp.ndarray frame, Py_ssize_t pitch, Py_ssize_t chroma_u, Py_ssize_t chroma_v,
            Py_ssize_t chroma_pitch, cnp.ndarray out, bint pad):
        """Process one frame into `out` (C-contiguous, the layout and dtype given at construction).

        Args:
            frame: The source array; its data pointer is the frame's first byte.
            pitch: Bytes between luma (or packed) rows.
            chroma_u, chroma_v: Byte offsets of the first U and V samples (4:2:0 only).
            chroma_pitch: Bytes between chroma rows (4:2:0 only).
            out: The output array.
            pad: Also write the padding around the content (letterbox).
        """
        cdef const uint8_t* src = <const uint8_t*>cnp.PyArray_DATA(frame)
        cdef char* dst = <char*>cnp.PyArray_DATA(out)
        cdef Group* g = &self.groups[1]
        self.groups[0].pitch = pitch
        if self.ngroups == 2:
            g.pitch = chroma_pitch
            if g.nseg == 2:
                g.seg[0] = chroma_u
                g.seg[1] = chroma_v
            else:
                g.seg[0] = min(chroma_u, chroma_v)
                g.inner[0] = chroma_u - g.seg[0]
                g.inner[1] = chroma_v - g.seg[0]
            g.chan[0] = chroma_u
            g.chan[1] = chroma_v
        with nogil:
            self._run(src, dst, pad)

    cdef void _run(self, const uint8_t* src, char* dst, bint pad) noexcept nogil:
        cdef int dy, y
        cdef uint8_t* s_a = self.scratch
        cdef uint8_t* s_b = s_a + self.n_x * MAX_CH
        cdef uint8_t* s_c = s_b + self.n_x * 2
        cdef uint8_t* px
        if pad:
            for y in range(self.dst_y):
                self._pad(dst, y, 0, self.out_w)
            for y in range(self.dst_y + self.n_y, self.out_h):
                self._pad(dst, y, 0, self.out_w)
        for dy in range(self.n_y):
            y = self.dst_y + dy
            if pad and self.n_x < self.out_w:
                self._pad(dst, y, 0, self.dst_x)
                self._pad(dst, y, self.dst_x + self.n_x, self.out_w)
            self._sample(src, &self.groups[0], dy, s_a)
            if self.ngroups == 2:
                self._sample(src, &self.groups[1], dy, s_b)
            px = self._convert(s_a, s_b, s_c)
            self._write(px, dst, y)

    cdef inline void _sample(self, const uint8_t* src, const Group* g, int dy, uint8_t* dst) noexcept nogil:
        if self.interp == NEAREST:
            sample_nearest(src, g, self.n_x, dy, dst)
        elif self.interp == BILINEAR:
            sample_bilinear(src, g, self.n_x, dy, dst)
        else:
            sample_area(src, g, self.n_x, dy, self.acc, dst)

    cdef uint8_t* _convert(self, uint8_t* s_a, uint8_t* s_b, uint8_t* s_c) noexcept nogil:
        cdef int i, n = self.n_x
        cdef int32_t y, u, v, r, g_, b
        cdef int32_t cy = self.yuv[0], crv = self.yuv[1], cgu = self.yuv[2], cgv = self.yuv[3]
        cdef int32_t cbu = self.yuv[4], yoff = self.yuv[5]
        cdef int ri = 2 if self.bgr_order else 0
        cdef int bi = 2 - ri
        if self.conv == CONV_COPY:
            return s_a
        if self.conv == CONV_GRAY2RGB:
            for i in range(n):
                s_c[3 * i] = s_a[i]
                s_c[3 * i + 1] = s_a[i]
                s_c[3 * i + 2] = s_a[i]
            return s_c
        if self.conv == CONV_RGB2GRAY:
            for i in range(n):
                s_c[i] = <uint8_t>((s_a[3 * i] * GRAY_R + s_a[3 * i + 1] * GRAY_G + s_a[3 * i + 2] * GRAY_B
                                    + 8192) >> 14)
            return s_c
        for i in range(n):
            y = (s_a[i] - yoff) * cy + 8192
            u = s_b[2 * i] - 128
            v = s_b[2 * i + 1] - 128
            r = (y + crv * v) >> 14
            g_ = (y - cgu * u - cgv * v) >> 14
            b = (y + cbu * u) >> 14
            s_c[3 * i + ri] = clamp8(r)
            s_c[3 * i + 1] = clamp8(g_)
            s_c[3 * i + bi] = clamp8(b)
        return s_c

    cdef void _write(self, const uint8_t* px, char* dst, int y) noexcept nogil:
        """Map the row's 8-bit pixels through the tables into output row `y`."""
        cdef int i, c, n = self.n_x, C = self.out_ch
        cdef Py_ssize_t plane = <Py_ssize_t>self.out_w * self.out_h
        cdef uint8_t* o8
        cdef float* of
        cdef const uint8_t* l0
        cdef const uint8_t* l1
        cdef const uint8_t* l2
        cdef const float* lf
        if self.itemsize == 1:
            if self.nhwc:
                o8 = <uint8_t*>dst + (<Py_ssize_t>y * self.out_w + self.dst_x) * C
                if self.identity_lut:
                    memcpy(o8, px, n * C)
                elif C == 3:
                    l0, l1, l2 = self.lut8, self.lut8 + 256, self.lut8 + 512
                    for i in range(n):
                        o8[3 * i] = l0[px[3 * i]]
                        o8[3 * i + 1] = l1[px[3 * i + 1]]
                        o8[3 * i + 2] = l2[px[3 * i + 2]]
                else:
                    for i in range(n * C):
                        o8[i] = self.lut8[(i % C) * 256 + px[i]]
            else:
                for c in range(C):
                    o8 = <uint8_t*>dst + c * plane + <Py_ssize_t>y * self.out_w + self.dst_x
                    l0 = self.lut8 + c * 256
                    for i in range(n):
                        o8[i] = l0[px[C * i + c]]
        else:
            if self.nhwc:
                of = <float*>dst + (<Py_ssize_t>y * self.out_w + self.dst_x) * C
                for i in range(n):
                    for c in range(C):
                        of[C * i + c] = self.lutf[c * 256 + px[C * i + c]]
            else:
                for c in range(C):
                    of = <float*>dst + c * plane + <Py_ssize_t>y * self.out_w + self.dst_x
                    lf = self.lutf + c * 256
                    for i in range(n):
                        of[i] = lf[px[C * i + c]]

    cdef void _pad(self, char* dst, int y, int x_from, int x_to) noexcept nogil:
        """Copy padding into columns [x_from, x_to) of output row `y`."""
        cdef int c, C = self.out_ch, isz = self.itemsize
        cdef Py_ssize_t plane = <Py_ssize_t>self.out_w * self.out_h
        if x_to <= x_from:
            return
        if self.nhwc:
            memcpy(dst + ((<Py_ssize_t>y * self.out_w + x_from) * C) * isz,
                   self.pad_rows + x_from * C * isz, (x_to - x_from) * C * isz)
        else:
            for c in range(C):
                memcpy(dst + (c * plane + <Py_ssize_t>y * self.out_w + x_from) * isz,
                       self.pad_rows + (c * self.out_w + x_from) * isz, (x_to - x_from) * isz)
