"""Static full-integer int8 quantisation of a float ``.tflite`` with ai-edge-quantizer (no TensorFlow).

The recipe is ai-edge-quantizer's static one (int8 weights, per channel or per tensor; int8
activations from calibration ranges); its result takes and gives int8 tensors at the graph's edges.
One calibrator runs the samples in chunks: ai-edge-quantizer walks its calibration data twice (once
to count it), and chunks keep only a few tensors in memory.

Activation ranges (`RANGES`): "minmax" takes each tensor's min and max over all the calibration
samples, as TensorFlow's converter and ONNX Runtime's MinMax do. ai-edge-quantizer's own default,
"moving-average", keeps ``0.95 * old + 0.05 * new`` of each sample's min/max: narrower ranges that
depend on the order of the samples and clip what the last ~20 did not reach. On the project's
MobileNetV2 classifier it agreed with the float model on 99.3% of the validation set against 99.9%
for min/max (benchmarks/quantize_classifier.json).
"""
from __future__ import annotations

import io
import warnings
from contextlib import redirect_stderr
from dataclasses import dataclass
from importlib import metadata

import numpy as np

from edgert.core.errors import BackendUnavailable, ConfigError, ModelError, one_line
from edgert.core.model_files import tflite_custom_ops

CHUNK = 32
#: ``--method`` choices for .tflite: how calibration turns each sample's min/max into a tensor's range.
RANGES = ("minmax", "moving-average")
#: Operators that stay float without any arithmetic on activations (shape bookkeeping, the edges).
_NO_ARITHMETIC = {"QUANTIZE", "DEQUANTIZE", "SHAPE"}
_QUANTISED_TYPES = ("INT8", "UINT8", "INT16", "INT4")


@dataclass(frozen=True)
class FloatModel:
    """A float TFLite model ready to quantise.

    Attributes:
        signature: The signature key calibration runs (ai-edge-quantizer calibrates signatures).
        input_name: The signature's one input.
    """

    signature: str
    input_name: str


@dataclass(frozen=True)
class Quantised:
    """A quantised model.

    Attributes:
        data: The int8 ``.tflite`` flatbuffer.
        float_ops: Operators left computing in float (names, in graph order, no repeats).
        tool: ``"ai-edge-quantizer <version>"``.
        recipe: What was asked: ``{"weights", "activations", "granularity"}``.
    """

    data: bytes
    float_ops: tuple
    tool: str
    recipe: dict


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _type_names(schema) -> dict:
    return {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}


def _op_names(schema) -> dict:
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def inspect_float(data: bytes, name: str = "model") -> FloatModel:
    """Check that `data` is a float TFLite classifier-style model with one signature input.

    Raises:
        ModelError: not a TFLite model, already quantised (integer input or quantised weights), an
            input that is not float32, or no signature / several inputs.
    """
    tflite_custom_ops(data, name)  # refuses non-TFLite and corrupted files
    schema = _schema()
    model = schema.Model.GetRootAsModel(data, 0)
    types = _type_names(schema)
    sg = model.Subgraphs(0)
    in_types = [types.get(sg.Tensors(sg.Inputs(i)).Type(), "?") for i in range(sg.InputsLength())]
    quantised_weights = 0
    for t in range(sg.TensorsLength()):
        tensor = sg.Tensors(t)
        buf = model.Buffers(tensor.Buffer()) if tensor.Buffer() > 0 else None
        constant = buf is not None and (buf.DataLength() > 0 or buf.Offset() > 1)
        q = tensor.Quantization()
        if constant and types.get(tensor.Type()) in _QUANTISED_TYPES and q is not None and q.ScaleLength() > 0:
            quantised_weights += 1
    if any(t in _QUANTISED_TYPES for t in in_types) or quantised_weights:
        what = ", ".join(filter(None, [f"{t.lower()} input" for t in in_types if t in _QUANTISED_TYPES]
                                + [f"{quantised_weights} quantised weight tensor(s)" if quantised_weights else ""]))
        raise ModelError(f"{name}: already quantised ({what}); give the float model")
    if in_types != ["FLOAT32"]:
        raise ModelError(f"{name}: inputs {', '.join(in_types) or 'none'}; quantize takes a model with one "
                         "float32 image input")
    if model.SignatureDefsLength() < 1:
        raise ModelError(f"{name}: the model has no signature; ai-edge-quantizer calibrates signatures "
                         "(export it with one, e.g. from Keras or LiteRT's converter)")
    sig = model.SignatureDefs(0)
    if sig.InputsLength() != 1:
        raise ModelError(f"{name}: signature {sig.SignatureKey().decode()!r} has {sig.InputsLength()} inputs; "
                         "quantize takes one image input")
    return FloatModel(sig.SignatureKey().decode(), sig.Inputs(0).Name().decode())


def float_ops(data: bytes) -> tuple:
    """Operators of a quantised model that still compute on float activations."""
    schema = _schema()
    model = schema.Model.GetRootAsModel(data, 0)
    ops, types = _op_names(schema), _type_names(schema)
    found = []
    for g in range(model.SubgraphsLength()):
        sg = model.Subgraphs(g)
        for i in range(sg.OperatorsLength()):
            op = sg.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            name = ops.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
            inputs = [sg.Tensors(op.Inputs(j)) for j in range(op.InputsLength()) if op.Inputs(j) >= 0]
            if name not in _NO_ARITHMETIC and any(types.get(t.Type()) == "FLOAT32" and t.Buffer() == 0
                                                  for t in inputs) and name not in found:
                found.append(name)
    return tuple(found)


def _edge_types(data: bytes) -> list:
    schema = _schema()
    model = schema.Model.GetRootAsModel(data, 0)
    types, sg = _type_names(schema), model.Subgraphs(0)
    return ([types.get(sg.Tensors(sg.Inputs(i)).Type()) for i in range(sg.InputsLength())]
            + [types.get(sg.Tensors(sg.Outputs(i)).Type()) for i in range(sg.OutputsLength())])


def check_loads(data: bytes, name: str = "model") -> None:
    """Raise ModelError unless LiteRT loads and allocates the flatbuffer `data` (checked before writing it)."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        Interpreter(model_content=data).allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"{name}: the quantised model does not load in LiteRT ({one_line(exc)}); nothing written") \
            from None


def _import_quantizer():
    try:
        from ai_edge_quantizer import calibrator, qtyping, quantizer, recipe_manager
    except ImportError as exc:
        raise BackendUnavailable("ai-edge-quantizer is not installed: pip install 'edgert[quantize]' "
                                 "(or ai-edge-quantizer)") from exc
    return quantizer, qtyping, calibrator, recipe_manager


def widest_range(qsv: dict, new: dict) -> dict:
    """The range over both: elementwise min of the mins and max of the maxes (the "minmax" update)."""
    if not qsv:
        return new
    return {**new, "min": np.minimum(qsv["min"], new["min"]), "max": np.maximum(qsv["max"], new["max"])}


def quantize_tflite(data: bytes, model: FloatModel, samples, *, per_channel: bool = True, ranges: str = "minmax",
                    progress=None, name: str = "model") -> Quantised:
    """Quantise a float model to static full-integer int8.

    Args:
        data: The float flatbuffer (checked by `inspect_float`).
        model: Its `FloatModel`.
        samples: Model-ready float tensors (e.g. a `CalibrationReader`), iterated once.
        per_channel: Per-channel weight scales (False: one scale per weight tensor).
        ranges: How activation ranges are calibrated, one of `RANGES` (see the module docstring).
        progress: Called as ``progress(done)`` with samples calibrated so far.
        name: The model's name in error messages.

    Raises:
        BackendUnavailable: ai-edge-quantizer is not installed.
        ModelError: the quantiser failed, or left the model's input or output in float (the message
            names the operators it could not quantise).
        ConfigError: an unknown `ranges`, or from the calibration samples.
    """
    if ranges not in RANGES:
        raise ConfigError(f"--method {ranges}: .tflite models calibrate with {' or '.join(RANGES)}")
    quantizer, qtyping, calibrator, recipe_manager = _import_quantizer()
    granularity = qtyping.QuantGranularity.CHANNELWISE if per_channel else qtyping.QuantGranularity.TENSORWISE
    with warnings.catch_warnings():
        # the calibrator keeps all tensors on purpose and says so on every chunk
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
        try:
            q = quantizer.Quantizer(bytearray(data))
            q.add_static_config(".*", qtyping.TFLOperationName.ALL_SUPPORTED, activation_num_bits=8,
                                weight_num_bits=8, weight_granularity=granularity)
            quiet = io.StringIO()  # ai-edge-quantizer's tqdm bars; edgert draws its own
            recipe = recipe_manager.RecipeManager()
            recipe.load_quantization_recipe(q.get_quantization_recipe())
            update = {"qsv_update_func": widest_range} if ranges == "minmax" else {}
            calib = calibrator.Calibrator(bytearray(data), num_threads=1, **update)
            chunk, done = [], 0
            for tensor in samples:
                chunk.append({model.input_name: tensor})
                if len(chunk) == CHUNK:
                    with redirect_stderr(quiet):
                        calib.calibrate({model.signature: chunk}, recipe)
                    done, chunk = done + len(chunk), []
                    if progress is not None:
                        progress(done)
            if chunk:
                with redirect_stderr(quiet):
                    calib.calibrate({model.signature: chunk}, recipe)
                done += len(chunk)
                if progress is not None:
                    progress(done)
            if not done:
                raise ConfigError("calibration: no samples")
            ranges_found = calib.get_model_qsvs()
            with redirect_stderr(quiet):
                result = q.quantize(ranges_found, enable_progress_report=False)
        except (ConfigError, ModelError):
            raise
        except (ValueError, RuntimeError, KeyError, NotImplementedError) as exc:
            raise ModelError(f"{name}: ai-edge-quantizer failed: {one_line(exc)}") from None
    out = bytes(result.quantized_model)
    left = float_ops(out)
    if any(t != "INT8" for t in _edge_types(out)):
        raise ModelError(f"{name}: ai-edge-quantizer could not make it full-integer: operators left in float: "
                         f"{', '.join(left) or 'none named'}")
    return Quantised(out, left, f"ai-edge-quantizer {metadata.version('ai-edge-quantizer')}",
                     {"weights": "int8", "activations": "int8",
                      "granularity": "per-channel" if per_channel else "per-tensor", "method": ranges})
