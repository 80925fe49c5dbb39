"""One `edgert quantize` run: check everything, calibrate, quantise, write model and card, then report.

Every check that can refuse the inputs runs before any output is written (the model, the output
path, the labels against the validation folder's classes, the calibration folder); a refusal leaves
no file behind.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import edgert
from edgert.bench.accuracy import output_indices
from edgert.bench.context import file_sha256
from edgert.bench.dataset import ImageFolder
from edgert.core.errors import ConfigError, ModelError
from edgert.models.cards import read_card
from edgert.quantize import report as rep
from edgert.quantize.calibration import CalibrationReader
from edgert.quantize.output import check_output, write_model
from edgert.quantize.tflite import inspect_float, quantize_tflite

TASKS = ("classify",)


@dataclass
class QuantizeOptions:
    """What to quantise and how (the command line's options).

    Attributes:
        model: The float model file (``.tflite``).
        calibration: The calibration image folder.
        out: The int8 model to write (``.tflite``; its card goes beside it as ``.json``).
        validation: A class-per-folder image folder for the report (None: no accuracy report).
        task: "classify" (detect and embed are not implemented yet).
        per_channel: Per-channel weight scales (False: per tensor).
        samples: Calibration images to draw (None: all).
        max_drop: Allowed top-1 drop overall, in points.
        max_class_drop: Allowed top-1 drop in any class, in points.
        latency_frames: Frames timed per model on the CPU backend (0: no latency).
    """

    model: str
    calibration: str
    out: str
    validation: str | None = None
    task: str = "classify"
    per_channel: bool = True
    samples: int | None = None
    max_drop: float = 1.0
    max_class_drop: float = 2.0
    latency_frames: int = 100


def _check_thresholds(opts: QuantizeOptions) -> None:
    for flag, v in (("--max-drop", opts.max_drop), ("--max-class-drop", opts.max_class_drop)):
        if not (isinstance(v, (int, float)) and np.isfinite(v) and v >= 0):
            raise ConfigError(f"{flag}: expected a number of points >= 0, got {v!r}")
    if opts.task not in TASKS:
        raise ConfigError(f"--task {opts.task}: not supported yet (supported: {', '.join(TASKS)})")


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
    _check_thresholds(opts)
    model_path = Path(opts.model)
    if model_path.suffix != ".tflite":
        raise ConfigError(f"{model_path}: quantize takes float .tflite models (.onnx is not supported yet)")
    try:
        data = model_path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{model_path}: cannot read it ({exc.strerror or exc})") from None
    out = check_output(model_path, opts.out)
    float_model = inspect_float(data, str(model_path))
    card = read_card(model_path)
    with edgert.load(model_path, backend="cpu") as m:
        spec = m.inputs[0]
        n_classes = int(np.prod(m.outputs[0].shape))
    if card.labels and len(card.labels) != n_classes:
        raise ModelError(f"{model_path}: its card names {len(card.labels)} classes, the model outputs {n_classes}")
    if opts.validation is not None:
        output_indices(ImageFolder(opts.validation).classes, card.labels, n_classes, "model")
    reader = CalibrationReader(spec, opts.calibration, opts.samples, card.preprocess, min_samples=n_classes)
    calibrate = None if progress is None else (lambda done: progress("calibrate", done, len(reader)))
    quantised = quantize_tflite(data, float_model, reader, per_channel=opts.per_channel, progress=calibrate,
                                name=str(model_path))
    quantization = {"tool": quantised.tool, **quantised.recipe, "float_ops": list(quantised.float_ops),
                    "calibration": reader.summary.as_dict(),
                    "parent": {"file": model_path.name, "sha256": file_sha256(model_path)}}
    new_card = {"name": card.name, "version": card.version, "model": out.name, "task": opts.task,
                "classes": list(card.labels), "preprocess": dict(card.preprocess), "quantization": quantization}
    model_file, card_file = write_model(out, quantised.data, new_card)

    report = {"sizes": rep.sizes(model_path, model_file)}
    if opts.latency_frames:
        report["latency"] = {"float": rep.latency(model_path, card.preprocess, opts.latency_frames),
                             "int8": rep.latency(model_file, card.preprocess, opts.latency_frames)}
    if opts.validation is not None:
        validate = None if progress is None else (lambda done, total: progress("validate", done, total))
        report["accuracy"] = rep.classify_accuracy(model_path, model_file, opts.validation, card.labels,
                                                   card.preprocess, progress=validate)
        report["verdict"] = rep.verdict(report["accuracy"], opts.max_drop, opts.max_class_drop)
    return {"model": str(model_file), "card": str(card_file), "calibration": reader.summary.as_dict(),
            "quantization": quantization, "report": report}
