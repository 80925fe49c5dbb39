"""`edgert quantize` on the project's float classifier, against TensorFlow's converter (issue 14's gates).

The float parent is benchmarks/data/conveyor_mnv2_fp32.tflite (MobileNetV2 alpha 1.0, the conveyor
waste classifier; benchmarks/models/train_conveyor_mnv2.py made it, and the converter's int8 file
beside it, from the same calibration tensors). With the folders that script's `data` step writes:

    python benchmarks/models/train_conveyor_mnv2.py data /tmp/cmn            # edgert's venv, ~5 min
    python benchmarks/quantize_classifier.py /tmp/cmn
    python benchmarks/quantize_classifier.py /tmp/cmn --variant NAME -- EXTRA EDGERT QUANTIZE FLAGS

This runs the real command line, ``edgert quantize FLOAT --calibration cal --validation val --out ...
--report ... --plot ...``, measures the converter's int8 file with the same report code (the same
validation images, CPU backend), times float, edgert int8 and converter int8 in this one process,
runs ``edgert bench INT8 --reference FLOAT --dataset val`` on each backend edgert has here, and writes
benchmarks/quantize_classifier.json with every figure and the issue's verdict.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FP32 = ROOT / "benchmarks" / "data" / "conveyor_mnv2_fp32.tflite"
TF_INT8 = ROOT / "benchmarks" / "data" / "conveyor_mnv2_tf_int8.tflite"
OUT_JSON = ROOT / "benchmarks" / "quantize_classifier.json"
NOTES = {
    "variants": "each variant is the same command with the extra flags shown, measured the same way",
    "moving-average": "--method moving-average is what edgert quantize did by default before --method minmax took "
                      "the min/max over all samples (ai-edge-quantizer's 0.95 moving average of per-sample ranges): "
                      "agreement 99.31% against 99.88%, worst class can -0.94 pt",
    "uint8-edges": "before edges.py took back the buffers ai-edge-quantizer stores after the flatbuffer (models with "
                   "256 KiB+ of weights), --input-type/--output-type uint8 gave a file LiteRT could not load",
    "bench_reference": "the .tflite int8 runs here on cpu (LiteRT + XNNPACK, outputs compared with the float "
                       "reference over the validation folder) and on simulated (timing only: that backend returns "
                       "zeros, so it has no outputs to compare); coral, hailo, rknn and onnx take other model formats",
}
GATES = {"max_ratio": 0.32, "max_drop_pt": 1.0, "max_class_drop_pt": 2.0, "min_agreement": 0.97,
         "max_behind_converter_pt": 0.3}


def _edgert() -> str:
    return str(Path(sys.executable).with_name("edgert"))


def _run(cmd: list) -> tuple:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr, time.perf_counter() - t0


def _summary(report: dict) -> dict:
    acc, s = report["accuracy"], report["sizes"]
    per = {name: {"n": r["n"], "float_top1": r["float_top1"], "int8_top1": r["int8_top1"],
                  "delta_top1_pt": round(r["delta_top1_pt"], 2)} for name, r in acc["per_class"].items()}
    return {"float_bytes": s["float_bytes"], "int8_bytes": s["int8_bytes"], "ratio": round(s["ratio"], 4),
            "float_top1": acc["float"]["top1"], "int8_top1": acc["int8"]["top1"],
            "float_top5": acc["float"]["top5"], "int8_top5": acc["int8"]["top5"],
            "delta_top1_pt": round(acc["delta_top1_pt"], 2),
            "worst_class": report["verdict"]["worst_class"],
            "worst_class_drop_pt": round(report["verdict"]["worst_class_drop_pt"], 2),
            "agreement": acc["agreement"], "images": acc["images"], "per_class": per,
            "verdict_passed": report["verdict"]["passed"], "verdict_failures": report["verdict"]["failures"]}


def _latency_same_process(paths: dict, preprocess: dict, frames: int, rounds: int) -> dict:
    """p50/p99 of each model on the CPU backend, `rounds` interleaved rounds; the median round's figures."""
    from edgert.quantize import report as rep

    runs = {k: [] for k in paths}
    for _ in range(rounds):
        for key, path in paths.items():
            runs[key].append(rep.latency(path, preprocess, frames, warmup=20))
    out = {}
    for key, rs in runs.items():
        rs = sorted(rs, key=lambda r: r["p50_ms"])
        mid = rs[len(rs) // 2]
        out[key] = {"p50_ms": round(mid["p50_ms"], 4), "p99_ms": round(mid["p99_ms"], 4), "frames": mid["frames"],
                    "rounds": rounds, "p50_ms_each_round": [round(r["p50_ms"], 4) for r in runs[key]]}
    return out


def _bench_reference(int8: Path, val: Path, work: Path) -> dict:
    """``edgert bench INT8 --backend all --reference FP32 --dataset val``: what each backend here gives."""
    cmd = [_edgert(), "bench", str(int8), "--backend", "all", "--reference", str(FP32), "--dataset", str(val),
           "--frames", "100", "--warmup", "10", "--src-size", "96x96", "--json", str(work / "bench.json")]
    code, out, err, seconds = _run(cmd)
    result = {"command": " ".join(["edgert", *cmd[1:]]), "exit_code": code, "seconds": round(seconds, 1),
              "table": out.strip().splitlines()}
    if code == 0:
        data = json.loads((work / "bench.json").read_text())
        result["runs"] = [{k: r.get(k) for k in ("backend", "status", "reason")} for r in data["runs"]]
        result["accuracy"] = data.get("accuracy")
    else:
        result["stderr"] = err.strip().splitlines()[-3:]
    return result


def _versions() -> dict:
    names = ("ai-edge-quantizer", "ai-edge-litert", "numpy")
    v = {n: metadata.version(n) for n in names}
    v["python"] = platform.python_version()
    card = json.loads(FP32.with_suffix(".json").read_text())
    v["tensorflow (dev venv: float model and converter int8)"] = card["training"]["tensorflow"]
    return v


def main() -> None:
    from edgert.models.cards import read_card
    from edgert.quantize import report as rep

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workdir", type=Path, help="the train_conveyor_mnv2.py data step's folder (cal/, val/)")
    ap.add_argument("--latency-frames", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-write", action="store_true", help="print, do not write " + OUT_JSON.name)
    ap.add_argument("--variant", help="record this run (its extra flags) under variants/NAME of the existing "
                    + OUT_JSON.name + " instead of as the main result")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args, flags = ap.parse_args(argv[:cut]), argv[cut + 1:]  # after --: extra edgert quantize flags
    cal, val, work = args.workdir / "cal", args.workdir / "val", args.workdir / "out"
    work.mkdir(parents=True, exist_ok=True)
    ours = work / "conveyor_mnv2_int8.tflite"
    card = read_card(FP32)

    cmd = [_edgert(), "quantize", str(FP32), "--calibration", str(cal), "--validation", str(val), "--out", str(ours),
           "--latency-frames", str(args.latency_frames), "--report", str(work / "report.json"),
           "--plot", str(work / "report.png"), "--quiet", *flags]
    code, out, err, seconds = _run(cmd)
    print(out, err, sep="\n")
    if code not in (0, 3):
        sys.exit(f"edgert quantize failed ({code}): {err.strip()}")
    cli = json.loads((work / "report.json").read_text())
    ours_report = cli["report"]

    theirs = {"sizes": rep.sizes(FP32, TF_INT8),
              "accuracy": rep.classify_accuracy(FP32, TF_INT8, val, card.labels, card.preprocess)}
    theirs["verdict"] = rep.verdict(theirs["accuracy"], GATES["max_drop_pt"], GATES["max_class_drop_pt"])
    print(f"\n== TensorFlow converter int8, measured by edgert's report code ==\n{rep.format_report(theirs)}")

    e, t = _summary(ours_report), _summary(theirs)
    behind = round(100 * (t["int8_top1"] - e["int8_top1"]), 2)
    behind_class = {c: round(t["per_class"][c]["delta_top1_pt"] - e["per_class"][c]["delta_top1_pt"], 2)
                    for c in e["per_class"]}
    gates = {
        "ratio": {"value": e["ratio"], "max": GATES["max_ratio"], "ok": e["ratio"] <= GATES["max_ratio"]},
        "top1_drop_pt": {"value": -e["delta_top1_pt"], "max": GATES["max_drop_pt"],
                         "ok": -e["delta_top1_pt"] <= GATES["max_drop_pt"]},
        "worst_class_drop_pt": {"value": e["worst_class_drop_pt"], "class": e["worst_class"],
                                "max": GATES["max_class_drop_pt"],
                                "ok": e["worst_class_drop_pt"] <= GATES["max_class_drop_pt"]},
        "agreement": {"value": e["agreement"], "min": GATES["min_agreement"],
                      "ok": e["agreement"] >= GATES["min_agreement"]},
        "behind_converter_top1_pt": {"value": behind, "max": GATES["max_behind_converter_pt"],
                                     "ok": behind <= GATES["max_behind_converter_pt"]},
    }
    latency = _latency_same_process({"float": FP32, "edgert_int8": ours, "tensorflow_int8": TF_INT8},
                                    card.preprocess, args.latency_frames, args.rounds)
    bench = _bench_reference(ours, val, work)
    data = json.loads((args.workdir / "data.json").read_text()) if (args.workdir / "data.json").exists() else None
    result = {
        "what": "issue 14's gates on the project's float classifier: MobileNetV2 alpha 1.0 (96x96, 5 classes) "
                "trained from scratch on the conveyor scene, quantised by edgert quantize (the CLI), against "
                "TensorFlow's converter int8 of the same float model (representative dataset = edgert's "
                "calibration tensors of the same images, int8 edges like edgert's), both measured by edgert's "
                "report code on the CPU backend over the held-out validation folder",
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, 2 shared cores (load from other "
        "sessions: latencies are indicative; ratios within one process)",
        "float_model": str(FP32.relative_to(ROOT)), "converter_int8_model": str(TF_INT8.relative_to(ROOT)),
        "data": data,
        "commands": {"data": "python benchmarks/models/train_conveyor_mnv2.py data WORKDIR",
                     "train": "nice -n 10 TFVENV/bin/python benchmarks/models/train_conveyor_mnv2.py train WORKDIR",
                     "quantize": " ".join(["edgert", *cmd[1:]]).replace(str(args.workdir), "WORKDIR")
                                 .replace(str(ROOT) + "/", ""),
                     "this": "python benchmarks/quantize_classifier.py WORKDIR" + (" -- " + " ".join(flags) if flags
                                                                                 else "")},
        "quantize_exit_code": code, "quantize_seconds": round(seconds, 1),
        "edgert": e, "tensorflow": t,
        "edgert_quantization": cli["quantization"],
        "latency_cpu_cli_report": ours_report.get("latency"),
        "latency_cpu_same_process": latency,
        "gates": gates, "behind_converter_per_class_pt": behind_class,
        "verdict": "PASS" if all(g["ok"] for g in gates.values()) else "FAIL",
        "bench_reference": bench, "versions": _versions(),
    }
    print(json.dumps({k: result[k] for k in ("edgert", "tensorflow", "gates", "verdict", "latency_cpu_same_process")},
                     indent=2))
    if args.variant:
        main_result = json.loads(OUT_JSON.read_text())
        main_result.setdefault("variants", {})[args.variant] = {
            "flags": flags, "command": result["commands"]["quantize"], "edgert": e, "gates": gates,
            "verdict": result["verdict"], "latency_cpu_same_process": latency}
        result = main_result
    elif OUT_JSON.exists():
        result["variants"] = json.loads(OUT_JSON.read_text()).get("variants", {})
    result["notes"] = NOTES
    text = json.dumps(result, indent=2).replace(str(args.workdir), "WORKDIR").replace(str(ROOT) + "/", "")
    if not args.no_write:
        OUT_JSON.write_text(text + "\n")
        print(f"wrote {OUT_JSON}")


if __name__ == "__main__":
    main()
