"""Tiny real .tflite models built with the flatbuffer schema LiteRT ships (no TensorFlow needed)."""
from __future__ import annotations

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

_TYPES = {np.dtype(np.float32): schema.TensorType.FLOAT32, np.dtype(np.uint8): schema.TensorType.UINT8,
          np.dtype(np.int8): schema.TensorType.INT8, np.dtype(np.int32): schema.TensorType.INT32}


def _tensor(name, shape, dtype, buffer, quant=None):
    t = schema.TensorT()
    t.name = name
    t.shape = list(shape)
    t.type = _TYPES[np.dtype(dtype)]
    t.buffer = buffer
    if quant is not None:
        q = schema.QuantizationParametersT()
        scale, zp = quant[:2]
        q.scale = list(np.atleast_1d(scale).astype(float))
        q.zeroPoint = list(np.atleast_1d(zp).astype(int))
        q.quantizedDimension = quant[2] if len(quant) > 2 else 0
        t.quantization = q
    return t


def _finish(tensors, ops, codes, inputs, outputs, buffers) -> bytes:
    sg = schema.SubGraphT()
    sg.tensors, sg.operators, sg.inputs, sg.outputs = tensors, ops, inputs, outputs
    m = schema.ModelT()
    m.version = 3
    m.operatorCodes = codes
    m.subgraphs = [sg]
    m.buffers = buffers
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _buffer(data: bytes | None = None):
    buf = schema.BufferT()
    if data is not None:
        buf.data = list(data)
    return buf


def _code(builtin=None, custom=None):
    c = schema.OperatorCodeT()
    if custom is not None:
        c.builtinCode = schema.BuiltinOperator.CUSTOM
        c.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
        c.customCode = custom
    else:
        c.builtinCode = builtin
        c.deprecatedBuiltinCode = builtin
    return c


def add_model(shape=(1, 4), constant: float = 1.5) -> bytes:
    """float32 ``y = x + constant``."""
    const = np.full(shape, constant, np.float32)
    tensors = [_tensor("x", shape, np.float32, 0), _tensor("c", shape, np.float32, 1),
               _tensor("y", shape, np.float32, 0)]
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1], [2]
    op.builtinOptionsType = schema.BuiltinOptions.AddOptions
    op.builtinOptions = schema.AddOptionsT()
    return _finish(tensors, [op], [_code(schema.BuiltinOperator.ADD)], [0], [2],
                   [_buffer(), _buffer(const.tobytes())])


def quantize_model(shape=(1, 8), scale: float = 0.5, zero_point: int = 128, dtype=np.uint8) -> bytes:
    """float32 input -> QUANTIZE -> uint8/int8 output with (scale, zero_point)."""
    tensors = [_tensor("x", shape, np.float32, 0), _tensor("q", shape, dtype, 0, (scale, zero_point))]
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    return _finish(tensors, [op], [_code(schema.BuiltinOperator.QUANTIZE)], [0], [1], [_buffer()])


def custom_op_model(name: str = "edgetpu-custom-op", shape=(1, 4), payload: bytes = b"\0", dtype=np.uint8,
                    out_shape=None) -> bytes:
    """A model whose only operator is the custom op `name`, as the Edge TPU compiler emits (its
    compiled program in the op's custom options: here `payload`)."""
    quant = (1.0, 0) if np.dtype(dtype) != np.float32 else None
    tensors = [_tensor("x", shape, dtype, 0, quant), _tensor("y", out_shape or shape, dtype, 0, quant)]
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    op.customOptions = list(payload)
    return _finish(tensors, [op], [_code(custom=name)], [0], [1], [_buffer()])


def dequantize_reshape_model(in_shape, out_shape, scale: float, zero_point: int, add: float = 0.0) -> bytes:
    """uint8 input (scale, zero_point) -> DEQUANTIZE -> + `add` -> RESHAPE to `out_shape` (float32).

    An "image" input whose pixels are the outputs: tests write exactly the outputs they want.
    """
    shape_const = np.asarray(out_shape, np.int32)
    tensors = [_tensor("image", in_shape, np.uint8, 0, (scale, zero_point)), _tensor("real", in_shape, np.float32, 0),
               _tensor("bias", in_shape, np.float32, 1), _tensor("sum", in_shape, np.float32, 0),
               _tensor("shape", (len(out_shape),), np.int32, 2), _tensor("out", out_shape, np.float32, 0)]
    deq = schema.OperatorT()
    deq.opcodeIndex, deq.inputs, deq.outputs = 0, [0], [1]
    addop = schema.OperatorT()
    addop.opcodeIndex, addop.inputs, addop.outputs = 1, [1, 2], [3]
    addop.builtinOptionsType = schema.BuiltinOptions.AddOptions
    addop.builtinOptions = schema.AddOptionsT()
    rs = schema.OperatorT()
    rs.opcodeIndex, rs.inputs, rs.outputs = 2, [3, 4], [5]
    rs.builtinOptionsType = schema.BuiltinOptions.ReshapeOptions
    rs.builtinOptions = schema.ReshapeOptionsT()
    rs.builtinOptions.newShape = list(out_shape)
    codes = [_code(schema.BuiltinOperator.DEQUANTIZE), _code(schema.BuiltinOperator.ADD),
             _code(schema.BuiltinOperator.RESHAPE)]
    buffers = [_buffer(), _buffer(np.full(in_shape, add, np.float32).tobytes()), _buffer(shape_const.tobytes())]
    return _finish(tensors, [deq, addop, rs], codes, [0], [5], buffers)
