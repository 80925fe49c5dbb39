"""Zone and line analytics over tracks (edgert.apps.surveillance.analytics) against independent references."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgert.apps.surveillance.analytics import (ZoneEvent, bottom_centres, crossing_directions, dwell_ns,
                                                points_in_polygon, step_line, step_zone)

seeds = st.integers(0, 2**32 - 1)
SQUARE = [(100, 100), (300, 100), (300, 300), (100, 300)]


def _star_polygon(rng, vertices):
    """A simple (non-self-intersecting) polygon: random radii at increasing angles round a centre."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, vertices))
    radii = rng.uniform(20, 200, vertices)
    return np.c_[500 + radii * np.cos(angles), 400 + radii * np.sin(angles)]


def _distance_to_edges(points, polygon):
    a, b = polygon, np.roll(polygon, -1, 0)
    ab = b - a
    t = np.clip(((points[:, None] - a) * ab).sum(-1) / (ab * ab).sum(-1), 0, 1)
    nearest = a + t[..., None] * ab
    return np.linalg.norm(points[:, None] - nearest, axis=-1).min(1)


@given(seed=seeds, vertices=st.integers(3, 12))
def test_points_in_polygon_match_matplotlib(seed, vertices):
    path = pytest.importorskip("matplotlib.path")
    rng = np.random.default_rng(seed)
    polygon = _star_polygon(rng, vertices)
    points = rng.uniform([250, 150], [750, 650], (300, 2))
    clear = _distance_to_edges(points, polygon) > 1e-6  # on an edge either answer is right
    want = path.Path(polygon).contains_points(points)
    got = points_in_polygon(points, polygon)
    np.testing.assert_array_equal(got[clear], want[clear], err_msg=f"seed {seed}")


def test_bottom_centres_are_where_objects_stand():
    np.testing.assert_allclose(bottom_centres([[10, 20, 30, 80]]), [[20, 80]])


def test_zone_enter_exit_and_dwell_follow_the_track():
    inside, log = {}, []
    path = [(50, 200), (150, 200), (200, 200), (250, 200), (350, 200)]  # bottom centres walking through
    for k, (x, y) in enumerate(path):
        inside, events = step_zone(inside, [7], [(x, y)], SQUARE, k * 1000)
        log += events
        if k == 3:
            assert dwell_ns(inside, 3500) == {7: 2500}
    assert log == [ZoneEvent("enter", 7, 1000, 0), ZoneEvent("exit", 7, 4000, 3000)]
    assert inside == {}


def test_a_track_unseen_stays_inside_until_it_ends():
    inside, _ = step_zone({}, [1, 2], [(200, 200), (150, 150)], SQUARE, 0)
    inside, events = step_zone(inside, [2], [(160, 160)], SQUARE, 10)  # track 1 not seen: still inside
    assert events == [] and set(inside) == {1, 2}
    inside, events = step_zone(inside, [2], [(170, 170)], SQUARE, 20, ended=[1])
    assert events == [ZoneEvent("exit", 1, 20, 20)] and set(inside) == {2}
    before = dict(inside)
    step_zone(inside, [2], [(900, 900)], SQUARE, 30)
    assert inside == before  # the state passed in is never changed


def _reference_crossing(p, q, a, b):
    """Parametric intersection of p + t (q - p) with a + u (b - a); direction from where q lies."""
    m = np.array([q - p, a - b]).T
    det = np.linalg.det(m)
    if abs(det) < 1e-9:
        return None
    t, u = np.linalg.solve(m, a - p)
    if min(abs(t), abs(t - 1), abs(u), abs(u - 1)) < 1e-9:
        return None  # touching an end: too close to call
    if not (0 < t < 1 and 0 < u < 1):
        return 0
    side_q = (b[0] - a[0]) * (q[1] - a[1]) - (b[1] - a[1]) * (q[0] - a[0])
    return 1 if side_q < 0 else -1


@given(seed=seeds)
def test_crossing_directions_match_a_parametric_intersection(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0, 100, 2), rng.uniform(0, 100, 2)
    p, q = rng.uniform(0, 100, (200, 2)), rng.uniform(0, 100, (200, 2))
    got = crossing_directions(p, q, a, b)
    for i in range(200):
        want = _reference_crossing(p[i], q[i], a, b)
        if want is not None:
            assert got[i] == want, f"seed {seed} move {i}: {p[i]} -> {q[i]} over {a} -> {b}"


def test_line_crossings_count_each_way_once_and_ignore_touches():
    a, b = (0, 100), (400, 100)  # left to right on screen; its left is up
    last, log = {}, []
    ys = [50, 80, 100, 80, 120, 150, 100, 120, 60, 40]  # touch and back, cross down, touch, cross up
    for k, y in enumerate(ys):
        last, crossings = step_line(last, [3], [(200, y)], a, b, k)
        log += [(c.timestamp_ns, c.direction) for c in crossings]
    assert log == [(4, -1), (8, 1)]


def test_a_crossing_outside_the_segment_does_not_count():
    _, crossings = step_line({5: (500.0, 50.0)}, [5], [(500, 150)], (0, 100), (400, 100), 1)
    assert crossings == []
