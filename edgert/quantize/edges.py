"""The quantised model's edge types: int8 (as ai-edge-quantizer leaves it), uint8 or float32 input and output.

An int8 input becomes uint8 through a QUANTIZE op that requantises uint8 to int8 (same scale, zero
point + 128: the same real values, so the `Preprocessor` makes the same picture in either type), or
float32 through a QUANTIZE from float; an int8 output likewise through a QUANTIZE to uint8 or a
DEQUANTIZE to float32. The edge tensors keep their names and the signature points at them, so
`edgert.load` and LiteRT see an ordinary model of that type. The int8 core is untouched.

ai-edge-quantizer writes a model with 256 KiB of weights or more with its buffers after the
flatbuffer (each buffer an offset and size into the file). Re-packing the flatbuffer moves what
follows it, so those buffers are taken back into the flatbuffer first.
"""
from __future__ import annotations

import numpy as np

from edgert.core.errors import ModelError

EDGE_TYPES = ("int8", "uint8", "float32")


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _opcode(model, schema, builtin: int, version: int) -> int:
    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin and code.version == version:
            return i
    code = schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), version
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _edge_tensor(model, schema, inner, kind: str):
    """A copy of tensor `inner` (int8, per tensor) as a `kind` tensor with its own empty buffer."""
    t = schema.TensorT()
    t.name, t.shape = inner.name, np.array(inner.shape, np.int32)
    t.shapeSignature = None if inner.shapeSignature is None else np.array(inner.shapeSignature, np.int32)
    model.buffers.append(schema.BufferT())
    t.buffer = len(model.buffers) - 1
    if kind == "uint8":
        q = inner.quantization
        t.type = schema.TensorType.UINT8
        t.quantization = schema.QuantizationParametersT()
        t.quantization.scale = [float(v) for v in q.scale]
        t.quantization.zeroPoint = [int(v) + 128 for v in q.zeroPoint]
    else:
        t.type = schema.TensorType.FLOAT32
    inner.name = inner.name + b"_int8" if isinstance(inner.name, bytes) else inner.name + "_int8"
    return t


def _check_int8(sg, schema, index: int, where: str, name: str) -> None:
    t = sg.tensors[index]
    q = t.quantization
    if t.type != schema.TensorType.INT8 or q is None or q.scale is None or len(q.scale) != 1:
        raise ModelError(f"{name}: its {where} is not a per-tensor int8 tensor; cannot give it another type")


def _inline_buffers(model, data: bytes, name: str) -> None:
    """Move buffers stored after the flatbuffer (offset and size into `data`) into it."""
    for i, buf in enumerate(model.buffers):
        if buf.offset > 1:
            end = buf.offset + buf.size
            if end > len(data):
                raise ModelError(f"{name}: buffer {i} lies past the end of the file ({end} > {len(data)} bytes)")
            buf.data = np.frombuffer(data, np.uint8, buf.size, buf.offset).copy()
            buf.offset = buf.size = 0


def _retarget_signatures(model, old: int, new: int) -> None:
    for sig in model.signatureDefs or []:
        if sig.subgraphIndex != 0:
            continue
        for t in list(sig.inputs or []) + list(sig.outputs or []):
            if t.tensorIndex == old:
                t.tensorIndex = new


def set_edge_types(data: bytes, input_type: str = "int8", output_type: str = "int8", name: str = "model") -> bytes:
    """`data` (a full-integer model with int8 input and output) with the asked input and output types.

    Raises:
        ModelError: an edge that is not a per-tensor int8 tensor, or an unknown type.
    """
    for flag, kind in (("input", input_type), ("output", output_type)):
        if kind not in EDGE_TYPES:
            raise ModelError(f"{name}: {flag} type {kind!r}: expected one of {', '.join(EDGE_TYPES)}")
    if input_type == output_type == "int8":
        return data
    import flatbuffers

    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    _inline_buffers(model, data, name)
    sg = model.subgraphs[0]
    ops = schema.BuiltinOperator
    if input_type != "int8":
        for k, index in enumerate(list(sg.inputs)):
            _check_int8(sg, schema, index, "input", name)
            sg.tensors.append(_edge_tensor(model, schema, sg.tensors[index], input_type))
            edge = len(sg.tensors) - 1
            op = schema.OperatorT()
            op.opcodeIndex, op.inputs, op.outputs = _opcode(model, schema, ops.QUANTIZE, 2), [edge], [index]
            sg.operators.insert(0, op)
            sg.inputs[k] = edge
            _retarget_signatures(model, index, edge)
    if output_type != "int8":
        for k, index in enumerate(list(sg.outputs)):
            _check_int8(sg, schema, index, "output", name)
            sg.tensors.append(_edge_tensor(model, schema, sg.tensors[index], output_type))
            edge = len(sg.tensors) - 1
            code = (ops.QUANTIZE, 2) if output_type == "uint8" else (ops.DEQUANTIZE, 2)
            op = schema.OperatorT()
            op.opcodeIndex, op.inputs, op.outputs = _opcode(model, schema, *code), [index], [edge]
            sg.operators.append(op)
            sg.outputs[k] = edge
            _retarget_signatures(model, index, edge)
    builder = flatbuffers.Builder(len(data) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
