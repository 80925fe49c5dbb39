# Types shared by the kernels that include preprocess_rows.pxi (preprocess.pyx, regions.pyx, warp.pyx):
# restrict pointers, the row-stage function pointers and the plane Group they fill.

# Restrict-qualified pointers: they tell the C compiler that a helper's rows do not overlap, which
# it needs before it vectorises loops that store bytes (a byte store could alias anything).
cdef extern from *:
    """
    typedef unsigned char *__restrict edgert_u8_out;
    typedef const unsigned char *__restrict edgert_u8_in;
    typedef unsigned short *__restrict edgert_u16_out;
    typedef const unsigned short *__restrict edgert_u16_in;
    typedef int *__restrict edgert_i32_out;
    typedef float *__restrict edgert_f32_out;
    """
    ctypedef uint8_t* u8_out "edgert_u8_out"
    ctypedef const uint8_t* u8_in "edgert_u8_in"
    ctypedef uint16_t* u16_out "edgert_u16_out"
    ctypedef const uint16_t* u16_in "edgert_u16_in"
    ctypedef int32_t* i32_out "edgert_i32_out"
    ctypedef float* f32_out "edgert_f32_out"

cdef enum:
    MAX_CH = 4


ctypedef void (*fixed_stride_fn)(u16_in, u8_out, int) noexcept nogil
ctypedef void (*pick_fn)(u8_in, u8_out, int) noexcept nogil
ctypedef void (*compact_fn)(u8_in, const int32_t*, u8_out, int, int) noexcept nogil
ctypedef void (*pairs_fn)(u8_in, u8_in, int32_t, const int32_t*, u8_out, u8_out, u8_out, int) noexcept nogil


cdef struct Group:
    int nch                 # channels sampled from this group (1..4)
    int nseg                # row segments read per source row (1, or 2 for I420's U and V planes)
    int32_t seg[2]          # byte offset of each segment's first row from the frame start
    int32_t seg_of[MAX_CH]  # segment of each channel
    int32_t inner[MAX_CH]   # byte offset of each channel inside a pixel of its segment
    int32_t span_lo         # first byte of a segment row that any output reads (bytes past x = 0)
    int32_t span_len        # bytes per segment row read
    int step                # bytes between horizontally adjacent pixels
    fixed_stride_fn hfast   # bilinear x map that is a copy or an exact 2:1 average, or NULL
    pick_fn pick            # bilinear x map that is a copy: bytes straight from a source row, or NULL
    const int32_t* px0      # bilinear: byte offset of each output's two-pixel window, or NULL
    const int32_t* pw       # bilinear: Q11 weight of the window's second pixel
    # Called through pointers on purpose: inlined into their caller, gcc no longer vectorises them.
    compact_fn compact      # copies each output's window into a dense buffer
    int n_wide              # leading windows that may be fetched with one 8-byte copy
    pairs_fn blend_pairs    # blends the dense windows into one row per byte lane
    Py_ssize_t pitch        # bytes between rows of this group's plane
    const int32_t* x0       # byte offsets (nearest/bilinear: first tap; area: first pixel)
    const int32_t* x1       # bilinear: byte offset of the second tap; area: pixel count
    const int32_t* wx       # bilinear: Q11 weight of the second tap; area: Q16 weight of the first
    const int32_t* wxm      # area: Q16 weight of each inner pixel
    const int32_t* wxl      # area: Q16 weight of the last pixel
    const int32_t* y0       # rows (nearest/bilinear: first tap; area: first row)
    const int32_t* y1       # bilinear: second row; area: row count
    const int32_t* wy       # bilinear: Q8 weight of the second row; area: Q16 weight of the first
    const int32_t* wym
    const int32_t* wyl
