"""Placement of a source frame in a model input (stretch, letterbox, centre-crop) and the way back."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgert.core.errors import ConfigError
from edgert.geometry import place

dims = st.tuples(st.integers(1, 2000), st.integers(1, 2000))
modes = st.sampled_from(["stretch", "letterbox", "center-crop"])


def _forward(p, placement):
    """Source point(s) -> output point(s), written from the definition of the placement."""
    sx, sy, sw, sh = placement.src_rect
    dx, dy, dw, dh = placement.dst_rect
    p = np.asarray(p, np.float64)
    return np.stack([dx + (p[..., 0] - sx) * dw / sw, dy + (p[..., 1] - sy) * dh / sh], axis=-1)


@given(src=dims, dst=dims)
def test_letterbox_keeps_aspect_and_centres_the_content(src, dst):
    (sw, sh), (w, h) = src, dst
    pl = place(src, dst, "letterbox")
    dx, dy, cw, ch = pl.dst_rect
    assert all(isinstance(v, int) for v in pl.dst_rect)
    assert pl.src_rect == (0.0, 0.0, sw, sh)
    assert 1 <= cw <= w and 1 <= ch <= h
    assert cw == w or ch == h or (cw == 1 or ch == 1)  # fills one side (unless clamped to 1 px)
    assert abs(dx - (w - cw - dx)) <= 1 and abs(dy - (h - ch - dy)) <= 1  # centred
    if cw > 1 and ch > 1:
        assert abs(cw - ch * sw / sh) <= 1 or abs(ch - cw * sh / sw) <= 1  # aspect kept within 1 px


@given(src=dims, dst=dims)
def test_center_crop_keeps_aspect_and_cuts_evenly(src, dst):
    (sw, sh), (w, h) = src, dst
    pl = place(src, dst, "center-crop")
    x, y, cw, ch = pl.src_rect
    assert pl.dst_rect == (0, 0, w, h)
    assert 0 <= x and 0 <= y and x + cw <= sw + 1e-9 and y + ch <= sh + 1e-9
    assert cw == pytest.approx(sw) or ch == pytest.approx(sh)
    assert cw / ch == pytest.approx(w / h, rel=1e-9)
    assert x == pytest.approx(sw - x - cw, abs=1e-9) and y == pytest.approx(sh - y - ch, abs=1e-9)


@given(src=dims, dst=dims)
def test_stretch_maps_whole_frame(src, dst):
    pl = place(src, dst, "stretch")
    assert pl.src_rect == (0.0, 0.0, *src) and pl.dst_rect == (0, 0, *dst)


@given(src=dims, dst=dims, mode=modes, u=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=8))
def test_to_source_inverts_the_forward_mapping(src, dst, mode, u):
    """A point inside the source rectangle, mapped forward, comes back to itself (points and boxes)."""
    pl = place(src, dst, mode)
    sx, sy, sw, sh = pl.src_rect
    p = np.array([[sx + a * sw, sy + b * sh] for a, b in u])
    q = _forward(p, pl)
    tol = 1e-6 * max(src) + 1e-3  # float32 results
    np.testing.assert_allclose(pl.to_source(q), p, atol=tol, rtol=1e-6)
    boxes = np.concatenate([q, q[::-1]], axis=-1)  # xyxy from two points
    back = pl.to_source(boxes)
    assert back.shape == boxes.shape and back.dtype == np.float32
    np.testing.assert_allclose(back, np.concatenate([p, p[::-1]], axis=-1), atol=tol, rtol=1e-6)


@given(src=dims, dst=dims, mode=modes, q=st.lists(st.tuples(st.floats(-500, 3000), st.floats(-500, 3000)),
                                                   min_size=1, max_size=8))
def test_clipping_keeps_points_in_the_frame_and_only_moves_outside_ones(src, dst, mode, q):
    pl = place(src, dst, mode)
    q = np.array(q)
    free, clipped = pl.to_source(q, clip=False), pl.to_source(q)
    assert np.all(clipped >= 0) and np.all(clipped <= np.array(src, np.float32))
    np.testing.assert_array_equal(clipped, np.clip(free, 0, np.array(src, np.float32)))


def test_to_source_keeps_leading_dimensions():
    pl = place((640, 480), (320, 320), "letterbox")
    boxes = np.zeros((2, 5, 4))
    assert pl.to_source(boxes).shape == (2, 5, 4)
    assert pl.to_source([[0.0, 0.0]]).shape == (1, 2)


def test_letterbox_example_by_hand():
    """1920x1080 into 640x640: 640x360 content, 140 rows of padding above and below."""
    pl = place((1920, 1080), (640, 640), "letterbox")
    assert pl.dst_rect == (0, 140, 640, 360)
    np.testing.assert_allclose(pl.to_source([0, 140, 640, 500]), [0, 0, 1920, 1080])
    np.testing.assert_allclose(pl.to_source([320, 320]), [960, 540])
    np.testing.assert_allclose(pl.to_source([0, 0], clip=False), [0, -420])


def test_unknown_mode_names_resize():
    with pytest.raises(ConfigError, match="resize"):
        place((4, 4), (2, 2), "zoom")
