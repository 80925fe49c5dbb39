"""Make the committed, smaller PP-OCRv4 recogniser from the wheel's float one (dev-only).

The float recogniser of the `rapidocr-onnxruntime` 1.4.4 wheel (see edgert/models/ppocr/SOURCE.md) is
10.9 MB, most of it float32 weights. Here: the MatMul weights (the 795k-weight classifier over 6625
classes among them) become int8 per channel through ONNX Runtime's dynamic quantisation, and every
other float weight of 1024 values or more is stored as float16 behind a Cast (exact enough for the
reader: the plate tests give the same reads). 4.5 MB. Dynamic quantisation of the Conv layers as well
(2.9 MB) reads nothing: their activations do not survive per-tensor uint8. The weights are held in
Constant nodes, which the quantiser does not see, so they are turned into initializers first; the
``character`` dictionary metadata is kept.

    python benchmarks/models/ppocr_int8.py FLOAT_REC.onnx edgert/models/ppocr/ch_PP-OCRv4_rec_int8.onnx

The plate figures of the int8 model are measured with ``python benchmarks/plates.py``.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic


def constants_to_initializers(model: onnx.ModelProto) -> None:
    """Move every ``Constant`` node's tensor into the graph's initializers, under its output's name."""
    kept = []
    for node in model.graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            tensor = onnx.TensorProto()
            tensor.CopyFrom(node.attribute[0].t)
            tensor.name = node.output[0]
            model.graph.initializer.append(tensor)
        else:
            kept.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept)


def float16_behind_casts(model: onnx.ModelProto, min_size: int = 1024) -> int:
    """Store float32 initializers of `min_size` values or more as float16, each behind a Cast to float."""
    casts = []
    for init in model.graph.initializer:
        if init.data_type == TensorProto.FLOAT and int(np.prod(init.dims)) >= min_size:
            name = init.name
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), name + "_fp16"))
            casts.append(helper.make_node("Cast", [name + "_fp16"], [name], to=TensorProto.FLOAT))
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(casts + nodes)
    return len(casts)


def main(src: str, dst: str) -> None:
    model = onnx.load(src)
    constants_to_initializers(model)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "rec.onnx"
        onnx.save(model, staged)
        quantized = Path(tmp) / "rec_int8.onnx"
        quantize_dynamic(staged, quantized, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                         per_channel=True)
        model = onnx.load(quantized)
    float16_behind_casts(model)
    onnx.save(model, dst)
    print(f"{src} ({Path(src).stat().st_size} bytes) -> {dst} ({Path(dst).stat().st_size} bytes)")


if __name__ == "__main__":
    main(*sys.argv[1:3])
