"""Fake of LiteRT's interpreter module with a libedgetpu delegate (sdk-notes.md sections 3 and 4).

`load_delegate("libedgetpu.so.1", {"device": ...})` behaves like the real one: OSError when the
library is missing, ValueError "Failed to load delegate from ..." when no Edge TPU answers at that
device. An "Edge TPU-compiled" model is one `edgetpu-custom-op` whose custom options hold a CPU
.tflite (the real compiler puts the TPU program there); with the delegate the fake runs that CPU
model on the real LiteRT, without it allocate_tensors fails as LiteRT does.
"""
import types

import numpy as np
from ai_edge_litert import interpreter as real
from ai_edge_litert import schema_py_generated as schema

OpResolverType = real.OpResolverType


def make_module(devices=("usb:0",), library_present=True):
    """An `ai_edge_litert.interpreter` stand-in with Edge TPUs at `devices` ("usb:N" / "pci:N")."""
    mod = types.ModuleType("ai_edge_litert.interpreter")
    mod.OpResolverType = OpResolverType
    mod.DELEGATE_CALLS = []

    class Delegate:
        def __init__(self, device):
            self.device = device

    def load_delegate(library, options=None):
        options = dict(options or {})
        mod.DELEGATE_CALLS.append((library, options))
        if not library_present or library != "libedgetpu.so.1":
            raise OSError(f"{library}: cannot open shared object file: No such file or directory")
        want = options.get("device", "")
        kind, _, index = want.partition(":")
        match = [d for d in devices if (not kind or d.startswith(kind)) and (not index or d == f"{kind}:{index}")]
        if not match:
            raise ValueError(f"Failed to load delegate from {library}\n")
        return Delegate(match[0])

    class Interpreter:
        # The signature of ai_edge_litert 2.3.0's Interpreter, without **kwargs: an option LiteRT
        # lacks fails here as it does there.
        def __init__(self, model_path=None, model_content=None, experimental_delegates=None, num_threads=None,
                     experimental_op_resolver_type=OpResolverType.AUTO, experimental_preserve_all_tensors=False,
                     experimental_disable_delegate_clustering=False,
                     experimental_default_delegate_latest_features=False,
                     experimental_compress_quantization_zero_points=False,
                     experimental_disable_delegate_node_fusion=False, experimental_force_delegate_node_profiling=False):
            if model_content is not None:
                data = model_content
            else:
                try:
                    with open(model_path, "rb") as f:
                        data = f.read()
                except (OSError, TypeError):
                    raise ValueError(f"Could not open '{model_path}'.The model allocation is null/empty") from None
            self._delegated = any(isinstance(d, Delegate) for d in (experimental_delegates or []))
            payload = _edgetpu_payload(data)
            if payload is not None and self._delegated:
                self._it = real.Interpreter(model_content=payload)
            else:
                self._it = real.Interpreter(
                    model_content=data, num_threads=num_threads,
                    experimental_op_resolver_type=experimental_op_resolver_type,
                    experimental_preserve_all_tensors=experimental_preserve_all_tensors)

        def __getattr__(self, name):
            return getattr(self._it, name)

    mod.load_delegate = load_delegate
    mod.Interpreter = Interpreter
    return mod


def _edgetpu_payload(data: bytes):
    m = schema.Model.GetRootAsModel(data, 0)
    for i in range(m.OperatorCodesLength()):
        if m.OperatorCodes(i).CustomCode() == b"edgetpu-custom-op":
            op = m.Subgraphs(0).Operators(0)
            return bytes(op.CustomOptionsAsNumpy().astype(np.uint8))
    return None
