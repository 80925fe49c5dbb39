"""CameraAnalytics: every rule over hand-built track sequences, jitter, crossing counts against a brute-force
reference (hypothesis), resizing, and ground speed against a synthetic scene with known motion."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgert.apps.surveillance.analytics import KINDS, CameraAnalytics, GroundSpeed, step_polyline
from edgert.apps.surveillance.analytics.geometry import homography_from_points
from edgert.apps.surveillance.config import CameraConfig
from edgert.tracking.results import Tracks

seeds = st.integers(0, 2**32 - 1)
CONTRACT_KEYS = {"camera", "track_id", "cls", "t", "t_start", "t_end", "zone", "line", "direction", "dwell_s",
                 "speed_kmh", "count", "box", "snapshot", "counts"}
T0 = 1_764_633_600.0  # 2025-12-02 00:00 UTC: interval counts align to the clock
SQUARE = [[100, 100], [300, 100], [300, 300], [100, 300]]


def camera(**fields) -> CameraConfig:
    base = {"id": "cam", "source": {"kind": "folder", "path": "/tmp"}, "frame_size": [640, 480]}
    return CameraConfig.model_validate({**base, **fields})


def tracks(*items) -> Tracks:
    """Tracks from ``(id, x, y, class)``: a 20x40 box standing on (x, y)."""
    ids = np.array([i[0] for i in items], np.int64)
    boxes = np.array([[x - 10, y - 40, x + 10, y] for _, x, y, _ in items], np.float32).reshape(-1, 4)
    classes = np.array([i[3] for i in items], np.int32)
    n = len(items)
    return Tracks(ids, boxes, np.ones(n, np.float32), classes, np.arange(n))


LABELS = ("person", "car", "truck")


def run(analytics: CameraAnalytics, frames, dt: float = 0.1, t0: float = T0):
    """Feed frames (each a list of (id, x, y, class)); returns every event."""
    events = []
    for k, items in enumerate(frames):
        events += analytics.update(tracks(*items), t0 + k * dt)
    return events


def kinds(events):
    return [e.kind for e in events]


def test_zone_enter_exit_dwell_and_event_contract():
    cam = camera(zones=[{"id": "yard", "polygon": SQUARE}])
    analytics = CameraAnalytics(cam, (640, 480), labels=LABELS)
    xs = [50, 150, 200, 250, 350]
    events = run(analytics, [[(7, x, 200, 0)] for x in xs], dt=1.0)
    assert kinds(events) == ["zone_enter", "zone_exit"]
    enter, leave = events
    assert (enter.track_id, enter.cls, enter.zone, enter.count, enter.t) == (7, "person", "yard", 1, T0 + 1)
    assert enter.box == (140.0, 160.0, 160.0, 200.0)
    assert leave.dwell_s == pytest.approx(3.0) and leave.t_start == pytest.approx(T0 + 1) and leave.count == 0
    for event in events:
        details = event.details()
        json.dumps(details)
        assert set(details) <= CONTRACT_KEYS and details["camera"] == "cam" and event.kind in KINDS
        assert "yard" in event.message and "7" in event.message


def test_jitter_on_a_zone_edge_does_not_flood_events():
    wobble = [[(1, 100 + (3 if k % 2 else -3), 200, 0)] for k in range(40)]  # +-3 px about the left edge
    calm = CameraAnalytics(camera(zones=[{"id": "z", "polygon": SQUARE}]), (640, 480))
    assert run(calm, wobble) == []
    raw = CameraAnalytics(camera(zones=[{"id": "z", "polygon": SQUARE}], analytics={"hysteresis_px": 0}), (640, 480))
    assert len(run(raw, wobble)) == 39  # without the dead band every wobble after the first frame is an event
    decided = run(calm, [[(1, x, 200, 0)] for x in (103, 97, 110, 103, 97, 90)])
    assert kinds(decided) == ["zone_enter", "zone_exit"]  # in past the band, out past the band: once each


def test_loitering_is_raised_once_per_visit():
    cam = camera(zones=[{"id": "door", "polygon": SQUARE, "loiter_s": 5}])
    analytics = CameraAnalytics(cam, (640, 480), labels=LABELS)
    stay = [[(3, 200, 200, 0)]] * 12 + [[(3, 400, 200, 0)]] + [[(3, 200, 200, 0)]] * 3 + [[(3, 210, 210, 0)]] * 5
    events = run(analytics, stay, dt=1.0)
    assert kinds(events) == ["zone_enter", "loiter", "zone_exit", "zone_enter", "loiter"]
    first = events[1]
    assert first.t == T0 + 5 and first.dwell_s == pytest.approx(5.0) and first.t_start == pytest.approx(T0)
    assert events[4].t == T0 + 18


def test_occupancy_counts_per_class_and_intrusion_by_class():
    cam = camera(zones=[{"id": "lot", "polygon": SQUARE, "intrusion": ["person"]}])
    analytics = CameraAnalytics(cam, (640, 480), labels=LABELS)
    events = analytics.update(tracks((1, 150, 150, 0), (2, 200, 200, 1), (3, 250, 250, 1), (4, 500, 400, 0)), T0)
    assert kinds(events) == ["zone_enter", "intrusion", "zone_enter", "zone_enter"]
    assert events[1].track_id == 1 and events[1].cls == "person"
    assert analytics.occupancy() == {"lot": {"person": 1, "car": 2}}
    analytics.update(tracks((2, 500, 200, 1)), T0 + 1)
    assert analytics.occupancy() == {"lot": {"person": 1, "car": 1}}


def test_zone_classes_limit_what_it_follows():
    cam = camera(zones=[{"id": "walk", "polygon": SQUARE, "classes": ["person"]}])
    analytics = CameraAnalytics(cam, (640, 480), labels=LABELS)
    assert kinds(analytics.update(tracks((1, 200, 200, 1), (2, 210, 210, 0)), T0)) == ["zone_enter"]
    assert analytics.occupancy() == {"walk": {"person": 1}}


def test_crowd_holds_for_its_time_and_rearms():
    cam = camera(zones=[{"id": "q", "polygon": SQUARE, "crowd": {"min_count": 3, "for_s": 3}}])
    analytics = CameraAnalytics(cam, (640, 480), labels=LABELS)
    three = [(1, 150, 150, 0), (2, 200, 200, 0), (3, 250, 250, 0)]
    frames = [three[:2]] * 2 + [three] * 6 + [[(1, 150, 150, 0), (2, 200, 200, 0), (3, 400, 250, 0)]] + \
        [three] * 5
    crowds = [e for e in run(analytics, frames, dt=1.0) if e.kind == "crowd"]
    assert [(e.t - T0, e.count, e.t_start - T0) for e in crowds] == [(5, 3, 2), (12, 3, 9)]
    assert crowds[0].zone == "q" and crowds[0].track_id is None


def test_ended_and_forgotten_tracks_leave_their_zones():
    cam = camera(zones=[{"id": "z", "polygon": SQUARE}], analytics={"forget_after_s": 5})
    analytics = CameraAnalytics(cam, (640, 480), labels=LABELS)
    analytics.update(tracks((1, 200, 200, 0), (2, 150, 150, 0)), T0)
    analytics.update(tracks((1, 205, 200, 0), (2, 150, 150, 0)), T0 + 1)
    assert analytics.update(tracks((2, 150, 150, 0)), T0 + 2) == []  # unseen is not gone
    events = analytics.update(tracks((2, 150, 150, 0)), T0 + 3, ended=[1])
    # it left when last seen (not when the tracker gave up on it), with its last box
    assert [(e.kind, e.track_id, e.dwell_s, e.t_end - T0, e.t - T0) for e in events] == [("zone_exit", 1, 1.0, 1, 3)]
    assert events[0].box == (195.0, 160.0, 215.0, 200.0)
    events = analytics.update(tracks(), T0 + 9)  # track 2 unseen for 6 s > forget_after_s
    assert [(e.kind, e.track_id, e.dwell_s) for e in events] == [("zone_exit", 2, 3.0)]
    assert analytics.occupancy() == {"z": {}}

    class WithEnded(tuple):  # the app's tracks carry the ids that ended with them
        ids = np.array([], np.int64)
        boxes = np.zeros((0, 4))
        classes = ()
        ended = (5,)

    analytics.update(tracks((5, 200, 200, 0)), T0 + 10)
    assert [(e.kind, e.track_id) for e in analytics.update(WithEnded(), T0 + 11)] == [("zone_exit", 5)]


def test_line_crossings_per_class_and_direction_with_interval_counts():
    cam = camera(lines=[{"id": "kerb", "points": [[0, 200], [639, 200]], "interval_s": 60}])
    analytics = CameraAnalytics(cam, (640, 480), labels=LABELS)
    events = []
    # car 1 goes down (a_to_b) at ~10 s, truck 2 up (b_to_a) at ~20 s, car 3 down at ~70 s (next minute)
    for t, items in [(0, [(1, 100, 150, 1), (2, 300, 260, 2)]), (10, [(1, 100, 250, 1)]), (20, [(2, 300, 150, 2)]),
                     (65, [(3, 500, 100, 1)]), (70, [(3, 500, 300, 1)]), (125, [])]:
        events += analytics.update(tracks(*items), T0 + t)
    crossings = [(e.track_id, e.cls, e.direction, e.t - T0) for e in events if e.kind == "line_cross"]
    assert crossings == [(1, "car", "a_to_b", 10), (2, "truck", "b_to_a", 20), (3, "car", "a_to_b", 70)]
    counts = [e for e in events if e.kind == "line_count"]
    assert [(e.t_start - T0, e.t_end - T0, e.count) for e in counts] == [(0, 60, 2), (60, 120, 1)]
    assert counts[0].counts == {"car": {"a_to_b": 1, "b_to_a": 0}, "truck": {"a_to_b": 0, "b_to_a": 1}}
    last = analytics.close(T0 + 130)
    assert [(e.kind, e.count, e.t_start - T0, e.t_end - T0) for e in last] == [("line_count", 0, 120, 130)]
    assert analytics.line_totals() == {"kerb": {"car": {"a_to_b": 2, "b_to_a": 0}, "truck": {"a_to_b": 0, "b_to_a": 1}}}


def test_jitter_across_a_line_is_counted_once():
    line = {"id": "l", "points": [[0, 200], [639, 200]], "interval_s": None}
    path = [150, 180, 197, 203, 198, 202, 197, 203, 199, 230, 260]  # wobbles +-3 px on the line, then goes on
    calm = CameraAnalytics(camera(lines=[line]), (640, 480))
    events = run(calm, [[(1, 320, y, 0)] for y in path])
    assert [(e.direction, e.t) for e in events] == [("a_to_b", pytest.approx(T0 + 0.9))]
    raw = CameraAnalytics(camera(lines=[line], analytics={"hysteresis_px": 0}), (640, 480))
    assert len(run(raw, [[(1, 320, y, 0)] for y in path])) == 7  # what the dead band saves


def test_line_classes_and_a_bent_line():
    # A V-shaped line: a track crossing both arms in one move has crossed it twice: no net crossing.
    cam = camera(lines=[{"id": "v", "points": [[100, 100], [200, 300], [300, 100]], "classes": ["car"]}])
    analytics = CameraAnalytics(cam, (640, 480), labels=LABELS)
    events = run(analytics, [[(1, 50, 200, 1), (2, 200, 50, 0)], [(1, 350, 200, 1), (2, 200, 400, 0)],
                             [(1, 200, 200, 1)]])
    assert [(e.track_id, e.direction) for e in events if e.kind == "line_cross"] == [(1, "b_to_a")]


def _seg_distance(p, a, b) -> float:
    ax, ay, bx, by, px, py = *a, *b, *p
    dx, dy = bx - ax, by - ay
    t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
    return ((px - ax - t * dx) ** 2 + (py - ay - t * dy) ** 2) ** 0.5


def _seg_crossing(p, q, a, b) -> int:
    """+1 / -1 / 0 by solving p + t (q - p) = a + u (b - a) for 0 < t, u < 1."""
    m = np.array([[q[0] - p[0], a[0] - b[0]], [q[1] - p[1], a[1] - b[1]]])
    if abs(np.linalg.det(m)) < 1e-12:
        return 0
    t, u = np.linalg.solve(m, [a[0] - p[0], a[1] - p[1]])
    if not (0 < t < 1 and 0 < u < 1):
        return 0
    side_q = (b[0] - a[0]) * (q[1] - a[1]) - (b[1] - a[1]) * (q[0] - a[0])
    return 1 if side_q < 0 else -1


def _reference_counts(paths, vertices, band):
    """Brute force, one track and one point at a time: ``[(frame, track, direction)]``."""
    segments = list(zip(vertices[:-1], vertices[1:]))
    last, out = {}, []
    for frame in range(len(paths[0])):
        for track, path in enumerate(paths):
            p = path[frame]
            if min(_seg_distance(p, a, b) for a, b in segments) <= band:
                continue
            if track in last:
                net = sum(_seg_crossing(last[track], p, a, b) for a, b in segments)
                if net:
                    out.append((frame, track, 1 if net > 0 else -1))
            last[track] = p
    return out


@settings(max_examples=60, deadline=None)
@given(seed=seeds, n_vertices=st.integers(2, 4), band=st.sampled_from([0.0, 2.0, 6.0]))
def test_crossing_counts_match_a_brute_force_reference(seed, n_vertices, band):
    rng = np.random.default_rng(seed)
    vertices = np.c_[np.sort(rng.uniform(20, 620, n_vertices)), rng.uniform(150, 330, n_vertices)]
    steps = rng.normal(0, rng.uniform(1, 25), (5, 60, 2))  # 5 tracks, 60 frames: wanderers and wobblers
    paths = rng.uniform([0, 150], [640, 330], (5, 1, 2)) + np.cumsum(steps, axis=1)
    want = _reference_counts(paths.tolist(), vertices.tolist(), band)
    last, got = {}, []
    for frame in range(paths.shape[1]):
        last, crossings = step_polyline(last, np.arange(5), paths[:, frame], vertices, band, frame)
        got += [(c.timestamp_ns, c.track_id, c.direction) for c in crossings]
    assert got == want, f"seed {seed}"


@settings(max_examples=60, deadline=None)
@given(seed=seeds, noise=st.floats(0.0, 3.5))
def test_noisy_single_crossings_are_counted_once(seed, noise):
    """A track walking across a spanning line with noise smaller than the band: exactly one crossing, and
    it is the right way."""
    rng = np.random.default_rng(seed)
    going_down = bool(rng.integers(2))
    ys = np.linspace(120, 280, 80) if going_down else np.linspace(280, 120, 80)
    pauses = np.repeat(ys, rng.integers(1, 4, 80))  # dawdling on the way (a track standing on the line)
    pts = np.c_[np.full(len(pauses), 320.0) + rng.normal(0, 1, len(pauses)), pauses + rng.uniform(-noise, noise,
                                                                                                   len(pauses))]
    analytics = CameraAnalytics(camera(lines=[{"id": "l", "points": [[0, 200], [639, 200]]}]), (640, 480))
    events = [e for k, p in enumerate(pts) for e in analytics.update(tracks((1, *p, 0)), T0 + k / 30)]
    assert [e.direction for e in events] == ["a_to_b" if going_down else "b_to_a"], f"seed {seed}"


@settings(max_examples=40, deadline=None)
@given(seed=seeds)
def test_crossings_of_a_spanning_line_alternate_and_sum_to_the_displacement(seed):
    rng = np.random.default_rng(seed)
    band = 4.0
    ys = 240 + np.cumsum(rng.normal(0, rng.uniform(2, 30), 200))
    analytics = CameraAnalytics(camera(lines=[{"id": "l", "points": [[-1, 240], [641, 240]]}],
                                       frame_size=None, analytics={"hysteresis_px": band}), (640, 480))
    directions = [e.direction for k, y in enumerate(ys) for e in analytics.update(tracks((1, 320, y, 0)), T0 + k)
                  if e.kind == "line_cross"]
    assert all(a != b for a, b in zip(directions, directions[1:])), f"seed {seed}"
    sides = [np.sign(y - 240) for y in ys if abs(y - 240) > band]
    net = directions.count("a_to_b") - directions.count("b_to_a")
    assert net == (int(sides[-1] - sides[0]) // 2 if sides else 0), f"seed {seed}"


def test_normalized_zones_scale_to_the_frame_and_follow_a_resize():
    cam = camera(frame_size=None, normalized=True, zones=[{"id": "z", "polygon": [[0.25, 0.25], [0.75, 0.25],
                                                                                 [0.75, 0.75], [0.25, 0.75]]}],
                 lines=[{"id": "l", "points": [[0, 0.9], [1, 0.9]], "interval_s": None}])
    analytics = CameraAnalytics(cam, (640, 480), labels=LABELS)
    assert kinds(analytics.update(tracks((1, 320, 240, 0), (2, 320, 400, 0)), T0)) == ["zone_enter"]
    analytics.resize((1280, 960))  # the stream doubled: the same places are twice the pixels
    assert analytics.update(tracks((1, 640, 480, 0), (2, 640, 800, 0)), T0 + 1) == []
    assert analytics.occupancy() == {"z": {"person": 1}}
    events = analytics.update(tracks((1, 1200, 480, 0), (2, 640, 900, 0)), T0 + 2)
    assert [(e.kind, e.track_id) for e in events] == [("zone_exit", 1), ("line_cross", 2)]


def test_pixel_zones_are_rescaled_from_the_size_they_were_drawn_for():
    cam = camera(frame_size=[1920, 1080], zones=[{"id": "z", "polygon": [[960, 540], [1920, 540], [1920, 1080],
                                                                          [960, 1080]]}])
    analytics = CameraAnalytics(cam, (960, 540), labels=LABELS)  # the stream delivers half the size
    events = analytics.update(tracks((1, 700, 400, 0), (2, 300, 400, 0)), T0)
    assert [(e.kind, e.track_id) for e in events] == [("zone_enter", 1)]


def test_bad_frame_size_is_refused():
    from edgert.core.errors import ConfigError
    with pytest.raises(ConfigError, match="frame size"):
        CameraAnalytics(camera(), (0, 480))


# --- speed from the homography, against a synthetic scene -----------------------------------------------

TILT, FOCAL, CENTRE, HEIGHT = np.radians(20), 1000.0, (960.0, 540.0), 6.0
GROUND_MARKS = np.array([(-4, 8), (4, 8), (4, 40), (-4, 40)], float)  # metres: a 8 m x 32 m stretch of road


def project(x, y):
    """Ground (x right, y ahead, metres) -> image pixels of a camera 6 m up, tilted 20 degrees down."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    up = -y * np.sin(TILT) + HEIGHT * np.cos(TILT)
    depth = y * np.cos(TILT) + HEIGHT * np.sin(TILT)
    return np.stack([CENTRE[0] + FOCAL * x / depth, CENTRE[1] + FOCAL * up / depth], -1)


def _drive(rng, noise_px):
    """One car on a lane at constant speed: (true km/h, times, noisy image anchors)."""
    speed = rng.uniform(30, 90) / 3.6
    lane = float(rng.choice([-2.0, 2.0]))
    t = np.arange(int(30 * 32 / speed)) / 30
    y = 8 + speed * t if rng.integers(2) else 40 - speed * t
    return speed * 3.6, t, project(np.full(len(t), lane), y) + rng.normal(0, noise_px, (len(t), 2))


@pytest.mark.parametrize("noise_px, median_limit, p95_limit", [(1.0, 0.01, 0.03), (2.0, 0.02, 0.06)])
def test_speed_accuracy_on_a_synthetic_road(noise_px, median_limit, p95_limit):
    rng = np.random.default_rng(12)
    matrix = homography_from_points(project(GROUND_MARKS[:, 0], GROUND_MARKS[:, 1]), GROUND_MARKS)
    errors = []
    for _ in range(150):
        truth, t, anchors = _drive(rng, noise_px)
        speed = GroundSpeed(matrix, window_s=1.0)
        for k in range(len(t)):
            speed.add([1], anchors[k:k + 1], T0 + t[k])
            estimate = speed.speed_kmh(1)
            if t[k] >= 1.0:
                assert estimate is not None
                errors.append(abs(estimate - truth) / truth)
    errors = np.array(errors)
    median, p95 = np.median(errors), np.percentile(errors, 95)
    print(f"speed error at {noise_px} px noise: median {median:.2%}, p95 {p95:.2%}, worst {errors.max():.2%} "
          f"over {len(errors)} estimates")
    assert median < median_limit and p95 < p95_limit


def test_line_crossings_carry_the_speed():
    image = project(GROUND_MARKS[:, 0], GROUND_MARKS[:, 1])
    cam = camera(frame_size=[1920, 1080], homography={"image": image.tolist(), "ground": GROUND_MARKS.tolist()},
                 lines=[{"id": "road", "points": project([-6, 6], [20, 20]).tolist()}])
    analytics = CameraAnalytics(cam, (1920, 1080), labels=LABELS)
    t = np.arange(60) / 30
    anchors = project(np.full(60, 2.0), 10 + 50 / 3.6 * t)  # 50 km/h away from the camera
    events = [e for k, (x, y) in enumerate(anchors) for e in analytics.update(tracks((4, x, y, 1)), T0 + t[k])]
    crossing, = [e for e in events if e.kind == "line_cross"]
    assert crossing.direction == "b_to_a" and crossing.speed_kmh == pytest.approx(50, rel=0.01)
    assert analytics.speed_kmh(4) == pytest.approx(50, rel=0.01)
    analytics.resize((960, 540))  # a smaller stream: the same road in half the pixels
    more = project(np.full(10, 2.0), 10 + 50 / 3.6 * (2 + np.arange(10) / 30)) / 2
    for k, (x, y) in enumerate(more):
        analytics.update(tracks((4, x, y, 1)), T0 + 2 + k / 30)
    assert analytics.speed_kmh(4) == pytest.approx(50, rel=0.01)


def test_malformed_tracks_are_refused_in_one_line():
    from edgert.core.errors import TrackingError
    analytics = CameraAnalytics(camera(zones=[{"id": "z", "polygon": SQUARE}]), (640, 480))
    good = tracks((1, 200, 200, 0))

    def with_boxes(boxes):  # (Tracks._replace trips over its own __len__)
        return Tracks(good.ids, boxes, good.scores, good.classes, good.det_index)

    with pytest.raises(TrackingError, match=r"1 track ids with boxes of shape \(1, 3\)"):
        analytics.update(with_boxes(good.boxes[:, :3]), T0)
    with pytest.raises(TrackingError, match="NaN or inf"):
        analytics.update(with_boxes(np.full((1, 4), np.nan, np.float32)), T0)
    with pytest.raises(TrackingError, match="timestamp"):
        analytics.update(good, float("nan"))
    assert analytics.occupancy() == {"z": {}}  # nothing half-applied


def test_class_names_pass_through_and_indices_without_labels_are_text():
    cam = camera(zones=[{"id": "z", "polygon": SQUARE, "classes": ["person", "3"]}])
    analytics = CameraAnalytics(cam, (640, 480))

    class Named:  # the app's camera-wide tracks: names, not indices
        ids = np.array([1, 2], np.int64)
        boxes = np.array([[190, 160, 210, 200], [150, 160, 170, 200]], np.float32)
        classes = ("person", "dog")

    assert [(e.track_id, e.cls) for e in analytics.update(Named(), T0)] == [(1, "person")]
    assert [(e.track_id, e.cls) for e in analytics.update(tracks((5, 250, 250, 3)), T0 + 1)] == [(5, "3")]


def _reference_zone(paths, polygon, band):
    """Brute force with matplotlib's point-in-polygon and a scalar edge distance: ``[(frame, track, kind)]``."""
    from matplotlib.path import Path
    shape = Path(polygon)
    edges = list(zip(polygon, polygon[1:] + polygon[:1]))
    inside, out = set(), []
    for frame in range(len(paths[0])):
        for track, path in enumerate(paths):
            p = path[frame]
            if min(_seg_distance(p, a, b) for a, b in edges) < band:
                continue
            now = bool(shape.contains_point(p))
            if now and track not in inside:
                inside.add(track)
                out.append((frame, track, "zone_enter"))
            elif not now and track in inside:
                inside.discard(track)
                out.append((frame, track, "zone_exit"))
    return out


@settings(max_examples=40, deadline=None)
@given(seed=seeds, band=st.sampled_from([0.5, 3.0, 8.0]))
def test_zone_events_match_a_brute_force_reference(seed, band):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 9))
    angles = (np.arange(n) + rng.uniform(0.1, 0.9, n)) * 2 * np.pi / n  # every gap under half a turn
    radii = rng.uniform(40, 150, n)  # so the polygon is star-shaped round its centre: simple
    polygon = np.c_[320 + radii * np.cos(angles), 240 + radii * np.sin(angles)]
    cam = camera(zones=[{"id": "z", "polygon": polygon.tolist()}], analytics={"hysteresis_px": band})
    analytics = CameraAnalytics(cam, (640, 480))
    paths = rng.uniform(150, 450, (4, 1, 2)) + np.cumsum(rng.normal(0, rng.uniform(1, 20), (4, 50, 2)), axis=1)
    got = []
    for frame in range(50):
        items = [(k + 1, float(x), float(y), 0) for k, (x, y) in enumerate(paths[:, frame])]
        got += [(frame, e.track_id - 1, e.kind) for e in analytics.update(tracks(*items), T0 + frame)]
    boxes_y = [[(float(x), float(np.float32(y))) for x, y in path] for path in paths]  # boxes are float32
    assert got == _reference_zone(boxes_y, polygon.tolist(), band), f"seed {seed}"
