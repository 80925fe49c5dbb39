"""Fake of RKNN Toolkit Lite2 2.3.2's ``rknnlite/api/rknn_lite.py`` (read in the public wheel).

The class, its core-mask class attributes and its method signatures are those of 2.3.2 (2.5.0 adds
``key_path`` to `load_rknn` and ``reuse_outputs`` to `inference`; the fake takes neither, so code
works on both). Like the real one it reports failure by return value (-1, None) and never raises,
and returns float32 outputs (dequantized). The network runs on LiteRT: a fake .rknn file is
``b"RKNN"`` + the bytes of a .tflite model. Test controls are in `rknnlite.fake_rig`.
"""
import os

import numpy as np

#: inputs[i].dtype values the runtime takes (its "Unsupport inputs[i].dtype" otherwise).
_DTYPES = ("int8", "uint8", "int16", "float16", "float32")


def _rig():
    from rknnlite import fake_rig
    return fake_rig


class RKNNLite:

    NPU_CORE_AUTO = 0
    NPU_CORE_0 = 1
    NPU_CORE_1 = 2
    NPU_CORE_2 = 4
    NPU_CORE_0_1 = 3
    NPU_CORE_0_1_2 = 7
    NPU_CORE_ALL = 0xffff

    def __init__(self, verbose=False, verbose_file=None):
        self.rknn_data = None
        self.rknn_runtime = None
        self._frame_id = 0

    def load_rknn(self, path):
        if not os.path.exists(path):
            return -1
        try:
            with open(path, "rb") as f:
                self.rknn_data = f.read()  # Lite2 only reads the bytes here; init_runtime parses them
        except OSError:
            return -1
        return 0

    def list_devices(self):
        return [], []  # adb / ntb devices: none seen from the board itself

    def init_runtime(self, target=None, device_id=None, async_mode=False, core_mask=NPU_CORE_AUTO):
        rig = _rig()
        if self.rknn_data is None:
            return -1
        self.rknn_runtime = None  # the real one releases a previous runtime first
        valid = {self.NPU_CORE_AUTO, self.NPU_CORE_0, self.NPU_CORE_1, self.NPU_CORE_2, self.NPU_CORE_0_1,
                 self.NPU_CORE_0_1_2, self.NPU_CORE_ALL}
        if core_mask not in valid or (rig.SOC != "rk3588" and core_mask in (self.NPU_CORE_2, self.NPU_CORE_0_1_2)):
            return -1
        if not self.rknn_data.startswith(b"RKNN"):
            return -1  # the runtime fails to parse a corrupt model and logs why
        try:
            from ai_edge_litert.interpreter import Interpreter
            it = Interpreter(model_content=self.rknn_data[4:])
            it.allocate_tensors()
        except Exception:
            return -1
        self.rknn_runtime = it
        rig.CALLS.append((core_mask, id(self)))
        return 0

    def inference(self, inputs, data_type=None, data_format=None, inputs_pass_through=None, get_frame_id=False):
        it = self.rknn_runtime
        if it is None or not isinstance(inputs, list):
            return None  # "Inputs should be placed in a list"
        rig = _rig()
        if rig.FAIL_NEXT_INFERENCE:
            rig.FAIL_NEXT_INFERENCE.pop()
            return None
        details = it.get_input_details()
        if len(inputs) != len(details):
            return None
        types = data_type if isinstance(data_type, list) else [data_type] * len(inputs)
        formats = data_format if isinstance(data_format, list) else [data_format] * len(inputs)
        if len(types) != len(inputs) or len(formats) != len(inputs):
            return None
        for x, d, t, fmt in zip(inputs, details, types, formats):
            if not isinstance(x, np.ndarray) or x.dtype.name not in _DTYPES:
                return None  # "Type of inputs[i] is not np.ndarray!", "Unsupport inputs[i].dtype"
            if (t is not None and x.dtype.name != t) or fmt not in (None, "nhwc", "nchw"):
                return None
            if tuple(x.shape) != tuple(d["shape"]):
                return None  # the runtime logs a size mismatch and returns None
            it.set_tensor(d["index"], x.astype(d["dtype"]) if x.dtype != d["dtype"] else x)
        it.invoke()
        outs = []
        for d in it.get_output_details():
            y = it.get_tensor(d["index"])
            scale, zp = d["quantization"]
            outs.append(((y.astype(np.float32) - zp) * scale) if scale else y.astype(np.float32))
        self._frame_id += 1
        return outs + [self._frame_id] if get_frame_id else outs

    def get_sdk_version(self):
        if self.rknn_runtime is None:
            return None
        return "2.3.2 (fake)"

    def list_support_target_platform(self, rknn_model=None):
        if rknn_model is not None and not os.path.exists(rknn_model):
            return None
        return {"support_target_platform": [_rig().SOC]}  # [U] the real dict's keys are not in the source

    def release(self):
        self.rknn_runtime = None
