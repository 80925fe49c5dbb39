"""Plate reading figures: read-rate and character accuracy on rendered plates and on the street source's vehicles,
latency per plate on the CPU against the bare ONNX Runtime session, and the sizes of the shipped models.

Rendered sets (`tests/plate_renderer.py`, seeds 0..N-1): "normal" plates 22-60 px tall (two-row ones 1.9x),
blur sigma 0-1.2; "hard" ones 12-24 px, blur 0.6-1.8; five Hershey fonts, perspective, +-8 degrees.
Street: camera 1 of `StreetSource` (seed 5, 1280x720), every 5th frame, each vehicle whose plate is at
least 95% visible, read from its ground-truth quad; by row height, and per track after voting
(`PlateTracks`, defaults). Latency: median `PlateReader.read` (warp + normalise + session + CTC +
formats) against a bare ``InferenceSession.run`` of the same input (warmed up, interleaved, medians).

    python benchmarks/plates.py [--cases 200] [--street-frames 900] [--threads 1]
    python benchmarks/plates.py --only-ctc     # the CTC decode against NumPy alone (see ctc_decode)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from plate_renderer import char_accuracy, render_case  # noqa: E402

from edgert.apps.surveillance.plates import PlateReader, PlatesConfig, PlateTracks  # noqa: E402
from edgert.models.reference import model_path  # noqa: E402


def _text(read) -> str:
    return read.plate.text if read.plate else ""


def rendered(reader: PlateReader, n: int, hard: bool) -> dict:
    exact, acc, rows = 0, 0.0, defaultdict(lambda: [0, 0])
    for seed in range(n):
        case = render_case(seed, hard=hard)
        got = _text(reader.read(case.frame, case.quad))
        exact += got == case.text
        acc += char_accuracy(got, case.text)
        rows[len(case.rows)][0] += 1
        rows[len(case.rows)][1] += got == case.text
    return {"cases": n, "read_rate": exact / n, "char_accuracy": acc / n,
            "read_rate_by_rows": {k: v[1] / v[0] for k, v in sorted(rows.items())}}


def street(reader: PlateReader, frames: int) -> dict:
    import cv2

    from edgert.sources.street import StreetConfig, StreetScene

    scene = StreetScene(StreetConfig(camera=1, seed=5, fps=0), cv2)
    tracks = PlateTracks(PlatesConfig(min_reads=1), "street")
    buckets = defaultdict(lambda: [0, 0, 0.0])
    truth = {}
    for i in range(0, frames, 5):
        pixels, meta = scene.render(i)
        for obj in meta["objects"]:
            if obj.get("plate_quad") is None or (obj.get("plate_visible") or 0) < 0.95:
                continue
            read = reader.read(pixels, np.array(obj["plate_quad"]))
            got = _text(read)
            b = "<6" if read.row_height < 6 else "6-10" if read.row_height < 10 else ">=10"
            buckets[b][0] += 1
            buckets[b][1] += got == obj["plate"]
            buckets[b][2] += char_accuracy(got, obj["plate"])
            truth[obj["id"]] = obj["plate"]
            if read.plate is not None:
                tracks.add(obj["id"], read.plate, read.row_height)
    voted = {k: tracks.voted(k) for k in truth}
    total = sum(v[0] for v in buckets.values())
    return {"reads": total, "read_rate": sum(v[1] for v in buckets.values()) / max(total, 1),
            "char_accuracy": sum(v[2] for v in buckets.values()) / max(total, 1),
            "by_row_height_px": {k: {"reads": v[0], "read_rate": v[1] / v[0], "char_accuracy": v[2] / v[0]}
                                 for k, v in sorted(buckets.items())},
            "tracks": len(truth), "tracks_voted_right": sum(bool(voted[k] and voted[k].text == t)
                                                          for k, t in truth.items())}


def latency(reader: PlateReader, threads: int, rounds: int = 60) -> dict:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    path = model_path("builtin:ch_PP-OCRv4_rec")
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    case = render_case(1)
    x = np.zeros((1, 3, 48, reader.width), np.float32)
    for _ in range(5):
        reader.read(case.frame, case.quad)
        session.run(None, {"x": x})
    ours, bare = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        reader.read(case.frame, case.quad)
        t1 = time.perf_counter()
        session.run(None, {"x": x})
        t2 = time.perf_counter()
        ours.append(t1 - t0)
        bare.append(t2 - t1)
    ms, base = float(np.median(ours) * 1e3), float(np.median(bare) * 1e3)
    return {"read_ms": ms, "bare_session_ms": base, "ratio": ms / base, "threads": threads}


def _recogniser_output(steps: int, classes: int, rng) -> np.ndarray:
    """A PP-OCRv4-like softmax output: per step a blank (60%) or a random class well ahead of
    N(0, 1) logits (probability ~0.94), the rest sharing what is left."""
    path = np.where(rng.uniform(size=steps) < 0.6, 0, rng.integers(1, classes, steps))
    logits = rng.normal(0.0, 1.0, (steps, classes))
    logits[np.arange(steps), path] += 12.0
    e = np.exp(logits - logits.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


def ctc_decode(rounds: int = 300, warmup: int = 30, steps=(40, 80)) -> dict:
    """The compiled CTC decode (`CtcDecoder.__call__`, all of it) against the best plain NumPy greedy
    decode: ``argmax(1)`` on the whole (T, C) array, repeats and blanks dropped with vectorised masks,
    the kept steps' probabilities (dequantized for int outputs), the text joined. PP-OCRv4's 6625
    classes; float32 probabilities and their int8 (scale 1/256, zero point -128, as TFLite quantizes a
    softmax) and uint8 (1/256, 0) versions. Interleaved rounds after a warm-up, medians, one process;
    ratio = numpy / edgert (above 1: edgert faster). The NumPy decode takes each run's first step's
    confidence where edgert takes the run's largest (so NumPy does less)."""
    from edgert import Quantization, TensorSpec
    from edgert.postprocess.ctc import CtcDecoder, read_dictionary

    dictionary = read_dictionary(model_path("builtin:ch_PP-OCRv4_rec").parent / "ch_PP-OCRv4_rec_dict.txt")
    classes = len(dictionary) + 2
    rng = np.random.default_rng(0)
    out = {}
    for t in steps:
        probs = _recogniser_output(t, classes, rng)[None]
        variants = {"float32": (probs, None),
                    "int8": (np.clip(np.round(probs * 256) - 128, -128, 127).astype(np.int8), Quantization(1 / 256, -128)),
                    "uint8": (np.clip(np.round(probs * 256), 0, 255).astype(np.uint8), Quantization(1 / 256, 0))}
        for name, (x, quant) in variants.items():
            decoder = CtcDecoder(TensorSpec("softmax_11.tmp_0", x.shape, x.dtype, quant), dictionary, space=True)
            chars, rows = decoder.characters, np.arange(t)
            scale, zp = (np.float32(quant.scale), np.float32(quant.zero_point)) if quant else (None, None)

            def numpy_decode(o, chars=chars, rows=rows, scale=scale, zp=zp):
                p = o[0]
                best = p.argmax(1)
                keep = best != 0
                keep[1:] &= best[1:] != best[:-1]
                labels = best[keep]
                conf = p[rows, best][keep]
                conf = conf if scale is None else (conf.astype(np.float32) - zp) * scale
                return "".join([chars[k] for k in labels.tolist()]), conf, labels

            ours, theirs = decoder(x), numpy_decode(x)
            assert ours.text == theirs[0] and np.array_equal(ours.labels, theirs[2]), (name, t)
            a, b = [], []
            for i in range(warmup + rounds):
                first, second = (decoder, numpy_decode) if i % 2 else (numpy_decode, decoder)
                t0 = time.perf_counter()
                first(x)
                t1 = time.perf_counter()
                second(x)
                t2 = time.perf_counter()
                if i >= warmup:
                    (a if first is decoder else b).append(t1 - t0)
                    (b if first is decoder else a).append(t2 - t1)
            us, ref = float(np.median(a) * 1e6), float(np.median(b) * 1e6)
            out[f"{name}_{t}x{classes}"] = {"edgert_us": us, "numpy_us": ref, "ratio": ref / us,
                                           "characters": len(ours.text)}
            print(f"ctc {name:8s} T={t:3d} C={classes}: edgert {us:6.1f} us  numpy {ref:6.1f} us  "
                  f"ratio {ref / us:4.2f}", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=200)
    ap.add_argument("--street-frames", type=int, default=900)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=str(HERE / "results/plates.json"))
    ap.add_argument("--only-ctc", action="store_true", help="time the CTC decode alone (results/plates_ctc.json)")
    args = ap.parse_args()
    if args.only_ctc:
        out = {"ctc_decode": ctc_decode()}
        path = Path(args.json).with_name("plates_ctc.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"args": vars(args), **out}, indent=2), encoding="utf-8")
        return
    reader = PlateReader(num_threads=args.threads)
    folder = model_path("builtin:ch_PP-OCRv4_rec").parent
    out = {"model_bytes": {p.name: p.stat().st_size for p in sorted(folder.glob("*.onnx"))},
           "rendered_normal": rendered(reader, args.cases, False),
           "rendered_hard": rendered(reader, args.cases, True),
           "latency_one_row_plate": latency(reader, args.threads), "ctc_decode": ctc_decode()}
    if args.street_frames:
        out["street"] = street(reader, args.street_frames)
    print(json.dumps(out, indent=2))
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"args": vars(args), **out}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
