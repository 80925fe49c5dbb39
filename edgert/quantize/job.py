"""One `edgert quantize` run: check everything, calibrate, quantise, write model and card, then report.

Every check that can refuse the inputs runs before any output is written (the model, the output
path, the labels against the validation folder's classes, the calibration folder); a refusal leaves
no file behind.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

import edgert
from edgert.bench.accuracy import output_indices
from edgert.bench.context import file_sha256
from edgert.bench.dataset import ImageFolder
from edgert.bench.detection import read_detection_labels
from edgert.core.errors import ConfigError, ModelError
from edgert.models.cards import read_card
from edgert.models.tasks import task_name
from edgert.quantize import report as rep
from edgert.quantize.calibration import calibration_set
from edgert.quantize.edges import EDGE_TYPES, set_edge_types
from edgert.quantize.output import check_output, write_model
from edgert.quantize.tflite import RANGES, check_loads, inspect_float, quantize_tflite

TASKS = ("classify", "detect", "embed")


@dataclass
class QuantizeOptions:
    """What to quantise and how (the command line's options).

    Attributes:
        model: The float model file (``.tflite`` or ``.onnx``).
        calibration: The calibration set: an image folder, a video file or ``.npy`` tensors.
        out: The int8 model to write (the input's suffix; its card goes beside it as ``.json``).
        validation: The report's labelled set (None: no accuracy report): classify and embed take
            a class- (identity-) per-folder image folder, detect a COCO ``.json`` or a YOLO-txt folder.
        task: "classify", "detect" or "embed" (None: the model card's task, else classify).
        per_channel: Per-channel weight scales (False: per tensor).
        samples: Calibration samples to draw (None: all).
        max_drop: Allowed drop of the task's main figure (top-1, mAP@0.5, Rank-1), in points.
        max_class_drop: Allowed drop in any class (top-1 or AP@0.5), in points.
        latency_frames: Frames timed per model on the CPU backend (0: no latency).
        input_type: The int8 model's input type: "int8", "uint8" or "float32".
        output_type: Its output type, likewise.
        method: Calibration method: "minmax" (.tflite and .onnx: min and max over all samples),
            "moving-average" (.tflite: ai-edge-quantizer's default), "entropy" or "percentile" (.onnx).
        target: None (a .tflite or .onnx for edgert's backends) or "rknn" (a .rknn, rknn-toolkit2).
        soc: The Rockchip SoC with ``target="rknn"`` (e.g. "rk3588").
        allow_float_ops: Keep a result in which the quantiser left operators computing in float
            (False: refuse it, naming them; an NPU would run such a model partly on the CPU).
    """

    model: str
    calibration: str
    out: str
    validation: str | None = None
    task: str | None = None
    per_channel: bool = True
    samples: int | None = None
    max_drop: float = 1.0
    max_class_drop: float = 2.0
    latency_frames: int = 100
    input_type: str = "int8"
    output_type: str = "int8"
    method: str = "minmax"
    target: str | None = None
    soc: str | None = None
    allow_float_ops: bool = False


def _check_options(opts: QuantizeOptions) -> None:
    for flag, v in (("--max-drop", opts.max_drop), ("--max-class-drop", opts.max_class_drop)):
        if not (isinstance(v, (int, float)) and np.isfinite(v) and v >= 0):
            raise ConfigError(f"{flag}: expected a number of points >= 0, got {v!r}")
    if opts.task is not None and opts.task not in TASKS:
        raise ConfigError(f"--task {opts.task}: expected one of {', '.join(TASKS)}")
    for flag, v in (("--input-type", opts.input_type), ("--output-type", opts.output_type)):
        if v not in EDGE_TYPES:
            raise ConfigError(f"{flag} {v}: expected one of {', '.join(EDGE_TYPES)}")


def _task(opts: QuantizeOptions, card, model_path) -> str:
    task = opts.task or task_name(card.task, f"{model_path} card") or "classify"
    if task not in TASKS:
        raise ConfigError(f"{model_path}: task {task!r} cannot be quantised here (supported: {', '.join(TASKS)})")
    return task


def _validation_set(opts: QuantizeOptions, task: str, labels, n_out: int):
    """The validation set, checked against the model's labels before anything is written (None: none)."""
    if opts.validation is None:
        return None
    if task == "classify":
        output_indices(ImageFolder(opts.validation).classes, labels, n_out, "model")
        return opts.validation
    if task == "detect":
        return read_detection_labels(opts.validation, labels, len(labels) or n_out)
    ImageFolder(opts.validation)  # embed: one folder per identity, any names
    return opts.validation


def run(opts: QuantizeOptions, progress=None) -> dict:
    """Quantise `opts.model` and report on it.

    Args:
        opts: The options.
        progress: Called as ``progress(stage, done, total)`` (stage "calibrate" or "validate").

    Returns:
        ``{"model", "card", "calibration", "quantization", "report"}``; ``report`` holds ``sizes``,
        ``latency``, and with a validation folder ``accuracy`` and ``verdict``.

    Raises:
        ModelError, ConfigError, BackendUnavailable: bad input, each in one line; nothing written.
    """
    _check_options(opts)
    model_path = Path(opts.model)
    card = read_card(model_path)
    prepared = _prepare(opts, model_path, card)
    out = check_output(model_path, opts.out, ".rknn" if opts.target == "rknn" else model_path.suffix)
    task = _task(opts, card, model_path)
    with edgert.load(model_path, backend=prepared.backend, **prepared.options) as m:
        spec = m.inputs[0]
        n_out = int(np.prod(m.outputs[0].shape))
    if task == "classify" and card.labels and len(card.labels) != n_out:
        raise ModelError(f"{model_path}: its card names {len(card.labels)} classes, the model outputs {n_out}")
    validation = _validation_set(opts, task, card.labels, n_out)
    reader = calibration_set(spec, opts.calibration, opts.samples, prepared.calibration_preprocess or card.preprocess,
                             min_samples=n_out if task == "classify" else 1)
    calibrate = None if progress is None else (lambda done: progress("calibrate", done, len(reader)))
    quantised = prepared.quantise(reader, calibrate)
    if quantised.float_ops and not opts.allow_float_ops:
        raise ModelError(f"{model_path}: the quantiser cannot make these operators int8: "
                         f"{', '.join(quantised.float_ops)}; nothing written (--allow-float-ops keeps them in float)")
    quantization = {"tool": quantised.tool, **quantised.recipe, "input_type": opts.input_type,
                    "output_type": opts.output_type, "float_ops": list(quantised.float_ops),
                    "calibration": reader.summary.as_dict(),
                    "parent": {"file": model_path.name, "sha256": file_sha256(model_path)}}
    new_card = {"name": card.name, "version": card.version, "model": out.name, "task": task,
                "classes": list(card.labels), "preprocess": dict(card.preprocess), **prepared.card_extra,
                "quantization": quantization}
    model_file, card_file = write_model(out, quantised.data, new_card)
    report = _report(opts, task, prepared, model_path, model_file, validation, card, progress)
    return {"model": str(model_file), "card": str(card_file), "task": task, "calibration": reader.summary.as_dict(),
            "quantization": quantization, "report": report}


@dataclass
class _Prepared:
    """A float model checked and ready to quantise: how edgert runs it and how it is quantised."""

    backend: str
    options: dict
    quantise: object  # (samples, progress) -> Quantised
    card_extra: dict
    calibration_preprocess: dict | None = None  # None: the card's
    runs_here: bool = True  # the result runs on this machine's backends (a .rknn does not)
    simulator: object = None  # path -> Model for the report where it does not (rknn-toolkit2's simulator)


def _read(model_path: Path) -> bytes:
    try:
        return model_path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{model_path}: cannot read it ({exc.strerror or exc})") from None


def _prepare(opts: QuantizeOptions, model_path: Path, card) -> _Prepared:
    """Check the float model (before anything is written) and choose its quantiser."""
    if opts.target is not None:
        return _prepare_rknn(opts, model_path, card)
    if opts.soc is not None:
        raise ConfigError("--soc: only with --target rknn")
    if model_path.suffix == ".tflite":
        if opts.method not in RANGES:
            raise ConfigError(f"--method {opts.method}: .tflite models calibrate with {' or '.join(RANGES)}; "
                              "entropy and percentile are for .onnx models")
        data = _read(model_path)
        float_model = inspect_float(data, str(model_path))

        def quantise(samples, progress):
            q = quantize_tflite(data, float_model, samples, per_channel=opts.per_channel, ranges=opts.method,
                                progress=progress, name=str(model_path))
            data_out = set_edge_types(q.data, opts.input_type, opts.output_type, str(model_path))
            check_loads(data_out, str(model_path))
            return replace(q, data=data_out)

        return _Prepared("cpu", {}, quantise, {})
    if model_path.suffix == ".onnx":
        from edgert.quantize import onnx as onnx_quant

        if opts.input_type == "uint8" or opts.output_type == "uint8":
            raise ConfigError("--input-type/--output-type uint8: ONNX QDQ models keep float32 edges in the file "
                              "(edgert's onnx backend gives their int8 tensors); use int8 or float32")
        if opts.method not in onnx_quant.METHODS:
            raise ConfigError(f"--method {opts.method}: .onnx models calibrate with {', '.join(onnx_quant.METHODS)}")
        _read(model_path)
        onnx, _ = onnx_quant.import_onnx()
        proto, shape = onnx_quant.inspect_float(onnx, model_path, card.input_spec.get("input_shape"))

        def quantise(samples, progress):
            return onnx_quant.quantize_onnx(proto, samples, per_channel=opts.per_channel, method=opts.method,
                                            progress=progress, name=str(model_path))

        return _Prepared("onnx", {"input_shape": shape}, quantise, {"input_shape": list(shape)})
    raise ConfigError(f"{model_path}: quantize takes float .tflite or .onnx models")


def _prepare_rknn(opts: QuantizeOptions, model_path: Path, card) -> _Prepared:
    from edgert.quantize import rknn

    if opts.target != "rknn":
        raise ConfigError(f"--target {opts.target}: expected rknn")
    from edgert.quantize import onnx as onnx_quant
    from edgert.backends import onnx_graph

    rknn.check_target(model_path, Path(opts.out), opts.soc)
    _read(model_path)
    onnx, _ = onnx_quant.import_onnx()
    proto, shape = onnx_quant.inspect_float(onnx, model_path, card.input_spec.get("input_shape"))
    conversion = rknn.Conversion(model_path, onnx_graph.graph_inputs(proto.graph)[0].name, shape, card.preprocess,
                                 opts.soc, opts.method, opts.per_channel, simulate=opts.validation is not None)
    pixels = {**card.preprocess, "mean": 0.0, "std": 1.0}  # the .rknn normalises on the NPU
    return _Prepared("onnx", {"input_shape": shape}, conversion.quantise,
                     {"input_shape": list(rknn.device_shape(shape)), "input_dtype": "uint8", "preprocess": pixels},
                     calibration_preprocess=pixels, runs_here=False, simulator=conversion.open)


def _report(opts, task, prepared: _Prepared, float_path, int8_path, validation, card, progress) -> dict:
    runtime = (prepared.backend, prepared.options)
    report = {"sizes": rep.sizes(float_path, int8_path), "backend": prepared.backend}
    if not prepared.runs_here:
        report["note"] = "the result runs on its device: measure it there with edgert bench --reference"
        if prepared.simulator is None or validation is None:
            return report
        runtime = prepared.simulator
        report["backend"] = "onnx (float), rknn-toolkit2 simulator (int8)"
        report["note"] = ("int8 accuracy from rknn-toolkit2's simulator; latency on the device: "
                          "edgert bench --reference")
    elif opts.latency_frames:
        report["latency"] = {key: rep.latency(path, card.preprocess, opts.latency_frames, runtime=runtime)
                             for key, path in (("float", float_path), ("int8", int8_path))}
    if validation is not None:
        validate = None if progress is None else (lambda done, total: progress("validate", done, total))
        report["accuracy"] = _accuracy(task, float_path, int8_path, validation, card, runtime, progress=validate)
        report["verdict"] = rep.verdict(report["accuracy"], opts.max_drop, opts.max_class_drop, task)
    return report


def _accuracy(task: str, float_path, int8_path, validation, card, runtime, progress=None) -> dict:
    if task == "classify":
        return rep.classify_accuracy(float_path, int8_path, validation, card.labels, card.preprocess,
                                     progress=progress, runtime=runtime)
    if task == "detect":
        return rep.detect_accuracy(float_path, int8_path, validation, list(card.labels), card.preprocess,
                                   progress=progress, runtime=runtime)
    return rep.embed_accuracy(float_path, int8_path, validation, card.preprocess, progress=progress,
                              runtime=runtime)
