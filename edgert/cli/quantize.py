"""`edgert quantize MODEL --calibration DIR --out OUT [--validation DIR]`: int8 quantisation and its report."""
from __future__ import annotations

import json
import sys


def register(sub) -> None:
    """Add the `quantize` command to the `edgert` argument parser."""
    p = sub.add_parser("quantize", help="int8 post-training quantisation with a calibration set, and its report",
                       description="Static int8 quantisation of a float .tflite (ai-edge-quantizer, full-integer) or "
                       ".onnx (onnxruntime quantize_static, QDQ), calibrated through edgert's Preprocessor with the "
                       "model card's preprocessing. Exit code 3 "
                       "when the int8 model loses more than the allowed drops on --validation.")
    p.add_argument("model", help="float model (.tflite through ai-edge-quantizer, .onnx through onnxruntime's "
                   "quantize_static)")
    p.add_argument("--calibration", required=True, metavar="DIR",
                   help="calibration set: images directly or in one subfolder per class, a video file, or .npy "
                   "model-ready tensors (a file or a folder of them)")
    p.add_argument("--out", required=True, help="int8 model to write (the input's suffix); its card goes beside "
                   "it (.json)")
    p.add_argument("--validation", metavar="DIR", help="accuracy report on: one subfolder of images per class "
                   "(classify) or identity (embed); detect: a COCO .json or a folder of images with YOLO .txt labels")
    p.add_argument("--task", choices=("classify", "detect", "embed"),
                   help="model task (default: the model card's, else classify); detect reports mAP (YOLO outputs), "
                   "embed EER/AUC/Rank-1")
    p.add_argument("--input-type", default="int8", choices=("int8", "uint8", "float32"),
                   help="the quantised model's input type (default: %(default)s)")
    p.add_argument("--output-type", default="int8", choices=("int8", "uint8", "float32"),
                   help="the quantised model's output type (default: %(default)s)")
    granularity = p.add_mutually_exclusive_group()
    granularity.add_argument("--per-channel", dest="per_channel", action="store_true", default=True,
                             help="one weight scale per output channel (default)")
    granularity.add_argument("--per-tensor", dest="per_channel", action="store_false",
                             help="one weight scale per weight tensor")
    p.add_argument("--method", default="minmax", choices=("minmax", "moving-average", "entropy", "percentile"),
                   help="calibration method: minmax (default: each tensor's min and max over all samples); "
                   "moving-average (.tflite: ai-edge-quantizer's own default, narrower ranges); entropy and "
                   "percentile for .onnx models")
    p.add_argument("--target", choices=("rknn",), help="rknn: convert a float .onnx into an int8 .rknn with "
                   "rknn-toolkit2 (where it is installed)")
    p.add_argument("--soc", help="the Rockchip SoC with --target rknn (e.g. rk3588)")
    p.add_argument("--samples", type=int, default=None, help="calibration images to draw, evenly across classes "
                   "(default: all)")
    p.add_argument("--max-drop", type=float, default=1.0, help="allowed top-1 drop in points (default: %(default)s)")
    p.add_argument("--max-class-drop", type=float, default=2.0,
                   help="allowed top-1 drop in any class, in points (default: %(default)s)")
    p.add_argument("--latency-frames", type=int, default=100,
                   help="frames timed per model on the CPU backend; 0 skips latency (default: %(default)s)")
    p.add_argument("--report", metavar="JSON", help="write the report as JSON")
    p.add_argument("--allow-float-ops", action="store_true",
                   help="keep a result with operators the quantiser left in float (default: refuse it, naming them)")
    p.add_argument("--plot", metavar="PNG", help="draw the report as a PNG (needs matplotlib: edgert[plot])")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=main)


def main(args) -> int:
    """Run `edgert quantize`; 0 when within the allowed drops (or no validation), 3 when not."""
    from edgert.bench.report import Progress, check_output_path
    from edgert.core import durable
    from edgert.core.errors import ConfigError
    from edgert.quantize.job import QuantizeOptions, run
    from edgert.quantize.report import EXIT_EXCEEDED, format_report

    if args.latency_frames < 0:
        raise ConfigError(f"--latency-frames: expected 0 or more, got {args.latency_frames}")
    report_path = check_output_path(args.report, "--report") if args.report else None
    plot_path = None
    if args.plot:
        from edgert.quantize.plot import check_plot, plot_report

        plot_path = check_plot(args.plot)
    bars: dict = {}

    def progress(stage, done, total):
        bar = bars.get(stage)
        if bar is None:
            for other in bars.values():
                other.close()
            bar = bars[stage] = Progress(stage, total, quiet=args.quiet)
        bar(done, total)

    try:
        result = run(QuantizeOptions(args.model, args.calibration, args.out, args.validation, args.task,
                                     args.per_channel, args.samples, args.max_drop, args.max_class_drop,
                                     args.latency_frames, args.input_type, args.output_type,
                                     args.method, args.target, args.soc, args.allow_float_ops),
                     progress=progress)
    finally:
        for bar in bars.values():
            bar.close()
    cal = result["calibration"]
    skipped = f", {cal['skipped']} unreadable skipped" if cal["skipped"] else ""
    print(f"wrote {result['model']} and {result['card']} (calibrated on {cal['used']} images{skipped})")
    if result["quantization"]["float_ops"]:
        print(f"left in float: {', '.join(result['quantization']['float_ops'])}")
    print(format_report(result["report"], result["task"]))
    if report_path is not None:
        durable.write_text(report_path, json.dumps(result, indent=2) + "\n")
    if plot_path is not None:
        plot_report(result["report"], result["task"], plot_path)
    verdict = result["report"].get("verdict")
    sys.stdout.flush()
    return EXIT_EXCEEDED if verdict is not None and not verdict["passed"] else 0
