"""Projective warps (`Warper.perspective`, `Warper.quads`) against their twin, the 8x8 solve and OpenCV.

Tolerances: the kernel equals its twin (`edgert._reference_warp.perspective`): both compute the same
float64 positions operation by operation (the kernel's row loop is built without fused multiply-adds;
a compiler that ignored that would show here first, by a unit at most); the closed-form homographies
equal the 8x8 solve to 1e-9 (relative). Against ``cv2.warpPerspective`` (INTER_LINEAR,
WARP_INVERSE_MAP, BORDER_CONSTANT), which rounds source positions to 1/32 pixel: within 2 units on a
smooth frame (gradients of at most 24 levels per pixel, so the rounding moves a value by under one
level, plus one for the rounding of the weights), and the same convention: with the ``cv2``
matrices of both pixel-centre conventions (``getPerspectiveTransform`` of the corners onto the
output's outline or onto its corner pixels) the mean difference stays below 0.3.
"""
import numpy as np
import pytest
from conftest import ALL_FORMATS, image_spec, make_frame
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import MAPPINGS, warper_and_frame

from edgert import _reference_warp
from edgert.core.errors import FrameError
from edgert.warp import Warper, quad_homographies

cv2 = pytest.importorskip("cv2")


def _quad(draw, fw, fh):
    """A convex quad over (and around) the frame: a rotated rectangle whose corners are pushed about."""
    cx, cy = draw(st.floats(-0.2 * fw, 1.2 * fw)), draw(st.floats(-0.2 * fh, 1.2 * fh))
    w, h = draw(st.floats(2.0, 1.5 * fw + 4)), draw(st.floats(2.0, 1.5 * fh + 4))
    angle = draw(st.floats(-3.2, 3.2))
    base = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
    push = np.array([[draw(st.floats(-0.3, 0.3)) * w, draw(st.floats(-0.3, 0.3)) * h] for _ in range(4)])
    c, s = np.cos(angle), np.sin(angle)
    return (base + push) @ np.array([[c, s], [-s, c]]) + [cx, cy]


@st.composite
def perspective_cases(draw, mappings=MAPPINGS, formats=ALL_FORMATS):
    warper, frame, fmt, (fw, fh), (w, h, channels), layout, mapping, seed = draw(
        warper_and_frame((24, 20), mappings, formats))
    n = draw(st.integers(1, 3))
    quads = np.array([_quad(draw, fw, fh) for _ in range(n)])
    widths = draw(st.one_of(st.none(), st.lists(st.integers(0, w), min_size=n, max_size=n)))
    centers = draw(st.sampled_from(["half", "corner"]))
    what = (f"{fmt} {fw}x{fh} -> {w}x{h}x{channels} {layout} {mapping} {centers} widths={widths} seed={seed} "
            f"{quads.tolist()}")
    return warper, frame, quads, widths, centers, what


def _homographies(warper, quads, widths, centers):
    w, h = warper.out_size
    size = (w, h) if widths is None else [(max(k, 1), h) for k in widths]
    try:
        return quad_homographies(quads, size, centers)
    except FrameError:
        assume(False)


@settings(derandomize=True)
@given(case=perspective_cases())
def test_quads_equal_the_twin(case):
    warper, frame, quads, widths, centers, what = case
    mats = _homographies(warper, quads, widths, centers)
    got = warper.quads(frame, quads, pixel_centers=centers, widths=widths)
    want = _reference_warp.perspective(frame, warper, mats, widths)
    assert got.shape == want.shape and got.dtype == warper.spec.dtype, what
    np.testing.assert_array_equal(got, want, err_msg=what)


@settings(derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), w=st.integers(1, 30), h=st.integers(1, 30))
def test_perspective_with_any_matrix_equals_twin_behind_the_horizon_too(seed, w, h):
    """General homographies, some with a denominator that changes sign inside the image: those pixels
    read the border."""
    rng = np.random.default_rng(seed)
    frame = make_frame("BGR", 40, 30, rng)
    warper = Warper(image_spec(h, w, 3), "BGR", (40, 30), pad_value=(10, 200, 30))
    m = np.array([[rng.uniform(-2, 2), rng.uniform(-2, 2), rng.uniform(-10, 50)],
                  [rng.uniform(-2, 2), rng.uniform(-2, 2), rng.uniform(-10, 40)],
                  [rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1), rng.uniform(-1, 2)]])
    got = warper.perspective(frame, m)
    want = _reference_warp.perspective(frame, warper, m[None])
    assert np.abs(got.astype(int) - want).max() <= 1, f"seed {seed}"


@settings(derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), centers=st.sampled_from(["half", "corner"]))
def test_closed_form_homographies_equal_the_8x8_solve(seed, centers):
    rng = np.random.default_rng(seed)
    base = np.array([[0, 0], [1, 0], [1, 1], [0, 1]]) * rng.uniform(5, 300, 2) + rng.uniform(-100, 1000, 2)
    quad = base + rng.uniform(-0.25, 0.25, (4, 2)) * (base.max(0) - base.min(0))
    size = (int(rng.integers(1, 400)), int(rng.integers(1, 100)))
    try:
        got = quad_homographies(quad, size, centers)[0]
    except FrameError:
        return
    want = _reference_warp.homography(quad, size, centers)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max(), err_msg=f"seed {seed}")
    # the corners land where they should
    w, h = size
    if centers == "half":
        out = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])
        target = quad - 0.5
    else:
        out = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64)
        target = quad if w > 1 and h > 1 else None
    if target is not None:
        p = np.c_[out, np.ones(4)] @ got.T
        np.testing.assert_allclose(p[:, :2] / p[:, 2:], target, atol=1e-7 * np.abs(quad).max())


@pytest.mark.parametrize("quad, says", [
    ([[0, 0], [10, 10], [10, 0], [0, 10]], "self-intersecting or not convex"),   # a bow tie
    ([[0, 0], [10, 0], [3, 3], [0, 10]], "self-intersecting or not convex"),     # a dart
    ([[0, 0], [5, 0], [10, 0], [0, 10]], "three corners lie on a line"),
    ([[0, 0], [0, 0], [10, 10], [0, 10]], "three corners lie on a line"),
    ([[0, 0], [np.inf, 0], [10, 10], [0, 10]], "not finite"),
    ([[0, 0], [2e6, 0], [10, 10], [0, 10]], "beyond"),
])
def test_quads_that_give_no_warp_are_refused_in_one_line(quad, says):
    warper = Warper(image_spec(8, 16, 3), "BGR", (40, 30))
    frame = make_frame("BGR", 40, 30, np.random.default_rng(0))
    before = warper.quads(frame, [[1, 1], [20, 1], [20, 9], [1, 9]]).copy()
    with pytest.raises(FrameError, match=f"corners\\[1\\]: no warp, .*{says}") as err:
        warper.quads(frame, np.stack([[[1, 1], [20, 1], [20, 9], [1, 9]], quad]))
    assert "\n" not in str(err.value)
    np.testing.assert_array_equal(warper.quads(frame, [[1, 1], [20, 1], [20, 9], [1, 9]]), before)


def test_bad_arguments_refused():
    warper = Warper(image_spec(8, 16, 3), "BGR", (40, 30))
    frame = make_frame("BGR", 40, 30, np.random.default_rng(0))
    quad = [[1, 1], [20, 1], [20, 9], [1, 9]]
    with pytest.raises(FrameError, match=r"widths: expected 1 whole numbers in 0..16"):
        warper.quads(frame, quad, widths=[17])
    with pytest.raises(FrameError, match="pixel_centers: expected one of half, corner"):
        warper.quads(frame, quad, pixel_centers="centre")
    with pytest.raises(FrameError, match=r"matrices: expected shape \(N, 3, 3\)"):
        warper.perspective(frame, np.eye(3)[:2])
    with pytest.raises(FrameError, match="matrices\\[0\\]: entries must be finite"):
        warper.perspective(frame, np.full((3, 3), np.nan))


def test_widths_pad_the_rest_and_the_quad_fills_the_left_part():
    rng = np.random.default_rng(3)
    frame = make_frame("BGR", 64, 48, rng)
    spec = image_spec(12, 40, 3, "NCHW", np.float32)
    warper = Warper(spec, "BGR", (64, 48), mean=127.5, std=127.5, pad_value=127.5, channel_order="BGR")
    quad = np.array([[10, 10], [30, 10], [30, 22], [10, 22]], np.float64)
    got = warper.quads(frame, np.stack([quad, quad]), widths=[20, 0])
    assert (got[0, :, :, 20:] == 0.0).all() and (got[1] == 0.0).all()
    crop = frame[10:22, 10:30].transpose(2, 0, 1).astype(np.float32) / np.float32(127.5) - 1
    np.testing.assert_allclose(got[0, :, :, :20], crop, atol=1e-6)


def _smooth(rng, w, h):
    """A BGR frame of gentle gradients and blobs (at most ~24 levels per pixel)."""
    small = rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 3), np.uint8)
    return cv2.GaussianBlur(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), (0, 0), 2.0)


@pytest.mark.parametrize("centers", ["half", "corner"])
def test_quads_against_cv2_warp_perspective(centers):
    rng = np.random.default_rng(17)
    fw, fh = 320, 240
    frame = _smooth(rng, fw, fh)
    w, h = 160, 48
    warper = Warper(image_spec(h, w, 3), "BGR", (fw, fh), pad_value=(5, 60, 200), channel_order="BGR")
    worst, means = 0, []
    for trial in range(20):
        quad = np.array([[40, 60], [260, 40], [280, 120], [30, 130]], np.float64) + rng.uniform(-25, 25, (4, 2))
        got = warper.quads(frame, quad, pixel_centers=centers)[0].astype(int)
        if centers == "half":  # the outline onto the quad: pixel centres at half integers on both sides
            src, dst = quad - 0.5, [[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]]
        else:
            src, dst = quad, [[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]]
        m = cv2.getPerspectiveTransform(np.float32(src), np.float32(dst))
        ref = cv2.warpPerspective(frame, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                  borderValue=(5, 60, 200)).astype(int)
        diff = np.abs(got - ref)
        worst, means = max(worst, int(diff.max())), means + [diff.mean()]
    assert worst <= 2 and max(means) < 0.3, f"max {worst}, mean {max(means):.3f}"


def test_parallelogram_quad_matches_the_affine_warp():
    """A parallelogram's homography is affine: the projective rows sample where the affine ones do."""
    rng = np.random.default_rng(9)
    frame = make_frame("RGB", 80, 60, rng)
    warper = Warper(image_spec(16, 32, 3), "RGB", (80, 60))
    quad = np.array([[10, 12], [50, 20], [44, 40], [4, 32]], np.float64)  # tl + (40, 8), + (-6, 20)
    m = quad_homographies(quad, (32, 16))[0]
    np.testing.assert_allclose(m[2], [0, 0, 1], atol=1e-12)
    got = warper.quads(frame, quad).astype(int)
    want = warper.affine(frame, m[:2]).astype(int)
    assert np.abs(got - want).max() <= 1
