# Output side of the batch kernels (regions.pyx, warp.pyx): colour conversion of planar 8-bit rows and
# their mapping through the value tables into one image of an (N, H, W, C) / (N, C, H, W) batch.
# Included after kernel_types.pxi and preprocess_rows.pxi (it uses their row stages).

cdef enum:
    CONV_COPY = 0       # sampled channels are the output channels
    CONV_GRAY2RGB = 1   # one sampled channel, replicated
    CONV_RGB2GRAY = 2   # sampled R, G, B -> luma
    CONV_YUV2RGB = 3    # sampled Y, U, V -> R, G, B


cdef struct OutMap:
    int out_ch, itemsize, out_w, out_h, conv
    bint nhwc, identity, affine, bgr_order
    int32_t affine_k[8]      # M, B per channel (3), then lo, hi: the table as (v * M + B) >> 16
    int32_t yuv[6]
    const uint8_t* lut8      # (out_ch, 256) 1-byte table, or NULL
    const float* lutf        # (out_ch, 256) float32 table, or NULL
    const char* pad_rows     # one output row of padding (NHWC interleaved, NCHW one per channel)
    # Called through pointers on purpose: inlined into write_rows, gcc no longer vectorises them.
    void (*interleave)(const uint8_t*, const uint8_t*, const uint8_t*, u8_out, int) noexcept nogil
    void (*affine3)(u8_in, u8_in, u8_in, const int32_t*, u8_out, int) noexcept nogil
    void (*lookup3)(const uint8_t*, const uint8_t*, const uint8_t*, const uint8_t*, u8_out, int) noexcept nogil
    void (*affine1)(u8_in, int32_t, int32_t, int32_t, int32_t, u8_out, int) noexcept nogil


cdef int init_outmap(OutMap* o, object lut, object pad_rows, tuple out_size, bint nhwc, bint identity, object affine,
                     tuple yuv, bint bgr_order, int conv) except -1:
    """Fill `o` from the arrays `edgert` prepared (which the caller keeps alive)."""
    cdef int c
    o.out_w, o.out_h = out_size
    o.out_ch = lut.shape[0]
    o.itemsize = lut.itemsize
    o.nhwc, o.identity, o.bgr_order, o.conv = nhwc, identity, bgr_order, conv
    if not lut.flags.c_contiguous or lut.shape[1] != 256 or o.itemsize not in (1, 4) or not 0 <= conv <= 3:
        raise ValueError("lut must be C-contiguous (channels, 256) of 1-byte or float32 entries")
    if not pad_rows.flags.c_contiguous or pad_rows.nbytes != o.out_w * o.out_ch * o.itemsize:
        raise ValueError("pad_rows must hold one output row per channel")
    o.affine = affine is not None and o.itemsize == 1
    if o.affine:
        for c in range(8):
            o.affine_k[c] = affine[c]
    for c in range(6):
        o.yuv[c] = yuv[c]
    o.lut8 = <const uint8_t*>cnp.PyArray_DATA(lut)
    o.lutf = <const float*>cnp.PyArray_DATA(lut)
    o.pad_rows = <const char*>cnp.PyArray_DATA(pad_rows)
    o.interleave, o.affine3, o.lookup3, o.affine1 = interleave3, affine3, lookup3, affine1
    return 0


cdef void convert_rows(const OutMap* o, uint8_t** a, uint8_t** b, uint8_t* scratch, int n,
                       uint8_t** rows) noexcept nogil:
    """Colour-convert sampled rows (a: group 0, b: group 1) into the output channel rows `rows`."""
    cdef int c
    if o.conv == CONV_YUV2RGB:
        if o.bgr_order:
            yuv_to_rgb(a[0], b[0], b[1], scratch + 2 * n, scratch + n, scratch, o.yuv, n)
        else:
            yuv_to_rgb(a[0], b[0], b[1], scratch, scratch + n, scratch + 2 * n, o.yuv, n)
        rows[0], rows[1], rows[2] = scratch, scratch + n, scratch + 2 * n
    elif o.conv == CONV_RGB2GRAY:
        rgb_to_gray(a[0], a[1], a[2], scratch, n)
        rows[0] = scratch
    elif o.conv == CONV_GRAY2RGB:
        rows[0], rows[1], rows[2] = a[0], a[0], a[0]
    else:
        for c in range(o.out_ch):
            rows[c] = a[c]


cdef void write_rows(const OutMap* o, uint8_t** rows, char* image, int y, int x, int n) noexcept nogil:
    """Map planar 8-bit rows through the tables into columns [x, x + n) of row `y` of one image."""
    cdef int c, C = o.out_ch
    cdef Py_ssize_t plane = <Py_ssize_t>o.out_w * o.out_h
    cdef Py_ssize_t first = <Py_ssize_t>y * o.out_w + x
    cdef uint8_t* o8
    if n <= 0:
        return
    if o.itemsize == 4:
        for c in range(C):
            if o.nhwc:
                lookup_f(rows[c], o.lutf + 256 * c, <float*>image + first * C + c, C, n)
            else:
                lookup_f(rows[c], o.lutf + 256 * c, <float*>image + c * plane + first, 1, n)
        return
    if o.nhwc and C == 3:
        o8 = <uint8_t*>image + first * 3
        if o.identity:
            o.interleave(rows[0], rows[1], rows[2], o8, n)
        elif o.affine:
            o.affine3(rows[0], rows[1], rows[2], o.affine_k, o8, n)
        else:
            o.lookup3(rows[0], rows[1], rows[2], o.lut8, o8, n)
        return
    for c in range(C):
        o8 = <uint8_t*>image + (first * C if o.nhwc else c * plane + first)
        if o.identity:
            memcpy(o8, rows[c], n)
        elif o.affine:
            o.affine1(rows[c], o.affine_k[2 * c], o.affine_k[2 * c + 1], o.affine_k[6], o.affine_k[7], o8, n)
        else:
            lookup(rows[c], o.lut8 + 256 * c, o8, 1, n)


cdef void pad_span(const OutMap* o, char* image, int y, int x_from, int x_to) noexcept nogil:
    """Copy padding into columns [x_from, x_to) of row `y` of one image."""
    cdef int c, C = o.out_ch, isz = o.itemsize
    cdef Py_ssize_t plane = <Py_ssize_t>o.out_w * o.out_h
    if x_to <= x_from:
        return
    if o.nhwc:
        memcpy(image + ((<Py_ssize_t>y * o.out_w + x_from) * C) * isz, o.pad_rows + x_from * C * isz,
               (x_to - x_from) * C * isz)
    else:
        for c in range(C):
            memcpy(image + (c * plane + <Py_ssize_t>y * o.out_w + x_from) * isz,
                   o.pad_rows + (c * o.out_w + x_from) * isz, (x_to - x_from) * isz)


# ---- bilinear blend of dense 2x2 windows (Q11 on both axes), shared by the region and warp kernels ----

ctypedef void (*quads_fn)(u8_in, u8_in, const int32_t*, const int32_t*, u8_out, u8_out, u8_out, int) noexcept nogil


cdef inline uint8_t quad(const uint8_t* t, const uint8_t* b, int j, int s, int32_t fx, int32_t fy) noexcept nogil:
    """Bilinear value of the window (t[j], t[j + s]) over (b[j], b[j + s]), Q11 weights on both axes."""
    cdef int32_t t0 = t[j] * (2048 - fx) + t[j + s] * fx
    cdef int32_t t1 = b[j] * (2048 - fx) + b[j + s] * fx
    return <uint8_t>((t0 * (2048 - fy) + t1 * fy + (1 << 21)) >> 22)


# One fixed-stride loop per pixel size (gcc vectorises these only as separate, non-inlined functions).
cdef void quads1(u8_in t, u8_in b, const int32_t* wx, const int32_t* wy, u8_out p0, u8_out p1, u8_out p2,
                 int n) noexcept nogil:
    cdef int i
    for i in range(n):
        p0[i] = quad(t, b, 2 * i, 1, wx[i], wy[i])


cdef void quads2(u8_in t, u8_in b, const int32_t* wx, const int32_t* wy, u8_out p0, u8_out p1, u8_out p2,
                 int n) noexcept nogil:
    cdef int i
    for i in range(n):
        p0[i] = quad(t, b, 4 * i, 2, wx[i], wy[i])
        p1[i] = quad(t, b, 4 * i + 1, 2, wx[i], wy[i])


cdef void quads3(u8_in t, u8_in b, const int32_t* wx, const int32_t* wy, u8_out p0, u8_out p1, u8_out p2,
                 int n) noexcept nogil:
    cdef int i
    for i in range(n):
        p0[i] = quad(t, b, 8 * i, 3, wx[i], wy[i])
        p1[i] = quad(t, b, 8 * i + 1, 3, wx[i], wy[i])
        p2[i] = quad(t, b, 8 * i + 2, 3, wx[i], wy[i])


cdef void quads4(u8_in t, u8_in b, const int32_t* wx, const int32_t* wy, u8_out p0, u8_out p1, u8_out p2,
                 int n) noexcept nogil:
    cdef int i
    for i in range(n):
        p0[i] = quad(t, b, 8 * i, 4, wx[i], wy[i])
        p1[i] = quad(t, b, 8 * i + 1, 4, wx[i], wy[i])
        p2[i] = quad(t, b, 8 * i + 2, 4, wx[i], wy[i])
