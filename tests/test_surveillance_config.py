"""The surveillance config: the example validates; bad cameras, zones, lines, detectors and trackers are
refused in one line naming file, line and key path."""
from __future__ import annotations

from fractions import Fraction
from importlib import resources

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgert.apps.surveillance.analytics.geometry import polygon_self_intersection
from edgert.apps.surveillance.config import SurveillanceConfig, check_class_names
from edgert.core.config_file import parse_text
from edgert.core.errors import ConfigError
from edgert.service.config import ServiceSections


class SurveillanceFile(SurveillanceConfig, ServiceSections):
    """A whole file (the app's sections and the service's) until the service registers the app."""

    app: str = "surveillance"


EXAMPLE = (resources.files("edgert") / "examples" / "surveillance.yaml").read_text()

SMALL = """\
cameras:
  - id: gate
    source: {kind: folder, path: /tmp}
    frame_size: [640, 480]
    zones:
      - id: yard
        polygon: [[10, 10], [300, 10], [300, 200], [10, 200]]
    lines:
      - id: kerb
        points: [[0, 300], [639, 320]]
  - id: road
    source: {kind: conveyor, size: [320, 240]}
detectors:
  objects:
    path: builtin:conveyor
    cameras: [gate, road]
"""


def parse(text: str):
    return parse_text(text, SurveillanceFile, "edgert.yaml")


def replace(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text)
    message = str(info.value)
    assert "\n" not in message
    return message


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_example_validates():
    config = parse(EXAMPLE)
    assert [c.id for c in config.cameras] == ["shop-door", "street"]
    assert config.cameras[0].zones[1].intrusion == ["person"]
    assert config.cameras[1].normalized and config.cameras[1].homography is not None
    assert config.detectors_of("street") == ["objects"]
    assert config.detectors_of("shop-door") == ["objects", "faces"]
    vehicles = config.tracking.group_tracker("vehicles", [2, 7, 5, 3])
    assert vehicles.max_missed == 45 and vehicles.min_hits == 2 and vehicles.class_groups == ((2, 7, 5, 3),)
    assert config.snapshots.quota_mb == 500
    assert config.secondaries["plates"].kind == "ocr" and config.plates.known[0].name == "delivery van"
    assert config.face_recognition.min_votes == 2


def test_small_config_and_frame_sizes():
    config = parse(SMALL)
    assert config.cameras[0].known_frame_size() == (640, 480)
    assert config.cameras[1].known_frame_size() == (320, 240)  # from the synthetic source's size
    assert config.cameras[0].fps == 15 and config.tracking.groups == {}


def test_unknown_key_in_a_zone_names_its_path_and_line():
    bad = replace(SMALL, "      - id: yard\n", "      - id: yard\n        loiter: 5\n")
    message = error_of(bad)
    assert f"edgert.yaml: line {line_of(bad, 'loiter: 5')}: cameras[0].zones[0].loiter: unknown key" in message


def test_zone_outside_the_frame_is_refused():
    bad = replace(SMALL, "[300, 200], [10, 200]", "[700, 200], [10, 200]")
    message = error_of(bad)
    assert "cameras[0].zones[0].polygon[2]: point [700.0, 200.0] is outside the frame" in message
    assert "640x480" in message and f"line {line_of(bad, '[700, 200]')}:" in message


def test_zone_outside_the_frame_of_a_source_size():
    bad = replace(SMALL, "    source: {kind: conveyor, size: [320, 240]}\n",
                  "    source: {kind: conveyor, size: [320, 240]}\n"
                  "    lines: [{id: far, points: [[0, 0], [400, 10]]}]\n")
    assert "cameras[1].lines[0].points[1]: point [400.0, 10.0] is outside the frame" in error_of(bad)


def test_normalized_coordinates_must_be_fractions():
    bad = replace(SMALL, "    frame_size: [640, 480]\n", "    normalized: true\n")
    assert "cameras[0].zones[0].polygon[0]: point [10.0, 10.0] is outside the frame (coordinates normalized" \
        in error_of(bad)


def test_unknown_frame_size_skips_the_frame_check():
    config = parse(replace(SMALL, "    frame_size: [640, 480]\n", ""))
    assert config.cameras[0].known_frame_size() is None


def test_self_intersecting_zone_is_refused():
    bad = replace(SMALL, "[[10, 10], [300, 10], [300, 200], [10, 200]]", "[[10, 10], [300, 200], [300, 10], [10, 200]]")
    message = error_of(bad)
    assert "cameras[0].zones[0].polygon: self-intersecting (edge 0-1 meets edge 2-3)" in message
    assert f"line {line_of(bad, 'polygon:')}:" in message


def test_zone_with_two_points_is_refused():
    bad = replace(SMALL, "[[10, 10], [300, 10], [300, 200], [10, 200]]", "[[10, 10], [300, 10]]")
    assert "cameras[0].zones[0].polygon: a polygon needs at least 3 points, got 2" in error_of(bad)


def test_repeated_vertex_is_refused():
    bad = replace(SMALL, "[[10, 10], [300, 10], [300, 200], [10, 200]]", "[[10, 10], [300, 10], [300, 10], [10, 200]]")
    assert "point 1 repeats the next one" in error_of(bad)


def test_zone_rules_name_only_classes_the_zone_follows():
    bad = replace(SMALL, "      - id: yard\n", "      - id: yard\n        classes: [car]\n        intrusion: [person]\n")
    message = error_of(bad)
    assert "cameras[0].zones[0].intrusion[0]: 'person' is not one of the zone's classes ('car')" in message
    assert f"line {line_of(bad, 'intrusion:')}:" in message
    bad = replace(SMALL, "      - id: yard\n", "      - id: yard\n        classes: [car]\n"
                  "        crowd: {min_count: 2, classes: [car, bus]}\n")
    assert "cameras[0].zones[0].crowd.classes[1]: 'bus' is not one of the zone's classes" in error_of(bad)


def test_zero_length_line_is_refused_with_its_line():
    bad = replace(SMALL, "[[0, 300], [639, 320]]", "[[5, 300], [5, 300]]")
    message = error_of(bad)
    assert "cameras[0].lines[0].points: segment 0-1 has zero length" in message
    assert f"line {line_of(bad, '[[5, 300]')}:" in message


def test_duplicate_ids_are_refused():
    bad = replace(SMALL, "  - id: road", "  - id: gate")
    message = error_of(bad)
    assert "cameras[1].id: 'gate' is also cameras[0]" in message
    second = [i for i, line in enumerate(bad.splitlines(), 1) if line == "  - id: gate"][1]
    assert f"line {second}:" in message
    twice = replace(SMALL, "    lines:\n", "      - {id: yard, polygon: [[1, 1], [5, 1], [5, 5]]}\n    lines:\n")
    message = error_of(twice)
    assert "cameras[0].zones[1].id: 'yard' is also zones[0]" in message
    assert f"line {line_of(twice, '{id: yard')}:" in message


def test_detector_naming_an_unknown_camera_is_refused():
    bad = replace(SMALL, "cameras: [gate, road]", "cameras: [gate, roda]")
    message = error_of(bad)
    assert "detectors.objects.cameras[1]: unknown camera 'roda'" in message and "'gate', 'road'" in message
    assert f"line {line_of(bad, 'roda')}:" in message


def test_detector_needs_a_path_and_a_known_decoder():
    no_path = replace(SMALL, "    path: builtin:conveyor\n", "")
    assert "detectors.objects.path: required key is missing" in error_of(no_path)
    bad = replace(SMALL, "    path: builtin:conveyor\n", "    path: builtin:conveyor\n    decoder: yolo9\n")
    assert "detectors.objects.decoder" in error_of(bad) and "yolo9" in error_of(bad)


def test_bad_filters_are_refused():
    ok = SMALL
    bad = replace(ok, "    frame_size: [640, 480]\n",
                  "    frame_size: [640, 480]\n    filters: {person: {min_area: 500, max_area: 100}}\n")
    assert "cameras[0].filters.person: max_area 100.0 must be more than min_area 500.0" in error_of(bad)
    bad = replace(ok, "    frame_size: [640, 480]\n",
                  "    frame_size: [640, 480]\n    filters: {person: {mask: [[0, 0], [900, 0], [0, 9]]}}\n")
    assert "cameras[0].filters.person.mask[1]: point [900.0, 0.0] is outside the frame" in error_of(bad)
    bad = replace(ok, "    frame_size: [640, 480]\n",
                  "    frame_size: [640, 480]\n    filters: {person: {min_score: 1.5}}\n")
    assert "cameras[0].filters.person.min_score" in error_of(bad)


def test_non_finite_coordinates_are_refused():
    bad = replace(SMALL, "[[0, 300], [639, 320]]", "[[0, .nan], [639, 320]]")
    assert "cameras[0].lines[0].points[0][1]: expected a finite number" in error_of(bad)


def test_degenerate_homography_is_refused():
    bad = replace(SMALL, "    frame_size: [640, 480]\n", "    frame_size: [640, 480]\n    homography: "
                  "{image: [[0, 0], [10, 10], [20, 20], [0, 30]], ground: [[0, 0], [1, 0], [1, 1], [0, 1]]}\n")
    assert "cameras[0].homography.image: points 0, 1, 2 lie on one line" in error_of(bad)
    bad = replace(SMALL, "    frame_size: [640, 480]\n", "    frame_size: [640, 480]\n    homography: "
                  "{image: [[0, 0], [10, 0], [10, 10]], ground: [[0, 0], [1, 0], [1, 1], [0, 1]]}\n")
    assert "cameras[0].homography.image" in error_of(bad)


def test_tracker_groups_are_checked():
    groups = SMALL + "tracking:\n  groups:\n    vehicles: {classes: [car, truck], tracker: {max_missed: -1}}\n"
    message = error_of(groups)
    assert "tracking.groups.vehicles.tracker.max_missed:" in message
    assert f"line {line_of(groups, 'vehicles:')}:" in message
    twice = SMALL + "tracking:\n  groups:\n    a: {classes: [car]}\n    b: {classes: [bus, car]}\n"
    assert "tracking.groups.b.classes: 'car' is also in group 'a'" in error_of(twice)
    keyed = SMALL + "tracking:\n  groups:\n    a: {classes: [car], tracker: {class_groups: [[1, 2]]}}\n"
    assert "tracking.groups.a.tracker.class_groups: set by the group's classes" in error_of(keyed)
    unknown = SMALL + "tracking:\n  tracker: {max_mised: 3}\n"
    assert "tracking.tracker.max_mised: unknown key" in error_of(unknown)


def test_group_settings_fall_back_to_the_default_tracker():
    config = parse(SMALL + "tracking:\n  tracker: {max_missed: 12, history: 50}\n"
                   "  groups:\n    v: {classes: [car, bus], tracker: {history: 80}}\n    p: {classes: [person], "
                   "merge_classes: false}\n")
    v = config.tracking.group_tracker("v", [3, 4])
    assert (v.max_missed, v.history, v.class_groups) == (12, 80, ((3, 4),))
    assert config.tracking.group_tracker("p", [0]).class_groups == ()


def test_class_names_are_checked_against_the_model_cards():
    config = parse(EXAMPLE)
    labels = {"objects": ["person", "car", "truck", "bus", "motorcycle", "bicycle"], "faces": ["face"]}
    check_class_names(config, labels)
    with pytest.raises(ConfigError, match=r"detectors\.objects\.classes\[4\]: 'motorcycle' is not a class"):
        check_class_names(config, {**labels, "objects": ["person", "car", "truck", "bus"]})
    with pytest.raises(ConfigError, match=r"tracking\.groups\.faces\.classes\[0\]: no detector reports 'face'"):
        check_class_names(config, {**labels, "faces": ["head"]})
    small = parse(replace(SMALL, "        points: [[0, 300], [639, 320]]\n",
                          "        points: [[0, 300], [639, 320]]\n        classes: [cat]\n"))
    with pytest.raises(ConfigError, match=r"cameras\[0\]\.lines\[0\]\.classes\[0\]: no detector of camera 'gate' "):
        check_class_names(small, {"objects": ["person", "car"]})


def _edges_meet(p, q, a, b) -> bool:
    """Exact (rational) test whether closed segments p-q and a-b share a point: solve
    p + t (q - p) = a + u (b - a); when parallel, compare their spans along the common line."""
    p, q, a, b = ([Fraction(int(c)) for c in pt] for pt in (p, q, a, b))
    d = [q[0] - p[0], q[1] - p[1]]
    e = [b[0] - a[0], b[1] - a[1]]
    det = d[0] * -e[1] + e[0] * d[1]
    r = [a[0] - p[0], a[1] - p[1]]
    if det != 0:
        t = (r[0] * -e[1] + e[0] * r[1]) / det
        u = (d[0] * r[1] - d[1] * r[0]) / det
        return 0 <= t <= 1 and 0 <= u <= 1
    if d[0] * r[1] - d[1] * r[0] != 0:
        return False  # parallel, on different lines
    length2 = d[0] ** 2 + d[1] ** 2
    s0 = (r[0] * d[0] + r[1] * d[1]) / length2
    s1 = ((b[0] - p[0]) * d[0] + (b[1] - p[1]) * d[1]) / length2
    return max(min(s0, s1), 0) <= min(max(s0, s1), 1)


def _polygon_brute_force(points) -> bool:
    """Self-intersection by testing every pair of non-adjacent edges exactly."""
    v = np.asarray(points)
    n = len(v)
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue
            if _edges_meet(v[i], v[(i + 1) % n], v[j], v[(j + 1) % n]):
                return True
    return False


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(3, 7))
def test_self_intersection_matches_a_brute_force_check(seed, n):
    rng = np.random.default_rng(seed)
    points = rng.integers(0, 6, (n, 2)).astype(float)  # a small grid: touching and collinear cases are common
    if any(np.array_equal(points[i], points[(i + 1) % n]) for i in range(n)):
        assert polygon_self_intersection(points) is not None, f"seed {seed}"
        return
    got = polygon_self_intersection(points)
    want = _polygon_brute_force(points)
    folds = any(_folds_back(points, i) for i in range(n))
    assert (got is not None) == (want or folds), f"seed {seed}: {points.tolist()} got {got}"


def _folds_back(points, i) -> bool:
    """Edges i-1 and i run back over each other at vertex i."""
    n = len(points)
    prev, here, nxt = points[i - 1], points[i], points[(i + 1) % n]
    u, w = prev - here, nxt - here
    return abs(u[0] * w[1] - u[1] * w[0]) == 0 and float(u @ w) > 0
