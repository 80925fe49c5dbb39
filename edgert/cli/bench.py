"""`edgert bench MODEL ...` and `edgert bench compare OLD.json NEW.json`."""
from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from edgert.bench.results import BackendRun, BenchResult
from edgert.core.errors import ConfigError, EdgertError, ModelError


def register(sub) -> None:
    """Add the `bench` command to the `edgert` argument parser."""
    p = sub.add_parser("bench", help="measure a model on this device: every stage, backend and accuracy",
                       description="edgert bench MODEL [options]  |  edgert bench compare OLD.json NEW.json")
    p.add_argument("target", help="model file (.tflite, .onnx, .hef, .rknn), or 'compare'")
    p.add_argument("more", nargs="*", help=argparse.SUPPRESS)
    p.add_argument("--backend", default="auto", help="auto, cpu, onnx, coral, hailo, rknn, or all (default: auto)")
    p.add_argument("--all", action="store_true", help="every backend, side by side (same as --backend all)")
    p.add_argument("--frames", type=int, default=300, help="measured frames (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=20, help="warm-up frames, not measured (default: %(default)s)")
    p.add_argument("--source", default="synthetic", help="synthetic, a folder of images or a video file")
    p.add_argument("--src-size", default="1920x1080", help="frame size WxH (default: %(default)s)")
    p.add_argument("--src-format", default="BGR", help="frame pixel format (default: %(default)s; see edgert formats)")
    p.add_argument("--input-shape", help="model input shape, e.g. 1x224x224x3, for files that do not say it "
                   "(.rknn, .onnx with dynamic axes; default: the model card or bundle manifest)")
    p.add_argument("--input-dtype", choices=("uint8", "int8", "float32"),
                   help="model input type, with --input-shape (default: the card's, else uint8)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU interpreter threads, cpu and onnx (default: %(default)s)")
    p.add_argument("--pipelined", action="store_true", help="also measure throughput through the threaded pipeline")
    p.add_argument("--reference", help="reference model for --dataset (e.g. the fp32 original)")
    p.add_argument("--dataset", help="folder with one subfolder per class (or per identity)")
    p.add_argument("--task", choices=("classification", "embedding"), default="classification")
    p.add_argument("--labels", help="file with the model's class names, one per line (default: its model card)")
    p.add_argument("--json", help="write the results as JSON")
    p.add_argument("--csv", help="write the results as CSV")
    p.add_argument("--plot", help="write latency CDFs (and per-class accuracy) as a PNG")
    p.add_argument("--check-reference", nargs="?", const="auto", metavar="CSV",
                   help="compare against benchmarks/reference/<board>.csv (or this CSV)")
    p.add_argument("--threshold", type=float, default=0.10,
                   help="compare: relative regression that fails (default: %(default)s = 10%%)")
    p.add_argument("--root", default=None, help=argparse.SUPPRESS)  # sysfs root for tests
    p.set_defaults(func=main)


def _size(text: str) -> tuple:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:  # also a size with more digits than int() takes
        raise ConfigError(f"--src-size: expected WxH like 1920x1080, got {text!r}") from None
    return w, h


def plan_backends(model_path: Path, requested: str, root=None) -> list[tuple[str, str | None]]:
    """``[(backend, reason it is skipped or None)]`` for a request ("auto", a key, or "all")."""
    from edgert.backends import chooser
    from edgert.core import hardware
    from edgert.core.model_files import identify

    kind = identify(model_path).kind
    if requested != "all":
        return [(chooser.choose(kind, requested, lambda: hardware.detect(root)).KEY, None)]
    return [(c.key, c.reason) for c in chooser.candidates("all", lambda: hardware.detect(root), kind)]


def is_bundle(path: Path) -> bool:
    """A model bundle: a folder with manifest.json, or a tar of one."""
    import tarfile

    return (path.is_dir() and (path / "manifest.json").is_file()) or (path.is_file() and tarfile.is_tarfile(path))


def bundle_plan(bundle: Path, requested: str, root, workdir: Path):
    """``(manifest, [(backend, model file or None, options, reason skipped or None)])`` for a bundle's variants.

    A tar bundle is unpacked (safely) into `workdir`. Its signature is not checked here: the bench
    measures, `edgert model install` decides what may run.
    """
    from edgert.backends import chooser
    from edgert.bundles.archive import safe_extract
    from edgert.bundles.manifest import parse_manifest
    from edgert.bundles.targets import choose_variant
    from edgert.core import hardware

    if not bundle.is_dir():
        safe_extract(bundle, workdir / "bundle")
        bundle = workdir / "bundle"
    manifest = parse_manifest((bundle / "manifest.json").read_bytes(), str(bundle))
    hw = hardware.detect(root)
    plan = []
    for key, why in ((c.key, c.reason) for c in chooser.candidates(requested, hw)):
        if not any(v.backend == key for v in manifest.variants):
            plan.append((key, None, {}, f"the bundle has no {key} variant"))
            continue
        if why is not None:
            plan.append((key, None, {}, why))
            continue
        try:  # the variant for this device's chip (hailo8 / hailo8l, rk3588 / ...)
            variant = choose_variant(manifest.variants, key, hw)
        except EdgertError as exc:
            plan.append((key, None, {}, str(exc)))
            continue
        plan.append((key, bundle / variant.file, dict(variant.options), None))
    if requested == "auto":
        runnable = [p for p in plan if p[3] is None]
        plan = runnable[:1] or plan
    return manifest, plan


def main(args) -> int:
    if not 0 <= args.threshold < float("inf"):
        raise ConfigError(f"--threshold: expected a relative regression >= 0 (0.1 = 10%), got {args.threshold}")
    if args.target == "compare":
        return compare_main(args)
    if args.more:
        raise ConfigError(f"bench: unexpected arguments {' '.join(args.more)!r}")
    return bench_main(args)


def bench_main(args) -> int:
    from edgert.bench import input_spec
    from edgert.bench.runner import BenchSettings
    from edgert.models.cards import read_card

    model_path = Path(args.target)
    if not 1 <= args.frames <= 1_000_000 or not 0 <= args.warmup <= 100_000:
        raise ConfigError(f"--frames must be 1..1000000 and --warmup 0..100000, got {args.frames} and {args.warmup}")
    if not 1 <= args.threads <= 64:  # the cpu backend's num_threads range, checked before any model loads
        raise ConfigError(f"--threads must be 1..64, got {args.threads}")
    settings = BenchSettings(frames=args.frames, warmup=args.warmup, src_format=args.src_format,
                             src_size=_size(args.src_size), threads=args.threads, pipelined=args.pipelined)
    requested = "all" if args.all else args.backend
    cli_spec = {"input_shape": input_spec.parse_shape(args.input_shape) if args.input_shape else None,
                "input_dtype": args.input_dtype}
    with tempfile.TemporaryDirectory(prefix="edgert-bench-") as work:
        if is_bundle(model_path):
            manifest, plan = bundle_plan(model_path, requested, args.root, Path(work))
            settings.preprocess = manifest.input.preprocess_kwargs()
            labels = list(manifest.labels)
            plan = input_spec.apply(plan, cli_spec, {}, input_spec.MANIFEST, model_path)
        else:
            plan = [(key, model_path, {}, skip) for key, skip in plan_backends(model_path, requested, args.root)]
            labels = None
            plan = input_spec.apply(plan, cli_spec, read_card(model_path).input_spec, input_spec.CARD,
                                    model_path)
        return _bench(args, model_path, plan, settings, requested, labels)


def _bench(args, model_path: Path, plan, settings, requested: str, labels) -> int:
    from edgert.bench import context, report
    from edgert.bench.frames import load_frames
    from edgert.bench.runner import run_backend

    for option, path in (("--json", args.json), ("--csv", args.csv), ("--plot", args.plot)):
        if path:  # checked before minutes of timing, not after
            report.check_output_path(path, option)
    dataset = None
    if args.dataset:  # checked before minutes of timing, not after
        from edgert.bench.dataset import ImageFolder

        dataset = ImageFolder(args.dataset)
    frames = load_frames(args.source, settings.src_size, settings.src_format)
    before = context.device_context(args.root, model_path)
    runs, samples = [], {}
    for key, path, options, skip in plan:
        if skip is not None:
            runs.append(BackendRun(key, "skipped", skip, model=str(path or model_path)))
            continue
        bar = report.Progress(f"{key:6s}")
        run = run_backend(path, key, frames, replace(settings, options=options), progress=bar)
        bar.close()
        samples[key] = getattr(run, "samples", None)
        runs.append(run)
    if not any(r.status == "ok" for r in runs):  # nothing measured because of bad input (model, card, options)
        bad = next((r.error for r in runs if isinstance(getattr(r, "error", None), (ModelError, ConfigError))), None)
        if bad is not None:
            raise bad
    after = context.device_context(args.root)
    ctx = dict(before)
    ctx["warnings"] = context.warnings(before, after)
    ran_key, ran, ran_options = next(((key, path, options) for key, path, options, skip in plan if skip is None),
                                     ("cpu", model_path, {}))
    accuracy = (_accuracy(args, ran, ran_key, dataset, labels, settings.preprocess, ran_options)
                if dataset is not None else None)
    result = BenchResult(datetime.now(timezone.utc).isoformat(timespec="seconds"),
                         {"frames": settings.frames, "warmup": settings.warmup, "source": args.source,
                          "src_size": list(settings.src_size), "src_format": settings.src_format,
                          "threads": settings.threads, "pipelined": settings.pipelined, "backend": requested,
                          "model": str(model_path)},
                         ctx, runs, accuracy)
    print(report.format_table(result))
    if args.json:
        report.write_json(result, args.json)
    if args.csv:
        report.write_csv(result, args.csv)
    if args.plot:
        from edgert.bench.plot import plot

        plot(result, args.plot, samples={k: v for k, v in samples.items() if v is not None})
    code = 0 if any(r.status == "ok" for r in runs) else 1
    if args.check_reference:
        code = max(code, _check_reference(result, args.check_reference, args.threshold))
    return code


def _accuracy(args, model_path: Path, backend: str, dataset, bundle_labels=None, bundle_preprocess=None,
              options=None) -> dict:
    from edgert.bench.accuracy import evaluate_classifier, evaluate_embedder
    from edgert.models.resolve import resolve

    labels = bundle_labels
    if args.labels:
        labels = [line.strip() for line in Path(args.labels).read_text().splitlines() if line.strip()]
    task = "embed" if args.task == "embedding" else "classify"
    entry = resolve(model_path, task, backend=backend, options=options, labels=labels or None,
                    preprocess=bundle_preprocess)
    with entry.model as model:
        reference = resolve(args.reference, task) if args.reference else None
        ref_model, ref_pre = (reference.model, reference.preprocess or None) if reference else (None, None)
        try:
            if task == "embed":
                return evaluate_embedder(model, dataset, reference=ref_model, preprocess=entry.preprocess or None,
                                         reference_preprocess=ref_pre)
            return evaluate_classifier(model, dataset, reference=ref_model, labels=entry.labels or None,
                                       preprocess=entry.preprocess or None, reference_preprocess=ref_pre)
        finally:
            if ref_model is not None:
                ref_model.close()


def _check_reference(result: BenchResult, which: str, threshold: float) -> int:
    from edgert.bench.compare import check_reference, reference_for

    path = reference_for(result.context.get("board", "")) if which == "auto" else Path(which)
    if path is None:
        print(f"no reference results for board {result.context.get('board')!r} in benchmarks/reference/",
              file=sys.stderr)
        return 0
    comparison = check_reference(result, path, threshold=threshold)
    print("\n".join(comparison.lines()))
    return 3 if comparison.regressions else 0


def compare_main(args) -> int:
    from edgert.bench.compare import compare, load_result

    if len(args.more) != 2:
        raise ConfigError("bench compare: expected two result files: OLD.json NEW.json")
    old, new = (load_result(p) for p in args.more)
    comparison = compare(old, new, threshold=args.threshold, old_label=args.more[0], new_label=args.more[1])
    print("\n".join(comparison.lines()))
    return 3 if comparison.regressions else 0
