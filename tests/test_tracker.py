"""The tracker (edgert.tracking): Kalman filter and assignment against references, track lifecycles, bad input."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from edgert.core.errors import TrackingError
from edgert.postprocess import Detections
from edgert.tracking import Tracker, TrackerConfig, kalman
from edgert import _reference
from edgert.tracking.association import assign, iou_matrix, track_similarity

MS = 1_000_000
seeds = st.integers(0, 2**32 - 1)


def dets(boxes, scores=None, classes=None) -> Detections:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = boxes.shape[0]
    scores = np.full(n, 0.9, np.float32) if scores is None else np.asarray(scores, np.float32)
    classes = np.zeros(n, np.int32) if classes is None else np.asarray(classes, np.int32)
    return Detections(boxes, scores, classes)


def box_at(cx, cy, w=40.0, h=80.0):
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


# -- Kalman filter against the textbook equations ------------------------------------------------

def _reference_run(z0, zs, present):
    """One track through the standard equations with explicit matrices (ByteTrack's noise model)."""
    sp, sv = kalman.POSITION_STD, kalman.VELOCITY_STD
    F = np.eye(8)
    F[:4, 4:] = np.eye(4)
    H = np.eye(4, 8)
    h = z0[3]
    x = np.r_[z0, np.zeros(4)]
    P = np.diag(np.square([2 * sp * h, 2 * sp * h, 1e-2, 2 * sp * h, 10 * sv * h, 10 * sv * h, 1e-5, 10 * sv * h]))
    out = []
    for z, seen in zip(zs, present):
        h = x[3]
        Q = np.diag(np.square([sp * h, sp * h, 1e-2, sp * h, sv * h, sv * h, 1e-5, sv * h]))
        x = F @ x
        P = F @ P @ F.T + Q
        if seen:
            h = x[3]
            R = np.diag(np.square([sp * h, sp * h, 1e-1, sp * h]))
            S = H @ P @ H.T + R
            K = P @ H.T @ np.linalg.inv(S)
            x = x + K @ (z - H @ x)
            P = (np.eye(8) - K @ H) @ P
        out.append((x.copy(), P.copy()))
    return out


def _random_boxes(rng, n):
    """float32 xyxy boxes of n tracks: centres, sizes."""
    xy = rng.uniform(0, 1000, (n, 2))
    wh = rng.uniform(5, 300, (n, 2))
    return np.c_[xy - wh / 2, xy + wh / 2].astype(np.float32)


@given(seed=seeds, tracks=st.integers(1, 6), steps=st.integers(1, 25))
def test_kalman_matches_the_standard_equations_on_random_sequences(seed, tracks, steps):
    rng = np.random.default_rng(seed)
    start = _random_boxes(rng, tracks)
    velocity = np.c_[rng.normal(0, 8, (tracks, 2)), rng.normal(0, 8, (tracks, 2))]
    seq = [(start + (k + 1) * velocity + rng.normal(0, 2, start.shape)).astype(np.float32) for k in range(steps)]
    seq = [np.c_[b[:, :2], np.maximum(b[:, 2:], b[:, :2] + 1)].astype(np.float32) for b in seq]
    present = rng.random((steps, tracks)) < 0.7
    means, covs = kalman.initiate(start, np.arange(tracks))
    got = []
    for boxes, seen in zip(seq, present):
        kalman.predict(means, covs)
        rows = np.flatnonzero(seen)
        kalman.update(means, covs, rows, boxes, rows)
        got.append((means.copy(), kalman.full_covariance(covs)))
    z0 = kalman.xyxy_to_xyah(start)
    for i in range(tracks):
        want = _reference_run(z0[i], [kalman.xyxy_to_xyah(b)[i] for b in seq], present[:, i])
        for step, ((m, p), (wm, wp)) in enumerate(zip([(g[0][i], g[1][i]) for g in got], want)):
            np.testing.assert_allclose(m, wm, rtol=1e-7, atol=1e-7, err_msg=f"seed {seed} track {i} step {step}")
            np.testing.assert_allclose(p, wp, rtol=1e-6, atol=1e-6 * np.abs(wp).max(),
                                       err_msg=f"seed {seed} track {i} step {step}")


@given(seed=seeds, tracks=st.integers(0, 8), n=st.integers(0, 8))
def test_kalman_and_similarity_kernels_match_their_numpy_twins(seed, tracks, n):
    rng = np.random.default_rng(seed)
    boxes = _random_boxes(rng, max(tracks, n))
    means, covs = kalman.initiate(boxes, np.arange(tracks))
    want_m, want_c = _reference.kalman_initiate(boxes, np.arange(tracks))
    np.testing.assert_allclose(means, want_m, rtol=1e-12)
    np.testing.assert_allclose(covs, want_c, rtol=1e-12)
    means[:, 4:] = rng.normal(0, 3, (tracks, 4)) * [1, 1, 0.01, 1]
    covs[:, 4:8] = rng.uniform(0, 1, (tracks, 4)) * np.sqrt(covs[:, :4] * covs[:, 8:])  # a valid correlation
    want_m, want_c = _reference.kalman_predict(means, covs)
    kalman.predict(means, covs)
    np.testing.assert_allclose(means, want_m, rtol=1e-12)
    np.testing.assert_allclose(covs, want_c, rtol=1e-12)
    slots = rng.permutation(tracks)[: rng.integers(0, tracks + 1)]
    dets = rng.integers(0, len(boxes), slots.size)
    want_m, want_c = _reference.kalman_update(means, covs, slots, boxes, dets)
    kalman.update(means, covs, slots, boxes, dets)
    np.testing.assert_allclose(means, want_m, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(covs, want_c, rtol=1e-12, atol=1e-12)
    groups_t, groups_d = rng.integers(0, 2, tracks), rng.integers(0, 2, n)
    got = track_similarity(means, boxes[:n], groups_t, groups_d)
    np.testing.assert_allclose(got, _reference.track_similarity(means, boxes[:n], groups_t, groups_d), atol=1e-12,
                               err_msg=f"seed {seed}")


@given(seed=seeds)
def test_box_conversions_round_trip(seed):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-100, 2000, (20, 2))
    boxes = np.c_[xy, xy + rng.uniform(0.5, 500, (20, 2))]
    np.testing.assert_allclose(kalman.xyah_to_xyxy(kalman.xyxy_to_xyah(boxes)), boxes, rtol=1e-9, atol=1e-9)


# -- IoU and assignment against brute force ------------------------------------------------------

def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@given(seed=seeds, n=st.integers(0, 6), m=st.integers(0, 6))
def test_iou_matrix_matches_pairwise_iou(seed, n, m):
    rng = np.random.default_rng(seed)
    xy_a, xy_b = rng.integers(0, 50, (n, 2)), rng.integers(0, 50, (m, 2))  # integers: many exact overlaps
    a = np.c_[xy_a, xy_a + rng.integers(0, 30, (n, 2))].astype(float)
    b = np.c_[xy_b, xy_b + rng.integers(0, 30, (m, 2))].astype(float)
    got = iou_matrix(a, b)
    assert got.shape == (n, m)
    want = np.array([[_iou(x, y) for y in b] for x in a]).reshape(n, m)
    np.testing.assert_allclose(got, want, atol=1e-12, err_msg=f"seed {seed}")


def _best_margin(cost, max_cost):
    """Brute force: the largest total of (max_cost - cost) over one-to-one partial matchings."""
    n, m = cost.shape
    best = 0.0
    for cols in itertools.product([None, *range(m)], repeat=n):
        used = [c for c in cols if c is not None]
        if len(used) != len(set(used)):
            continue
        pairs = [(r, c) for r, c in enumerate(cols) if c is not None]
        if all(cost[r, c] < max_cost for r, c in pairs):
            best = max(best, sum(max_cost - cost[r, c] for r, c in pairs))
    return best


@given(seed=seeds, n=st.integers(0, 4), m=st.integers(0, 4), max_cost=st.floats(0.05, 1.0))
def test_assignment_is_optimal_against_brute_force(seed, n, m, max_cost):
    rng = np.random.default_rng(seed)
    cost = rng.random((n, m))
    cost[rng.random((n, m)) < 0.15] = np.nan  # forbidden pairs
    rows, cols = assign(cost.copy(), max_cost)
    assert len(set(rows.tolist())) == rows.size and len(set(cols.tolist())) == cols.size
    assert np.all(cost[rows, cols] < max_cost), f"seed {seed}"
    got = float(np.sum(max_cost - cost[rows, cols]))
    assert got == pytest.approx(_best_margin(cost, max_cost), abs=1e-9), f"seed {seed}"


# -- track lifecycles ----------------------------------------------------------------------------

@given(seed=seeds, vx=st.floats(-12, 12), vy=st.floats(-12, 12), noise=st.floats(0, 1.5))
def test_a_single_object_at_constant_velocity_keeps_one_id(seed, vx, vy, noise):
    rng = np.random.default_rng(seed)
    tracker = Tracker()
    seen_ids = set()
    for f in range(80):
        box = np.array(box_at(500 + vx * f, 400 + vy * f)) + rng.normal(0, noise, 4)
        tracks = tracker.update(dets([box]), f * 33 * MS).tracks
        if f >= 1:
            assert len(tracks) == 1, f"seed {seed} frame {f}"
        seen_ids.update(tracks.ids.tolist())
    assert seen_ids == {1}, f"seed {seed}"


def _crossing(tracker, occluded_score):
    """A walks right in front of B, who walks left: B scores `occluded_score` while they overlap, and
    is not detected at all while A hides most of it. Returns the ids seen of each, and the frames
    where B was partly hidden before the crossing."""
    ids = {"A": [], "B": []}
    occluded_frames = []
    for f in range(70):
        a, b = box_at(200 + 6 * f, 300, 80, 160), box_at(620 - 6 * f, 306, 80, 160)
        hidden = abs(a[0] - b[0]) < 15
        overlap = _iou(a, b) > 0
        boxes, scores = ([a], [0.9]) if hidden else ([a, b], [0.9, occluded_score if overlap else 0.9])
        result = tracker.update(dets(boxes, scores), f * 33 * MS).tracks
        by_det = dict(zip(result.det_index.tolist(), result.ids.tolist()))
        ids["A"].append(by_det.get(0))
        ids["B"].append(by_det.get(1))
        if overlap and not hidden and a[0] < b[0]:
            occluded_frames.append(f)
    return ids, occluded_frames


def test_two_crossing_objects_keep_their_ids_and_the_low_score_stage_bridges_the_occlusion():
    ids, occluded = _crossing(Tracker(), occluded_score=0.3)
    assert len(occluded) >= 4  # the scene really crosses
    a = set(ids["A"][1:])
    b = set(ids["B"][1:]) - {None}  # None: the frames B was hidden
    assert len(a) == 1 and len(b) == 1 and a != b, ids
    assert all(ids["B"][f] is not None for f in occluded), ids["B"]  # kept alive by its low-score boxes
    assert ids["B"][-1] is not None  # and found again (by its predicted box) after it was hidden


def test_without_the_low_score_stage_the_occluded_object_is_not_tracked_through_the_crossing():
    # Control for the test above: with its low-score boxes ignored, B drops out while occluded.
    ids, occluded = _crossing(Tracker(TrackerConfig(low_score=0.35)), occluded_score=0.3)
    assert sum(ids["B"][f] is None for f in occluded) >= len(occluded) - 1


@given(min_hits=st.integers(1, 6), first_frame=st.booleans())
def test_a_track_is_born_only_after_min_hits_consecutive_hits(min_hits, first_frame):
    # An empty first frame, or confirm_first_frame off: no track is confirmed early.
    tracker = Tracker(TrackerConfig(min_hits=min_hits, confirm_first_frame=first_frame))
    if first_frame:
        tracker.update(dets([]), 0)
    for f in range(min_hits + 3):
        result = tracker.update(dets([box_at(100 + 3 * f, 100)]), (f + 1) * MS)
        if f < min_hits - 1:
            assert len(result.tracks) == 0 and result.started == ()
        elif f == min_hits - 1:
            assert result.started == (1,) and result.tracks.ids.tolist() == [1]
        else:
            assert result.started == () and result.tracks.ids.tolist() == [1]


@given(min_hits=st.integers(2, 6), gap_at=st.integers(0, 4))
def test_a_tentative_track_that_misses_a_frame_dies_without_an_id(min_hits, gap_at):
    tracker = Tracker(TrackerConfig(min_hits=min_hits, confirm_first_frame=False))
    gap_at = min(gap_at, min_hits - 2)  # a miss before the track would be confirmed
    f = 0
    for f in range(gap_at + 1):
        tracker.update(dets([box_at(100 + 3 * f, 100)]), f * MS)
    result = tracker.update(dets([]), (f + 1) * MS)
    assert result.ended == () and len(tracker) == 0
    later = tracker.update(dets([box_at(100 + 3 * (f + 2), 100)]), (f + 2) * MS)  # starts over, tentative
    assert len(later.tracks) == (1 if min_hits == 1 else 0)


@given(max_missed=st.integers(0, 12))
def test_a_confirmed_track_ends_after_more_than_max_missed_misses(max_missed):
    tracker = Tracker(TrackerConfig(max_missed=max_missed))
    for f in range(5):
        tracker.update(dets([box_at(100 + 3 * f, 100)]), f * MS)
    for f in range(5, 5 + max_missed):
        result = tracker.update(dets([]), f * MS)
        assert result.ended == () and len(tracker) == 1 and len(result.tracks) == 0
    result = tracker.update(dets([]), (5 + max_missed) * MS)
    assert [r.track_id for r in result.ended] == [1] and len(tracker) == 0
    record = result.ended[0]
    assert record.hits == 5 and record.last_ns == 4 * MS and record.timestamps.tolist() == [f * MS for f in range(5)]


def test_end_all_ends_the_confirmed_tracks_silently_drops_tentative_ones_and_ids_go_on():
    tracker = Tracker(TrackerConfig(min_hits=3))
    for f in range(4):  # two confirmed tracks, one lost for a frame
        tracker.update(dets([box_at(100 + 2 * f, 100), box_at(400, 300)] if f < 3 else [box_at(106, 100)]), f * MS)
    tracker.update(dets([box_at(108, 100), box_at(700, 100)]), 4 * MS)  # + a tentative one
    assert len(tracker) == 3
    ended = tracker.end_all()
    assert sorted(r.track_id for r in ended) == [1, 2] and len(tracker) == 0
    by_id = {r.track_id: r for r in ended}
    assert by_id[1].last_ns == 4 * MS and by_id[1].hits == 5 and by_id[2].last_ns == 2 * MS
    assert tracker.end_all() == ()
    for f in range(5, 8):  # the rings were freed and ids are not reused
        result = tracker.update(dets([box_at(200, 200)]), f * MS)
    assert result.tracks.ids.tolist() == [3]


@given(max_missed=st.integers(1, 12), gap=st.integers(1, 12))
def test_an_object_back_within_max_missed_frames_keeps_its_id(max_missed, gap):
    gap = min(gap, max_missed)
    tracker = Tracker(TrackerConfig(max_missed=max_missed))
    f = 0
    for f in range(6):
        tracker.update(dets([box_at(100 + 2 * f, 100)]), f * MS)
    for f in range(6, 6 + gap):
        tracker.update(dets([]), f * MS)
    f = 6 + gap
    result = tracker.update(dets([box_at(100 + 2 * f, 100)]), f * MS)
    assert result.tracks.ids.tolist() == [1] and result.started == ()


def test_tracks_never_match_another_class_group_and_keep_their_first_class():
    split = Tracker()
    grouped = Tracker(TrackerConfig(class_groups=((0, 1),)))
    for tracker, want_ids in ((split, [1, 2]), (grouped, [1])):
        seen = set()
        for f in range(12):
            result = tracker.update(dets([box_at(100 + 2 * f, 100)], classes=[0 if f < 6 else 1]), f * MS)
            seen.update(result.tracks.ids.tolist())
            if tracker is grouped and len(result.tracks):
                assert result.tracks.classes.tolist() == [0]
        assert sorted(seen) == want_ids


@pytest.mark.parametrize("confirm_first_frame", [True, False])
def test_tracks_in_the_first_frame_are_confirmed_at_once_only_if_configured(confirm_first_frame):
    tracker = Tracker(TrackerConfig(min_hits=3, confirm_first_frame=confirm_first_frame))
    first = tracker.update(dets([box_at(100, 100), box_at(300, 100)]), 0)
    assert first.started == ((1, 2) if confirm_first_frame else ())
    later = tracker.update(dets([box_at(102, 100), box_at(302, 100), box_at(600, 100)]), MS)
    assert later.tracks.ids.tolist() == ([1, 2] if confirm_first_frame else [])  # the newcomer waits
    tracker.reset()
    assert tracker.update(dets([box_at(100, 100)]), 0).started == ((1,) if confirm_first_frame else ())


def test_best_frame_is_the_largest_box_unless_a_quality_is_given():
    sizes = [30, 36, 44, 40, 36]
    by_area, by_quality = Tracker(TrackerConfig(min_hits=1)), Tracker(TrackerConfig(min_hits=1))
    for f, s in enumerate(sizes):
        d = dets([box_at(100 + f, 100, s, 2 * s)])
        by_area.update(d, f * MS)
        by_quality.update(d, f * MS, quality=[10.0 if f == 4 else 1.0])
    best = by_area.record(1).best
    assert best.timestamp_ns == 2 * MS and best.quality == pytest.approx(44 * 88)
    np.testing.assert_allclose(best.box, box_at(102, 100, 44, 88))
    assert by_quality.record(1).best.timestamp_ns == 4 * MS
    assert by_area.record(99) is None


def test_history_keeps_the_newest_boxes_only():
    tracker = Tracker(TrackerConfig(history=4, min_hits=1))
    for f in range(10):
        tracker.update(dets([box_at(100 + 2 * f, 100)]), f * MS)
    record = tracker.record(1)
    assert record.timestamps.tolist() == [6 * MS, 7 * MS, 8 * MS, 9 * MS] and record.hits == 10
    np.testing.assert_allclose(record.boxes[:, 0], [100 + 2 * f - 20 for f in range(6, 10)])


@given(seed=seeds)
def test_ids_are_unique_ascending_and_matched_to_the_right_detections(seed):
    rng = np.random.default_rng(seed)
    tracker = Tracker()
    start = rng.uniform(0, 1500, (15, 2))
    velocity = rng.normal(0, 4, (15, 2))
    for f in range(40):
        centres = start + f * velocity
        keep = rng.random(15) < 0.9
        boxes = np.array([box_at(x, y, 30, 60) for x, y in centres[keep]]).reshape(-1, 4)
        d = dets(boxes, rng.uniform(0.05, 1, len(boxes)))
        tracks = tracker.update(d, f * MS).tracks
        assert np.all(np.diff(tracks.ids) > 0), f"seed {seed}"
        np.testing.assert_array_equal(tracks.boxes, d.boxes[tracks.det_index])
        assert np.all(d.scores[tracks.det_index] > 0.1)


# -- bad input -----------------------------------------------------------------------------------

BAD = {
    "NaN box": (lambda: dets([[np.nan, 0, 10, 10]]), 1, "NaN"),
    "inf score": (lambda: dets([box_at(50, 50)], [np.inf]), 1, "NaN or inf"),
    "boxes not (N, 4)": (lambda: Detections(np.zeros((2, 3), np.float32), np.zeros(2, np.float32),
                                            np.zeros(2, np.int32)), 1, "(N, 4)"),
    "scores too short": (lambda: Detections(np.zeros((2, 4), np.float32), np.zeros(1, np.float32),
                                            np.zeros(2, np.int32)), 1, "2 boxes"),
    "inverted box": (lambda: dets([[10, 10, 5, 20]]), 1, "x_max < x_min"),
    "negative class": (lambda: dets([box_at(50, 50)], classes=[-1]), 1, ">= 0"),
    "float classes": (lambda: Detections(np.zeros((1, 4), np.float32), np.ones(1, np.float32),
                                         np.zeros(1, np.float32)), 1, "integers"),
    "not Detections": (lambda: np.zeros((1, 6)), 1, "Detections"),
    "time going backwards": (lambda: dets([box_at(120, 100)]), -1, "backwards"),
    "time not an integer": (lambda: dets([box_at(120, 100)]), 1.5, "integer"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_tracking_error_and_changes_nothing(case):
    make, ts_offset, words = BAD[case]
    clean, hurt = Tracker(), Tracker()
    for f in range(5):
        for tracker in (clean, hurt):
            tracker.update(dets([box_at(100 + 2 * f, 100)]), f * MS)
    with pytest.raises(TrackingError, match=None) as err:
        hurt.update(make(), 4 * MS + ts_offset * MS if isinstance(ts_offset, int) else ts_offset)
    message = str(err.value)
    assert "\n" not in message and words in message, message
    for f in range(5, 12):  # the failed call left no trace
        a = clean.update(dets([box_at(100 + 2 * f, 100)]), f * MS)
        b = hurt.update(dets([box_at(100 + 2 * f, 100)]), f * MS)
        np.testing.assert_array_equal(a.tracks.ids, b.tracks.ids)
    np.testing.assert_array_equal(clean.record(1).timestamps, hurt.record(1).timestamps)


def test_kernel_wrappers_refuse_bad_arrays_before_writing():
    means, covs = kalman.initiate(np.array([box_at(50, 50)], np.float32), [0])
    before = means.copy()
    for call in (lambda: kalman.update(means, covs, [1], np.array([box_at(50, 50)], np.float32), [0]),
                 lambda: kalman.update(means, covs, [0], np.array([box_at(50, 50)], np.float32), [3]),
                 lambda: kalman.update(means, covs, [0, 0], np.array([box_at(50, 50)], np.float32), [0]),
                 lambda: kalman.predict(means[:, :6], covs),
                 lambda: kalman.predict(means.astype(np.float32), covs),
                 lambda: kalman.initiate(np.array([box_at(50, 50)], np.float32), [-1]),
                 lambda: track_similarity(means, np.zeros((2, 4), np.float32), [0, 0], [0, 0])):
        with pytest.raises(TrackingError) as err:
            call()
        assert "\n" not in str(err.value)
    np.testing.assert_array_equal(means, before)


def test_bad_quality_is_refused():
    with pytest.raises(TrackingError, match="quality"):
        Tracker().update(dets([box_at(50, 50)]), 0, quality=[1.0, 2.0])


def test_zero_size_boxes_are_ignored():
    tracker = Tracker(TrackerConfig(min_hits=1))
    result = tracker.update(dets([[10, 10, 10, 40], box_at(100, 100)]), 0)
    assert result.tracks.det_index.tolist() == [1] and len(tracker) == 1


@pytest.mark.parametrize("settings", [{"low_score": 0.6}, {"birth_score": 0.4}, {"class_groups": ((1, 2), (2, 3))},
                                      {"class_groups": ((-1,),)}, {"min_hits": 0}, {"unknown": 1}])
def test_inconsistent_settings_are_refused(settings):
    with pytest.raises(ValidationError):
        TrackerConfig(**settings)


def test_without_scipy_the_tracker_names_the_extra_to_install():
    import os
    import subprocess
    import sys

    code = ("import sys; sys.modules['scipy'] = sys.modules['scipy.optimize'] = None\n"
            "from edgert.core.errors import ExtraNotInstalled\n"
            "try:\n    import edgert.tracking\nexcept ExtraNotInstalled as exc:\n    print(exc)\n")
    import tempfile
    from pathlib import Path

    import edgert

    installed = str(Path(edgert.__file__).resolve().parent.parent)  # not the checkout's source tree
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=tempfile.gettempdir(), env={**os.environ, "PYTHONPATH": installed})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "the tracker needs scipy, which is not installed: pip install 'edgert[surveillance]'"
