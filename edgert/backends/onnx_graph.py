"""What the ONNX backend reads from and edits in an ONNX graph before ONNX Runtime sees it.

Fixed input shapes (the ``input_shape`` option), the quantized edges taken out of an int8 model
(``quantized_io``: see `edgert.backends.onnx`), and the `TensorSpec` of a graph input or output.
Functions take the `onnx` module or a `ModelProto` from the backend, which imports the SDK.
"""
from __future__ import annotations

import numpy as np

from edgert.core.errors import ConfigError, ModelError, SpecError, one_line
from edgert.core.tensor import Quantization, TensorSpec

#: ONNX TensorProto data types and their NumPy dtypes (the ones a model input or output may have).
_NP_TYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32, 7: np.int64,
             9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64}
#: Integer types an edge quantizer may produce.
_QUANT_TYPES = (2, 3, 4, 5)
_DEFAULT_DOMAINS = ("", "ai.onnx")
#: Operators that only move elements: a quantizer commutes with them (per-tensor parameters).
_MOVE_OPS = ("Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity")
_MAX_MOVES = 4


def read(onnx, path):
    """The `ModelProto` of `path` (external weights beside it are loaded too).

    Raises:
        ModelError: it does not parse, or a tensor or operator name in its graph is not UTF-8 text
            (protobuf hands those over as bytes; ONNX Runtime would fail on them less clearly).
    """
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError, OSError for missing external data, ...
        raise ModelError(f"{path}: cannot read the ONNX model ({type(exc).__name__}: {one_line(exc)})") from None
    graph = model.graph
    names = [v.name for v in (*graph.input, *graph.output, *graph.value_info, *graph.initializer)]
    for node in graph.node:
        names += [*node.input, *node.output, node.op_type, node.domain, node.name]
    bad = next((n for n in names if not isinstance(n, str)), None)
    if bad is not None:
        raise ModelError(f"{path}: corrupted ONNX model (a name in its graph is not UTF-8 text: {bad[:16]!r})")
    return model


def graph_inputs(graph) -> list:
    """The graph's real inputs (older files also list their initializers as inputs)."""
    weights = {t.name for t in graph.initializer} | {t.values.name for t in graph.sparse_initializer}
    return [v for v in graph.input if v.name not in weights]


def _dims(value, name: str) -> list | None:
    """Dimensions of a tensor ValueInfo: ints, or the dim_param string (or None) of a dynamic one;
    None when the file declares no shape. `ModelError` for inputs that are not tensors."""
    if value.type.WhichOneof("value") != "tensor_type":
        raise ModelError(f"{name}: {value.name!r} is a {value.type.WhichOneof('value')}, not a tensor")
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim]


def static_shape(value, name: str) -> tuple | None:
    """The shape of a ValueInfo when every dimension is fixed, else None (`name`: the file, for messages)."""
    dims = _dims(value, name)
    if dims is None or any(not isinstance(d, int) or d < 1 for d in dims):
        return None
    return tuple(dims)


def fix_input_shapes(model, input_shape, name: str) -> dict:
    """Write fixed shapes into the graph's inputs: ``{input name: shape}``.

    Args:
        model: The `ModelProto` (edited in place).
        input_shape: The option: None, a shape (one-input models), or ``{input name: shape}``.
        name: The model file, for messages.

    Raises:
        ConfigError: a dynamic dimension with no shape given, a given shape that disagrees with a
            fixed one (rank or size), or names that are not inputs.
    """
    inputs = graph_inputs(model.graph)
    wanted = _wanted_shapes(inputs, input_shape, name)
    shapes = {}
    for value in inputs:
        dims, given = _dims(value, name), wanted.get(value.name)
        if given is None:
            shapes[value.name] = _declared(value, dims, name)
            continue
        if dims is not None and len(dims) != len(given):
            raise ConfigError(f"{name}: input_shape {given} for input {value.name!r} has {len(given)} dimensions; "
                              f"the model's has {len(dims)}: {_show(dims)}")
        for axis, (d, g) in enumerate(zip(dims or [None] * len(given), given)):
            if isinstance(d, int) and d > 0 and d != g:
                raise ConfigError(f"{name}: input_shape {given} for input {value.name!r}: dimension {axis} is fixed "
                                  f"at {d} in the model ({_show(dims)})")
        shape = value.type.tensor_type.shape
        del shape.dim[:]
        for g in given:
            shape.dim.add().dim_value = g
        shapes[value.name] = tuple(given)
    return shapes


def _wanted_shapes(inputs, input_shape, name: str) -> dict:
    if input_shape is None:
        return {}
    names = [v.name for v in inputs]
    if isinstance(input_shape, dict):
        unknown = sorted(set(input_shape) - set(names))
        if unknown:
            raise ConfigError(f"{name}: input_shape names {', '.join(map(repr, unknown))}, not input(s) of the "
                              f"model ({', '.join(map(repr, names))})")
        return dict(input_shape)
    if len(names) != 1:
        raise ConfigError(f"{name}: the model has {len(names)} inputs ({', '.join(map(repr, names))}); give "
                          "input_shape as {input name: shape}")
    return {names[0]: tuple(input_shape)}


def _declared(value, dims, name: str) -> tuple:
    """The input's own shape; `ConfigError` naming the first dynamic dimension."""
    if dims is None:
        raise ConfigError(f"{name}: input {value.name!r} declares no shape; fix it with the onnx backend option "
                          "input_shape (a model card's \"input_shape\", edgert bench --input-shape)")
    for axis, d in enumerate(dims):
        if not isinstance(d, int) or d < 1:
            label = f" ({d!r})" if isinstance(d, str) else ""
            example = tuple(v if isinstance(v, int) and v > 0 else 1 for v in dims)
            raise ConfigError(f"{name}: input {value.name!r} has a dynamic dimension {axis}{label} in shape "
                              f"{_show(dims)}; fix it with the onnx backend option input_shape, e.g. {example} "
                              "(a model card's \"input_shape\", edgert bench --input-shape)")
    return tuple(dims)


def _show(dims) -> str:
    return "(" + ", ".join(str(d) if d is not None else "?" for d in dims) + ")"


def spec(value, shape: tuple, quant: tuple | None, name: str) -> TensorSpec:
    """The `TensorSpec` of a graph input or output: its ONNX type (or the quantized edge's) and `shape`."""
    elem = value.type.tensor_type.elem_type
    dtype = _NP_TYPES.get(elem)
    if dtype is None:
        raise ModelError(f"{name}: tensor {value.name!r} has ONNX data type {elem}, which edgert does not feed")
    layout = None
    if len(shape) == 4:
        layout = "NHWC" if shape[3] in (1, 3) and shape[1] not in (1, 3) else "NCHW"
    try:
        quantization = None if quant is None else _quantization(*quant, len(shape))
        return TensorSpec(value.name, shape, dtype, quantization, layout)
    except SpecError as exc:
        raise ModelError(f"{name}: {exc}") from None


def _quantization(scale: np.ndarray, zero_point: np.ndarray, axis: int, rank: int) -> Quantization:
    if scale.size == 1:
        return Quantization(float(scale.reshape(())), int(zero_point.reshape(())))
    return Quantization(scale.reshape(-1), zero_point.reshape(-1), axis=axis % rank if rank else axis)


def _constants(onnx, graph) -> dict:
    """Arrays of the graph's initializers and Constant-node outputs, by name."""
    found = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in _DEFAULT_DOMAINS and len(node.attribute) == 1 \
                and node.attribute[0].name == "value":
            found[node.output[0]] = node.attribute[0].t
    return found


def _edge_params(onnx, node, constants: dict):
    """``(scale, zero_point, axis, zero-point data type)`` of a QuantizeLinear/DequantizeLinear with
    constant per-tensor or per-axis parameters, or None (blocked, computed parameters, no zero point)."""
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if attrs.get("block_size", 0) or len(node.input) < 3:
        return None
    scale_t, zp_t = constants.get(node.input[1]), constants.get(node.input[2])
    if scale_t is None or zp_t is None or zp_t.data_type not in _QUANT_TYPES:
        return None
    try:
        scale = onnx.numpy_helper.to_array(scale_t).astype(np.float32)
        zero_point = onnx.numpy_helper.to_array(zp_t).astype(np.int64)
    except Exception:  # noqa: BLE001 - a malformed tensor: left in the graph for ONNX Runtime to refuse
        return None
    if scale.ndim > 1 or scale.shape != zero_point.shape:
        return None
    return scale, zero_point, int(attrs.get("axis", 1)), zp_t.data_type


def strip_quantized_edges(onnx, model) -> dict:
    """Take the edge quantizers out of `model` (in place): ``{tensor name: (scale, zero_point, axis)}``.

    An input whose only consumers are QuantizeLinear nodes with the same constant parameters is fed
    quantized; an output made by a DequantizeLinear of constant parameters, and read by no node, is
    given quantized. Graphs with subgraphs (If, Loop, Scan) are left as they are.
    """
    graph = model.graph
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in graph.node for a in n.attribute):
        return {}
    constants = _constants(onnx, graph)
    found = {}
    for value in graph_inputs(graph):
        params = _input_edge(onnx, graph, value, constants)
        if params is not None:
            found[value.name] = params
    for value in graph.output:
        params = _output_edge(onnx, graph, value, constants)
        if params is not None:
            found[value.name] = params
    return found


def _input_edge(onnx, graph, value, constants: dict):
    """Feed `value` quantized when it reaches QuantizeLinear nodes of one constant parameter set,
    directly or through data-movement operators (then per-tensor only): the params, or None."""
    if value.type.tensor_type.elem_type != 1:
        return None
    outputs = {v.name for v in graph.output}
    tensor, moved = value.name, []
    while len(consumers := [n for n in graph.node if tensor in n.input]) == 1 and _moves(consumers[0], tensor):
        moved.append(consumers[0])
        tensor = consumers[0].output[0]
        if tensor in outputs or len(moved) > _MAX_MOVES:
            return None
    params = [_edge_params(onnx, n, constants) if _is(n, "QuantizeLinear") and list(n.input).index(tensor) == 0
              else None for n in consumers]
    if not params or any(p is None or not _same_params(p, params[0]) for p in params):
        return None
    if (moved and params[0][0].size > 1) or {n.output[0] for n in consumers} & outputs:
        return None
    for node in consumers:
        graph.node.remove(node)
    _rename_uses(graph, {n.output[0] for n in consumers}, tensor)
    _forget_types(graph, [n.output[0] for n in moved])
    scale, zero_point, axis, elem = params[0]
    value.type.tensor_type.elem_type = elem
    return scale, zero_point, axis


def _output_edge(onnx, graph, value, constants: dict):
    """Give `value` quantized when it is made by a DequantizeLinear of constant parameters, directly
    or through data-movement operators (then per-tensor only), whose result nothing else reads."""
    if value.type.tensor_type.elem_type != 1:
        return None
    tensor, moved = value.name, []
    while (producer := _producer(graph, tensor)) is not None and _moves(producer, producer.input[0] if
                                                                        producer.input else ""):
        moved.append(producer)
        tensor = producer.input[0]
        if len(moved) > _MAX_MOVES:
            return None
    if producer is None or not _is(producer, "DequantizeLinear"):
        return None
    inner = producer.input[0]
    read = [n for n in graph.node if tensor in n.input]
    if _producer(graph, inner) is None or inner in {v.name for v in graph.output} or read != moved[-1:]:
        return None
    params = _edge_params(onnx, producer, constants)
    if params is None or (moved and params[0].size > 1):
        return None
    graph.node.remove(producer)
    if moved:
        _rename_uses(graph, {tensor}, inner)
        _forget_types(graph, [n.output[0] for n in moved])
    else:
        for node in graph.node:
            node.output[:] = [value.name if out == inner else out for out in node.output]
        _rename_uses(graph, {inner}, value.name)
        _forget_types(graph, [inner])
    scale, zero_point, axis, elem = params
    value.type.tensor_type.elem_type = elem
    return scale, zero_point, axis


def _is(node, op_type: str) -> bool:
    return node.op_type == op_type and node.domain in _DEFAULT_DOMAINS


def _moves(node, tensor: str) -> bool:
    """True for an operator that only moves `tensor`'s elements (its first input), whatever their type."""
    return node.domain in _DEFAULT_DOMAINS and node.op_type in _MOVE_OPS and list(node.input[:1]) == [tensor]


def _producer(graph, tensor: str):
    return next((n for n in graph.node if tensor in n.output), None)


def _forget_types(graph, tensors) -> None:
    """Drop the declared types of intermediate tensors whose element type the edit changed."""
    names = set(tensors)
    for info in [v for v in graph.value_info if v.name in names]:
        graph.value_info.remove(info)


def _same_params(a, b) -> bool:
    return a[2:] == b[2:] and np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def _rename_uses(graph, old: set, new: str) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in old:
                node.input[i] = new
