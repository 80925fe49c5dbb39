"""The synthetic street source: determinism, shared world across cameras, ground truth that matches the pixels."""
from __future__ import annotations

import math
import re

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from edgert.sources import SOURCES
from edgert.sources.street import (
    CLASSES,
    LINE,
    VIEWPOINTS,
    ZONE,
    StreetConfig,
    StreetScene,
    StreetSource,
    detectable,
    line_crossing,
)
from edgert.sources.street_view import clip_segment

SMALL = (640, 360)
PLATE = re.compile(r"^\d{2}[A-Z](-\d{3}\.\d{2}|-\d{4})$|^\d{2}-[A-Z]\d \d{3}\.\d{2}$")


def frames(config: StreetConfig, limit: int) -> list:
    out = []
    with StreetSource(config) as source:
        for frame in source:
            out.append(frame)
            if len(out) >= limit:
                break
    return out


def test_registered_as_a_source_kind():
    assert SOURCES.load("street") is StreetSource
    assert StreetSource().config.size == (1280, 720)


def test_same_seed_same_frames_other_seed_other_frames():
    a = frames(StreetConfig(fps=0, seed=4, size=SMALL), 25)
    b = frames(StreetConfig(fps=0, seed=4, size=SMALL), 25)
    c = frames(StreetConfig(fps=0, seed=5, size=SMALL), 25)
    for fa, fb in zip(a, b):
        assert np.array_equal(fa.pixels, fb.pixels) and fa.meta == fb.meta
    assert not np.array_equal(a[-1].pixels, c[-1].pixels)
    assert [o["id"] for o in a[-1].meta["objects"]] or [o["id"] for o in c[-1].meta["objects"]]


def test_finite_stream_and_frame_format():
    got = frames(StreetConfig(fps=0, frames=4, size=SMALL, seed=1), 10)
    assert len(got) == 4
    f = got[0]
    assert f.format == "BGR" and f.size == SMALL and f.pixels.shape == (360, 640, 3) and f.pixels.dtype == np.uint8
    assert [g.meta["frame"] for g in got] == [0, 1, 2, 3]
    assert math.isclose(got[3].meta["time_s"], 3 / 30.0, abs_tol=1e-6)


@pytest.mark.parametrize("camera", range(len(VIEWPOINTS)))
def test_ground_truth_is_consistent_with_the_frame(camera):
    seed = 20 + camera
    scene = StreetScene(StreetConfig(fps=0, seed=seed, camera=camera, size=SMALL, noise=0), cv2)
    background = scene.background.astype(np.int16)
    checked = 0
    for index in range(0, 300, 30):
        pixels, meta = scene.render(index)
        assert meta["objects"], f"seed {seed} camera {camera} frame {index}: nobody in view"
        for o in meta["objects"]:
            x0, y0, x1, y1 = o["box"]
            assert 0 <= x0 < x1 <= SMALL[0] and 0 <= y0 < y1 <= SMALL[1], (seed, index, o)
            assert o["class"] in CLASSES and 0 <= o["visible"] <= 1
            if o["visible"] >= 0.9 and (x1 - x0) * (y1 - y0) >= 150:
                roi = (slice(int(y0), int(y1)), slice(int(x0), int(x1)))
                changed = np.abs(pixels[roi].astype(np.int16) - background[roi]).max(axis=2) > 6
                assert changed.mean() > 0.25, f"seed {seed} camera {camera} frame {index}: {o} not drawn"
                checked += 1
    assert checked >= 5


def test_cameras_of_one_seed_see_one_world():
    views = [StreetScene(StreetConfig(fps=0, seed=9, camera=c, size=SMALL), cv2) for c in (0, 1)]
    shared = 0
    for index in (0, 90, 180):
        seen = [{o["id"]: o for o in v.render(index)[1]["objects"]} for v in views]
        for oid in set(seen[0]) & set(seen[1]):
            a, b = seen[0][oid], seen[1][oid]
            assert a["class"] == b["class"] and a["world"] == b["world"] and a.get("plate") == b.get("plate")
            shared += 1
    assert shared >= 5


def test_homography_maps_feet_to_ground_metres_and_velocity_matches_motion():
    scene = StreetScene(StreetConfig(fps=0, seed=3, camera=1, noise=0), cv2)
    cam = scene.camera
    ground = np.array([(0.0, 0.0), (10.0, -1.75), (-20.0, 6.0), (5.0, 3.0)])
    assert np.allclose(cam.to_ground(cam.to_image(ground)), ground, atol=1e-6)
    _, first = scene.render(100)
    _, second = scene.render(130)  # one second later
    h = np.array(first["homography"])
    feet_checked = 0
    before = {o["id"]: o for o in first["objects"]}
    for o in second["objects"]:
        if o["id"] in before:
            p0, p1 = np.array(before[o["id"]]["world"]), np.array(o["world"])
            v0 = np.array(before[o["id"]]["velocity"])
            if np.allclose(v0, o["velocity"]):  # the same path segment for the whole second
                assert np.allclose(p1 - p0, v0 * 1.0, atol=1e-3), o
        if o["class"] == "person" and o["on"] is None and o["visible"] == 1.0 and o["box"][3] < 700:
            x0, _, x1, y1 = o["box"]
            q = h @ np.array([(x0 + x1) / 2, y1, 1.0])
            foot = q[:2] / q[2]
            # the box bottom is the nearer foot of a stride: within half a metre plus 2% of the depth
            assert np.linalg.norm(foot - np.array(o["world"])) < 0.5 + 0.02 * o["depth"], o
            feet_checked += 1
    assert feet_checked >= 3


def test_plates_are_vietnamese_style_and_legible_near_the_plate_camera():
    scene = StreetScene(StreetConfig(fps=0, seed=12, camera=1), cv2)
    legible, plates, two_row = 0, set(), 0
    for index in range(0, 900, 15):
        pixels, meta = scene.render(index)
        for o in meta["objects"]:
            if o["class"] == "person":
                assert "plate" not in o
                continue
            assert PLATE.match(o["plate"]), o["plate"]
            assert len(o["plate_rows"]) == (2 if o["class"] == "motorbike" else 1)
            plates.add(o["plate"])
            if o["plate_box"] is not None:
                px0, py0, px1, py1 = o["plate_box"]
                x0, y0, x1, y1 = o["box"]
                assert x0 - 1 <= px0 < px1 <= x1 + 1 and y0 - 1 <= py0 < py1 <= y1 + 1
                rows = len(o["plate_rows"])
                if o["plate_visible"] == 1.0 and (py1 - py0) / rows >= 14 and px1 - px0 >= 30:  # ~9 px characters
                    legible += 1
                    two_row += len(o["plate_rows"]) == 2
                    roi = pixels[int(py0):int(py1) + 1, int(px0):int(px1) + 1]
                    grey = roi.mean(axis=2)
                    assert grey.max() > 170 and grey.min() < 90, "a plate has light ground and dark text"
    assert len(plates) >= 10 and legible >= 10 and two_row >= 1, (len(plates), legible, two_row)


def test_people_walk_in_and_out_of_the_zone():
    scene = StreetScene(StreetConfig(fps=0, seed=2, camera=0, size=SMALL), cv2)
    inside: dict[int, list] = {}
    for index in range(0, 1800, 15):
        for o in scene.render(index)[1]["objects"]:
            if o["class"] == "person":
                inside.setdefault(o["id"], []).append(o["in_zone"])
                x, y = o["world"]
                assert o["in_zone"] == (ZONE[0][0] <= x <= ZONE[1][0] and ZONE[0][1] <= y <= ZONE[2][1])
    entered = [pid for pid, flags in inside.items() if not flags[0] and any(flags)]
    left = [pid for pid, flags in inside.items() if any(flags) and not flags[-1]]
    assert len(entered) >= 2 and len(left) >= 2, (entered, left)


def test_zone_and_line_in_pixels_and_detectable():
    source = StreetSource(StreetConfig(fps=0, camera=0, size=SMALL))
    assert len(source.zone_polygon) >= 3
    assert all(0 <= x <= SMALL[0] - 1 and 0 <= y <= SMALL[1] - 1 for x, y in source.zone_polygon)
    assert len(source.line_points) == 2
    assert all(0 <= x <= SMALL[0] - 1 and 0 <= y <= SMALL[1] - 1 for x, y in source.line_points)
    assert clip_segment((-10, 5), (20, 5), (10, 10)) == [(0.0, 5.0), (9.0, 5.0)]
    assert clip_segment((-10, -5), (20, -5), (10, 10)) == []
    assert detectable({"box": (0, 0, 10, 30), "visible": 0.9}, 720)
    assert not detectable({"box": (0, 0, 10, 20), "visible": 0.9}, 720)
    assert not detectable({"box": (0, 0, 10, 30), "visible": 0.3}, 720)
    source.close()


def test_vehicles_cross_the_line_both_ways():
    scene = StreetScene(StreetConfig(fps=0, seed=6, camera=0, size=SMALL), cv2)
    last, counts = {}, {1: 0, -1: 0}
    for index in range(0, 900, 6):
        for o in scene.render(index)[1]["objects"]:
            if o["class"] != "person" and o["id"] in last:
                way = line_crossing(last[o["id"]], o["world"])
                if way:
                    counts[way] += 1
                    assert (way > 0) == (o["velocity"][0] > 0)
            last[o["id"]] = o["world"]
    assert counts[1] >= 2 and counts[-1] >= 2, counts
    lx = LINE[0][0]
    assert line_crossing((lx - 1, 0), (lx + 1, 0)) == 1 and line_crossing((lx + 1, 2), (lx - 1, 2)) == -1
    assert line_crossing((lx - 1, 6), (lx + 1, 6)) == 0 and line_crossing((lx + 1, 0), (lx + 2, 0)) == 0


def test_the_scene_only_moves_forward():
    scene = StreetScene(StreetConfig(fps=0, size=SMALL), cv2)
    scene.render(10)
    with pytest.raises(ValueError, match="before the next frame, 11"):
        scene.render(3)


@pytest.mark.parametrize("bad, fragment", [
    ({"camera": 7}, "camera 7 does not exist"),
    ({"size": (100, 50)}, "outside 160x90"),
    ({"traffic": -1}, "traffic"),
    ({"lens": 3}, "lens"),
])
def test_bad_config_is_refused(bad, fragment):
    with pytest.raises(ValidationError, match=fragment):
        StreetConfig(**bad)
