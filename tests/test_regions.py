"""`Preprocessor.regions`: many boxes of one frame into one batch, against its twin and the definitions.

Tolerances: the kernel equals the twin (`edgert._reference_regions.regions`) exactly, for every
format, mode, interpolation, layout, dtype and box (inside, partly outside, fractional); the twin's
fixed-point bilinear stays within one unit of the ideal bilinear value of the same positions.
"""
import numpy as np
import pytest
from conftest import ALL_FORMATS, YUV420_FORMATS, image_spec, make_frame
from hypothesis import given
from hypothesis import strategies as st
from strategies import MAPPINGS, mapping_args

from edgert import _reference_regions
from edgert.core.errors import ConfigError, FrameError
from edgert.preprocess import Preprocessor
from edgert.regions import region_placement, valid_boxes


@st.composite
def region_cases(draw, mappings=MAPPINGS, formats=ALL_FORMATS, interpolations=("bilinear", "nearest")):
    """(preprocessor, frame, boxes, pixel_centers, description) over formats, sizes, modes and boxes."""
    fmt = draw(st.sampled_from(formats))
    even = fmt in YUV420_FORMATS
    side = st.integers(1, 40).map(lambda k: 2 * k) if even else st.integers(2, 80)
    fw, fh = draw(side), draw(side)
    w, h = draw(st.integers(1, 20)), draw(st.integers(1, 20))
    channels = draw(st.sampled_from([1, 3]))
    layout = draw(st.sampled_from(["NHWC", "NCHW", "HWC", "CHW"]))
    mapping = draw(st.sampled_from([m for m in mappings if m != "per-channel" or channels == 3]))
    args = draw(mapping_args(mapping, channels, layout))
    spec = image_spec(h, w, channels, layout, args["dtype"], args["quant"])
    pad = draw(st.integers(0, 255))
    centres = draw(st.sampled_from(["half", "corner"]))
    pre = Preprocessor(spec, fmt, (fw, fh), draw(st.sampled_from(["stretch", "letterbox", "center-crop"])),
                       draw(st.sampled_from(interpolations)), args["mean"], args["std"], pad,
                       channel_order=draw(st.sampled_from(["RGB", "BGR"])),
                       yuv_range=draw(st.sampled_from(["limited", "full"])), pixel_centers=centres)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    frame = make_frame(fmt, fw, fh, rng, draw(st.sampled_from([0, 0, 3, 64])),
                       draw(st.sampled_from(["noise", "noise", "binary"])))
    coord = st.floats(-0.6, 1.6)
    boxes = []
    for _ in range(draw(st.integers(1, 5))):
        if draw(st.booleans()):  # integer boxes inside the frame, the usual detector crop
            x0, y0 = draw(st.integers(0, fw - 1)), draw(st.integers(0, fh - 1))
            boxes.append([x0, y0, draw(st.integers(x0 + 1, fw)), draw(st.integers(y0 + 1, fh))])
        else:
            x0, x1 = sorted(draw(st.lists(coord, min_size=2, max_size=2)))
            y0, y1 = sorted(draw(st.lists(coord, min_size=2, max_size=2)))
            boxes.append([x0 * fw, y0 * fh, x1 * fw + 0.25, y1 * fh + 0.25])
    boxes = np.array(boxes, np.float64)
    boxes = boxes[valid_boxes(boxes, (fw, fh))]
    if not len(boxes):
        boxes = np.array([[0.0, 0.0, fw, fh]])
    return pre, frame, boxes, centres, f"{pre!r} seed={seed} boxes={boxes.tolist()} centres={centres}"


def _run(pre, frame, boxes, centres, out=None):
    assert pre.pixel_centers == centres
    return pre.regions(frame, boxes, out=out)


@given(case=region_cases())
def test_kernel_equals_twin(case):
    """Every format, mode, layout, dtype and box: the kernel gives exactly the twin's batch."""
    pre, frame, boxes, centres, what = case
    got = _run(pre, frame, boxes, centres)
    want = _reference_regions.regions(frame, pre, boxes, getattr(pre, "pixel_centers", centres))
    assert got.shape == want.shape == (len(boxes), *pre.spec.shape[-3:]), what
    assert got.dtype == pre.spec.dtype
    np.testing.assert_array_equal(got, want, err_msg=what)


@given(case=region_cases(mappings=("identity",), formats=("BGR", "RGBA", "GRAY", "NV12"),
                         interpolations=("bilinear",)))
def test_fixed_point_within_one_unit_of_ideal_bilinear(case):
    """The twin's Q8 (rows) / Q15 (columns) arithmetic against float bilinear at the same positions: |diff| <= 1."""
    pre, frame, boxes, centres, what = case
    if pre.format.yuv420 and pre._channels == 3:  # compare the planes themselves: luma models only
        return
    fixed = _reference_regions.regions(frame, pre, boxes, centres).astype(np.int64)
    ideal = _reference_regions.regions(frame, pre, boxes, centres, exact=True).astype(np.int64)
    tol = 2 if pre.format.yuv420 and pre.yuv_range == "limited" else 1  # limited luma expanded by 255/219
    assert np.abs(fixed - ideal).max() <= tol, what


@pytest.mark.parametrize("fmt", ["BGR", "RGB", "BGRA", "XRGB8888", "GRAY"])
@pytest.mark.parametrize("resize", ["stretch", "letterbox", "center-crop"])
@pytest.mark.parametrize("centres", ["half", "corner"])
def test_integer_box_equals_preprocessor_of_the_crop(fmt, resize, centres):
    """A box inside the frame gives what a preprocessor of the crop's size gives for the crop (within 1)."""
    rng = np.random.default_rng(7)
    frame = make_frame(fmt, 97, 61, rng, stride_pad=5)
    spec = image_spec(17, 23, 3, "NHWC", np.uint8)
    pre = Preprocessor(spec, fmt, (97, 61), resize, pixel_centers=centres)
    boxes = np.array([[3, 4, 50, 40], [0, 0, 97, 61], [60, 30, 67, 33], [90, 55, 97, 61]])
    got = pre.regions(frame, boxes)
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        crop_pre = Preprocessor(spec, fmt, (x1 - x0, y1 - y0), resize, pixel_centers=centres)
        want = crop_pre(frame[y0:y1, x0:x1])[0]
        assert np.abs(got[k].astype(int) - want).max() <= 1, f"box {k}"


def test_box_partly_outside_is_padded_where_it_leaves_the_frame():
    """The box keeps its geometry: the half outside the frame is padding, the half inside the frame's pixels."""
    frame = np.arange(20 * 20, dtype=np.uint8).reshape(20, 20)
    pre = Preprocessor(image_spec(10, 10, 1), "GRAY", (20, 20), interpolation="nearest", pad_value=0)
    got = pre.regions(frame, [[-10, 0, 10, 20]])[0, :, :, 0]
    assert (got[:, :5] == 0).all()
    np.testing.assert_array_equal(got[:, 5:], frame[1::2, 1:10:2])


@pytest.mark.parametrize("box, says", [([5, 5, 5, 9], "zero or negative size"), ([5, 5, 3, 9], "zero or negative"),
                                       ([np.nan, 0, 4, 4], "not finite"), ([30, 0, 40, 10], "outside the 20x20"),
                                       ([-9, -9, 0, 0], "outside")])
def test_bad_box_refused_in_one_line_nothing_written(box, says):
    frame = np.zeros((20, 20, 3), np.uint8)
    pre = Preprocessor(image_spec(8, 8, 3), "BGR", (20, 20))
    out = np.full((2, 8, 8, 3), 77, np.uint8)
    with pytest.raises(FrameError, match=r"boxes\[1\]") as err:
        pre.regions(frame, [[0, 0, 10, 10], box], out=out)
    assert says in str(err.value) and "\n" not in str(err.value)
    assert (out == 77).all()
    assert not valid_boxes([box], (20, 20)).any()


def test_batch_buffer_is_reused_and_read_only():
    rng = np.random.default_rng(3)
    frame = make_frame("NV12", 64, 48, rng)
    pre = Preprocessor(image_spec(12, 12, 3, "NHWC", np.int8), "NV12", (64, 48), mean=127.5, std=127.5)
    a = pre.regions(frame, [[0, 0, 30, 30]] * 4)
    b = pre.regions(frame, [[10, 10, 40, 40]] * 3)
    assert a.shape == (4, 12, 12, 3) and b.shape == (3, 12, 12, 3)
    assert np.shares_memory(a, b) and not b.flags.writeable
    out = np.empty((2, 12, 12, 3), np.int8)
    assert pre.regions(frame, [[0, 0, 30, 30]] * 2, out=out) is out
    with pytest.raises(FrameError, match="out: expected int8 array of shape"):
        pre.regions(frame, [[0, 0, 30, 30]] * 3, out=out)
    with pytest.raises(FrameError, match=r"boxes: expected shape \(N, 4\)"):
        pre.regions(frame, [[0, 0, 30]])
    assert pre.regions(frame, np.zeros((0, 4))).shape == (0, 12, 12, 3)


def test_area_interpolation_refused_for_regions():
    pre = Preprocessor(image_spec(8, 8, 3), "BGR", (64, 64), interpolation="area")
    with pytest.raises(ConfigError, match="area.*not supported for regions"):
        pre.regions(np.zeros((64, 64, 3), np.uint8), [[0, 0, 32, 32]])


def test_region_placement_maps_model_pixels_back_to_the_frame():
    p = region_placement([100, 50, 300, 150], (64, 64), "letterbox", (640, 480))
    np.testing.assert_allclose(p.to_source([[0, p.dst_rect[1], 64, p.dst_rect[1] + p.dst_rect[3]]]),
                               [[100, 50, 300, 150]], atol=1e-3)


def test_region_placement_follows_the_corner_letterbox():
    """Under "corner" the region's letterbox is MediaPipe's exact-scale one, as the kernel samples it."""
    from edgert.geometry import place

    half = region_placement([100, 50, 200, 80], (64, 64), "letterbox", (640, 480))
    corner = region_placement([100, 50, 200, 80], (64, 64), "letterbox", (640, 480), "corner")
    exact = place((100, 30), (64, 64), "letterbox", "corner")
    assert corner.dst_rect == exact.dst_rect != half.dst_rect
    np.testing.assert_allclose(corner.src_rect, np.add(exact.src_rect, [100, 50, 0, 0]))
