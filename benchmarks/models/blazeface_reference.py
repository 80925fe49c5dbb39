"""Dev-only: MediaPipe's own face detector on scikit-image's photos -> tests/data/blazeface_mediapipe.json.

Runs ``mediapipe.solutions.face_detection.FaceDetection`` (mediapipe 0.10.21, the last 0.10 release
whose wheel ships the legacy solutions and the BlazeFace models; ``model_selection=0`` short range,
``1`` full range) on the frames of ``tests/face_photos.py`` and writes every detection in source
pixels: box xyxy, score, the six keypoints. ``tests/test_blazeface.py`` checks edgert's BlazeFace
(builtin model, CPU backend, Preprocessor with corner pixel centres, SsdDecoder) against this file,
so CI needs no mediapipe. (The full-range graph keeps its own min_score_thresh of 0.6 whatever
``min_detection_confidence`` says, so its detections are those of a 0.6 threshold; the card says 0.6.)

On these photos edgert with the card's settings gives the same faces, worst box IoU 0.998 (short
range) / 0.993 (full range) and scores within 0.0002 / 0.0011 of MediaPipe's; with half-pixel centres
instead the worst IoU is 0.76 / 0.91 and scores move by up to 0.04 / 0.05.

Run in a separate venv (never the project's)::

    python3.11 -m venv /work/mpvenv
    /work/mpvenv/bin/pip install mediapipe==0.10.21 scikit-image
    /work/mpvenv/bin/python benchmarks/models/blazeface_reference.py
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from face_photos import FRAMES, make_frame  # noqa: E402

OUT = ROOT / "tests" / "data" / "blazeface_mediapipe.json"
MODELS = {0: "face_detection_short_range.tflite", 1: "face_detection_full_range_sparse.tflite"}


def _detections(result, width: int, height: int) -> list:
    out = []
    for det in result.detections or []:
        box = det.location_data.relative_bounding_box
        xyxy = [box.xmin * width, box.ymin * height, (box.xmin + box.width) * width,
                (box.ymin + box.height) * height]
        kps = [[kp.x * width, kp.y * height] for kp in det.location_data.relative_keypoints]
        out.append({"box_xyxy": [round(v, 4) for v in xyxy], "score": round(float(det.score[0]), 6),
                    "keypoints": [[round(x, 4), round(y, 4)] for x, y in kps]})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--min-confidence", type=float, default=0.5)
    args = parser.parse_args(argv)

    import mediapipe as mp
    import skimage

    wheel_models = Path(mp.__file__).parent / "modules" / "face_detection"
    ours = ROOT / "edgert" / "models" / "blazeface"
    for name in MODELS.values():  # the committed files are the wheel's
        theirs = hashlib.sha256((wheel_models / name).read_bytes()).hexdigest()
        assert theirs == hashlib.sha256((ours / name).read_bytes()).hexdigest(), name
    doc = {"generator": "benchmarks/models/blazeface_reference.py", "mediapipe": mp.__version__,
           "scikit_image": skimage.__version__, "numpy": np.__version__,
           "api": "mediapipe.solutions.face_detection.FaceDetection(min_detection_confidence, model_selection)",
           "min_detection_confidence": args.min_confidence,
           "coordinates": "source-frame pixels: box x_min, y_min, x_max, y_max and keypoint x, y "
                          "(MediaPipe's relative values times the frame width and height)",
           "keypoints": ["right_eye", "left_eye", "nose_tip", "mouth_centre", "right_ear_tragion",
                         "left_ear_tragion"],
           "models": {}}
    for selection, model in MODELS.items():
        detector = mp.solutions.face_detection.FaceDetection(min_detection_confidence=args.min_confidence,
                                                             model_selection=selection)
        frames = {}
        for name, ops in FRAMES.items():
            frame = make_frame(ops)
            h, w = frame.shape[:2]
            frames[name] = {"frame": ops, "size": [w, h], "detections": _detections(detector.process(frame), w, h)}
            print(f"model_selection={selection} {name:24s} {w}x{h}: "
                  f"{[(d['score'], d['box_xyxy']) for d in frames[name]['detections']]}")
        detector.close()
        doc["models"][model] = {"model_selection": selection, "frames": frames}
    args.out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
