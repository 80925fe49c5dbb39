"""edgert's BlazeFace (builtin model, CPU backend, Preprocessor, SsdDecoder) against MediaPipe's own FaceDetection.

The reference detections (``tests/data/blazeface_mediapipe.json``) were made by
``benchmarks/models/blazeface_reference.py`` with mediapipe 0.10.21 on scikit-image's photos
(`face_photos.FRAMES`), so this test needs no mediapipe. With the card's preprocessing (letterbox,
bilinear, corner-mapped pixel centres, [-1, 1]) the short-range model must find the same faces as
MediaPipe with box IoU >= 0.95 and scores within 0.01; half-pixel centres must move them measurably.
"""
import json
from pathlib import Path

import numpy as np
import pytest
from face_photos import FRAMES, make_frame

from edgert import _reference
from edgert.core.errors import ConfigError
from edgert.models.resolve import resolve
from edgert.postprocess.ssd import SsdDecoder
from edgert.preprocess import Preprocessor

pytest.importorskip("skimage")

REFERENCE = json.loads((Path(__file__).parent / "data" / "blazeface_mediapipe.json").read_text(encoding="utf-8"))
SHORT = "face_detection_short_range"
FULL = "face_detection_full_range_sparse"
KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth_centre", "right_ear_tragion", "left_ear_tragion")


@pytest.fixture(scope="module", params=[SHORT, FULL])
def blazeface(request):
    entry = resolve(f"builtin:{request.param}", "detect", backend="cpu")
    # The card's threshold: 0.5 (short range) and 0.6 (full range), what MediaPipe's graphs apply. The
    # reference ran FaceDetection(min_detection_confidence=0.5), which the full-range graph's own 0.6
    # overrides: decoding it at 0.5 blends two more anchors into the face (IoU 0.948 vs 0.993).
    decoder = SsdDecoder.from_card(entry.model.outputs, entry.decoder, entry.labels)
    yield request.param, entry, decoder
    entry.model.close()


def _detect(entry, decoder, frame, **preprocess):
    h, w = frame.shape[:2]
    pre = Preprocessor(entry.model.inputs[0], "RGB", (w, h), **{**entry.preprocess, **preprocess})
    return decoder(entry.model.run(pre(frame))).to_source(pre)


def _matches(dets, reference):
    """For each reference face: (IoU with the best-overlapping edgert box, score difference, keypoint error px)."""
    out = []
    for ref in reference:
        ious = [float(_reference.iou(box, ref["box_xyxy"])) for box in dets.boxes]
        j = int(np.argmax(ious))
        kp_err = float(np.abs(dets.keypoints[j] - np.asarray(ref["keypoints"])).max())
        out.append((ious[j], float(dets.scores[j]) - ref["score"], kp_err))
    return out


def test_the_card_resolves_to_an_ssd_face_detector_with_six_named_keypoints(blazeface):
    name, entry, decoder = blazeface
    assert entry.task == "detect" and entry.labels == ("face",)
    assert entry.preprocess["pixel_centers"] == "corner" and entry.preprocess["resize"] == "letterbox"
    assert decoder.keypoint_names == KEYPOINTS and decoder.num_keypoints == 6
    size = 128 if name == SHORT else 192
    assert entry.model.inputs[0].shape == (1, size, size, 3)
    assert decoder.anchors.shape[0] == (896 if name == SHORT else 2304)


def test_same_faces_as_mediapipe_with_the_corner_convention(blazeface):
    name, entry, decoder = blazeface
    frames = REFERENCE["models"][f"{name}.tflite"]["frames"]
    assert set(frames) == set(FRAMES)
    worst_iou, worst_score = 1.0, 0.0
    for frame_name, ref in frames.items():
        frame = make_frame(ref["frame"])
        assert [frame.shape[1], frame.shape[0]] == ref["size"]
        dets = _detect(entry, decoder, frame)
        assert len(dets) == len(ref["detections"]), frame_name
        for iou, dscore, _ in _matches(dets, ref["detections"]):
            worst_iou, worst_score = min(worst_iou, iou), max(worst_score, abs(dscore))
    print(f"{name}: worst IoU {worst_iou:.4f}, worst |score difference| {worst_score:.4f}")
    assert worst_iou >= 0.95
    assert worst_score <= 0.01


def test_keypoints_land_on_the_face(blazeface):
    """Keypoints are kept through decoding, NMS and letterbox removal: eyes above the mouth, inside the box."""
    name, entry, decoder = blazeface
    ref = REFERENCE["models"][f"{name}.tflite"]["frames"]["astronaut_640x300"]
    dets = _detect(entry, decoder, make_frame(ref["frame"]))
    (x0, y0, x1, y1), kp = dets.boxes[0], dets.keypoints[0]
    eyes, mouth = kp[:2], kp[3]
    assert np.all((eyes[:, 0] > x0) & (eyes[:, 0] < x1) & (eyes[:, 1] > y0) & (eyes[:, 1] < mouth[1]))
    assert kp[0, 0] < kp[1, 0]  # the subject's right eye is on the image's left
    assert np.abs(kp - np.asarray(ref["detections"][0]["keypoints"])).max() < (1.0 if name == SHORT else 4.0)


def test_half_pixel_centres_move_the_detections():
    """Behind the convention it was not trained with, BlazeFace's boxes and scores change."""
    entry = resolve(f"builtin:{SHORT}", "detect", backend="cpu")
    try:
        decoder = SsdDecoder.from_card(entry.model.outputs, entry.decoder, entry.labels)
        ref = REFERENCE["models"][f"{SHORT}.tflite"]["frames"]
        shifts = []
        for frame_name in ("astronaut", "astronaut_640x300", "astronaut_300x640", "camera"):
            frame = make_frame(ref[frame_name]["frame"])
            corner = _detect(entry, decoder, frame)
            half = _detect(entry, decoder, frame, pixel_centers="half")
            [(iou, dscore, kp_err)] = _matches(half, ref[frame_name]["detections"])
            shifts.append((iou, abs(dscore), kp_err))
            assert float(_reference.iou(corner.boxes[0], half.boxes[0])) < 0.97, frame_name
        print("half-pixel centres vs MediaPipe (IoU, |score diff|, keypoint px):", shifts)
        assert min(s[0] for s in shifts) < 0.93 and max(s[2] for s in shifts) > 5.0
    finally:
        entry.model.close()


def test_from_card_refuses_other_kinds_and_unknown_keys():
    entry = resolve(f"builtin:{SHORT}", "detect", backend="cpu")
    try:
        outputs = entry.model.outputs
        with pytest.raises(ConfigError, match="not 'ssd'"):
            SsdDecoder.from_card(outputs, {"kind": "yolo"})
        with pytest.raises(ConfigError, match="unknown key.*anchor_count"):
            SsdDecoder.from_card(outputs, {**entry.decoder, "anchor_count": 3})
        with pytest.raises(ConfigError, match="5 keypoint names for 6"):
            SsdDecoder.from_card(outputs, {**entry.decoder, "keypoints": list(KEYPOINTS[:5])})
        with pytest.raises(ConfigError, match="anchors"):
            SsdDecoder.from_card(outputs, {**entry.decoder, "anchors": {**entry.decoder["anchors"], "strides": [8]}})
    finally:
        entry.model.close()
