"""ONNX backend: ONNX Runtime's `InferenceSession`, on its CPU execution provider unless told otherwise.

What "raw outputs, quantized dtype where quantized" means for ONNX. An int8 ONNX model (QDQ from
`quantize_static`, or QOperator) keeps float32 at its edges and quantizes inside: its input goes into
a ``QuantizeLinear`` and its output comes out of a ``DequantizeLinear``. With ``quantized_io`` (the
default) those edge operators are taken out of the graph before the session is made, so the model is
seen as what it is inside, as an int8 .tflite is:

- an input whose consumers are all ``QuantizeLinear`` nodes with one constant scale and zero point
  becomes an int8/uint8 input with that `Quantization` (the Preprocessor then writes the quantized
  tensor in its one pass);
- an output made by a ``DequantizeLinear`` of constant parameters, read by no other node, becomes the
  int8/uint8 tensor before it, with that `Quantization` (decoders work in the quantized domain);
- between the edge and the quantizer there may be operators that only move elements (Flatten,
  Reshape, Transpose, Squeeze, Unsqueeze, Identity: a tf2onnx model's NHWC-to-NCHW Transpose);
  they then move the integers instead, and the parameters must be per-tensor.

The outputs are the integers the file's ``DequantizeLinear`` would have read: dequantized with the
spec they equal what the float-edged file returns, but for the input's rounding (ONNX's
``QuantizeLinear`` rounds halves to even, edgert's quantization away from zero: 1 LSB on exact
halves). Anything else at an edge (a Cast, computed or blocked quantization parameters, control-flow
subgraphs) keeps that edge float; ``quantized_io=False`` keeps every edge as the file has it. Inputs
that are plain uint8 in the file (pixels) are given as such, without quantization.

Shapes: every input dimension must be fixed. A dynamic (symbolic or unknown) dimension needs the
``input_shape`` option; a model that has one and no ``input_shape`` is refused, naming the input and
the dimension. The fixed shapes are written into the graph before the session is made, so ONNX
Runtime plans for them; output shapes the file leaves dynamic come from one warm-up run with zeros
(an output whose size depends on the data keeps the warm-up's shape in its spec).

Threads: ``num_threads`` is ONNX Runtime's intra-op thread count (one inter-op thread). `run` is
safe from several threads at once (one session serves concurrent runs); `submit` runs in the caller's
thread (``asynchronous`` is False): ONNX Runtime releases the GIL while it computes, so the pipeline's
other stages still overlap it.
"""
from __future__ import annotations

import numpy as np
from pydantic import Field, field_validator

from edgert.backends import onnx_graph
from edgert.backends.base import Backend, BackendConfig, sdk_missing
from edgert.core.errors import BackendUnavailable, ClosedError, ConfigError, DeviceError, ModelError, one_line
from edgert.core.model_files import ModelFile

KEY = "onnx"
CPU_PROVIDER = "CPUExecutionProvider"
#: Short names of execution providers (``providers: [openvino]``); full names are taken as they are.
PROVIDER_ALIASES = {"cpu": CPU_PROVIDER, "openvino": "OpenVINOExecutionProvider",
                    "xnnpack": "XnnpackExecutionProvider", "cuda": "CUDAExecutionProvider",
                    "tensorrt": "TensorrtExecutionProvider", "acl": "ACLExecutionProvider",
                    "armnn": "ArmNNExecutionProvider", "qnn": "QNNExecutionProvider",
                    "coreml": "CoreMLExecutionProvider", "dnnl": "DnnlExecutionProvider"}
#: Where the providers that are not in the plain `onnxruntime` wheel come from.
PROVIDER_PACKAGES = {"OpenVINOExecutionProvider": "pip install onnxruntime-openvino",
                     "CUDAExecutionProvider": "pip install onnxruntime-gpu",
                     "TensorrtExecutionProvider": "pip install onnxruntime-gpu",
                     "XnnpackExecutionProvider": "an onnxruntime built with --use_xnnpack"}
#: Largest input taken, in elements (64 Mi: a 4K RGB frame is 25 Mi).
MAX_INPUT_ELEMENTS = 1 << 26


def _check_shape(shape: tuple) -> tuple:
    if any(v < 1 for v in shape):
        raise ValueError(f"sizes must be positive, got {shape}")
    if int(np.prod(shape, dtype=np.float64)) > MAX_INPUT_ELEMENTS:
        raise ValueError(f"{shape} has more than {MAX_INPUT_ELEMENTS} elements")
    return shape


class OnnxConfig(BackendConfig):
    """Options of the ONNX backend."""

    providers: tuple[str, ...] = Field(
        (CPU_PROVIDER,), min_length=1,
        description="Execution providers, best first (full names or cpu, openvino, xnnpack, ...); each must be in "
        "the installed onnxruntime build. The CPU provider is added last for the nodes the others do not take.")
    num_threads: int = Field(1, ge=1, le=64, description="Intra-op threads (ONNX Runtime's intra_op_num_threads).")
    input_shape: tuple[int, ...] | dict[str, tuple[int, ...]] | None = Field(
        None, description="Fixed input shape for dynamic axes, e.g. (1, 3, 224, 224); {input name: shape} for "
        "models with several inputs. Required when an input has a dynamic dimension.")
    quantized_io: bool = Field(
        True, description="Present the float edges of an int8 model (QuantizeLinear at an input, DequantizeLinear "
        "at an output) as the quantized tensors inside, with their quantization; false keeps them float.")

    @field_validator("providers", mode="before")
    @classmethod
    def _one_provider(cls, names):
        return (names,) if isinstance(names, str) else names  # providers: openvino

    @field_validator("providers")
    @classmethod
    def _provider_names(cls, names):
        full = tuple(PROVIDER_ALIASES.get(n.lower(), n) for n in names)
        if len(set(full)) != len(full):
            raise ValueError(f"a provider is named twice in {list(names)}")
        return full

    @field_validator("input_shape")
    @classmethod
    def _sizes(cls, shape):
        if isinstance(shape, dict):
            return {name: _check_shape(s) for name, s in shape.items()}
        return shape if shape is None else _check_shape(shape)


def _sdk():
    """``(onnxruntime, onnx)``: the runtime, and the ONNX package that reads and edits the graph."""
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise BackendUnavailable("onnx backend needs ONNX Runtime and the onnx package: "
                                 "pip install onnxruntime onnx (or edgert[onnx])") from None
    return onnxruntime, onnx


def session_providers(ort, requested: tuple) -> list:
    """The providers (with their options) to give `InferenceSession`, CPU last.

    Raises:
        ConfigError: a provider ONNX Runtime does not know.
        BackendUnavailable: a provider this onnxruntime build does not have (the message lists what it has).
    """
    known, available = ort.get_all_providers(), ort.get_available_providers()
    names = [*requested, *([] if CPU_PROVIDER in requested else [CPU_PROVIDER])]
    for name in names:
        if name not in known:
            raise ConfigError(f"onnx backend option providers: unknown execution provider {name!r} "
                              f"(short names: {', '.join(PROVIDER_ALIASES)})")
        if name not in available:
            where = PROVIDER_PACKAGES.get(name, "an onnxruntime build with it")
            raise BackendUnavailable(f"onnx backend: this onnxruntime {ort.__version__} has no {name} "
                                     f"(it has {', '.join(available)}); for it: {where}")
    return names


class OnnxBackend(Backend):
    """Runs .onnx models with ONNX Runtime (see the module docstring for shapes and quantized edges)."""

    KEY = KEY
    KINDS = ("onnx",)
    PRIORITY = 0
    Config = OnnxConfig

    def __init__(self):
        super().__init__()
        self._session = None

    @classmethod
    def probe(cls, hardware) -> str | None:
        return sdk_missing(_sdk)

    def open(self, model_file: ModelFile, config: OnnxConfig) -> None:
        ort, onnx = _sdk()
        providers = session_providers(ort, config.providers)
        name = str(model_file.path)
        graph = onnx_graph.read(onnx, model_file.path)
        shapes = onnx_graph.fix_input_shapes(graph, config.input_shape, name)
        quant = onnx_graph.strip_quantized_edges(onnx, graph) if config.quantized_io else {}
        self._session = self._start(ort, graph, providers, config.num_threads, name)
        try:
            self._describe(graph, shapes, quant, name)
        except BaseException:
            self.release()
            raise

    def _describe(self, graph, shapes: dict, quant: dict, name: str) -> None:
        """Set the input and output specs."""
        self.inputs = tuple(onnx_graph.spec(v, shapes[v.name], quant.get(v.name), name)
                            for v in onnx_graph.graph_inputs(graph.graph))
        self._in_names = [s.name for s in self.inputs]
        self._out_names = [o.name for o in self._session.get_outputs()]
        self.outputs = self._output_specs(graph, quant, name)

    def _start(self, ort, graph, providers: list, threads: int, name: str):
        """The `InferenceSession` over the edited graph; `ModelError` if ONNX Runtime refuses it."""
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 4  # fatal only: what it would log as an error comes back as our exception
        options = [{"intra_op_num_threads": threads} if p == "XnnpackExecutionProvider" else {} for p in providers]
        try:
            return ort.InferenceSession(graph.SerializeToString(), sess_options=opts, providers=providers,
                                        provider_options=options)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types, none an EdgertError
            raise ModelError(f"{name}: onnxruntime cannot load it ({one_line(exc)})") from None

    def _output_specs(self, graph, quant: dict, name: str) -> tuple:
        """Output specs; dimensions the file leaves dynamic are taken from a warm-up run with zeros."""
        declared = {v.name: v for v in graph.graph.output}
        shapes = {n: onnx_graph.static_shape(declared[n], name) for n in self._out_names}
        if any(s is None for s in shapes.values()):
            try:
                outs = self.run([np.zeros(s.shape, s.dtype) for s in self.inputs])
            except DeviceError as exc:
                raise ModelError(f"{name}: its output shapes are dynamic and a warm-up run to learn them "
                                 f"failed ({exc})") from None
            shapes = {n: tuple(o.shape) for n, o in zip(self._out_names, outs)}
        return tuple(onnx_graph.spec(declared[n], shapes[n], quant.get(n), name) for n in self._out_names)

    def run(self, inputs: list) -> list:
        session = self._session
        if session is None:
            raise ClosedError("onnx model is closed; load it again to run it")
        try:
            return session.run(self._out_names, dict(zip(self._in_names, inputs)))
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types, none an EdgertError
            raise DeviceError(f"onnx: onnxruntime run failed ({one_line(exc)})") from None

    def release(self) -> None:
        self._session = None
