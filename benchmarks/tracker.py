"""Time edgert's tracker against supervision's ByteTrack on the same detections, and score both.

A seeded synthetic scene: 50 objects at a time in a 1920x1080 frame, walking at constant velocity
with a little wander, replaced by new ones when they leave; detections jittered, some missed, the
partly hidden ones (behind a nearer object) scored low or not detected, a few false positives per
frame. Both trackers get the same detections with the same settings (supervision's defaults:
activation 0.25, new track 0.35, match 0.8, lost buffer 30 frames; a track is reported from its
second hit). Per-frame times are medians over rounds that interleave the two trackers frame by frame;
IDF1 and MOTA come from `motmetrics` against the scene's ground truth.

    pip install -r benchmarks/requirements.txt
    python benchmarks/tracker.py [--frames 1000] [--objects 50] [--rounds 3] [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

if not hasattr(np, "asfarray"):  # motmetrics 1.4 still calls it; NumPy 2 removed it
    np.asfarray = lambda a, dtype=np.float64: np.asarray(a, dtype=dtype)

import motmetrics as mm  # noqa: E402
import supervision as sv  # noqa: E402

from edgert.postprocess import Detections  # noqa: E402
from edgert.tracking import Tracker, TrackerConfig  # noqa: E402

HERE = Path(__file__).resolve().parent
W, H = 1920, 1080
FRAME_NS = 33_333_333


def scene(frames: int, objects: int, seed: int):
    """Ground truth and detections per frame: ``[(gt_ids, gt_boxes, det_boxes, det_scores)]``."""
    rng = np.random.default_rng(seed)

    def spawn(k, anywhere):
        w = rng.uniform(30, 110, k)
        h = w * rng.uniform(1.8, 2.6, k)
        cx = rng.uniform(0, W, k) if anywhere else np.where(rng.random(k) < 0.5, -w / 2, W + w / 2)
        cy = rng.uniform(h / 2, H - h / 2)
        speed = rng.uniform(1, 6, k)
        angle = rng.uniform(-0.5, 0.5, k) + np.where(cx < W / 2, 0.0, np.pi)  # walk into the frame
        return np.c_[cx, cy, w, h, speed * np.cos(angle), speed * np.sin(angle) * 0.4]

    state = spawn(objects, True)
    ids = np.arange(objects)
    next_id = objects
    out = []
    for _ in range(frames):
        state[:, 4:] += rng.normal(0, 0.05, (len(state), 2))
        state[:, :2] += state[:, 4:]
        gone = (state[:, 0] < -state[:, 2]) | (state[:, 0] > W + state[:, 2]) | (state[:, 1] < -state[:, 3] / 2) \
            | (state[:, 1] > H + state[:, 3] / 2)
        if gone.any():
            state[gone] = spawn(int(gone.sum()), False)
            ids[gone] = np.arange(next_id, next_id + gone.sum())
            next_id += int(gone.sum())
        boxes = np.c_[state[:, :2] - state[:, 2:4] / 2, state[:, :2] + state[:, 2:4] / 2]
        hidden = _hidden_fraction(boxes)
        score = rng.uniform(0.5, 1.0, len(boxes))
        partly = hidden > 0.3
        score[partly] = rng.uniform(0.1, 0.45, int(partly.sum()))
        seen = (rng.random(len(boxes)) > 0.05) & (hidden < 0.75)
        jitter = rng.normal(0, 1, (len(boxes), 4)) * 0.03 * state[:, [2, 3, 2, 3]]
        det = boxes[seen] + jitter[seen]
        det_score = score[seen]
        k = rng.poisson(2)
        fp_xy = rng.uniform([0, 0], [W - 100, H - 200], (k, 2))
        fp_wh = rng.uniform([30, 60], [100, 200], (k, 2))
        det = np.r_[det, np.c_[fp_xy, fp_xy + fp_wh]]
        det_score = np.r_[det_score, rng.uniform(0.1, 0.6, k)]
        inside = (boxes[:, 2] > 0) & (boxes[:, 0] < W)
        out.append((ids[inside].copy(), boxes[inside].copy(), det.astype(np.float32), det_score.astype(np.float32)))
    return out


def _hidden_fraction(boxes):
    """Fraction of each box covered by the nearest object in front of it (larger bottom y = nearer)."""
    iw = np.clip(np.minimum(boxes[:, None, 2], boxes[None, :, 2]) - np.maximum(boxes[:, None, 0], boxes[None, :, 0]), 0,
                 None)
    ih = np.clip(np.minimum(boxes[:, None, 3], boxes[None, :, 3]) - np.maximum(boxes[:, None, 1], boxes[None, :, 1]), 0,
                 None)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    cover = iw * ih / area[:, None]
    in_front = boxes[None, :, 3] > boxes[:, None, 3]
    return np.where(in_front, cover, 0).max(1, initial=0)


def edgert_config() -> TrackerConfig:
    return TrackerConfig(high_score=0.25, birth_score=0.35, low_score=0.1, match_iou=0.2, low_match_iou=0.5,
                         tentative_match_iou=0.3, min_hits=2, max_missed=30)


def run(frames, rounds: int):
    """Both trackers over the scene `rounds` times, interleaved; outputs of the last round and times."""
    times = {"edgert": [], "supervision": []}
    outputs = {}
    for _ in range(rounds):
        ours, theirs = Tracker(edgert_config()), sv.ByteTrack()
        our_in = [Detections(d, s, np.zeros(len(s), np.int32)) for _, _, d, s in frames]
        their_in = [sv.Detections(xyxy=d.astype(np.float64), confidence=s, class_id=np.zeros(len(s), int))
                    for _, _, d, s in frames]
        outputs = {"edgert": [], "supervision": []}
        for f in range(len(frames)):
            t0 = time.perf_counter()
            tracks = ours.update(our_in[f], f * FRAME_NS).tracks
            t1 = time.perf_counter()
            result = theirs.update_with_detections(their_in[f])
            t2 = time.perf_counter()
            times["edgert"].append(t1 - t0)
            times["supervision"].append(t2 - t1)
            outputs["edgert"].append((tracks.ids, tracks.boxes))
            outputs["supervision"].append((result.tracker_id, result.xyxy))
    return outputs, {k: float(np.median(v) * 1e3) for k, v in times.items()}


def score(frames, output) -> dict:
    """IDF1, MOTA and friends of one tracker's output against the ground truth."""
    acc = mm.MOTAccumulator(auto_id=True)
    for (gt_ids, gt_boxes, _, _), (hyp_ids, hyp_boxes) in zip(frames, output):
        gt = np.c_[gt_boxes[:, :2], gt_boxes[:, 2:] - gt_boxes[:, :2]]
        hyp = np.asarray(hyp_boxes, np.float64).reshape(-1, 4)
        hyp = np.c_[hyp[:, :2], hyp[:, 2:] - hyp[:, :2]]
        acc.update(gt_ids.tolist(), np.asarray(hyp_ids).tolist(), mm.distances.iou_matrix(gt, hyp, max_iou=0.5))
    names = ["idf1", "mota", "motp", "num_switches", "precision", "recall", "mostly_tracked", "num_unique_objects"]
    summary = mm.metrics.create().compute(acc, metrics=names, name="x")
    return {k: float(summary[k].iloc[0]) for k in names}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--objects", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=str(HERE / "results/tracker.json"))
    args = ap.parse_args(argv)
    frames = scene(args.frames, args.objects, args.seed)
    dets = np.mean([len(s) for _, _, _, s in frames])
    print(f"scene: {args.frames} frames, {args.objects} objects at a time "
          f"({len(set(np.concatenate([f[0] for f in frames]).tolist()))} in all), {dets:.1f} detections per frame, "
          f"seed {args.seed}")
    outputs, ms = run(frames, args.rounds)
    metrics = {name: score(frames, out) for name, out in outputs.items()}
    ratio = ms["supervision"] / ms["edgert"]
    print(f"{'tracker':<13}{'ms/frame':>10}{'IDF1':>8}{'MOTA':>8}{'MOTP':>7}{'switches':>10}{'recall':>8}{'prec.':>8}")
    for name in ("supervision", "edgert"):
        m = metrics[name]
        print(f"{name:<13}{ms[name]:>10.3f}{m['idf1']:>8.4f}{m['mota']:>8.4f}{m['motp']:>7.3f}"
              f"{int(m['num_switches']):>10}{m['recall']:>8.4f}{m['precision']:>8.4f}")
    no_worse = all(metrics["edgert"][k] >= metrics["supervision"][k] for k in ("idf1", "mota"))
    print(f"edgert is {ratio:.1f}x faster per frame (median; target >= 10x)" + ("  ok" if ratio >= 10 else
                                                                                "  BELOW TARGET"))
    print("IDF1 and MOTA no worse than supervision's" if no_worse else "IDF1 or MOTA WORSE than supervision's")
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"args": vars(args), "ms_per_frame": ms, "speedup": ratio, "metrics": metrics},
                               indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
