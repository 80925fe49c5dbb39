"""Real ONNX models for the tests, built with the `onnx` package's helper API.

`digits_classifier` is a trained one: a two-layer perceptron fitted with NumPy on scikit-learn's
digits (seconds), exported as ONNX with a dynamic batch axis, with its NumPy forward pass to compare
against. `quantized` makes its int8 version with ONNX Runtime's `quantize_static` (QDQ or QOperator).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.uint8): TensorProto.UINT8,
          np.dtype(np.int8): TensorProto.INT8, np.dtype(np.int64): TensorProto.INT64}


def _value(name, dtype, dims):
    return helper.make_tensor_value_info(name, _TYPES[np.dtype(dtype)], dims)


def save(model, path: Path) -> Path:
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def graph_model(nodes, inputs, outputs, weights=(), opset: int = OPSET):
    """A ModelProto from nodes, (name, dtype, dims) inputs/outputs and {name: array} weights."""
    graph = helper.make_graph(nodes, "test", [_value(*i) for i in inputs], [_value(*o) for o in outputs],
                              [numpy_helper.from_array(np.asarray(a), n) for n, a in dict(weights).items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def add_model(dims=(1, 4), value: float = 1.5):
    """``y = x + value`` over float32 `dims` (strings make dynamic dimensions)."""
    return graph_model([helper.make_node("Add", ["x", "c"], ["y"])], [("x", np.float32, list(dims))],
                       [("y", np.float32, list(dims))], {"c": np.full([1], value, np.float32)})


def two_input_model(dims_a=(1, 3), dims_b=(1, 3)):
    """``s = a * b`` with two inputs."""
    return graph_model([helper.make_node("Mul", ["a", "b"], ["s"])], [("a", np.float32, list(dims_a)),
                                                                      ("b", np.float32, list(dims_b))],
                       [("s", np.float32, list(dims_a))])


def qdq_relu_model(dims=(1, 8), scale_in=0.05, zp_in=-3, scale_out=0.04, zp_out=-128, dtype=np.int8):
    """A float-edged int8 model: Q -> DQ -> Relu -> Q -> DQ (the quantize_static QDQ shape)."""
    w = {"s_in": np.float32(scale_in), "z_in": np.array(zp_in, dtype), "s_out": np.float32(scale_out),
         "z_out": np.array(zp_out, dtype)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s_in", "z_in"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s_in", "z_in"], ["xd"]),
             helper.make_node("Relu", ["xd"], ["r"]),
             helper.make_node("QuantizeLinear", ["r", "s_out", "z_out"], ["rq"]),
             helper.make_node("DequantizeLinear", ["rq", "s_out", "z_out"], ["y"])]
    return graph_model(nodes, [("x", np.float32, list(dims))], [("y", np.float32, list(dims))], w)


@dataclass
class Digits:
    """A trained digits classifier and its data.

    Attributes:
        w1, b1, w2, b2: The perceptron's weights (64 -> 32 ReLU -> 10).
        train_x, test_x: Images as float32 ``(n, 1, 8, 8)`` in 0..1; train_y, test_y: labels.
    """

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The logits, in NumPy: what the ONNX graph computes."""
        h = np.maximum(x.reshape(len(x), -1) @ self.w1 + self.b1, 0)
        return h @ self.w2 + self.b2


def train_digits(seed: int = 0, hidden: int = 32, steps: int = 150) -> Digits:
    """Fit the perceptron with full-batch Adam on 1347 digits (450 held out); about a second."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    x = (x[order] / 16.0).astype(np.float32)
    y = y[order]
    tx, ty = x[:-450], y[:-450]
    params = [rng.normal(0, 0.1, (64, hidden)).astype(np.float32), np.zeros(hidden, np.float32),
              rng.normal(0, 0.1, (hidden, 10)).astype(np.float32), np.zeros(10, np.float32)]
    moments = [[np.zeros_like(p), np.zeros_like(p)] for p in params]
    onehot = np.eye(10, dtype=np.float32)[ty]
    for step in range(1, steps + 1):
        w1, b1, w2, b2 = params
        h = np.maximum(tx @ w1 + b1, 0)
        logits = h @ w2 + b2
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        g_logits = (p - onehot) / len(tx)
        g_h = (g_logits @ w2.T) * (h > 0)
        grads = [tx.T @ g_h, g_h.sum(0), h.T @ g_logits, g_logits.sum(0)]
        for param, grad, m in zip(params, grads, moments):
            m[0] = 0.9 * m[0] + 0.1 * grad
            m[1] = 0.999 * m[1] + 0.001 * grad ** 2
            param -= 0.02 * (m[0] / (1 - 0.9 ** step)) / (np.sqrt(m[1] / (1 - 0.999 ** step)) + 1e-8)
    w1, b1, w2, b2 = (p.astype(np.float32) for p in params)
    return Digits(w1, b1, w2, b2, tx.reshape(-1, 1, 8, 8), ty, x[-450:].reshape(-1, 1, 8, 8), y[-450:])


def digits_model(d: Digits, batch="batch"):
    """The classifier as ONNX: image float32 (batch, 1, 8, 8) -> Flatten -> Gemm -> Relu -> Gemm -> logits."""
    nodes = [helper.make_node("Flatten", ["image"], ["flat"], axis=1),
             helper.make_node("Gemm", ["flat", "w1", "b1"], ["h"]),
             helper.make_node("Relu", ["h"], ["hr"]),
             helper.make_node("Gemm", ["hr", "w2", "b2"], ["logits"])]
    return graph_model(nodes, [("image", np.float32, [batch, 1, 8, 8])], [("logits", np.float32, [batch, 10])],
                       {"w1": d.w1, "b1": d.b1, "w2": d.w2, "b2": d.b2})


def quantized(d: Digits, float_path: Path, out: Path, fmt: str = "QDQ") -> Path:
    """The int8 model `quantize_static` makes from `float_path`, calibrated on 200 training digits."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = iter([{"image": d.train_x[i:i + 1]} for i in range(200)])

        def get_next(self):
            return next(self._batches, None)

    quantize_static(str(float_path), str(out), Reader(), quant_format=getattr(QuantFormat, fmt),
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return out


DIGITS = [str(d) for d in range(10)]
DIGIT_PRE = {"resize": "stretch", "interpolation": "area", "mean": 0, "std": 255}


def digits_job(root: Path, seed: int = 0) -> Path:
    """A quantize job in `root`: the digits perceptron as a float .onnx (dynamic batch) ``dig_fp32.onnx`` with its
    card ``dig.json``, 100 calibration digits (``cal/<class>/``, scikit-learn's first 100) and the 450 held-out
    ones of tests/data/digits_test.npz (``val/<class>/``), as PNG folders."""
    import cv2
    from sklearn.datasets import load_digits

    root = Path(root)
    save(digits_model(train_digits(seed)), root / "dig_fp32.onnx")
    (root / "dig.json").write_text(json.dumps({"name": "dig", "classes": DIGITS, "preprocess": DIGIT_PRE}))
    x, y = load_digits(return_X_y=True)
    for i in range(100):
        (root / "cal" / str(y[i])).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "cal" / str(y[i]) / f"{i:04d}.png"), (x[i].reshape(8, 8) * 255 / 16).round().astype(np.uint8))
    held = np.load(Path(__file__).parent / "data" / "digits_test.npz")
    for i, (image, label) in enumerate(zip(held["images"], held["labels"])):
        (root / "val" / str(label)).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "val" / str(label) / f"{i:04d}.png"), image)
    return root
