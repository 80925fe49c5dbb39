# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Fused preprocessing kernel: sample + colour-convert + normalise/quantise, one pass per output row.

Private: only `edgert.preprocess` imports this module. It trusts its caller, which has checked
dtypes, shapes and strides, so every address computed here lies inside the arrays it was given.

Per output row, with the GIL released, every step a plain loop over a short row that stays in L1:
  1. vertical: the source rows an output row needs are blended (bilinear, Q8, 16-bit lanes) or
     accumulated (area, Q16, 32-bit lanes) over the bytes the row needs;
  2. horizontal: each sampled channel (R, G, B / gray / Y, U, V) is sampled at the output columns
     into a planar 8-bit row (nearest reads the source row directly). Maps that are a plain copy
     or an exact 2:1 average (a lores stream at model size, 720p -> 640 wide) take loops with
     fixed strides that the compiler vectorises; both give the same numbers as the general loop;
  3. convert: YUV -> RGB or RGB -> gray in Q14 integers (`edgert.colour`), or nothing;
  4. write: the tables (normalisation + quantisation folded into 256 entries per channel) map the
     8-bit rows into the output row, channels interleaved (NHWC) or planar (NCHW).
"""
cimport numpy as cnp
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t
from libc.string cimport memcpy

cnp.import_array()

include "kernel_types.pxi"

cdef enum:
    NEAREST = 0
    BILINEAR = 1
    AREA = 2
    CONV_COPY = 0       # sampled channels are the output channels
    CONV_GRAY2RGB = 1   # one sampled channel, replicated
    CONV_RGB2GRAY = 2   # sampled R, G, B -> luma
    CONV_YUV2RGB = 3    # sampled Y, U, V -> R, G, B
    X_GENERAL = 0
    X_COPY = 1          # output i reads source pixel x0 + i, weight 0
    X_HALF = 2          # output i averages source pixels x0 + 2i and x0 + 2i + 1


include "preprocess_rows.pxi"


cdef fixed_stride_fn _copy_fn(int step) noexcept:
    if step == 1:
        return h_copy1
    if step == 2:
        return h_copy2
    if step == 3:
        return h_copy3
    return h_copy4


cdef fixed_stride_fn _half_fn(int step) noexcept:
    if step == 1:
        return h_half1
    if step == 2:
        return h_half2
    if step == 3:
        return h_half3
    return h_half4


cdef int32_t* _int32_ptr(cnp.ndarray arr, int n) except NULL:
    if arr.dtype.num != cnp.NPY_INT32 or not arr.flags.c_contiguous or arr.shape[0] != n:
        raise ValueError(f"sampling maps must be C-contiguous int32 arrays of {n} entries")
    return <int32_t*>cnp.PyArray_DATA(arr)


cdef class FusedPreprocess:
    """Holds one stream's maps and tables; `run` turns one frame into one model input.

    Args (prepared and checked by `edgert.preprocess`):
        groups: One dict per plane group with keys ``step, seg, seg_of, inner, span_lo, span_len``,
            ``xkind`` (X_GENERAL / X_COPY / X_HALF), the int32 maps ``x0, x1, wx, wxm, wxl`` (x in
            bytes) and ``y0, y1, wy, wym, wyl``, and for general bilinear maps the two-pixel windows
            ``px0, pw`` (or None) with ``n_wide`` (windows that may be read 8 bytes at a time).
        interp: 0 nearest, 1 bilinear, 2 area.
        conv: CONV_* colour conversion.
        dst_rect: ``(x, y, w, h)`` of the content inside the output.
        out_size: ``(width, height)`` of the output.
        nhwc: True for channels-last output, False for channels-first.
        lut: ``(channels, 256)`` table in the output dtype (1-byte entries or float32).
        identity_lut: The table is the identity on uint8 (values are copied).
        affine: ``(M0, B0, M1, B1, M2, B2, lo, hi)`` when the 1-byte table equals
            ``clamp((v * M + B) >> 16, lo, hi)`` for every v (checked by the caller), else None.
        pad_rows: One output row of padding, interleaved (NHWC) or one per channel (NCHW), as bytes.
        yuv: ``(y_gain, r_v, g_u, g_v, b_u, y_offset)`` Q14 coefficients.
        bgr_order: Write B, G, R instead of R, G, B after YUV conversion.
    """

    cdef Group groups[2]
    cdef int ngroups, interp, conv, n_x, n_y, out_ch, dst_x, dst_y, out_w, out_h, itemsize
    cdef bint nhwc, identity_lut, bgr_order, affine, busy
    cdef int32_t affine_k[8]   # M, B per channel (3), then lo, hi: the table as (v * M + B) >> 16
    cdef int32_t yuv[6]
    cdef list _keep
    cdef const uint8_t* lut8
    cdef const float* lutf
    cdef const char* pad_rows
    cdef uint8_t* planes       # planar 8-bit rows of n_x: 2 groups x MAX_CH, 3 converted, 2 x 2 x 4 lanes
    cdef uint8_t* win0         # bilinear windows of the first and second source row
    cdef uint8_t* win1
    cdef uint16_t* tbuf        # bilinear vertical blend, per segment
    cdef int32_t* acc          # area vertical sums, per segment

    def __init__(self, list groups, int interp, int conv, tuple dst_rect, tuple out_size, bint nhwc,
                 cnp.ndarray lut, bint identity_lut, cnp.ndarray pad_rows, tuple yuv, bint bgr_order,
                 affine=None):
        import numpy as np
        cdef int gi, c, span = 1
        cdef Group* g
        self._keep = [lut, pad_rows]
        self.ngroups = len(groups)
        if not 1 <= self.ngroups <= 2 or not 0 <= interp <= 2 or not 0 <= conv <= 3:
            raise ValueError("bad kernel configuration")
        self.interp, self.conv, self.nhwc = interp, conv, nhwc
        self.dst_x, self.dst_y, self.n_x, self.n_y = dst_rect
        self.out_w, self.out_h = out_size
        self.out_ch = lut.shape[0]
        self.itemsize = lut.itemsize
        self.identity_lut, self.bgr_order = identity_lut, bgr_order
        for c in range(6):
            self.yuv[c] = yuv[c]
        self.affine = affine is not None and self.itemsize == 1
        if self.affine:
            for c in range(8):
                self.affine_k[c] = affine[c]
        if not lut.flags.c_contiguous or lut.shape[1] != 256 or self.itemsize not in (1, 4):
            raise ValueError("lut must be C-contiguous (channels, 256) of 1-byte or float32 entries")
        if not pad_rows.flags.c_contiguous or pad_rows.nbytes != self.out_w * self.out_ch * self.itemsize:
            raise ValueError("pad_rows must hold one output row per channel")
        if self.n_x < 1 or self.n_y < 1 or self.dst_x + self.n_x > self.out_w or self.dst_y + self.n_y > self.out_h:
            raise ValueError("content rectangle outside the output")
        self.lut8 = <const uint8_t*>cnp.PyArray_DATA(lut)
        self.lutf = <const float*>cnp.PyArray_DATA(lut)
        self.pad_rows = <const char*>cnp.PyArray_DATA(pad_rows)
        for gi in range(self.ngroups):
            spec = groups[gi]
            g = &self.groups[gi]
            g.nch = len(spec["inner"])
            g.nseg = len(spec["seg"])
            if not 1 <= g.nch <= MAX_CH or not 1 <= g.nseg <= 2:
                raise ValueError("bad plane group")
            g.step = spec["step"]
            g.pitch = 0
            for c in range(g.nseg):
                g.seg[c] = spec["seg"][c]
            for c in range(g.nch):
                g.seg_of[c] = spec["seg_of"][c]
                g.inner[c] = spec["inner"][c]
            g.span_lo = spec["span_lo"]
            g.span_len = spec["span_len"]
            g.hfast = NULL
            g.pick = NULL
            if spec["xkind"] == X_COPY and 1 <= g.step <= 4:
                g.hfast = _copy_fn(g.step)
                g.pick = pick1 if g.step == 1 else pick2 if g.step == 2 else pick3 if g.step == 3 else pick4
            elif spec["xkind"] == X_HALF and 1 <= g.step <= 4:
                g.hfast = _half_fn(g.step)
            span = max(span, g.nseg * g.span_len)
            maps = [spec[key] for key in ("x0", "x1", "wx", "wxm", "wxl", "y0", "y1", "wy", "wym", "wyl",
                                          "px0", "pw")]
            self._keep.extend(maps)
            g.x0 = _int32_ptr(maps[0], self.n_x)
            g.x1 = _int32_ptr(maps[1], self.n_x)
            g.wx = _int32_ptr(maps[2], self.n_x)
            g.wxm = _int32_ptr(maps[3], self.n_x)
            g.wxl = _int32_ptr(maps[4], self.n_x)
            g.y0 = _int32_ptr(maps[5], self.n_y)
            g.y1 = _int32_ptr(maps[6], self.n_y)
            g.wy = _int32_ptr(maps[7], self.n_y)
            g.wym = _int32_ptr(maps[8], self.n_y)
            g.wyl = _int32_ptr(maps[9], self.n_y)
            g.px0 = NULL
            g.pw = NULL
            if maps[10] is not None:
                if not 1 <= g.step <= 4:
                    raise ValueError("paired windows need 1..4-byte pixels")
                g.px0 = _int32_ptr(maps[10], self.n_x)
                g.pw = _int32_ptr(maps[11], self.n_x)
                g.n_wide = spec["n_wide"]
                if not 0 <= g.n_wide <= self.n_x:
                    raise ValueError("n_wide out of range")
                g.compact = (compact2 if g.step == 1 else compact4 if g.step == 2
                             else compact6 if g.step == 3 else compact8)
                g.blend_pairs = (blend_pairs1 if g.step == 1 else blend_pairs2 if g.step == 2
                                 else blend_pairs3 if g.step == 3 else blend_pairs4)
        planes = np.zeros((2 * MAX_CH + 3 + 16) * self.n_x + 64, np.uint8)
        windows = np.zeros(2 * (8 * self.n_x + 64), np.uint8)
        tbuf = np.zeros(span + 64, np.uint16)
        acc = np.zeros(span + 64, np.int32)
        self._keep.extend([planes, windows, tbuf, acc])
        self.planes = <uint8_t*>cnp.PyArray_DATA(planes)
        self.win0 = <uint8_t*>cnp.PyArray_DATA(windows)
        self.win1 = self.win0 + 8 * self.n_x + 64
        self.tbuf = <uint16_t*>cnp.PyArray_DATA(tbuf)
        self.acc = <int32_t*>cnp.PyArray_DATA(acc)

    def run(self, cnp.ndarray frame, Py_ssize_t pitch, Py_ssize_t chroma_u, Py_ssize_t chroma_v,
            Py_ssize_t chroma_pitch, cnp.ndarray out, bint pad):
        """Process one frame into `out` (C-contiguous, the layout and dtype given at construction).

        Returns False, doing nothing, when another thread is inside `run` of this object (its
        scratch rows and per-frame offsets serve one frame at a time); True otherwise.

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
        if self.busy:  # checked and set while holding the GIL: atomic for Python threads
            return False
        self.busy = True
        self.groups[0].pitch = pitch
        if self.ngroups == 2:
            # The chroma planes of a 4:2:0 frame move with its stride.
            g.pitch = chroma_pitch
            if g.nseg == 2:
                g.seg[0] = chroma_u
                g.seg[1] = chroma_v
            else:
                g.seg[0] = min(chroma_u, chroma_v)
                g.inner[0] = chroma_u - g.seg[0]
                g.inner[1] = chroma_v - g.seg[0]
        try:
            with nogil:
                self._run(src, dst, pad)
        finally:
            self.busy = False
        return True

    cdef void _run(self, const uint8_t* src, char* dst, bint pad) noexcept nogil:
        cdef int dy, y, c, n = self.n_x
        cdef uint8_t* Q = self.planes + 2 * MAX_CH * n
        cdef uint8_t* a[MAX_CH]     # the sampled rows of group 0 (R, G, B / gray / Y)
        cdef uint8_t* b[MAX_CH]     # the sampled rows of group 1 (U, V)
        cdef uint8_t* rows[3]
        if pad:
            for y in range(self.dst_y):
                self._pad(dst, y, 0, self.out_w)
            for y in range(self.dst_y + self.n_y, self.out_h):
                self._pad(dst, y, 0, self.out_w)
        for dy in range(self.n_y):
            y = self.dst_y + dy
            if pad and n < self.out_w:
                self._pad(dst, y, 0, self.dst_x)
                self._pad(dst, y, self.dst_x + n, self.out_w)
            self._sample(src, 0, dy, a)
            if self.ngroups == 2:
                self._sample(src, 1, dy, b)
            if self.conv == CONV_YUV2RGB:
                if self.bgr_order:
                    yuv_to_rgb(a[0], b[0], b[1], Q + 2 * n, Q + n, Q, self.yuv, n)
                else:
                    yuv_to_rgb(a[0], b[0], b[1], Q, Q + n, Q + 2 * n, self.yuv, n)
                rows[0], rows[1], rows[2] = Q, Q + n, Q + 2 * n
            elif self.conv == CONV_RGB2GRAY:
                rgb_to_gray(a[0], a[1], a[2], Q, n)
                rows[0] = Q
            elif self.conv == CONV_GRAY2RGB:
                rows[0], rows[1], rows[2] = a[0], a[0], a[0]
            else:
                for c in range(self.out_ch):
                    rows[c] = a[c]
            self._write(rows, dst, y)

    cdef void _sample(self, const uint8_t* src, int gi, int dy, uint8_t** out) noexcept nogil:
        """Sample the group's channels for output row dy; out[c] points at channel c's 8-bit row."""
        cdef const Group* g = &self.groups[gi]
        cdef int c, s, n = self.n_x
        cdef uint8_t* P = self.planes + gi * MAX_CH * n
        cdef uint8_t* L = self.planes + (2 * MAX_CH + 3 + gi * 8) * n
        cdef const uint8_t* row
        cdef const uint16_t* t
        for c in range(g.nch):
            out[c] = P + c * n
        if self.interp == NEAREST:
            row = src + g.y0[dy] * g.pitch
            for c in range(g.nch):
                h_nearest(row + g.seg[g.seg_of[c]] + g.inner[c], g.x0, out[c], n)
        elif self.interp == BILINEAR and g.hfast == NULL and g.px0 != NULL:
            for s in range(g.nseg):
                self._blend_windows(src, g, s, dy, L + s * 4 * n)
            for c in range(g.nch):
                out[c] = L + (g.seg_of[c] * 4 + g.inner[c]) * n
        elif self.interp == BILINEAR and g.pick != NULL and (g.wy[dy] == 0 or g.y0[dy] == g.y1[dy]):
            # Source pixels land on output pixels: pick the bytes, nothing to blend.
            for c in range(g.nch):
                g.pick(src + g.seg[g.seg_of[c]] + g.y0[dy] * g.pitch + g.x0[0] + g.inner[c], out[c], n)
        elif self.interp == BILINEAR:
            self._blend(src, g, dy)
            for c in range(g.nch):
                # t[x] is the blended byte at row offset x (x as stored in the maps).
                t = self.tbuf + g.seg_of[c] * g.span_len - g.span_lo + g.inner[c]
                if g.hfast != NULL:
                    g.hfast(t + g.x0[0], out[c], n)
                else:
                    h_bilinear(t, g.x0, g.x1, g.wx, out[c], n)
        else:
            accumulate_rows(src, g, dy, self.acc)
            for c in range(g.nch):
                (h_area1 if g.step == 1 else h_area2 if g.step == 2 else h_area3 if g.step == 3 else h_area4)(
                    self.acc + g.seg_of[c] * g.span_len - g.span_lo + g.inner[c], g, out[c], n)

    cdef void _blend_windows(self, const uint8_t* src, const Group* g, int s, int dy, uint8_t* lanes) noexcept nogil:
        """General bilinear for segment s: one 8-bit row per byte lane of a pixel, lanes[k * n_x ...]."""
        cdef int n = self.n_x
        cdef const uint8_t* r0 = src + g.seg[s] + g.y0[dy] * g.pitch
        cdef const uint8_t* r1 = src + g.seg[s] + g.y1[dy] * g.pitch
        cdef int32_t fy = g.wy[dy]
        cdef uint8_t* w1 = self.win1
        if fy == 0 or r0 == r1:
            w1 = self.win0
            fy = 0
        g.compact(r0, g.px0, self.win0, n, g.n_wide)
        if fy:
            g.compact(r1, g.px0, w1, n, g.n_wide)
        g.blend_pairs(self.win0, w1, fy, g.pw, lanes, lanes + n, lanes + 2 * n, n)

    cdef void _blend(self, const uint8_t* src, const Group* g, int dy) noexcept nogil:
        """Bilinear, vertical step: blend the two source rows of output row dy into tbuf (Q8)."""
        cdef int s
        cdef const uint8_t* r0
        cdef const uint8_t* r1
        cdef int32_t fy = g.wy[dy]
        for s in range(g.nseg):
            r0 = src + g.seg[s] + g.y0[dy] * g.pitch + g.span_lo
            r1 = src + g.seg[s] + g.y1[dy] * g.pitch + g.span_lo
            if fy == 0 or r0 == r1:
                widen_row(r0, self.tbuf + s * g.span_len, g.span_len)
            elif fy == 128:
                average_rows(r0, r1, self.tbuf + s * g.span_len, g.span_len)
            else:
                blend_rows(r0, r1, fy, self.tbuf + s * g.span_len, g.span_len)

    cdef void _write(self, uint8_t** rows, char* dst, int y) noexcept nogil:
        """Map the planar 8-bit rows through the tables into output row `y`."""
        cdef int c, n = self.n_x, C = self.out_ch
        cdef Py_ssize_t plane = <Py_ssize_t>self.out_w * self.out_h
        cdef Py_ssize_t first = <Py_ssize_t>y * self.out_w + self.dst_x
        cdef uint8_t* o8
        if self.itemsize == 1:
            if self.nhwc:
                o8 = <uint8_t*>dst + first * C
                if C == 1:
                    if self.identity_lut:
                        memcpy(o8, rows[0], n)
                    elif self.affine:
                        affine1(rows[0], self.affine_k[0], self.affine_k[1], self.affine_k[6], self.affine_k[7], o8, n)
                    else:
                        lookup(rows[0], self.lut8, o8, 1, n)
                elif self.identity_lut:
                    interleave3(rows[0], rows[1], rows[2], o8, n)
                elif self.affine:
                    affine3(rows[0], rows[1], rows[2], self.affine_k, o8, n)
                else:
                    lookup3(rows[0], rows[1], rows[2], self.lut8, o8, n)
            else:
                for c in range(C):
                    o8 = <uint8_t*>dst + c * plane + first
                    if self.identity_lut:
                        memcpy(o8, rows[c], n)
                    elif self.affine:
                        affine1(rows[c], self.affine_k[2 * c], self.affine_k[2 * c + 1], self.affine_k[6],
                                self.affine_k[7], o8, n)
                    else:
                        lookup(rows[c], self.lut8 + 256 * c, o8, 1, n)
        else:
            for c in range(C):
                if self.nhwc:
                    lookup_f(rows[c], self.lutf + 256 * c, <float*>dst + first * C + c, C, n)
                else:
                    lookup_f(rows[c], self.lutf + 256 * c, <float*>dst + c * plane + first, 1, n)

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
