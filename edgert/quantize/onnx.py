"""Static int8 quantisation of a float ``.onnx`` with ONNX Runtime's ``quantize_static`` (QDQ, per-channel weights).

Calibration feeds the same model-ready tensors as for a ``.tflite`` (`edgert.quantize.calibration`, the
model card's preprocessing through edgert's `Preprocessor`) through a ``CalibrationDataReader``. The
calibration method is ONNX Runtime's: MinMax, Entropy or Percentile. Dynamic input dimensions are
fixed first (a leading batch dimension to 1, others from the card's ``input_shape``), so the result
loads without options. The QDQ file keeps float32 edges, as ONNX Runtime's quantiser writes them;
edgert's onnx backend presents its inner int8 tensors (``quantized_io``), as an int8 ``.tflite`` does.
"""
from __future__ import annotations

import tempfile
from importlib import metadata
from pathlib import Path

from edgert.backends import onnx_graph
from edgert.core.errors import BackendUnavailable, ConfigError, ModelError, one_line
from edgert.quantize.tflite import Quantised

METHODS = ("minmax", "entropy", "percentile")
_QUANTISED_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
                  "MatMulInteger", "DynamicQuantizeLinear", "QGemm"}
_NO_ARITHMETIC = {"QuantizeLinear", "DequantizeLinear", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze",
                  "Identity", "Shape", "Constant"}


def import_onnx():
    """``(onnx, onnxruntime.quantization)``, or a one-line `BackendUnavailable`."""
    try:
        import onnx
        from onnxruntime import quantization
    except ImportError as exc:
        raise BackendUnavailable("quantizing .onnx needs ONNX Runtime and onnx: pip install 'edgert[onnx]'") from exc
    return onnx, quantization


def _fixed_shape(model, card_shape, name: str) -> tuple:
    """Fix the one input's dynamic dimensions in `model` (batch -> 1, the rest from the card); the shape."""
    inputs = onnx_graph.graph_inputs(model.graph)
    if len(inputs) != 1:
        raise ModelError(f"{name}: {len(inputs)} inputs; quantize takes a model with one image input")
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in inputs[0].type.tensor_type.shape.dim]
    if card_shape:
        shape = tuple(card_shape)
    elif dims and all(d is not None for d in dims[1:]):
        shape = (1, *dims[1:])
    else:
        raise ConfigError(f"{name}: input {inputs[0].name!r} has dynamic dimensions beyond the batch; give its "
                          "shape as input_shape in the model card, e.g. [1, 3, 224, 224]")
    onnx_graph.fix_input_shapes(model, shape, name)
    return shape


def inspect_float(onnx, path, card_shape=None):
    """The float model, its input shape fixed: ``(ModelProto, input_shape)``.

    Raises:
        ModelError: not an ONNX model, already quantised (names the quantised operators), an input that is
            not float32, several inputs.
        ConfigError: dynamic dimensions the card does not fix.
    """
    model = onnx_graph.read(onnx, path)
    quantised = sorted({n.op_type for n in model.graph.node if n.op_type in _QUANTISED_OPS})
    if quantised:
        raise ModelError(f"{path}: already quantised ({', '.join(quantised)} operators); give the float model")
    shape = _fixed_shape(model, card_shape, str(path))
    elem = onnx_graph.graph_inputs(model.graph)[0].type.tensor_type.elem_type
    if elem != onnx.TensorProto.FLOAT:
        raise ModelError(f"{path}: input of type {onnx.TensorProto.DataType.Name(elem)}; quantize takes a float32 "
                         "image input")
    return model, shape


def float_ops(model) -> tuple:
    """Operators of a QDQ model that compute on float tensors: an input not produced by a DequantizeLinear."""
    from_dq = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    weights = {t.name for t in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type in _NO_ARITHMETIC or node.op_type in found:
            continue
        activations = [i for i in node.input if i and i not in weights]
        if any(i not in from_dq for i in activations):
            found.append(node.op_type)
    return tuple(found)


def _reader(quantization, input_name: str, samples, progress):
    class Reader(quantization.CalibrationDataReader):
        """Calibration tensors for ONNX Runtime, one ``{input: tensor}`` at a time."""

        def __init__(self):
            self._it, self.done = iter(samples), 0

        def get_next(self):
            tensor = next(self._it, None)
            if tensor is None:
                return None
            self.done += 1
            if progress is not None:
                progress(self.done)
            return {input_name: tensor}

    return Reader()


def quantize_onnx(model, samples, *, per_channel: bool = True, method: str = "minmax", progress=None,
                  name: str = "model") -> Quantised:
    """Quantise a float `ModelProto` (from `inspect_float`) to QDQ int8 weights and activations.

    Raises:
        BackendUnavailable: ONNX Runtime is not installed.
        ConfigError: an unknown method, or from the calibration samples.
        ModelError: ONNX Runtime's quantiser failed.
    """
    onnx, quantization = import_onnx()
    if method not in METHODS:
        raise ConfigError(f"--method {method}: expected one of {', '.join(METHODS)}")
    calibrate = {"minmax": quantization.CalibrationMethod.MinMax, "entropy": quantization.CalibrationMethod.Entropy,
                 "percentile": quantization.CalibrationMethod.Percentile}[method]
    input_name = onnx_graph.graph_inputs(model.graph)[0].name
    with tempfile.TemporaryDirectory(prefix="edgert-quantize-") as tmp:
        out = Path(tmp) / "int8.onnx"
        try:
            quantization.quantize_static(model, str(out), _reader(quantization, input_name, samples, progress),
                                         quant_format=quantization.QuantFormat.QDQ, per_channel=per_channel,
                                         activation_type=quantization.QuantType.QInt8,
                                         weight_type=quantization.QuantType.QInt8, calibrate_method=calibrate,
                                         calibration_providers=["CPUExecutionProvider"])
        except (ConfigError, ModelError):
            raise
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own and plain exception types
            raise ModelError(f"{name}: onnxruntime's quantize_static failed: {one_line(exc)}") from None
        data = out.read_bytes()
    left = float_ops(onnx.load_from_string(data))
    return Quantised(data, left, f"onnxruntime.quantization {metadata.version('onnxruntime')}",
                     {"weights": "int8", "activations": "int8", "format": "QDQ", "method": method,
                      "granularity": "per-channel" if per_channel else "per-tensor"})
