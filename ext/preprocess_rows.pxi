# Row stages of the fused preprocessing kernel, included by preprocess.pyx (which holds the
# directives, the restrict pointer types, the Group struct and the FusedPreprocess class).
# Each stage is a plain loop over one short row; see preprocess.pyx's docstring for the order.

# ---- 1. vertical -----------------------------------------------------------------------------

cdef void widen_row(u8_in r0, u16_out t, int n) noexcept nogil:
    """t = r0 in Q8."""
    cdef int j
    for j in range(n):
        t[j] = <uint16_t>(r0[j] << 8)


cdef void average_rows(u8_in r0, u8_in r1, u16_out t, int n) noexcept nogil:
    """t = (r0 + r1) / 2 in Q8."""
    cdef int j
    for j in range(n):
        t[j] = <uint16_t>((r0[j] + r1[j]) << 7)


cdef void blend_rows(u8_in r0, u8_in r1, int32_t fy, u16_out t, int n) noexcept nogil:
    """t = r0 * (256 - fy) + r1 * fy, in Q8."""
    cdef int j
    cdef uint16_t a = <uint16_t>(256 - fy), b = <uint16_t>fy
    for j in range(n):
        t[j] = <uint16_t>(r0[j] * a + r1[j] * b)


cdef void accumulate_rows(const uint8_t* frame, const Group* g, int dy, int32_t* acc) noexcept nogil:
    """acc = sum over the covered rows of Q16 weight * row, per segment."""
    cdef int s, k, j, cnt = g.y1[dy], y = g.y0[dy], span = g.span_len
    cdef int32_t wf = g.wy[dy], wm = g.wym[dy], wl = g.wyl[dy]
    cdef u8_in r
    cdef i32_out a
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


# ---- 2. horizontal ---------------------------------------------------------------------------

# One loop per function, each with fixed strides: gcc vectorises these (strided loads become NEON
# ld2/ld3 or x86 permutes) only when a function holds a single loop and is not inlined into a switch.

cdef void pick2(u8_in r, u8_out p, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        p[i] = r[2 * i]


cdef void pick3(u8_in r, u8_out p, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        p[i] = r[3 * i]


cdef void pick4(u8_in r, u8_out p, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        p[i] = r[4 * i]


cdef void pick1(u8_in r, u8_out p, int n) noexcept nogil:
    memcpy(p, r, n)


cdef void h_copy1(u16_in t, u8_out p, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        p[i] = <uint8_t>((t[i] + 128) >> 8)


cdef void h_copy2(u16_in t, u8_out p, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        p[i] = <uint8_t>((t[2 * i] + 128) >> 8)


cdef void h_copy3(u16_in t, u8_out p, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        p[i] = <uint8_t>((t[3 * i] + 128) >> 8)


cdef void h_copy4(u16_in t, u8_out p, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        p[i] = <uint8_t>((t[4 * i] + 128) >> 8)


cdef void h_half1(u16_in t, u8_out p, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        p[i] = <uint8_t>((t[2 * i] + t[2 * i + 1] + 256) >> 9)


cdef void h_half2(u16_in t, u8_out p, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        p[i] = <uint8_t>((t[4 * i] + t[4 * i + 2] + 256) >> 9)


cdef void h_half3(u16_in t, u8_out p, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        p[i] = <uint8_t>((t[6 * i] + t[6 * i + 3] + 256) >> 9)


cdef void h_half4(u16_in t, u8_out p, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        p[i] = <uint8_t>((t[8 * i] + t[8 * i + 4] + 256) >> 9)


cdef void h_bilinear(u16_in t, const int32_t* x0, const int32_t* x1, const int32_t* w,
                            u8_out p, int n) noexcept nogil:
    cdef int i
    cdef int32_t f
    for i in range(n):
        f = w[i]
        p[i] = <uint8_t>((t[x0[i]] * (2048 - f) + t[x1[i]] * f + (1 << 18)) >> 19)


# General bilinear, x: each output pixel needs two horizontally adjacent source pixels from each of
# the two rows. Copy those byte windows (2 * step bytes) into a dense buffer, then blend densely:
# the blend loop then has fixed strides and vectorises, where sampling a 16-bit row at arbitrary
# offsets stays scalar (measured: 1.6x faster on 1080p -> 224).

cdef void compact2(u8_in r, const int32_t* x0, u8_out c, int n, int n_wide) noexcept nogil:
    cdef int i
    for i in range(n):
        memcpy(c + 2 * i, r + x0[i], 2)


cdef void compact4(u8_in r, const int32_t* x0, u8_out c, int n, int n_wide) noexcept nogil:
    cdef int i
    for i in range(n):
        memcpy(c + 4 * i, r + x0[i], 4)


cdef void compact6(u8_in r, const int32_t* x0, u8_out c, int n, int n_wide) noexcept nogil:
    # 8-byte slots: gcc vectorises the blend over groups of 2, 4 or 8 lanes, not 6. The first
    # n_wide windows end at least 2 bytes before the row does, so one 8-byte copy fetches each.
    cdef int i
    for i in range(n_wide):
        memcpy(c + 8 * i, r + x0[i], 8)
    for i in range(n_wide, n):
        memcpy(c + 8 * i, r + x0[i], 6)


cdef void compact8(u8_in r, const int32_t* x0, u8_out c, int n, int n_wide) noexcept nogil:
    cdef int i
    for i in range(n):
        memcpy(c + 8 * i, r + x0[i], 8)


cdef inline uint8_t pair_blend(const uint8_t* c0, const uint8_t* c1, int j, int s, uint16_t fy,
                               int32_t f) noexcept nogil:
    """Bilinear value of the byte pairs (c0[j], c0[j + s]) over (c1[j], c1[j + s]): Q8 rows, Q11 columns.

    a * (1 - f) + b * f is computed as a + (b - a) * f, one multiply a blend; the row blend is
    exact in wrapping 16-bit arithmetic (its result fits), so the compiler can use 16-bit lanes.
    """
    cdef uint16_t a = <uint16_t>((c0[j] << 8) + (c1[j] - c0[j]) * fy)
    cdef uint16_t b = <uint16_t>((c0[j + s] << 8) + (c1[j + s] - c0[j + s]) * fy)
    return <uint8_t>(((<int32_t>a << 11) + (<int32_t>b - <int32_t>a) * f + (1 << 18)) >> 19)


cdef void blend_pairs1(u8_in c0, u8_in c1, int32_t fy, const int32_t* w, u8_out p0, u8_out p1, u8_out p2,
                       int n) noexcept nogil:
    """Windows of 1-byte pixels (2-byte slots): one output row."""
    cdef int i
    for i in range(n):
        p0[i] = pair_blend(c0, c1, 2 * i, 1, <uint16_t>fy, w[i])


cdef void blend_pairs2(u8_in c0, u8_in c1, int32_t fy, const int32_t* w, u8_out p0, u8_out p1, u8_out p2,
                       int n) noexcept nogil:
    """Windows of 2-byte pixels (interleaved chroma, 4-byte slots): one output row per byte lane."""
    cdef int i
    for i in range(n):
        p0[i] = pair_blend(c0, c1, 4 * i, 2, <uint16_t>fy, w[i])
        p1[i] = pair_blend(c0, c1, 4 * i + 1, 2, <uint16_t>fy, w[i])


cdef void blend_pairs3(u8_in c0, u8_in c1, int32_t fy, const int32_t* w, u8_out p0, u8_out p1, u8_out p2,
                       int n) noexcept nogil:
    """Windows of 3-byte pixels (8-byte slots): one output row per byte lane."""
    cdef int i
    for i in range(n):
        p0[i] = pair_blend(c0, c1, 8 * i, 3, <uint16_t>fy, w[i])
        p1[i] = pair_blend(c0, c1, 8 * i + 1, 3, <uint16_t>fy, w[i])
        p2[i] = pair_blend(c0, c1, 8 * i + 2, 3, <uint16_t>fy, w[i])


cdef void blend_pairs4(u8_in c0, u8_in c1, int32_t fy, const int32_t* w, u8_out p0, u8_out p1, u8_out p2,
                       int n) noexcept nogil:
    """Windows of 4-byte pixels (8-byte slots): byte lanes 0..2, the colour bytes of every 4-byte format."""
    cdef int i
    for i in range(n):
        p0[i] = pair_blend(c0, c1, 8 * i, 4, <uint16_t>fy, w[i])
        p1[i] = pair_blend(c0, c1, 8 * i + 1, 4, <uint16_t>fy, w[i])
        p2[i] = pair_blend(c0, c1, 8 * i + 2, 4, <uint16_t>fy, w[i])


cdef inline void area_row(const int32_t* a, const Group* g, uint8_t* p, int n, int step) noexcept nogil:
    """Area, x: first and last pixel weighted by their cover, the ones between summed."""
    cdef int i, k, cnt
    cdef const int32_t* q
    cdef int64_t v
    cdef int32_t mid
    for i in range(n):
        cnt = g.x1[i]
        q = a + g.x0[i]
        v = <int64_t>q[0] * g.wx[i]
        if cnt > 1:
            v += <int64_t>q[(cnt - 1) * step] * g.wxl[i]
        if cnt > 2:
            # Vertical sums are at most 255 * 2^16 and MAX_AREA_RATIO (64) keeps cnt <= 66, so the
            # inner sum fits an int32.
            mid = 0
            for k in range(1, cnt - 1):
                mid += q[k * step]
            v += <int64_t>mid * g.wxm[i]
        p[i] = <uint8_t>((v + (<int64_t>1 << 31)) >> 32)


# A fixed step per function lets the compiler turn the inner sum into straight strided adds.
cdef void h_area1(const int32_t* a, const Group* g, u8_out p, int n) noexcept nogil:
    area_row(a, g, p, n, 1)


cdef void h_area2(const int32_t* a, const Group* g, u8_out p, int n) noexcept nogil:
    area_row(a, g, p, n, 2)


cdef void h_area3(const int32_t* a, const Group* g, u8_out p, int n) noexcept nogil:
    area_row(a, g, p, n, 3)


cdef void h_area4(const int32_t* a, const Group* g, u8_out p, int n) noexcept nogil:
    area_row(a, g, p, n, 4)


cdef void h_nearest(u8_in row, const int32_t* x0, u8_out p, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        p[i] = row[x0[i]]


# ---- 3. convert ------------------------------------------------------------------------------

cdef inline uint8_t clamp8(int32_t v) noexcept nogil:
    return <uint8_t>(0 if v < 0 else (255 if v > 255 else v))


cdef void yuv_to_rgb(u8_in Y, u8_in U, u8_in V, u8_out R, u8_out G, u8_out B, const int32_t* k,
                            int n) noexcept nogil:
    cdef int i
    cdef int32_t y, u, v
    cdef int32_t cy = k[0], crv = k[1], cgu = k[2], cgv = k[3], cbu = k[4], off = k[5]
    for i in range(n):
        y = (Y[i] - off) * cy + 8192
        u = U[i] - 128
        v = V[i] - 128
        R[i] = clamp8((y + crv * v) >> 14)
        G[i] = clamp8((y - cgu * u - cgv * v) >> 14)
        B[i] = clamp8((y + cbu * u) >> 14)


cdef void rgb_to_gray(u8_in R, u8_in G, u8_in B, u8_out out, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        # Q14 BT.601 weights, the numbers of edgert.colour.GRAY_WEIGHTS.
        out[i] = <uint8_t>((R[i] * 4899 + G[i] * 9617 + B[i] * 1868 + 8192) >> 14)


# ---- 4. write --------------------------------------------------------------------------------

cdef void interleave3(const uint8_t* a, const uint8_t* b, const uint8_t* c, u8_out o, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        o[3 * i] = a[i]
        o[3 * i + 1] = b[i]
        o[3 * i + 2] = c[i]


cdef inline int32_t clamp_i(int32_t v, int32_t lo, int32_t hi) noexcept nogil:
    return lo if v < lo else (hi if v > hi else v)


cdef void affine3(u8_in a, u8_in b, u8_in c, const int32_t* k, u8_out o, int n) noexcept nogil:
    """o = clamp((v * M + B) >> 16) per channel, interleaved: the table when it is affine (exact)."""
    cdef int i
    cdef int32_t m0 = k[0], b0 = k[1], m1 = k[2], b1 = k[3], m2 = k[4], b2 = k[5], lo = k[6], hi = k[7]
    for i in range(n):
        o[3 * i] = <uint8_t>clamp_i((a[i] * m0 + b0) >> 16, lo, hi)
        o[3 * i + 1] = <uint8_t>clamp_i((b[i] * m1 + b1) >> 16, lo, hi)
        o[3 * i + 2] = <uint8_t>clamp_i((c[i] * m2 + b2) >> 16, lo, hi)


cdef void affine1(u8_in a, int32_t m, int32_t b, int32_t lo, int32_t hi, u8_out o, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        o[i] = <uint8_t>clamp_i((a[i] * m + b) >> 16, lo, hi)


cdef void lookup3(const uint8_t* a, const uint8_t* b, const uint8_t* c, const uint8_t* lut,
                         u8_out o, int n) noexcept nogil:
    cdef int i
    cdef const uint8_t* l1 = lut + 256
    cdef const uint8_t* l2 = lut + 512
    for i in range(n):
        o[3 * i] = lut[a[i]]
        o[3 * i + 1] = l1[b[i]]
        o[3 * i + 2] = l2[c[i]]


cdef void lookup(const uint8_t* a, const uint8_t* lut, u8_out o, int stride, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        o[stride * i] = lut[a[i]]


cdef void lookup_f(const uint8_t* a, const float* lut, f32_out o, int stride, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        o[stride * i] = lut[a[i]]
