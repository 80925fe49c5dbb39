"""`edgert demo surveillance`: the scorer on hand-made cases, the embedded config against the street's
geometry, and a short run end to end whose summary is checked against the ground truth."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import edgert

pytest.importorskip("cv2")
pytest.importorskip("scipy")

from edgert.cli.demo_scoring import (CameraTruth, IdSwitches, ScoredEvent, TrackResults,  # noqa: E402
                                     char_accuracy, line_directions, match_events, score_events)

EDGERT_PATH = str(Path(edgert.__file__).resolve().parent.parent)
DIRS = {+1: "a_to_b", -1: "b_to_a"}


def _cross(t, direction="a_to_b", cls="car", who=1, optional=False, speed=None, place="counter"):
    return ScoredEvent("line_cross", place, t, who, cls, direction, speed, optional)


# -- pairing ---------------------------------------------------------------------------------------
def test_match_events_pairs_nearest_first_one_to_one_within_tolerance():
    truth = [_cross(1.0), _cross(2.0), _cross(5.0, "b_to_a")]
    found = [_cross(1.9), _cross(1.2), _cross(5.2, "a_to_b"), _cross(9.0)]
    # 1.9 is nearer 2.0 than 1.0; 1.2 then takes 1.0; 5.2 has the wrong direction; 9.0 is too far.
    assert match_events(truth, found, 1.0) == [(0, 1), (1, 0)]
    assert match_events(truth, [_cross(3.01)], 1.0) == []
    assert match_events(truth, [_cross(3.0)], 1.0) == [(1, 0)]  # the tolerance is inclusive
    assert match_events([_cross(1.0, place="other")], [_cross(1.0)], 1.0) == []


def test_score_events_counts_per_class_and_direction_and_leaves_optional_ones_out():
    truth = [_cross(1.0, speed=40.0), _cross(2.0, cls="bus"), _cross(3.0, "b_to_a"), _cross(8.0, optional=True),
             _cross(12.0, optional=True)]
    found = [_cross(1.1, speed=43.5), _cross(2.2, cls="car"), _cross(8.3), _cross(20.0, "b_to_a")]
    score = score_events(truth, found, 1.0)
    assert score.matched == 2 and score.missed == 1 and score.false == 1
    # the bus counted as a car: a pair in time, a count error in both classes
    assert score.count_errors() == {("line_cross", "counter", "bus", "a_to_b"): -1,
                                    ("line_cross", "counter", "car", "a_to_b"): 1,
                                    ("line_cross", "counter", "car", "b_to_a"): 0}
    assert score.true[("line_cross", "counter", "car", "a_to_b")] == 1  # the optional ones are not counted
    assert score.found[("line_cross", "counter", "car", "a_to_b")] == 2  # 8.3 paired with an optional one: out
    assert score.speed_errors_kmh == [pytest.approx(3.5)]


# -- ID switches -----------------------------------------------------------------------------------
A, B = (0, 0, 10, 20), (30, 0, 40, 20)


def _frame(counter, truth, tracks, ignored=()):
    """truth/tracks: [(id, box, cls)]."""
    return counter.update([t[0] for t in truth], [t[1] for t in truth], [t[2] for t in truth], list(ignored),
                          [t[0] for t in tracks], [t[1] for t in tracks], [t[2] for t in tracks])


def test_id_switches_count_a_changed_track_once_and_a_swap_twice():
    ids = IdSwitches()
    assert _frame(ids, [(1, A, "person"), (2, B, "person")], [(7, A, "person"), (8, B, "person")]) == 0
    assert _frame(ids, [(1, A, "person"), (2, B, "person")], [(7, A, "person"), (8, B, "person")]) == 0
    assert _frame(ids, [(1, A, "person"), (2, B, "person")], [(8, A, "person"), (7, B, "person")]) == 2
    assert _frame(ids, [(1, A, "person")], [(9, A, "person")]) == 1  # a new track on object 1
    assert ids.switches == 3 and ids.objects == 7 and ids.misses == 0 and ids.false_positives == 0


def test_id_switches_a_gap_is_no_switch_but_a_new_track_after_it_is():
    ids = IdSwitches()
    _frame(ids, [(1, A, "car")], [(3, A, "car")])
    assert _frame(ids, [(1, A, "car")], []) == 0  # missed
    assert _frame(ids, [(1, A, "car")], [(3, A, "car")]) == 0  # the same track again
    _frame(ids, [(1, A, "car")], [])
    assert _frame(ids, [(1, A, "car")], [(4, A, "car")]) == 1
    assert ids.misses == 2 and ids.matches == 3
    assert ids.mota == pytest.approx(1 - (2 + 0 + 1) / 5)


def test_id_switches_keep_a_pair_that_still_holds_over_a_better_newcomer():
    ids = IdSwitches()
    _frame(ids, [(1, (0, 0, 10, 10), "person")], [(5, (0, 0, 10, 10), "person")])
    # track 5 drifts (IoU 0.6) while track 6 sits exactly on the object: the old pair holds, no switch
    drifted = (0, 0, 10, 6)
    assert _frame(ids, [(1, (0, 0, 10, 10), "person")], [(5, drifted, "person"), (6, (0, 0, 10, 10), "person")]) == 0
    assert ids.false_positives == 1
    # below 0.5 it does not hold: track 6 takes the object, one switch
    assert _frame(ids, [(1, (0, 0, 10, 10), "person")], [(5, (0, 0, 10, 4), "person"),
                                                         (6, (0, 0, 10, 10), "person")]) == 1


def test_id_switches_pair_only_within_a_class_group_and_spare_tracks_on_ignored_objects():
    ids = IdSwitches(groups=[("car", "bus", "motorbike")])
    _frame(ids, [(1, A, "car")], [(2, A, "person")])
    assert ids.matches == 0 and ids.misses == 1 and ids.false_positives == 1
    _frame(ids, [(1, A, "car")], [(3, A, "bus")])  # car and bus share the vehicles group
    assert ids.matches == 1
    _frame(ids, [], [(4, B, "person")], ignored=[B])  # a track on a too-small / hidden object is no error
    assert ids.false_positives == 1


def test_char_accuracy_is_one_minus_edit_distance_over_letters_and_digits():
    assert char_accuracy("51F-123.45", "51F-123.45") == 1.0
    assert char_accuracy("51F12345", "51F-123.45") == 1.0  # separators ignored
    assert char_accuracy("51F-128.45", "51F-123.45") == pytest.approx(7 / 8)  # one substitution
    assert char_accuracy("51F-12345.6", "51F-123.45") == pytest.approx(7 / 8)  # one insertion
    assert char_accuracy("", "51F-123.45") == 0.0 and char_accuracy("XXXXXXXXXXXXXXXXX", "51F") == 0.0


def test_track_results_score_each_track_by_the_object_it_followed_most():
    ids, results = IdSwitches(), TrackResults(720)
    car = {"id": 1, "class": "car", "box": A, "plate": "51F-123.45", "plate_box": (0, 0, 40, 20),
           "plate_visible": 1.0}
    bus = {"id": 2, "class": "bus", "box": B, "plate": "59-X1 234.56", "plate_box": (0, 0, 40, 8),
           "plate_visible": 1.0}  # too small to read
    for _ in range(3):
        _frame(ids, [(1, A, "car"), (2, B, "bus")], [(7, A, "car"), (8, B, "bus")])
        results.add_frame([car, bus], ids.paired_now)
    _frame(ids, [(1, A, "car")], [(8, A, "car")])  # track 8 strays onto the car for one frame
    results.add_frame([car], ids.paired_now)
    results.plates += [(7, "51F-123.45"), (8, "59-X1 234.55"), (99, "30A-999.99")]
    results.types += [(7, "car"), (8, "car")]
    got = results.summary(ids)
    plates = got["plates"]
    assert plates["reads"] == 3 and plates["right"] == 1 and plates["of_untracked_object"] == 1
    assert plates["char_accuracy"] == pytest.approx((1 + 8 / 9) / 2, abs=1e-4)
    assert plates["readable_vehicles"] == 1 and plates["readable_read_right"] == 1
    assert plates["wrong"] == ["59-X1 234.55 (true 59-X1 234.56)"]
    assert got["vehicle_types"] == {"classified": 2, "right": 1}  # track 8 followed the bus for 3 frames of 4


# -- truth from frames -----------------------------------------------------------------------------
def _obj(oid, world, cls="car", box=(0, 0, 50, 50), visible=1.0, velocity=(10.0, 0.0)):
    return {"id": oid, "class": cls, "world": world, "box": box, "visible": visible, "velocity": velocity}


def _truth():
    return CameraTruth("counter", DIRS, ("car", "bus"), "shop", ("person",), 720)


def test_camera_truth_finds_crossings_at_the_interpolated_time_in_both_directions():
    truth = _truth()
    frames = [
        (0.0, [_obj(1, (5.0, -1.75)), _obj(2, (7.5, 1.75), velocity=(-10, 0)), _obj(3, (5.0, 5.0), "car")]),
        (1.0, [_obj(1, (5.5, -1.75)), _obj(2, (6.5, 1.75), velocity=(-10, 0)), _obj(3, (7.0, 5.0), "car")]),
        (2.0, [_obj(1, (6.5, -1.75)), _obj(2, (5.5, 1.75), velocity=(-10, 0))]),
        (3.0, [_obj(1, (7.0, -1.75)), _obj(4, (5.0, 0.0), "person")]),
        (4.0, [_obj(1, (8.0, -1.75)), _obj(4, (7.0, 0.0), "person")]),
        (9.0, []),
    ]
    for t, objects in frames:
        truth.add_frame(t, objects)
    events = truth.line_events(tolerance=1.0)
    # object 3 crosses X = 6 m off the line's span (Y = 5 m, the sidewalk); person 4 is not a counted class
    assert sorted((e.who, e.direction, round(e.t, 3)) for e in events) == [(1, "a_to_b", 1.5), (2, "b_to_a", 1.5)]
    assert [e.speed_kmh for e in events] == [pytest.approx(36.0)] * 2
    assert not any(e.optional for e in events)


def test_camera_truth_zone_visits_and_optional_events():
    truth = _truth()
    zone = (7.0, 6.0)  # inside ZONE (3.5..11.5 along X, 4.6..the facade across)
    out = (7.0, 3.0)
    tall, small = (0, 0, 20, 60), (0, 0, 5, 10)
    frames = [
        (0.0, [_obj(1, out, "person", tall), _obj(2, zone, "person", small)]),
        (1.0, [_obj(1, out, "person", tall), _obj(2, zone, "person", small)]),
        (2.0, [_obj(1, zone, "person", tall), _obj(2, out, "person", small)]),
        (3.0, [_obj(1, zone, "person", tall)]),
        (4.0, [_obj(3, zone, "person", tall)]),  # person 1 left the picture inside the zone at 3.0
        (5.0, [_obj(3, out, "person", tall)]),
        (8.0, []),
    ]
    for t, objects in frames:
        truth.add_frame(t, objects)
    events = {(e.kind, e.who): e for e in truth.zone_events(tolerance=1.0)}
    assert set(events) == {("zone_enter", 1), ("zone_exit", 1), ("zone_enter", 2), ("zone_exit", 2),
                           ("zone_enter", 3), ("zone_exit", 3)}
    assert (events[("zone_enter", 1)].t, events[("zone_exit", 1)].t) == (2.0, 3.0)
    assert (events[("zone_enter", 3)].t, events[("zone_exit", 3)].t) == (4.0, 5.0)
    assert not events[("zone_enter", 1)].optional and not events[("zone_exit", 3)].optional
    # person 2 was never big enough to be found, and it was inside from the first frame
    assert events[("zone_enter", 2)].optional and events[("zone_exit", 2)].optional


# -- the embedded config ---------------------------------------------------------------------------
def test_demo_config_geometry_is_the_street_sources_own(tmp_path):
    from edgert.cli.demo_surveillance import surveillance_config
    from edgert.sources.street import StreetSource

    config = surveillance_config(tmp_path, cameras=3)
    assert len(config.cameras) == 3 and config.detectors["street"].backend == "cpu"
    for cam in config.cameras:
        source = StreetSource(cam.source)
        try:
            size = np.array(cam.source.size, np.float64)
            assert cam.normalized
            np.testing.assert_allclose(np.array(cam.zones[0].polygon) * size, source.zone_polygon, atol=0.5)
            np.testing.assert_allclose(np.array(cam.lines[0].points) * size, source.line_points, atol=0.5)
            image = source.camera.to_image(np.array(cam.homography.ground, np.float64))
            np.testing.assert_allclose(np.array(cam.homography.image) * size, image, atol=0.5)
        finally:
            source.close()


def test_line_directions_follow_the_line_as_drawn(tmp_path):
    from edgert.cli.demo_surveillance import surveillance_config
    from edgert.sources.street import VIEWPOINTS
    from edgert.sources.street_view import Camera

    for cam in surveillance_config(tmp_path, cameras=3).cameras:
        camera = Camera(VIEWPOINTS[cam.source.camera], cam.source.size)
        points = np.array(cam.lines[0].points) * cam.source.size
        forward = line_directions(camera, points)
        assert sorted(forward.values()) == ["a_to_b", "b_to_a"]
        assert line_directions(camera, points[::-1]) == {+1: forward[-1], -1: forward[+1]}


# -- end to end ------------------------------------------------------------------------------------
def _run(*args, timeout=300):
    # Not from the checkout's root: there `python -m` would import the source tree (no built kernels
    # in a non-editable install, as CI's) instead of the installed edgert.
    return subprocess.run([sys.executable, "-m", "edgert.cli", "demo", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=tempfile.gettempdir(), env={**os.environ, "PYTHONPATH": EDGERT_PATH})


def _true_objects(config, frames):
    """Objects that count per camera over the first `frames` frames, rendered here again."""
    import cv2

    from edgert.sources.street import StreetScene, detectable

    counts = {}
    for cam in config.cameras:
        scene = StreetScene(cam.source.model_copy(update={"fps": 0, "frames": frames}), cv2)
        total = 0
        while (rendered := scene.next_frame()) is not None:
            total += sum(detectable(o, cam.source.size[1]) for o in rendered[1]["objects"])
        counts[cam.id] = total
    return counts


def test_demo_surveillance_runs_end_to_end_and_scores_against_the_truth(tmp_path):
    from edgert.cli.demo_surveillance import surveillance_config

    frames = 150
    done = _run("surveillance", "--frames", str(frames), "--fps", "0", "--json", "--keep", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert list(result["cameras"]) == ["street-west", "street-east"]
    assert result["run"]["stage_errors"] == 0
    expected = _true_objects(surveillance_config(tmp_path, 2, fps=0), frames)
    crossings = 0
    for cam_id, cam in result["cameras"].items():
        # unpaced, the cameras wait for the detector: every frame is processed, none dropped
        assert cam["processed"] == frames and cam["dropped"] == 0 and cam["fps"] > 0
        tracking = cam["tracking"]
        assert tracking["objects"] == expected[cam_id]  # the scorer saw every object that counts
        assert tracking["matched"] + tracking["misses"] == tracking["objects"]
        assert tracking["mota"] > 0.4, (cam_id, tracking)
        line = cam["lines"]["counter"]
        true = sum(tf[0] for dirs in line["counts"].values() for tf in dirs.values())
        found = sum(tf[1] for dirs in line["counts"].values() for tf in dirs.values())
        assert line["matched"] + line["missed"] == true and line["matched"] + line["false"] == found
        assert line["count_error"] <= 1, (cam_id, line)
        crossings += line["matched"]
    assert crossings >= 2  # seed 7's first five seconds have cars crossing in both directions
    # unpaced, the scene's clock and the capture clock differ: speeds are not scored
    assert result["run"]["speeds_scored"] is False and line["speed_error_kmh"] is None
    assert result["events"].get("line_cross", 0) >= crossings
    assert set(result["latency_ms"]) >= {"street", "decode-street", "track-street", "capture_to_event"}
    # the service journaled every event the app published; the events with a snapshot kind have their picture
    journal = result["journal"]
    assert journal["by_kind"] == result["events"] and Path(journal["file"]).parent == tmp_path
    from edgert.journal import EventLog

    with EventLog(journal["file"], read_only=True) as log:
        rows = log.query(kinds=["zone_enter", "line_cross"], newest_first=False)
    assert len(rows) == result["events"].get("zone_enter", 0) + result["events"]["line_cross"]
    assert all(row.snapshot and (tmp_path / row.snapshot).is_file() for row in rows)
    assert result["snapshots"]["files"] >= len(rows) and result["snapshots"]["errors"] == 0
    # plates are read on the plate camera only, vehicle types on both; each scored against the truth
    assert "plates" not in result["cameras"]["street-west"]
    plates = result["cameras"]["street-east"]["plates"]
    assert plates["right"] <= plates["reads"] == result["events"].get("plate_read", 0)
    assert plates["readable_read_right"] <= plates["readable_vehicles"] and plates["readable_vehicles"] >= 1
    for cam in result["cameras"].values():
        types = cam["vehicle_types"]
        assert 1 <= types["classified"] and types["right"] >= 0.5 * types["classified"], types
    roles = result["model_roles"]
    assert len(roles) == 8 and roles["face recognition"].startswith("not run")
    assert "cpu" in roles["person detection"]


def test_demo_surveillance_text_summary_paced(tmp_path):
    # paced at 15 fps, the capture clock is the scene's: the homography's speeds are scored
    done = _run("surveillance", "--frames", "60", "--cameras", "1", "--keep", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "street-west" in out and "street-east" not in out
    for text in ("line counter on street-west (true/found)", "zone shop on street-west (true/found)",
                 "latency per stage (ms)", "model roles of the product plan", "id switches",
                 "speed (homography) - true: median |error|"):
        assert text in out, text


@pytest.mark.parametrize("args, message", [
    (["surveillance", "--cameras", "4"], "--cameras: 4 is not between 1 and 3"),
    (["surveillance", "--frames", "0"], "--frames: expected at least 1"),
    (["--frames", "5"], "--frames: an option of `edgert demo surveillance`"),
    (["surveillance", "--seed", "-3"], "--seed: Input should be greater than or equal to 0 (got -3)"),
])
def test_demo_surveillance_bad_options_are_one_line_errors(args, message):
    done = _run(*args, timeout=120)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


# -- the app's hook the demo scores through ----------------------------------------------------------
@pytest.mark.parametrize("failing", [False, True])
def test_on_tracks_sees_every_frame_before_its_events_and_a_failing_one_stops_nothing(tmp_path, failing):
    from test_surveillance_app import config, context, recorded, run_to_end, scene

    from edgert.apps.surveillance.app import Surveillance
    from edgert.sources.replay import ReplaySource

    cfg = config("  - id: door\n    source: {kind: folder, path: /nonexistent}\n    fps: 30\n")
    ctx = context(tmp_path)
    events = recorded(ctx)
    seen = []

    def on_tracks(cam_id, frame, update):
        seen.append((cam_id, app.wall_time(frame.timestamp_ns), len(events), tuple(update.ids.tolist())))
        if failing:
            raise RuntimeError("scorer trouble")

    frames = scene(20, seed=3)
    with Surveillance(cfg, ctx, sources={"door": ReplaySource(frames, live=False)}, on_tracks=on_tracks) as app:
        run_to_end(app)
        stats = app.stats()
    assert stats["streams"]["door"]["processed"] == len(frames) == len(seen) and stats["errors"] == 0
    starts = [e for e in events if e.kind == "track_start"]
    assert starts
    for start in starts:  # the frame's tracks were handed over before the frame's events were published
        k = next(i for i, s in enumerate(seen) if s[1] == start.details["t"])
        assert start.details["track_id"] in seen[k][3] and seen[k][2] <= events.index(start)
