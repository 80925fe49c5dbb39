"""Fake of RKNN Toolkit Lite2's `rknnlite.api.RKNNLite` (signatures of 2.3.2/2.5.0, sdk-notes.md section 2).

Like the real one it reports failure by return value (-1, None) and never raises; it returns
float32 outputs (dequantized), whatever the model's internal type. The network runs on LiteRT: a
fake .rknn file is ``b"RKNN"`` + the bytes of a .tflite model.
"""
import numpy as np

NPU_CORE_AUTO = 0
NPU_CORE_0 = 1
NPU_CORE_1 = 2
NPU_CORE_2 = 4
NPU_CORE_0_1 = 3
NPU_CORE_0_1_2 = 7
NPU_CORE_ALL = 0xFFFF

#: The SoC the fake pretends to run on; core masks over cores it lacks fail as on the device.
SOC = "rk3588"
#: Every init_runtime call as (core_mask, instance id): tests check pinning.
CALLS = []
#: Set to make the next inference fail (the real runtime logs and returns None).
FAIL_NEXT_INFERENCE = []


def make_rknn(tflite_bytes: bytes) -> bytes:
    """The bytes of a fake .rknn file holding `tflite_bytes`."""
    return b"RKNN" + tflite_bytes


class RKNNLite:
    def __init__(self, verbose=False, verbose_file=None):
        self._model = None
        self._it = None
        self._released = False

    def load_rknn(self, path, key_path=None):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return -1
        self._model = data  # Lite2 only reads the bytes here; init_runtime parses them
        return 0

    def init_runtime(self, target=None, device_id=None, async_mode=False, core_mask=NPU_CORE_AUTO):
        if self._model is None:
            return -1
        valid = {NPU_CORE_AUTO, NPU_CORE_0, NPU_CORE_1, NPU_CORE_2, NPU_CORE_0_1, NPU_CORE_0_1_2, NPU_CORE_ALL}
        if core_mask not in valid or (SOC != "rk3588" and core_mask in (NPU_CORE_2, NPU_CORE_0_1_2)):
            return -1
        if not self._model.startswith(b"RKNN"):
            return -1  # the runtime fails to parse a corrupt model and logs why
        try:
            from ai_edge_litert.interpreter import Interpreter
            self._it = Interpreter(model_content=self._model[4:])
            self._it.allocate_tensors()
        except Exception:
            return -1
        CALLS.append((core_mask, id(self)))
        return 0

    def inference(self, inputs, data_type=None, data_format=None, inputs_pass_through=None, get_frame_id=False,
                  reuse_outputs=False):
        if self._it is None or self._released or not isinstance(inputs, list):
            return None
        if FAIL_NEXT_INFERENCE:
            FAIL_NEXT_INFERENCE.pop()
            return None
        details = self._it.get_input_details()
        if len(inputs) != len(details):
            return None
        for x, d in zip(inputs, details):
            x = np.asarray(x)
            if tuple(x.shape) != tuple(d["shape"]):
                return None  # the runtime logs a size mismatch and returns None
            if x.dtype != d["dtype"]:
                x = x.astype(d["dtype"])
            self._it.set_tensor(d["index"], x)
        self._it.invoke()
        outs = []
        for d in self._it.get_output_details():
            y = self._it.get_tensor(d["index"])
            scale, zp = d["quantization"]
            outs.append(((y.astype(np.float32) - zp) * scale) if scale else y.astype(np.float32))
        return outs

    def get_sdk_version(self):
        return "fake 2.3.2"

    def list_support_target_platform(self, rknn_model=None):
        return {"support_target_platform": [SOC]}

    def release(self):
        self._released = True
        self._it = None
        return None
