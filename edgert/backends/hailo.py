"""Hailo-8/8L backend: HailoRT's InferModel API on one VDevice shared by every model of the process.

The VDevice is created with the ROUND_ROBIN scheduler set explicitly (HailoRT 4.20-4.23's Python
default is NONE, which would let only one model run), so several models share one Hailo-8. Runs
are asynchronous with a bounded number of frames in flight; outputs are raw quantized (decoded by
edgert's kernels) or FLOAT32, and on-chip NMS outputs come as HAILO_NMS_BY_CLASS float32 buffers
(`edgert.postprocess.parse_hailo_nms`).
"""
from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Literal

import numpy as np
from pydantic import Field

from edgert.backends.base import Backend, BackendConfig, sdk_missing
from edgert.core.errors import BackendUnavailable, DeviceError, ModelError
from edgert.core.model_files import ModelFile
from edgert.core.tensor import Quantization, TensorSpec

KEY = "hailo"

_shared_lock = threading.Lock()
_shared: dict = {}  # (pid, multi_process_service, group_id) -> [vdevice, pid, users]


class HailoConfig(BackendConfig):
    """Options of the Hailo backend."""

    api: Literal["infer_model", "vstreams"] = Field(
        "infer_model", description="HailoRT API: InferModel (async) or the legacy InferVStreams (synchronous, "
                                   "for HailoRT releases without InferModel).")
    output_format: Literal["raw", "float32"] = Field(
        "raw", description="raw: outputs as the HEF quantizes them; float32: dequantized by HailoRT.")
    max_in_flight: int = Field(2, ge=1, le=16, description="Frames submitted to the device at once.")
    timeout_ms: int = Field(2000, ge=1, description="How long a frame may take before it is a device error.")
    multi_process_service: bool = Field(False, description="Share the device across processes (hailort_service).")
    group_id: str = Field("SHARED", description="VDevice group: models in one group share the device.")
    nms_score_threshold: float | None = Field(
        None, ge=0, le=1, description="Score threshold of NMS that HailoRT runs on the host (HEFs whose NMS "
                                      "is a CPU post-process); HailoRT refuses it for on-chip NMS.")
    nms_iou_threshold: float | None = Field(
        None, ge=0, le=1, description="IoU threshold of host-side NMS, as nms_score_threshold.")


def _sdk():
    try:
        import hailo_platform
        from hailo_platform.pyhailort import pyhailort
        return hailo_platform, pyhailort
    except ImportError:
        raise BackendUnavailable("hailo backend needs HailoRT: install hailort and its Python wheel "
                                 "(hailo_platform) matching the driver version") from None


def _acquire_vdevice(hp, config: HailoConfig):
    # Keyed by process too: a VDevice created before a fork cannot be used in the child.
    key = (os.getpid(), config.multi_process_service, config.group_id)
    with _shared_lock:
        entry = _shared.get(key)
        if entry is None:
            params = hp.VDevice.create_params()
            params.scheduling_algorithm = hp.HailoSchedulingAlgorithm.ROUND_ROBIN
            params.group_id = config.group_id
            params.multi_process_service = config.multi_process_service
            try:
                entry = [hp.VDevice(params), os.getpid(), 0]
            except hp.HailoRTException as exc:
                raise BackendUnavailable(f"hailo: cannot open the device ({exc}): check /dev/hailo0 and the "
                                         "hailo_pci driver; if another process (or another group_id) holds it, "
                                         "run hailort_service and load with multi_process_service=True") from None
            _shared[key] = entry
        entry[2] += 1
        return key, entry[0]


def _release_vdevice(key) -> None:
    with _shared_lock:
        entry = _shared.get(key)
        if entry is None or key[0] != os.getpid():  # a model inherited over fork: not ours to release
            return
        entry[2] -= 1
        if entry[2] <= 0:
            del _shared[key]
            if entry[1] == os.getpid():
                entry[0].release()


class HailoBackend(Backend):
    """Runs .hef models on a Hailo-8/8L through the InferModel API."""

    KEY = KEY
    KINDS = ("hef",)
    PRIORITY = 10
    Config = HailoConfig

    @classmethod
    def probe(cls, hardware) -> str | None:
        if not hardware.hailo:
            return "no Hailo device found (/dev/hailoN, /sys/class/hailo_chardev)"
        return sdk_missing(_sdk)

    def open(self, model_file: ModelFile, config: HailoConfig) -> None:
        hp, rt = _sdk()
        self._rt, self._timeout = rt, config.timeout_ms
        self._vkey, vdevice = _acquire_vdevice(hp, config)
        try:
            self._configure(hp, vdevice, model_file, config)
        except rt.HailoRTException as exc:
            self.release()
            hint = ("; nms_score_threshold/nms_iou_threshold apply only to host-side NMS"
                    if config.nms_score_threshold is not None or config.nms_iou_threshold is not None else "")
            raise ModelError(f"hailo: cannot load {model_file.path} ({type(exc).__name__}: {exc}){hint}") from None
        except Exception:
            self.release()
            raise

    def _configure(self, hp, vdevice, model_file, config) -> None:
        if config.api == "vstreams":
            self._configure_vstreams(hp, vdevice, model_file, config)
            return
        self._pipe = None
        im = vdevice.create_infer_model(str(model_file.path))
        im.set_batch_size(1)
        if len(im.inputs) != 1:
            raise ModelError(f"hailo: {model_file.path} has {len(im.inputs)} inputs; one is supported")
        for o in im.outputs:
            if o.is_nms:
                o.set_format_type(hp.FormatType.FLOAT32)
                if config.nms_score_threshold is not None:
                    o.set_nms_score_threshold(config.nms_score_threshold)
                if config.nms_iou_threshold is not None:
                    o.set_nms_iou_threshold(config.nms_iou_threshold)
            elif config.output_format == "float32":
                o.set_format_type(hp.FormatType.FLOAT32)
        self._im = im
        self._in_name = im.inputs[0].name
        self.inputs = (self._spec(hp, im.inputs[0], batch=True),)
        self.outputs = tuple(self._spec(hp, o, batch=not o.is_nms) for o in im.outputs)
        self._cim = im.configure()
        self._slots = queue.Queue()
        for _ in range(config.max_in_flight):
            # Each slot owns its input buffer too: HailoRT reads it after run_async returns, while
            # the caller may already be writing its next frame into the array it passed.
            inp = np.empty(self.inputs[0].shape[1:], self.inputs[0].dtype)
            outs = {o.name: np.empty(spec.shape[1:] if not o.is_nms else spec.shape, spec.dtype)
                    for o, spec in zip(im.outputs, self.outputs)}
            bindings = self._cim.create_bindings(output_buffers=outs)
            bindings.input(self._in_name).set_buffer(inp)
            self._slots.put((bindings, inp, outs))

    def _configure_vstreams(self, hp, vdevice, model_file, config) -> None:
        hef = hp.HEF(str(model_file.path))
        params = hp.ConfigureParams.create_from_hef(hef, interface=hp.HailoStreamInterface.PCIe)
        ng = vdevice.configure(hef, params)[0]
        infos_in, infos_out = hef.get_input_vstream_infos(), hef.get_output_vstream_infos()
        if len(infos_in) != 1:
            raise ModelError(f"hailo: {model_file.path} has {len(infos_in)} inputs; one is supported")
        self._nms = {}
        in_p = hp.InputVStreamParams.make(ng, format_type=hp.FormatType.UINT8)
        # NMS outputs must be FLOAT32; raw ones keep the HEF's type unless float32 is asked for.
        raw_p = hp.OutputVStreamParams.make(ng, format_type=hp.FormatType.FLOAT32 if config.output_format == "float32"
                                            else hp.FormatType.AUTO)
        float_p = hp.OutputVStreamParams.make(ng, format_type=hp.FormatType.FLOAT32)
        out_p = {}
        self._in_name = infos_in[0].name
        self.inputs = (self._spec(hp, infos_in[0], batch=True),)
        outputs = []
        for info in infos_out:
            if info.format.order == hp.FormatOrder.HAILO_NMS_BY_CLASS:
                classes, _, max_boxes = info.shape
                self._nms[info.name] = (classes, max_boxes)
                out_p[info.name] = float_p[info.name]
                outputs.append(TensorSpec(info.name, (classes * (1 + 5 * max_boxes),), np.dtype(np.float32)))
            else:
                out_p[info.name] = raw_p[info.name]
                outputs.append(self._spec(hp, info, batch=True, float_out=config.output_format == "float32"))
        self.outputs = tuple(outputs)
        self._pipe = hp.InferVStreams(ng, in_p, out_p)
        self._pipe.__enter__()
        self._activation = ng.activate(ng.create_params())
        self._activation.__enter__()

    def _run_vstreams(self, inputs: list) -> list:
        rt = self._rt
        try:
            out = self._pipe.infer({self._in_name: inputs[0]})
        except rt.HailoRTException as exc:
            raise DeviceError(f"hailo: {type(exc).__name__}: {exc}") from None
        result = []
        for spec in self.outputs:
            if spec.name in self._nms:
                result.append(_pack_nms(out[spec.name][0], *self._nms[spec.name]))
            else:
                result.append(np.asarray(out[spec.name], spec.dtype).reshape(spec.shape))
        return result

    @staticmethod
    def _spec(hp, stream, batch: bool, float_out: bool | None = None) -> TensorSpec:
        """The spec of an InferModel stream or a vstream info (its type, or float32 if `float_out`)."""
        t = hp.FormatType.FLOAT32 if float_out else stream.format.type
        dtype = {hp.FormatType.FLOAT32: np.float32, hp.FormatType.UINT16: np.uint16}.get(t, np.uint8)
        infos = getattr(stream, "quant_infos", None) or [getattr(stream, "quant_info", None)]
        if len(infos) > 1 and dtype != np.float32:
            raise ModelError(f"hailo: output {stream.name!r} has {len(infos)} quantizations (per-feature); "
                             "load it with output_format='float32'")
        q = infos[0]
        quant = Quantization(float(q.qp_scale), int(round(float(q.qp_zp)))) if q is not None and dtype != np.float32 \
            and float(q.qp_scale) > 0 else None
        shape = tuple(int(v) for v in stream.shape)
        shape = (1,) + shape if batch else shape
        return TensorSpec(stream.name, shape, np.dtype(dtype), quant, "NHWC" if len(shape) == 4 else None)

    def run(self, inputs: list) -> list:
        if self._pipe is not None:
            return self._run_vstreams(inputs)
        try:
            return self.submit(inputs).result(timeout=self._timeout / 1000)
        except FutureTimeout:
            raise DeviceError(f"hailo: no result within {self._timeout} ms") from None

    def submit(self, inputs: list) -> Future:
        """Start one inference; the Future gives the outputs. At most max_in_flight run at once
        (this call blocks for a free slot)."""
        self.check_open()
        if self._pipe is not None:
            return super().submit(inputs)
        rt = self._rt
        future: Future = Future()
        try:
            slot = self._slots.get(timeout=self._timeout / 1000)
        except queue.Empty:
            raise DeviceError(f"hailo: no frame finished within {self._timeout} ms (device hung?)") from None
        bindings, inp, outs = slot
        inp[...] = inputs[0][0]

        def done(completion_info):
            try:
                if future.set_running_or_notify_cancel():
                    if completion_info.exception is not None:
                        future.set_exception(DeviceError(f"hailo: inference failed ({completion_info.exception})"))
                    else:
                        future.set_result([outs[s.name].reshape(s.shape).copy() for s in self.outputs])
            finally:
                self._slots.put(slot)

        try:
            self._cim.wait_for_async_ready(timeout_ms=self._timeout, frames_count=1)
            self._cim.run_async([bindings], done)
        except rt.HailoRTException as exc:
            self._slots.put(slot)
            raise DeviceError(f"hailo: {type(exc).__name__}: {exc}") from None
        return future

    def release(self) -> None:
        for ctx in (getattr(self, "_activation", None), getattr(self, "_pipe", None)):
            if ctx is not None:
                try:
                    ctx.__exit__(None, None, None)
                except Exception:  # noqa: BLE001 - a device already gone cannot be closed twice
                    pass
        self._activation = self._pipe = None
        cim = getattr(self, "_cim", None)
        if cim is not None:
            try:
                cim.shutdown()
            except Exception:  # noqa: BLE001 - a device already gone cannot be shut down twice
                pass
        self._cim = self._im = None
        self._slots = queue.Queue()
        if getattr(self, "_vkey", None) is not None:
            _release_vdevice(self._vkey)
            self._vkey = None


def _pack_nms(per_class: list, classes: int, max_boxes: int) -> np.ndarray:
    """The InferVStreams per-class lists as the flat HAILO_NMS_BY_CLASS buffer InferModel gives."""
    buf = np.zeros(classes * (1 + 5 * max_boxes), np.float32)
    p = 0
    for rows in per_class:
        rows = np.asarray(rows, np.float32).reshape(-1, 5)
        buf[p] = len(rows)
        buf[p + 1:p + 1 + rows.size] = rows.reshape(-1)
        p += 1 + rows.size
    return buf
