"""Plates: formats and confusable correction, per-track voting and events, and the PP-OCR reader on rendered plates."""
import numpy as np
import pytest
from plate_renderer import char_accuracy, render_case

from edgert.apps.surveillance.plates import (KnownPlate, PlateFormat, PlateReader, PlatesConfig, PlateTracks, best_fit,
                                             fit, formats_for)
from edgert.core.errors import ConfigError, FrameError

pytest.importorskip("onnxruntime")


def _rows(*texts, conf=0.9):
    return [(t, [conf] * len(t)) for t in texts]


VN = formats_for(["VN"])


@pytest.mark.parametrize("read, want, corrections", [
    (["51F-123.45"], "51F-123.45", 0),
    (["51F12345"], "51F-123.45", 0),          # separators missed by the recogniser are the format's to write
    (["5IF-I23.4S"], "51F-123.45", 3),       # I -> 1 and S -> 5 in digit slots
    (["510-123.45"], "51O-123.45", 1),       # a digit in the letter slot: 0 -> O
    (["51F-1234"], "51F-1234", 0),
    (["59-X1", "234.56"], "59-X1 234.56", 0),
    (["S9-XI", "Z34.56"], "59-X1 234.56", 3),  # XI: the last slot is a digit, so I -> 1; the X stays
])
def test_vietnamese_formats(read, want, corrections):
    got = best_fit(_rows(*read), VN)
    assert got is not None and got.text == want and got.corrections == corrections


def test_no_correction_where_the_slot_takes_either():
    us = formats_for(["US"])
    assert best_fit(_rows("8OB5S"), us).text == "8OB5S"  # A slots keep what was read
    assert fit(_rows("ABC123"), PlateFormat("XX", "x", ("LLLDDD",))).corrections == 0
    assert fit(_rows("A8C1Z3"), PlateFormat("XX", "x", ("LLLDDD",))).text == "ABC123"


def test_reads_that_fit_nothing():
    assert best_fit(_rows("51F-123"), VN) is None              # too short for any VN layout
    assert best_fit(_rows("51F-123.45", "1"), VN) is None      # two rows, neither two-row layout
    assert best_fit(_rows("QQ-123.45"), VN) is None            # Q is no digit
    assert best_fit(_rows("AB-123-CD"), formats_for(["EU"])).format.country == "FR"


def test_format_refusals():
    with pytest.raises(ConfigError, match="unknown country 'XX'"):
        formats_for(["XX"])
    with pytest.raises(ConfigError, match="no L, D or A slot"):
        PlateFormat("XX", "bad", ("--",))


def _plate(text, conf=0.9):
    rows = text.split(" ")
    return best_fit([(r, [conf] * len(r)) for r in rows], VN)


def test_voting_keeps_the_best_reads_and_emits_events():
    config = PlatesConfig(min_reads=2, max_reads=3, min_confidence=0.5,
                          known=(KnownPlate(plate="51F12345", name="Nguyen"),))
    tracks = PlateTracks(config, "gate")
    # Small early reads, wrong in one character, are displaced by larger later ones.
    assert tracks.add(7, _plate("51F-123.46", 0.8), row_height=8) == []
    tracks.add(7, _plate("51F-123.46", 0.8), row_height=8)
    events = tracks.add(7, _plate("51F-123.45", 0.9), row_height=30)
    events += tracks.add(7, _plate("51F-123.45", 0.85), row_height=30)
    events += tracks.add(7, _plate("51F-123.45", 0.9), row_height=25)
    kinds = [e.kind for e in events]
    assert "watched_plate_seen" in kinds and kinds.count("watched_plate_seen") == 1
    assert tracks.voted(7).text == "51F-123.45"
    last_read = [e for e in events if e.kind == "plate_read"][-1]
    assert last_read.details["plate"] == "51F-123.45" and last_read.details["camera"] == "gate"
    assert last_read.details["track_id"] == 7 and last_read.details["name"] == "Nguyen"
    assert 0.5 <= last_read.details["confidence"] <= 1.0


def test_per_character_vote_and_revision():
    tracks = PlateTracks(PlatesConfig(min_reads=2, max_reads=5, min_confidence=0.3), "cam")
    a = _plate("51F-123.45", 0.9)
    b = _plate("51F-128.45", 0.4)  # one weak frame disagrees in one character
    assert tracks.add(1, b, 30) == []
    first = tracks.add(1, b, 30)
    assert first[0].details["plate"] == "51F-128.45" and first[0].details["revised"] is False
    revised = tracks.add(1, a, 30)  # 0.9 for the 3 against 2 x 0.4 for the 8: the position flips
    assert revised[0].kind == "plate_read" and revised[0].details["plate"] == "51F-123.45"
    assert revised[0].details["revised"] is True and "was 51F-128.45" in revised[0].message
    assert tracks.add(1, a, 30) == []  # no change, no new event
    tracks.end(1)
    assert tracks.voted(1) is None


@pytest.fixture(scope="module")
def reader():
    r = PlateReader(countries=("VN",))
    yield r
    r.close()


def _read(reader, case):
    got = reader.read(case.frame, case.quad)
    return got.plate.text if got.plate else ""


def test_reader_on_rendered_plates(reader):
    cases = [render_case(seed) for seed in range(24)]
    reads = [_read(reader, c) for c in cases]
    exact = sum(r == c.text for r, c in zip(reads, cases)) / len(cases)
    accuracy = float(np.mean([char_accuracy(r, c.text) for r, c in zip(reads, cases)]))
    misses = [(i, c.text, r) for i, (r, c) in enumerate(zip(reads, cases)) if r != c.text]
    # Measured on this set: every plate read (one- and two-row, five Hershey fonts, blur, perspective).
    assert exact >= 0.9 and accuracy >= 0.97, f"read-rate {exact:.2f}, char accuracy {accuracy:.3f}: {misses}"
    assert any(len(c.rows) == 2 for c in cases) and any(len(c.rows) == 1 for c in cases)


def test_reader_voting_over_a_track_of_hard_frames(reader):
    rows = ("43K-517.92",)
    tracks = PlateTracks(PlatesConfig(min_reads=2, max_reads=4, min_confidence=0.3), "cam")
    singles = 0
    for frame in range(8):  # the vehicle approaches: hard (small, blurred) frames, then normal ones
        case = render_case(1000 + frame, hard=frame < 5, rows=rows)
        got = reader.read(case.frame, case.quad)
        singles += got.plate is not None and got.plate.text == rows[0]
        if got.plate is not None:
            tracks.add(3, got.plate, got.row_height)
    assert tracks.voted(3).text == rows[0], f"single-frame reads right: {singles} of 8"


def test_reader_refusals(reader):
    frame = render_case(0).frame
    with pytest.raises(FrameError, match="degenerate"):
        reader.read(frame, [[10, 10], [10, 10], [10, 11], [10, 11]])
    with pytest.raises(FrameError, match="4 finite"):
        reader.read(frame, [[10, 10], [20, 10]])
    with pytest.raises(FrameError, match="plate quad: no warp, it is self-intersecting or not convex"):
        reader.read(frame, [[10, 10], [60, 10], [20, 22], [60, 24]])  # corners out of order: a bow tie
    with pytest.raises(FrameError, match="BGR uint8"):
        reader.read(frame[..., 0], [[10, 10], [60, 10], [60, 22], [10, 22]])
    with pytest.raises(ConfigError, match="multiple of 8"):
        PlateReader(width=250)
    with pytest.raises(ConfigError, match="is a detect model.*an ocr model is needed"):
        PlateReader(model="builtin:face_detection_short_range")
    with pytest.raises(ConfigError, match="names decoder None, not 'ctc'"):
        PlateReader(model="builtin:conveyor")  # no task, no ctc decoder on its card


def test_plate_rows_are_warped_as_cv2_warp_perspective_would_and_normalised(reader):
    """The one-pass crop (edgert's projective warp into the input) against cv2.getPerspectiveTransform +
    warpPerspective of the outline onto the rows, normalised x / 127.5 - 1 and padded with 0.0: within
    2 levels (cv2 rounds source positions to 1/32 pixel) on the plate, identical padding."""
    import cv2

    for seed in (0, 3, 7):
        case = render_case(seed)
        q, n_rows, (w, h), _ = reader._layout(case.frame, case.quad)
        dst = np.float32([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])
        m = cv2.getPerspectiveTransform(q.astype(np.float32), dst)
        upright = cv2.warpPerspective(case.frame, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        for row in range(n_rows):
            got = np.zeros((1, 3, 48, reader.width), np.float32)
            reader._crop.fill(case.frame, q, (w, h), row, got)
            want = upright[48 * row:48 * (row + 1)].transpose(2, 0, 1).astype(np.float32) / np.float32(127.5) - 1
            assert np.abs(got[0, :, :, :w] - want).max() * 127.5 <= 2.0 + 1e-3, f"seed {seed} row {row}"
            assert (got[0, :, :, w:] == 0.0).all()


def test_reader_on_street_vehicles(reader):
    """Camera 1 of the street (seed 5): plates read from their ground-truth quads; per track, voting over every
    read (tiny far-away plates included) gives the plate."""
    import cv2

    from edgert.sources.street import StreetConfig, StreetScene

    scene = StreetScene(StreetConfig(camera=1, seed=5, fps=0), cv2)
    tracks = PlateTracks(PlatesConfig(min_reads=1), "street")
    large, large_right, truth = 0, 0, {}
    for index in range(630, 900, 30):
        pixels, meta = scene.render(index)
        for obj in meta["objects"]:
            if obj.get("plate_quad") is None or (obj.get("plate_visible") or 0) < 0.95:
                continue
            got = reader.read(pixels, np.array(obj["plate_quad"]))
            truth[obj["id"]] = obj["plate"]
            if got.plate is not None:
                tracks.add(obj["id"], got.plate, got.row_height)
            if got.row_height >= 10:
                large += 1
                large_right += got.plate is not None and got.plate.text == obj["plate"]
    assert large >= 4 and large_right / large >= 0.9, f"{large_right} of {large} plates with rows >= 10 px"
    voted = {k: tracks.voted(k) for k in truth}
    right = [k for k, t in truth.items() if voted[k] is not None and voted[k].text == t]
    assert len(right) >= 4, f"voted right: {right} of {sorted(truth)}"
