"""What a model file is, checked before any SDK sees it: LiteRT (.tflite), Edge TPU-compiled
.tflite, ONNX (.onnx), Hailo (.hef) or RKNN (.rknn).

Only the cheap, certain checks happen here (exists, regular file, not empty, the TFLite flatbuffer
identifier and operator table, the protobuf structure of an ONNX model's top level and graph); each
SDK validates the rest when its backend loads the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgert.core.errors import ModelError

EDGETPU_CUSTOM_OP = "edgetpu-custom-op"
KINDS = ("tflite", "edgetpu", "onnx", "hef", "rknn")


@dataclass(frozen=True)
class ModelFile:
    """A model file and what it holds.

    Attributes:
        path: The file.
        kind: "tflite", "edgetpu" (a .tflite with the Edge TPU custom op), "onnx", "hef" or "rknn".
        custom_ops: Custom operators a .tflite uses (empty for other kinds).
    """

    path: Path
    kind: str
    custom_ops: tuple = ()


def identify(path) -> ModelFile:
    """Check `path` and tell its kind.

    Raises:
        ModelError: missing file, a directory, an empty file, an unknown suffix, or a .tflite that
            is not a TFLite flatbuffer or an .onnx that is not an ONNX protobuf (truncated, random bytes).
    """
    p = Path(path)
    if not p.exists():
        raise ModelError(f"model file not found: {p}")
    if p.is_dir():
        raise ModelError(f"{p} is a directory, not a model file")
    if not p.is_file():
        raise ModelError(f"{p} is not a regular file")
    size = p.stat().st_size
    if size == 0:
        raise ModelError(f"{p} is empty")
    suffix = p.suffix.lower()
    if suffix == ".hef":
        return ModelFile(p, "hef")
    if suffix == ".rknn":
        return ModelFile(p, "rknn")
    if suffix not in (".tflite", ".onnx"):
        raise ModelError(f"{p}: unknown model type {p.suffix!r}; expected .tflite, .onnx, .hef or .rknn")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ModelError(f"{p}: cannot read it ({exc.strerror or exc})") from None
    if suffix == ".onnx":
        check_onnx_structure(data, str(p))
        return ModelFile(p, "onnx")
    ops = tflite_custom_ops(data, str(p))
    return ModelFile(p, "edgetpu" if EDGETPU_CUSTOM_OP in ops else "tflite", ops)


def tflite_custom_ops(data: bytes, name: str = "model") -> tuple:
    """Custom operator names of a TFLite flatbuffer; `ModelError` if it is not one."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(f"{name}: not a TFLite model (no TFL3 flatbuffer identifier); the file may be "
                         "truncated or of another format")
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # no LiteRT here: the operator table cannot be read, fall back to the bytes
        return (EDGETPU_CUSTOM_OP,) if EDGETPU_CUSTOM_OP.encode() in data else ()
    try:
        model = schema.Model.GetRootAsModel(data, 0)
        codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
        customs = tuple(c.CustomCode().decode() for c in codes if c.CustomCode())
        if model.SubgraphsLength() < 1:
            raise ModelError(f"{name}: TFLite model has no subgraph")
        _check_tensors(schema, model, name)
        return customs
    except ModelError:
        raise
    except Exception as exc:  # a corrupt flatbuffer raises anything from IndexError to struct.error
        raise ModelError(f"{name}: corrupted TFLite model ({type(exc).__name__}: {exc})") from None


#: Value ranges of the integer tensor types, by name in the TFLite schema's TensorType.
_INT_RANGES = {"UINT8": (0, 255), "INT8": (-128, 127), "INT16": (-32768, 32767), "UINT16": (0, 65535),
               "INT32": (-2**31, 2**31 - 1), "INT4": (-8, 7), "UINT4": (0, 15)}


def _check_tensors(schema, model, name: str) -> None:
    """Refuse what makes LiteRT crash rather than fail: buffer indices out of range, and
    quantization parameters no real model has (zero points outside the type, non-positive scales,
    a channel axis past the rank)."""
    ranges = {getattr(schema.TensorType, k): v for k, v in _INT_RANGES.items() if hasattr(schema.TensorType, k)}
    n_buffers = model.BuffersLength()
    for g in range(model.SubgraphsLength()):
        sg = model.Subgraphs(g)
        for t in range(sg.TensorsLength()):
            tensor = sg.Tensors(t)
            if tensor.Buffer() >= n_buffers:
                raise ModelError(f"{name}: corrupted TFLite model (tensor {t} names buffer {tensor.Buffer()} "
                                 f"of {n_buffers})")
            q = tensor.Quantization()
            if q is None:
                continue
            scales, zps = q.ScaleAsNumpy(), q.ZeroPointAsNumpy()
            if isinstance(scales, np.ndarray) and scales.size and not (np.all(np.isfinite(scales))
                                                                       and np.all(scales > 0)):
                raise ModelError(f"{name}: corrupted TFLite model (tensor {t} has scales {scales[:4].tolist()})")
            lo, hi = ranges.get(tensor.Type(), (-2**63, 2**63 - 1))
            if isinstance(zps, np.ndarray) and zps.size and (zps.min() < lo or zps.max() > hi):
                raise ModelError(f"{name}: corrupted TFLite model (tensor {t} has zero points outside its type)")
            if isinstance(scales, np.ndarray) and scales.size > 1 and q.QuantizedDimension() >= tensor.ShapeLength():
                raise ModelError(f"{name}: corrupted TFLite model (tensor {t} is quantized along a missing axis)")


#: Wire types of the ModelProto and GraphProto fields the check reads (onnx.proto3): 0 varint, 2 bytes.
_ONNX_MODEL_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2}
_ONNX_GRAPH_FIELDS = {1: 2, 2: 2, 5: 2, 10: 2, 11: 2, 12: 2, 13: 2, 14: 2, 15: 2}
_ONNX_IR_VERSION, _ONNX_GRAPH, _ONNX_GRAPH_OUTPUT = 1, 7, 12


def check_onnx_structure(data: bytes, name: str = "model") -> None:
    """Refuse bytes that are not an ONNX model: `ModelError` unless the protobuf's top level and its
    graph parse to the end, with an IR version, a graph and at least one graph output.

    ONNX files have no magic number; the protobuf wire format walked here (without decoding the
    nodes or weights) is what a truncated file or random bytes fail.
    """
    model = _protobuf_fields(data, 0, len(data), _ONNX_MODEL_FIELDS, name)
    if _ONNX_IR_VERSION not in model or _ONNX_GRAPH not in model:
        raise ModelError(f"{name}: not an ONNX model (no {'IR version' if _ONNX_IR_VERSION not in model else 'graph'}"
                         "); the file may be truncated or of another format")
    start, end = model[_ONNX_GRAPH][-1]
    graph = _protobuf_fields(data, start, end, _ONNX_GRAPH_FIELDS, name)
    if _ONNX_GRAPH_OUTPUT not in graph:
        raise ModelError(f"{name}: ONNX model graph has no output")


def _protobuf_fields(data: bytes, pos: int, end: int, wire_types: dict, name: str) -> dict:
    """``{field number: [(start, end) of each occurrence's payload]}`` of one protobuf message."""
    fields: dict = {}
    while pos < end:
        key, pos = _varint(data, pos, end, name)
        number, wire = key >> 3, key & 7
        if number == 0 or wire_types.get(number, wire) != wire:
            raise ModelError(f"{name}: not an ONNX model (protobuf field {number} of wire type {wire} at byte {pos}); "
                             "the file may be truncated or of another format")
        start = pos
        if wire == 0:
            _, pos = _varint(data, pos, end, name)
        elif wire == 2:
            length, start = _varint(data, pos, end, name)
            pos = start + length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ModelError(f"{name}: not an ONNX model (protobuf wire type {wire} at byte {pos})")
        if pos > end:
            raise ModelError(f"{name}: truncated ONNX model (field {number} runs past byte {end})")
        fields.setdefault(number, []).append((start, pos))
    return fields


def _varint(data: bytes, pos: int, end: int, name: str) -> tuple[int, int]:
    """``(value, position after it)`` of the protobuf varint at `pos`."""
    value = shift = 0
    while pos < end and shift < 64:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise ModelError(f"{name}: truncated ONNX model (a protobuf varint runs past byte {min(pos, end)})")
