"""Invalid settings and frames raise the specific `edgert.core.errors` class naming the argument at fault.

Also fuzzes the Python API: whatever array (shape, strides, dtype) is passed, the call either returns
the right tensor or raises an `EdgertError`; never another exception, never a crash.
"""
import numpy as np
import pytest
from conftest import ALL_FORMATS, YUV420_FORMATS, image_spec, make_frame
from hypothesis import event, given
from hypothesis import strategies as st
from numpy.lib.stride_tricks import as_strided

from edgert import Quantization, TensorSpec
from edgert.core.errors import BusyError, ConfigError, EdgertError, FrameError
from edgert.core.pixel_formats import pixel_format
from edgert.preprocess import Preprocessor

SPEC = image_spec(8, 8, 3)


def _pre(fmt="BGR", size=(6, 4), spec=SPEC, **kw):
    return Preprocessor(spec, fmt, size, **kw)


def _raises(cls, word):
    """`pytest.raises` for `cls` whose message names `word`."""
    return pytest.raises(cls, match=rf"(?i)\b{word}\b")


def test_errors_are_value_errors_for_callers_that_catch_those():
    assert issubclass(FrameError, ValueError) and issubclass(FrameError, EdgertError)
    assert issubclass(ConfigError, ValueError) and issubclass(ConfigError, EdgertError)


# ---- construction -------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,word", [
    (dict(fmt="YUYV"), "src_format"),
    (dict(fmt=None), "src_format"),
    (dict(resize="fit"), "resize"),
    (dict(interpolation="cubic"), "interpolation"),
    (dict(channel_order="GRB"), "channel_order"),
    (dict(yuv_range="studio"), "yuv_range"),
    (dict(size=(0, 4)), "src_size"),
    (dict(size=(6, -2)), "src_size"),
    (dict(size=(6.5, 4)), "src_size"),
    (dict(size=(6, 4, 3)), "src_size"),
    (dict(size="64"), "src_size"),
    (dict(size=None), "src_size"),
    (dict(fmt="NV12", size=(5, 4)), "src_size"),
    (dict(fmt="NV21", size=(6, 3)), "src_size"),
    (dict(fmt="YUV420", size=(7, 7)), "src_size"),
    (dict(mean=float("nan")), "mean"),
    (dict(mean=(0.0, float("inf"), 0.0)), "mean"),
    (dict(mean=(1.0, 2.0)), "mean"),
    (dict(mean="gray"), "mean"),
    (dict(std=0.0), "std"),
    (dict(std=(1.0, 0.0, 1.0)), "std"),
    (dict(std=float("nan")), "std"),
    (dict(std=float("-inf")), "std"),
    (dict(pad_value=-1), "pad_value"),
    (dict(pad_value=256), "pad_value"),
    (dict(pad_value=(1, 2)), "pad_value"),
    (dict(pad_value=float("nan")), "pad_value"),
])
def test_bad_setting_raises_config_error_naming_it(kwargs, word):
    with _raises(ConfigError, word):
        _pre(**kwargs)


@pytest.mark.parametrize("spec", [
    TensorSpec("logits", (1, 10), np.float32),
    TensorSpec("rgba", (1, 8, 8, 4), np.uint8),
    TensorSpec("planar4", (1, 4, 8, 8), np.uint8, layout="NCHW"),
    TensorSpec("batch", (2, 8, 8, 3), np.uint8),
    TensorSpec("video", (1, 2, 8, 8, 3), np.uint8),
    TensorSpec("empty", (1, 0, 8, 3), np.uint8),
    TensorSpec("wide", (1, 8, 8, 3), np.int16),
    TensorSpec("double", (1, 8, 8, 3), np.float64),
    TensorSpec("per-pixel", (1, 8, 8, 3), np.int8, Quantization([0.1] * 8, [0] * 8, axis=1)),
])
def test_spec_that_is_not_an_image_input_raises_naming_spec(spec):
    with _raises(ConfigError, "spec"):
        _pre(spec=spec)


def test_spec_of_wrong_type_raises_naming_spec():
    with _raises(ConfigError, "spec"):
        Preprocessor((1, 8, 8, 3), "BGR", (6, 4))


# ---- frames --------------------------------------------------------------------------------------

def _check_frame_error(pre, frame, word="frame"):
    with _raises(FrameError, word):
        pre(frame)


@pytest.mark.parametrize("dtype", [np.int8, np.uint16, np.float32, np.float64, bool])
def test_wrong_dtype(dtype):
    _check_frame_error(_pre(), np.zeros((4, 6, 3), dtype))


@pytest.mark.parametrize("fmt,shape", [
    ("BGR", (4, 6, 4)), ("BGR", (4, 6)), ("BGRA", (4, 6, 3)), ("GRAY", (4, 6, 3)), ("GRAY", (4, 6, 2)),
    ("BGR", (1, 4, 6, 3)), ("BGR", (24,)), ("NV12", (6, 6, 1)), ("NV12", (4, 6)), ("YUV420", (7, 6)),
])
def test_wrong_shape_or_channels(fmt, shape):
    _check_frame_error(_pre(fmt), np.zeros(shape, np.uint8))


@pytest.mark.parametrize("fmt", ["BGR", "GRAY", "XRGB8888"])
def test_size_differs_from_src_size(fmt):
    bpp = pixel_format(fmt).bytes_per_pixel
    frame = np.zeros((4, 8) + ((bpp,) if bpp > 1 else ()), np.uint8)
    with pytest.raises(FrameError, match="src_size"):
        _pre(fmt)(frame)


@pytest.mark.parametrize("fmt", YUV420_FORMATS)
def test_planar_frame_narrower_than_width(fmt):
    _check_frame_error(_pre(fmt), np.zeros((6, 4), np.uint8))


@pytest.mark.parametrize("fmt", ["BGR", "GRAY", "NV12", "NV21", "YUV420"])
def test_row_stride_smaller_than_the_row(fmt):
    """Rows that overlap (built with as_strided over a big enough buffer) are refused."""
    base = np.zeros(4096, np.uint8)
    if fmt in YUV420_FORMATS:
        frame = as_strided(base, (6, 6), (4, 1))
    elif fmt == "GRAY":
        frame = as_strided(base, (4, 6), (5, 1))
    else:
        frame = as_strided(base, (4, 6, 3), (15, 3, 1))
    _check_frame_error(_pre(fmt), frame, "stride")


@pytest.mark.parametrize("make", [
    lambda: np.zeros((4, 12, 3), np.uint8)[:, ::2],          # pixels two apart
    lambda: np.zeros((4, 6, 3), np.uint8)[:, ::-1],          # mirrored
    lambda: np.zeros((4, 6, 3), np.uint8)[::-1],             # upside down (negative row stride)
    lambda: np.zeros((4, 6, 3), np.uint8)[..., ::-1],        # BGR -> RGB view
    lambda: np.zeros((3, 4, 6), np.uint8).transpose(1, 2, 0),     # planar channels
    lambda: np.asfortranarray(np.zeros((4, 6, 3), np.uint8)),
])
def test_non_packed_pixels(make):
    _check_frame_error(_pre("BGR"), make())


def test_yuv420_column_slice_is_refused():
    frame = make_frame("NV12", 6, 4, np.random.default_rng(0), stride_pad=10)  # a [:, :6] slice
    assert frame.strides[0] > frame.shape[1]
    _pre("NV12")(frame)  # NV12 slices are fine (picamera2 gives them) ...
    _check_frame_error(_pre("YUV420"), frame, "YUV420")  # ... but cut an I420 frame's chroma apart


def test_yuv420_odd_stride_is_refused():
    _check_frame_error(_pre("YUV420"), np.zeros((6, 7), np.uint8), "stride")


@pytest.mark.parametrize("fmt", ["BGR", "GRAY", "NV12", "YUV420"])
@pytest.mark.parametrize("shape", [(0, 6, 3), (4, 0, 3), (0,), (0, 0)])
def test_empty_frames(fmt, shape):
    _check_frame_error(_pre(fmt), np.zeros(shape, np.uint8))


@pytest.mark.parametrize("frame", [None, [[0] * 6] * 4, b"\0" * 72, 3, memoryview(bytearray(72))])
def test_non_array_frames(frame):
    _check_frame_error(_pre(), frame)


# ---- out= ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: np.zeros((1, 8, 8, 4), np.uint8),
    lambda: np.zeros((8, 8, 3), np.uint8),
    lambda: np.zeros((1, 8, 8, 3), np.int8),
    lambda: np.zeros((1, 8, 8, 3), np.float32),
    lambda: np.zeros((1, 8, 16, 3), np.uint8)[:, :, ::2],
    lambda: np.zeros((1, 3, 8, 8), np.uint8).transpose(0, 2, 3, 1),
    lambda: np.broadcast_to(np.zeros(3, np.uint8), (1, 8, 8, 3)),  # read-only, zero strides
    lambda: _read_only(np.zeros((1, 8, 8, 3), np.uint8)),
    lambda: [[0]],
])
def test_unusable_out(make):
    out = make()
    with _raises(FrameError, "out"):
        _pre()(make_frame("BGR", 6, 4, np.random.default_rng(0)), out=out)


def _read_only(a):
    a.setflags(write=False)
    return a


def test_frame_error_leaves_out_untouched():
    """Validation runs before the kernel: a bad frame does not scribble over the caller's buffer."""
    out = np.full((1, 8, 8, 3), 7, np.uint8)
    with pytest.raises(FrameError):
        _pre("BGR")(np.zeros((4, 6, 4), np.uint8), out=out)
    assert np.all(out == 7)


def test_own_buffer_is_read_only():
    x = _pre()(make_frame("BGR", 6, 4, np.random.default_rng(0)))
    assert not x.flags.writeable
    with pytest.raises(ValueError):
        x[...] = 0


def test_to_source_rejects_coordinates_that_are_neither_points_nor_boxes():
    with _raises(ConfigError, "to_source"):
        _pre().to_source(np.zeros((2, 3)))
    with _raises(ConfigError, "to_source"):
        _pre().to_source(5.0)


# ---- fuzz ---------------------------------------------------------------------------------------

DTYPES = [np.uint8] * 10 + [np.int8, np.uint16, np.int32, np.float32, np.float64, np.bool_, np.complex64]


@st.composite
def strided_arrays(draw, valid_shape, writeable=False):
    """An array with random shape (often the valid one, or near it), dtype and byte strides.

    Built with `as_strided` over a private buffer that covers every element, so the array itself is
    safe to read; strides may be natural, padded, zero, negative, overlapping or anything.
    """
    kind = draw(st.sampled_from(["plausible", "valid", "near", "random"]))
    dtype = np.dtype(np.uint8 if kind == "plausible" else draw(st.sampled_from(DTYPES)))
    if kind in ("plausible", "valid"):
        shape = tuple(valid_shape)
    elif kind == "near":
        shape = tuple(max(0, d + draw(st.integers(-1, 1))) for d in valid_shape)
    else:
        shape = tuple(draw(st.lists(st.integers(0, 6), max_size=5)))
    isz = dtype.itemsize
    natural = [isz * int(np.prod(shape[i + 1:])) for i in range(len(shape))]
    strides = []
    for i, nat in enumerate(natural):
        if kind == "plausible":  # packed pixels; rows possibly padded
            how = draw(st.sampled_from(["natural", "padded"])) if i == 0 else "natural"
        else:
            how = draw(st.sampled_from(["natural"] * 4 + ["padded", "step", "any"]))
        if how == "natural":
            strides.append(nat)
        elif how == "padded":
            strides.append(nat + isz * draw(st.integers(1, 9)))
        elif how == "step":
            strides.append(nat * draw(st.sampled_from([2, -1, -2, 0])))
        else:
            strides.append(isz * draw(st.integers(-40, 40)))
    lo = sum(min(0, (n - 1) * s) for n, s in zip(shape, strides) if n > 0)
    hi = sum(max(0, (n - 1) * s) for n, s in zip(shape, strides) if n > 0) + isz
    base = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(0, 256, hi - lo + 64, np.uint8)
    start = -lo
    buf = base[start:start + (len(base) - start) // isz * isz].view(dtype)
    return as_strided(buf, shape, tuple(strides), writeable=writeable)


@st.composite
def fuzz_cases(draw):
    fmt = draw(st.sampled_from(ALL_FORMATS))
    pf = pixel_format(fmt)
    if pf.yuv420:
        w, h = 2 * draw(st.integers(1, 3)), 2 * draw(st.integers(1, 3))
        valid = (h * 3 // 2, w + draw(st.sampled_from([0, 2])))
    else:
        w, h = draw(st.integers(1, 5)), draw(st.integers(1, 5))
        valid = (h, w) if pf.bytes_per_pixel == 1 else (h, w, pf.bytes_per_pixel)
    pre = Preprocessor(image_spec(draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.sampled_from([1, 3]))),
                       fmt, (w, h), draw(st.sampled_from(["stretch", "letterbox", "center-crop"])),
                       draw(st.sampled_from(["nearest", "bilinear", "area"])))
    return pre, draw(strided_arrays(valid))


@given(case=fuzz_cases())
def test_fuzz_frames_either_work_or_raise_edgert_errors(case):
    """Any array: EdgertError, or the right tensor, equal to the tensor of a contiguous copy."""
    pre, frame = case
    try:
        got = pre(frame).copy()
    except EdgertError:
        event("refused")
        return
    event("accepted")
    assert got.shape == pre.spec.shape and got.dtype == pre.spec.dtype
    np.testing.assert_array_equal(got, pre(np.ascontiguousarray(frame)))


@given(case=fuzz_cases(), data=st.data(), writeable=st.sampled_from([True, True, True, False]))
def test_fuzz_out_either_works_or_raises_edgert_errors(case, data, writeable):
    """Any `out`: EdgertError, or written with exactly the own-buffer result."""
    pre, _ = case
    out = data.draw(strided_arrays(pre.spec.shape, writeable))
    w, h = pre.src_size
    frame = make_frame(pre.format.name, w, h, np.random.default_rng(1))
    try:
        res = pre(frame, out=out)
    except EdgertError:
        event("refused")
        return
    event("accepted")
    assert res is out
    np.testing.assert_array_equal(out, pre(frame))


@given(shape=st.lists(st.integers(0, 5), max_size=5), dtype=st.sampled_from([np.uint8, np.int8, np.float32,
       np.float16, np.int32]), layout=st.sampled_from([None, "NHWC", "NCHW"]), fmt=st.sampled_from(ALL_FORMATS),
       size=st.tuples(st.integers(-1, 5), st.integers(-1, 5)))
def test_fuzz_construction_either_works_or_raises_edgert_errors(shape, dtype, layout, fmt, size):
    try:
        pre = Preprocessor(TensorSpec("x", shape, dtype, layout=layout), fmt, size)
    except EdgertError:
        return
    assert pre.output_shape == tuple(shape)


def test_two_threads_on_one_preprocessor_get_busy_error_not_a_crash():
    """While one thread is inside the kernel, a second gets BusyError; the first finishes correctly."""
    import threading

    big = np.random.default_rng(0).integers(0, 256, (2000, 2000, 3), dtype=np.uint8)
    pre = Preprocessor(image_spec(480, 480, 3), "BGR", (2000, 2000), "stretch", "area")
    expected = pre(big).copy()
    outcomes = []

    def worker():
        for _ in range(20):
            try:
                out = np.empty_like(expected)
                pre(big, out=out)
                outcomes.append(np.array_equal(out, expected))
            except BusyError as exc:
                outcomes.append("busy" if "thread" in str(exc) else exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(o is True or o == "busy" for o in outcomes) and True in outcomes


def test_frames_over_2gib_are_refused_at_construction():
    with pytest.raises(ConfigError, match="too large"):
        Preprocessor(image_spec(1, 4, 3), "BGR", (900_000_000, 1), "stretch", "nearest")


def test_out_overlapping_the_frame_is_refused():
    """A kernel writing where it reads gives silently wrong output: refused before it runs."""
    rng = np.random.default_rng(15)
    pre = Preprocessor(TensorSpec("in", (1, 8, 8, 3), np.uint8), "BGR", (8, 8))
    frame = make_frame("BGR", 8, 8, rng)
    expected = pre(frame).copy()
    with _raises(FrameError, "out: overlaps the frame"):
        pre(frame, out=frame.reshape(1, 8, 8, 3))  # the same memory
    arena = np.zeros(2 * frame.nbytes, np.uint8)
    shifted = arena[:frame.nbytes].reshape(frame.shape)
    shifted[...] = frame
    with _raises(FrameError, "out: overlaps the frame"):  # out starts halfway into the frame
        pre(shifted, out=arena[frame.nbytes // 2:frame.nbytes // 2 + frame.nbytes].reshape(1, 8, 8, 3))
    np.testing.assert_array_equal(shifted, frame)  # the frame was not written either
    beside = arena[frame.nbytes:].reshape(1, 8, 8, 3)  # same buffer, no common byte: fine
    assert pre(shifted, out=beside) is beside
    np.testing.assert_array_equal(beside, expected)


def test_frame_that_is_the_own_output_buffer_is_refused():
    """The returned view fed back as the next frame: the kernel would read what it overwrites."""
    pre = Preprocessor(TensorSpec("in", (1, 8, 8, 1), np.uint8), "GRAY", (8, 8), channel_order="RGB")
    view = pre(make_frame("GRAY", 8, 8, np.random.default_rng(15)))
    with _raises(FrameError, "frame: is this preprocessor's own output buffer"):
        pre(view.reshape(8, 8))
