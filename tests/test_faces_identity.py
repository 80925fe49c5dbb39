"""Yaw from BlazeFace's 6 keypoints on synthetic heads of known yaw; per-track voting and its events."""
from __future__ import annotations

import numpy as np
import pytest

from edgert.apps.surveillance.faces.gallery import Match
from edgert.apps.surveillance.faces.identity import NOSE_DEPTH, RecognitionRules, TrackIdentity, estimate_yaw
from edgert.core.errors import FrameError

# A head in its own frame (x: towards the subject's left ear, y down, z out of the face), in units of
# half the ear-to-ear width: BlazeFace's order (right eye, left eye, nose tip, mouth centre, right ear,
# left ear). Right/left are the subject's: facing the camera, their right eye is on the image's left.
HEAD = np.array([[-0.45, -0.25, 0.9], [0.45, -0.25, 0.9], [0.0, 0.1, NOSE_DEPTH], [0.0, 0.55, 0.95],
                 [-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])


def project(yaw_deg, roll_deg=0.0, pitch_deg=0.0, scale=60.0, centre=(320.0, 240.0), perspective=None):
    """Image keypoints (6, 2) of HEAD turned by yaw (about y), pitch (about x), then rolled in the image."""
    y, p, r = np.radians([yaw_deg, pitch_deg, roll_deg])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    pts = HEAD @ (rx @ ry).T
    xy = pts[:, :2]
    if perspective is not None:  # camera `perspective` half-widths in front of the head
        xy = xy * (perspective / (perspective - pts[:, 2:3]))
    rot = np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]])
    # Image x grows to the right: the subject's left ear (+x in the head frame) appears on the image's right.
    return xy @ rot.T * scale + centre


def test_yaw_is_recovered_whatever_the_roll_scale_and_position():
    seed = 11
    rng = np.random.default_rng(seed)
    for _ in range(200):
        yaw = rng.uniform(-70, 70)
        kp = project(yaw, rng.uniform(-40, 40), 0.0, rng.uniform(10, 300), rng.uniform(0, 2000, 2))
        assert abs(float(estimate_yaw(kp)) - yaw) < 1e-6, f"seed {seed}, yaw {yaw}"


def test_yaw_sign_batch_and_robustness():
    kp = np.stack([project(0), project(25), project(-25)])
    yaw = estimate_yaw(kp)
    assert yaw.shape == (3,) and abs(yaw[0]) < 1e-9 and yaw[1] > 20 and yaw[2] < -20
    # The nose moves towards the image's right when the subject turns to their left (positive yaw).
    assert project(25)[2, 0] > project(0)[2, 0]
    # Pitch and a near camera (perspective) bend the estimate a little, not much.
    for yaw_deg in (-40, -10, 0, 15, 35):
        assert abs(float(estimate_yaw(project(yaw_deg, pitch_deg=15))) - yaw_deg) < 3
        assert abs(float(estimate_yaw(project(yaw_deg, perspective=8.0))) - yaw_deg) < 6
    coincident = project(0)
    coincident[5] = coincident[4]
    assert float(estimate_yaw(coincident)) == 90.0
    with pytest.raises(FrameError, match=r"\(6, 2\)"):
        estimate_yaw(np.zeros((5, 2)))


def match(name, sim, best=None):
    return Match(name, sim, None, -1.0, "match" if name else "below_threshold", best or name)


RULES = RecognitionRules(max_per_track=4, min_face_px=40, max_yaw_deg=30, min_gain=0.1, min_votes=2,
                         min_mean_similarity=0.6)


def test_a_name_is_given_once_confident_and_a_contradiction_is_reported_not_overwritten():
    ident = TrackIdentity("gate", 7, RULES)
    assert ident.add(match("ana", 0.8), 1.0, 50) == []  # one vote is not enough
    (event,) = ident.add(match("ana", 0.7), 2.0, 55)
    assert event.kind == "face_recognised" and ident.name == "ana"
    assert event.details() == {"camera": "gate", "track_id": 7, "t": 2.0, "name": "ana", "similarity": 0.75,
                               "votes": 2, "recognitions": 2}
    assert ident.add(match("binh", 0.9), 3.0, 70) == []  # one vote for someone else: no contradiction yet
    assert ident.add(match("binh", 0.9), 4.0, 80) == []  # a tie with the current name is not one either
    ident2 = TrackIdentity("gate", 8, RecognitionRules(max_per_track=10, min_votes=2, min_mean_similarity=0.6))
    for k, name in enumerate(["ana", "ana", "binh", "binh", "binh"]):
        events = ident2.add(match(name, 0.8), float(k), 50)
    (conflict,) = events
    assert conflict.kind == "face_conflict" and ident2.name == "ana"
    assert conflict.details()["name"] == "ana" and conflict.details()["other"] == "binh"
    assert ident2.add(match("binh", 0.8), 9.0, 50) == []  # said once per person


def test_low_similarities_give_no_name_and_unknown_is_said_once():
    ident = TrackIdentity("gate", 3, RULES)
    assert ident.add(match("ana", 0.55), 1.0) == [] and ident.add(match("ana", 0.58), 2.0) == []
    assert ident.name is None  # two votes, but a mean below 0.6
    ident.add(match(None, 0.3, "binh"), 3.0)
    (event,) = ident.add(match(None, 0.2, "binh"), 4.0)  # the 4th and last recognition
    assert event.kind == "face_unknown" and event.details()["name"] is None
    assert event.details()["similarity"] == 0.58 and event.details()["recognitions"] == 4
    assert ident.finish(5.0) == []


def test_which_faces_are_tried():
    ident = TrackIdentity("gate", 1, RULES)
    box = (100, 100, 180, 190)
    assert ident.wants(box, 5.0)
    assert not ident.wants((100, 100, 130, 190), 5.0)  # 30 px wide: too small
    assert not ident.wants(box, -35.0)  # turned too far
    ident.add(match("ana", 0.8), 1.0, 80)
    assert ident.wants(box, 0.0)  # not yet named: every good face
    ident.add(match("ana", 0.8), 2.0, 80)
    assert ident.name == "ana"
    assert not ident.wants(box, 0.0)  # named: only a better face (quality 80 is no gain)
    assert ident.wants((100, 100, 200, 200), 0.0)
    for k in range(2):
        ident.add(match("ana", 0.8), 3.0 + k, 100 + 20 * k)
    assert not ident.wants((0, 0, 500, 500), 0.0)  # at most 4 per track
    assert TrackIdentity("gate", 2, RULES).finish(1.0) == []  # never tried: nothing to say


def test_the_config_section_gives_the_rules_and_the_gallery_beside_the_journal(tmp_path):
    from pydantic import ValidationError

    from edgert.apps.surveillance.faces.config import FaceRecognitionConfig

    section = FaceRecognitionConfig.model_validate({"model": {"path": "emb.tflite"}, "min_votes": 3})
    assert section.gallery_path(tmp_path) == tmp_path / "faces.sqlite3"
    rules = section.rules(0.43)
    assert rules.min_votes == 3 and rules.min_mean_similarity == 0.43 and rules.max_per_track == 5
    for bad in ({"model": {"path": "e"}, "colour": 1}, {"model": {"path": "e"}, "max_yaw_deg": 120}, {}):
        with pytest.raises(ValidationError):
            FaceRecognitionConfig.model_validate(bad)
