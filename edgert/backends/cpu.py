"""CPU backend: LiteRT's Interpreter with XNNPACK (tflite-runtime where LiteRT has no wheel)."""
from __future__ import annotations

import threading

import numpy as np
from pydantic import Field

from edgert.backends.base import Backend, BackendConfig, sdk_missing
from edgert.core.errors import (
    BackendUnavailable,
    DeviceError,
    EdgertError,
    ModelError,
    one_line,
)
from edgert.core.model_files import ModelFile
from edgert.core.tensor import Quantization, TensorSpec

KEY = "cpu"


class CpuConfig(BackendConfig):
    """Options of the CPU backend."""

    num_threads: int = Field(1, ge=1, le=64, description="Interpreter threads (XNNPACK).")
    xnnpack: bool = Field(True, description="Use the XNNPACK delegate (LiteRT's default CPU kernels).")


def _interpreter_module():
    try:
        from ai_edge_litert import interpreter
        return interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime import interpreter
        return interpreter
    except ImportError:
        raise BackendUnavailable("cpu backend needs LiteRT: pip install ai-edge-litert "
                                 "(or tflite-runtime where LiteRT has no wheel)") from None


def spec_from_details(d: dict) -> TensorSpec:
    """A `TensorSpec` from an Interpreter tensor-details dict (per-channel quantization included)."""
    dtype = np.dtype(d["dtype"])
    qp = d.get("quantization_parameters") or {}
    scales = np.asarray(qp.get("scales", []), np.float32)
    zps = np.asarray(qp.get("zero_points", []), np.int64)
    quant = None
    if dtype.kind in "iu" and scales.size:
        axis = int(qp.get("quantized_dimension", 0)) if scales.size > 1 else None
        quant = Quantization(scales if scales.size > 1 else scales[0], zps if zps.size > 1 else zps[0], axis=axis)
    shape = tuple(int(v) for v in d["shape"])
    return TensorSpec(d["name"], shape, dtype, quant, "NHWC" if len(shape) == 4 else None)


class CpuBackend(Backend):
    """Runs .tflite models on the CPU.

    Inputs are written straight into the interpreter's input buffers (no intermediate copy); the
    views are dropped before `invoke`, as the interpreter requires. Outputs are copies.
    """

    KEY = KEY
    KINDS = ("tflite",)
    PRIORITY = 0
    Config = CpuConfig

    @classmethod
    def probe(cls, hardware) -> str | None:
        return sdk_missing(_interpreter_module)

    def open(self, model_file: ModelFile, config: CpuConfig) -> None:
        mod = _interpreter_module()
        resolver = mod.OpResolverType.AUTO if config.xnnpack else mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        self._start(mod, model_file, num_threads=config.num_threads, experimental_op_resolver_type=resolver)

    def _start(self, mod, model_file: ModelFile, **interpreter_args) -> None:
        """Create and allocate the interpreter; read the tensor specs."""
        self._lock = threading.Lock()
        try:
            self._it = mod.Interpreter(model_path=str(model_file.path), **interpreter_args)
            self._it.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            msg = one_line(exc)
            if model_file.custom_ops:
                raise ModelError(f"{model_file.path}: LiteRT cannot run custom op(s) {', '.join(model_file.custom_ops)} "
                                 f"({msg})") from None
            raise ModelError(f"{model_file.path}: LiteRT cannot load it ({msg})") from None
        try:
            ins, outs = self._it.get_input_details(), self._it.get_output_details()
            self.inputs = tuple(spec_from_details(d) for d in ins)
            self.outputs = tuple(spec_from_details(d) for d in outs)
        except (ValueError, UnicodeError, EdgertError) as exc:  # corrupt names or quantization
            raise ModelError(f"{model_file.path}: corrupted tensor descriptions ({type(exc).__name__}: {exc})") from None
        self._in_index = [d["index"] for d in ins]
        self._out_index = [d["index"] for d in outs]

    def run(self, inputs: list) -> list:
        # One interpreter runs one frame at a time: threads sharing a model take turns (invoke
        # releases the GIL, so they still overlap their own work with it).
        with self._lock:
            it = self._it
            for index, x in zip(self._in_index, inputs):
                it.tensor(index)()[...] = x  # a view into the input buffer, dropped at once
            try:
                it.invoke()
            except RuntimeError as exc:
                raise DeviceError(f"cpu: LiteRT invoke failed ({one_line(exc)})") from None
            return [it.get_tensor(i) for i in self._out_index]

    def release(self) -> None:
        self._it = None
