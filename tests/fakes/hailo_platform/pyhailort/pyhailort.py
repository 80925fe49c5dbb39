"""Fake of HailoRT's `hailo_platform.pyhailort.pyhailort` (4.23, sdk-notes.md section 1).

A fake .hef is ``b"HEF\\0"`` + a 4-byte length + a JSON header + the bytes of a CPU .tflite model
(`make_hef`). Outputs come from running that model on LiteRT, returned as the device returns them:
raw quantized (UINT8, with the header's quant info) or FLOAT32 on request, or HAILO_NMS_BY_CLASS
when the header declares on-chip NMS (the CPU model then gives YOLOv8 ``(1, 4 + C, N)`` float32
normalised xywh + class scores; the fake does NMS per class and packs the result).
"""
import json
import os
import struct
import threading

import numpy as np


class HailoRTException(Exception):
    pass


class HailoRTTimeout(HailoRTException):
    pass


class HailoRTInvalidOperationException(HailoRTException):
    pass


class HailoRTNotFoundException(HailoRTException):
    pass


class HailoRTStreamAborted(HailoRTException):
    pass


class HailoSchedulingAlgorithm:
    NONE = 0
    ROUND_ROBIN = 1


class FormatType:
    AUTO = 0
    UINT8 = 1
    UINT16 = 2
    FLOAT32 = 3


class FormatOrder:
    NHWC = 1
    NC = 2
    NHW = 3
    HAILO_NMS_BY_CLASS = 22
    HAILO_NMS_BY_SCORE = 23


class HailoStreamInterface:
    PCIe = 0
    INTEGRATED = 1
    ETH = 2
    MIPI = 3


#: Physical devices the fake sees (PCIe BDFs); empty means "no Hailo device".
DEVICES = ["0000:01:00.0"]
#: Every VDevice created: tests check sharing and the scheduler setting.
VDEVICES = []
#: Seconds the "device" takes per frame (0: at once, still from another thread).
DEVICE_DELAY = 0.0
#: Physical devices held by a VDevice without the multi-process service (HailoRT marks them used).
_IN_USE = set()


def make_hef(tflite_bytes: bytes, header: dict | None = None) -> bytes:
    """Bytes of a fake .hef: header keys ``output_quant`` (list of [scale, zp] for float outputs) and
    ``nms`` ({classes, max_bboxes, score_threshold, iou_threshold}) when the model ends in on-chip NMS."""
    h = json.dumps(header or {}).encode()
    return b"HEF\0" + struct.pack("<I", len(h)) + h + tflite_bytes


def _parse_hef(source):
    data = source if isinstance(source, (bytes, bytearray)) else open(source, "rb").read()
    if not data.startswith(b"HEF\0"):
        raise HailoRTException("Failed to parse HEF: invalid magic")
    (n,) = struct.unpack("<I", data[4:8])
    return json.loads(data[8:8 + n]), bytes(data[8 + n:])


class QuantInfo:
    def __init__(self, scale, zp):
        self.qp_scale, self.qp_zp = np.float32(scale), np.float32(zp)
        self.limvals_min, self.limvals_max = np.float32(0), np.float32(0)


class _Format:
    def __init__(self, type_, order):
        self.type, self.order = type_, order


class _Network:
    """The CPU twin of a HEF and its streams."""

    def __init__(self, source):
        from ai_edge_litert.interpreter import Interpreter
        self.header, model = _parse_hef(source)
        self.it = Interpreter(model_content=model)
        self.it.allocate_tensors()
        self.lock = threading.Lock()
        self.in_details = self.it.get_input_details()
        self.out_details = self.it.get_output_details()

    def compute(self, x):
        with self.lock:
            d = self.in_details[0]
            self.it.set_tensor(d["index"], x.reshape(d["shape"]).astype(d["dtype"]))
            self.it.invoke()
            return [self.it.get_tensor(o["index"]) for o in self.out_details]


class InferStream:
    def __init__(self, name, shape, type_, order, quant, is_nms=False, nms=None):
        self.name, self.shape, self.is_nms = name, list(shape), is_nms
        self.format = _Format(type_, order)
        self.quant_infos = [quant]
        self._nms = nms

    def set_format_type(self, type):  # noqa: A002 - HailoRT's parameter name
        if self.is_nms and type != FormatType.FLOAT32:
            raise HailoRTInvalidOperationException("NMS output supports FLOAT32 only in this format order")
        self.format.type = type

    def set_format_order(self, order):
        self.format.order = order

    def set_nms_score_threshold(self, threshold):
        self._nms["score_threshold"] = float(threshold)

    def set_nms_iou_threshold(self, threshold):
        self._nms["iou_threshold"] = float(threshold)

    def set_nms_max_proposals_per_class(self, max_proposals):
        self._nms["max_bboxes"] = int(max_proposals)


class InferModel:
    def __init__(self, vdevice, source, name=""):
        self._vdevice = vdevice
        self._net = _Network(source)
        h = self._net.header
        d = self._net.in_details[0]
        q = d["quantization"]
        self.inputs = [InferStream("input_layer1", d["shape"][1:], FormatType.UINT8, FormatOrder.NHWC,
                                   QuantInfo(q[0] or 1.0, q[1]))]
        if h.get("nms"):
            nms = dict(h["nms"])
            self.outputs = [InferStream("yolov8_nms_postprocess", [nms["classes"] * (1 + 5 * nms["max_bboxes"])],
                                        FormatType.FLOAT32, FormatOrder.HAILO_NMS_BY_CLASS, QuantInfo(1.0, 0), True,
                                        nms)]
        else:
            quants = h.get("output_quant") or [o["quantization"] for o in self._net.out_details]
            self.outputs = [InferStream(f"output{i}", o["shape"][1:], FormatType.UINT8, FormatOrder.NHWC,
                                        QuantInfo(*quants[i])) for i, o in enumerate(self._net.out_details)]
        self.batch = 1
        self.hef = source

    @property
    def input_names(self):
        return [s.name for s in self.inputs]

    @property
    def output_names(self):
        return [s.name for s in self.outputs]

    def _pick(self, streams, name, what):
        if not name:
            if len(streams) > 1:
                raise HailoRTInvalidOperationException(f"Model has more than one {what}!")
            return streams[0]
        for s in streams:
            if s.name == name:
                return s
        raise HailoRTNotFoundException(f"{what} {name} not found")

    def input(self, name=""):
        return self._pick(self.inputs, name, "input")

    def output(self, name=""):
        return self._pick(self.outputs, name, "output")

    def set_batch_size(self, batch_size):
        self.batch = int(batch_size)

    def configure(self):
        self._vdevice._check_pid()
        return ConfiguredInferModel(self)


class _Binding:
    def __init__(self, stream):
        self.stream, self.buffer = stream, None

    def set_buffer(self, buffer):
        if not isinstance(buffer, np.ndarray) or not buffer.flags.c_contiguous:
            raise HailoRTException("Buffer must be C_CONTIGUOUS")
        self.buffer = buffer

    def get_buffer(self, tf_format=False):
        return self.buffer


class Bindings:
    def __init__(self, model, outputs):
        self._in = {s.name: _Binding(s) for s in model.inputs}
        self._out = {s.name: _Binding(s) for s in model.outputs}
        for name, buf in (outputs or {}).items():
            self._out[name].set_buffer(buf)
        self._model = model

    def input(self, name=""):
        return self._in[self._model.input(name).name]

    def output(self, name=""):
        return self._out[self._model.output(name).name]


class _CompletionInfo:
    def __init__(self, exception=None):
        self.exception = exception


class AsyncInferJob:
    def __init__(self, done):
        self._done = done

    def wait(self, timeout_ms):
        if not self._done.wait(timeout_ms / 1000):
            raise HailoRTTimeout("Waiting for async job to finish has failed with timeout")


_ITEMSIZE = {FormatType.UINT8: 1, FormatType.UINT16: 2, FormatType.FLOAT32: 4}
_DTYPE = {FormatType.UINT8: np.uint8, FormatType.UINT16: np.uint16, FormatType.FLOAT32: np.float32}


class ConfiguredInferModel:
    def __init__(self, model):
        self._model = model
        self._shut = False
        self._active = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def activate(self):
        if self._model._vdevice.params.scheduling_algorithm != HailoSchedulingAlgorithm.NONE:
            raise HailoRTInvalidOperationException("activate is not allowed when the scheduler is enabled")
        self._active = True

    def deactivate(self):
        self._active = False

    def shutdown(self):
        self._shut = True

    def create_bindings(self, input_buffers=None, output_buffers=None):
        b = Bindings(self._model, output_buffers)
        for name, buf in (input_buffers or {}).items():
            b.input(name).set_buffer(buf)
        return b

    def wait_for_async_ready(self, timeout_ms=1000, frames_count=1):
        if self._shut:
            raise HailoRTStreamAborted("Stream aborted")

    def run(self, bindings, timeout):
        self.run_async(bindings).wait(timeout)

    def run_async(self, bindings, callback=None):
        vd = self._model._vdevice
        vd._check_pid()
        if self._shut or vd._released:
            raise HailoRTStreamAborted("Stream aborted")
        if vd.params.scheduling_algorithm == HailoSchedulingAlgorithm.NONE and not self._active:
            raise HailoRTInvalidOperationException("Network group is not activated")
        for b in bindings:
            self._check_input(b)
        done = threading.Event()

        def device():
            # Like the device: the buffers are read after run_async returned, and the callback
            # comes from another thread.
            DEVICE_DELAY and threading.Event().wait(DEVICE_DELAY)
            error = None
            try:
                for b in bindings:
                    self._infer_one(b)
            except HailoRTException as exc:
                error = exc
            if callback is not None:
                callback(completion_info=_CompletionInfo(error))
            done.set()

        threading.Thread(target=device, daemon=True).start()
        return AsyncInferJob(done)

    def _check_input(self, b):
        (stream,) = self._model.inputs
        x = b.input(stream.name).buffer
        need = int(np.prod(stream.shape)) * _ITEMSIZE[stream.format.type]
        if x is None or x.nbytes != need:
            self._shut = True  # the real runtime shuts the configured model down
            raise HailoRTInvalidOperationException(f"Input buffer size {0 if x is None else x.nbytes} is different "
                                                   f"than expected {need}")

    def _infer_one(self, b):
        (stream,) = self._model.inputs
        outs = self._model._net.compute(b.input(stream.name).buffer)
        for i, s in enumerate(self._model.outputs):
            buf = b.output(s.name).buffer
            value = _nms_by_class(outs[0], s._nms) if s.is_nms else _device_format(outs[i], s)
            if buf is None or buf.nbytes != value.nbytes:
                self._shut = True
                raise HailoRTInvalidOperationException(f"Output buffer size for {s.name} is different than expected")
            buf.reshape(-1)[...] = value.reshape(-1)


def _device_format(y, stream):
    """A CPU output as the device returns it: raw UINT8 (quantized with the stream's info) or FLOAT32."""
    q = stream.quant_infos[0]
    real = y.astype(np.float32) if y.dtype == np.float32 else (y.astype(np.float32) - q.qp_zp) * q.qp_scale
    if stream.format.type == FormatType.FLOAT32:
        return real.reshape(stream.shape).astype(np.float32)
    if not q.qp_scale > 0:
        raise HailoRTException("make_hef: a float output needs output_quant for the device's raw format")
    if y.dtype == np.uint8:
        return y.reshape(stream.shape)
    return np.clip(np.round(real / q.qp_scale + q.qp_zp), 0, 255).astype(np.uint8).reshape(stream.shape)


def _nms_by_class(y, nms):
    """Per-class greedy NMS of a YOLOv8 (1, 4 + C, N) normalised output, packed as HAILO_NMS_BY_CLASS."""
    x = y[0].T.astype(np.float32)
    classes, max_b = nms["classes"], nms["max_bboxes"]
    out = []
    for c in range(classes):
        s = x[:, 4 + c]
        idx = np.flatnonzero(s >= nms.get("score_threshold", 0.3))
        idx = idx[np.argsort(-s[idx], kind="stable")]
        kept = []
        for i in idx:
            b = x[i, :4]
            box = np.array([b[1] - b[3] / 2, b[0] - b[2] / 2, b[1] + b[3] / 2, b[0] + b[2] / 2], np.float32)
            if all(_iou(box, k[:4]) <= nms.get("iou_threshold", 0.6) for k in kept):
                kept.append(np.append(box, s[i]).astype(np.float32))
            if len(kept) == max_b:
                break
        out.append(np.float32(len(kept)))
        out.extend(np.concatenate(kept) if kept else [])
    buf = np.zeros(classes * (1 + 5 * max_b), np.float32)
    buf[:len(out)] = out
    return buf


def _iou(a, b):  # boxes as y0, x0, y1, x1
    ih = min(a[2], b[2]) - max(a[0], b[0])
    iw = min(a[3], b[3]) - max(a[1], b[1])
    if ih <= 0 or iw <= 0:
        return 0.0
    inter = ih * iw
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


class VDeviceParams:
    def __init__(self):
        self.device_ids = None
        self.device_count = 1
        self.scheduling_algorithm = HailoSchedulingAlgorithm.NONE  # 4.20/4.23 Python default (the gotcha)
        self.group_id = "UNIQUE"
        self.multi_process_service = False


class VDevice:
    def __init__(self, params=None, *, device_ids=None):
        if not DEVICES:
            raise HailoRTException("Failed to create vdevice. there are not enough free devices. requested: 1, found: 0")
        self.params = params or VDeviceParams()
        if self.params.multi_process_service and not os.environ.get("FAKE_HAILORT_SERVICE"):
            raise HailoRTException("Failed to connect to hailort_service (is the service running?)")
        self._pid = os.getpid()
        self._released = False
        self._holds = None
        if not self.params.multi_process_service:
            free = [d for d in DEVICES if d not in _IN_USE]
            if not free:
                raise HailoRTException("Failed to create vdevice. there are not enough free devices. "
                                       f"requested: 1, found: 0 (in use: {len(_IN_USE)})")
            self._holds = free[0]
            _IN_USE.add(self._holds)
        VDEVICES.append(self)

    @staticmethod
    def create_params():
        return VDeviceParams()

    def _check_pid(self):
        if os.getpid() != self._pid:
            raise HailoRTException("VDevice created in another process cannot be used in this process")
        if self._released:
            raise HailoRTException("VDevice was released")

    def create_infer_model(self, hef_source, name=""):
        self._check_pid()
        return InferModel(self, hef_source, name)

    def get_physical_devices_ids(self):
        return list(DEVICES)

    def release(self):
        self._released = True
        if self._holds is not None:
            _IN_USE.discard(self._holds)
            self._holds = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


# ---- legacy InferVStreams surface ----------------------------------------------------------------

class _VStreamInfo:
    def __init__(self, stream, network_name):
        self.name = stream.name
        self.format = stream.format
        self.quant_info = stream.quant_infos[0]
        self.network_name = network_name
        self.shape = tuple(stream.shape) if not stream.is_nms else (stream._nms["classes"], 5,
                                                                     stream._nms["max_bboxes"])
        self._stream = stream


class HEF:
    def __init__(self, hef_source):
        self._source = hef_source
        self._model = InferModel(_NoDevice(), hef_source)

    def get_network_group_names(self):
        return ["net"]

    def get_input_vstream_infos(self, name=None):
        return [_VStreamInfo(s, "net/net") for s in self._model.inputs]

    def get_output_vstream_infos(self, name=None):
        return [_VStreamInfo(s, "net/net") for s in self._model.outputs]


class _NoDevice:
    params = VDeviceParams()

    def _check_pid(self):
        pass


class ConfigureParams:
    @staticmethod
    def create_from_hef(hef, interface):
        return {"net": {"interface": interface}}


class _Activation:
    def __init__(self, ng):
        self._ng = ng

    def __enter__(self):
        self._ng._active = True
        return self

    def __exit__(self, *exc):
        self._ng._active = False


class ConfiguredNetwork:
    def __init__(self, vdevice, hef):
        self._vdevice, self._hef, self._active = vdevice, hef, False

    def create_params(self):
        return {}

    def activate(self, network_group_params=None):
        # With the scheduler on, activation is a deprecated no-op (an empty context manager).
        if self._vdevice.params.scheduling_algorithm != HailoSchedulingAlgorithm.NONE:
            return _Activation(_Dummy())
        return _Activation(self)

    def get_input_vstream_infos(self, network_name=None):
        return self._hef.get_input_vstream_infos(network_name)

    def get_output_vstream_infos(self, network_name=None):
        return self._hef.get_output_vstream_infos(network_name)


class _Dummy:
    _active = False


def _configure(self, hef, configure_params_by_name=None):
    self._check_pid()
    return [ConfiguredNetwork(self, hef)]


VDevice.configure = _configure


def _vstream_params(infos, format_type):
    return {i.name: {"format_type": format_type if format_type is not None else FormatType.AUTO} for i in infos}


class InputVStreamParams:
    @staticmethod
    def make(configured_network, quantized=None, format_type=None, timeout_ms=None, queue_size=None,
             network_name=None):
        return _vstream_params(configured_network.get_input_vstream_infos(), format_type)


class OutputVStreamParams:
    @staticmethod
    def make(configured_network, quantized=None, format_type=None, timeout_ms=None, queue_size=None,
             network_name=None):
        return _vstream_params(configured_network.get_output_vstream_infos(), format_type)


class InferVStreams:
    def __init__(self, configured_net_group, input_vstreams_params, output_vstreams_params, tf_nms_format=False):
        self._ng = configured_net_group
        self._out_params = output_vstreams_params
        self._tf_nms = tf_nms_format
        for s in configured_net_group._hef._model.outputs:
            if s.is_nms and output_vstreams_params[s.name]["format_type"] != FormatType.FLOAT32:
                raise HailoRTInvalidOperationException("NMS output format type must be HAILO_FORMAT_TYPE_FLOAT32")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def infer(self, input_data):
        vd = self._ng._vdevice
        vd._check_pid()
        if vd.params.scheduling_algorithm == HailoSchedulingAlgorithm.NONE and not self._ng._active:
            raise HailoRTInvalidOperationException("Network group is not activated")
        model = self._ng._hef._model
        (stream,) = model.inputs
        batch = np.asarray(input_data[stream.name])
        if batch.ndim != len(stream.shape) + 1 or tuple(batch.shape[1:]) != tuple(stream.shape):
            raise HailoRTInvalidOperationException(f"Input shape {batch.shape} does not match {stream.shape}")
        if batch.dtype != np.uint8:  # converted silently per frame, with a logged warning
            batch = batch.astype(np.uint8)
        results = {s.name: [] for s in model.outputs}
        for frame in batch:
            outs = model._net.compute(np.ascontiguousarray(frame))
            for i, s in enumerate(model.outputs):
                if s.is_nms:
                    results[s.name].append(_split_nms(_nms_by_class(outs[0], s._nms), s._nms))
                else:
                    want = self._out_params.get(s.name, {}).get("format_type", FormatType.AUTO)
                    fmt = _Format(FormatType.FLOAT32 if want == FormatType.FLOAT32 else FormatType.UINT8,
                                  s.format.order)
                    tmp = InferStream(s.name, s.shape, fmt.type, fmt.order, s.quant_infos[0])
                    results[s.name].append(_device_format(outs[i], tmp))
        return {name: (v if model.outputs[0].is_nms else np.stack(v)) for name, v in results.items()}


def _split_nms(buf, nms):
    """The per-class list of (n_i, 5) arrays that the vstreams API returns for NMS_BY_CLASS."""
    out, p = [], 0
    for _ in range(nms["classes"]):
        n = int(buf[p])
        out.append(buf[p + 1:p + 1 + 5 * n].reshape(n, 5).copy())
        p += 1 + 5 * n
    return out
