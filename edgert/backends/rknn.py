"""RK NPU backend (RK3588 and friends) through RKNN Toolkit Lite2's `RKNNLite`.

Lite2 reports failure by return value (-1, None) and never raises: every such return becomes an
`edgert.core.errors` exception here, with the call that failed. It has no query for input shapes, so
the input spec comes from the options; output specs come from one warm-up run. Outputs are float32,
as Lite2 returns them.
"""
from __future__ import annotations

import queue
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from edgert.backends.base import Backend, BackendConfig, sdk_missing
from edgert.core.errors import BackendUnavailable, ConfigError, DeviceError, ModelError
from edgert.core.model_files import ModelFile
from edgert.core.tensor import TensorSpec

KEY = "rknn"
#: RKNNLite core masks (class attributes of RKNNLite) by option name ("0_1_2" and "2": RK3588 only).
CORE_MASKS = {"auto": "NPU_CORE_AUTO", "0": "NPU_CORE_0", "1": "NPU_CORE_1", "2": "NPU_CORE_2",
              "0_1": "NPU_CORE_0_1", "0_1_2": "NPU_CORE_0_1_2"}
SINGLE_CORES = ("NPU_CORE_0", "NPU_CORE_1", "NPU_CORE_2")
#: Largest input taken, in elements (64 Mi: a 4K RGB frame is 25 Mi); the warm-up allocates one.
MAX_INPUT_ELEMENTS = 1 << 26


class RknnConfig(BackendConfig):
    """Options of the RKNN backend."""

    input_shape: tuple[int, ...] = Field(..., min_length=1, description="Model input shape, e.g. (1, 640, 640, 3).")
    input_dtype: Literal["uint8", "int8", "float32"] = Field("uint8", description="Input element type.")
    core_mask: Literal["auto", "0", "1", "2", "0_1", "0_1_2"] = Field(
        "auto", description="NPU cores for one instance: auto, a single core, or several (0_1_2: all three).")
    pool: int = Field(1, ge=1, le=3, description="Instances, each pinned to its own core; runs take a free one.")

    @field_validator("input_shape")
    @classmethod
    def _sizes(cls, shape):
        if any(v < 1 for v in shape):
            raise ValueError(f"sizes must be positive, got {shape}")
        if int(np.prod(shape, dtype=np.float64)) > MAX_INPUT_ELEMENTS:
            raise ValueError(f"{shape} has more than {MAX_INPUT_ELEMENTS} elements")
        return shape


def _api():
    """The `RKNNLite` class (``rknnlite.api`` exports only it; the core masks are its attributes)."""
    try:
        from rknnlite.api import RKNNLite
        return RKNNLite
    except ImportError:
        raise BackendUnavailable("rknn backend needs RKNN Toolkit Lite2: pip install rknn-toolkit-lite2 "
                                 "(aarch64 wheel from airockchip/rknn-toolkit2) and /usr/lib/librknnrt.so") from None


class RknnBackend(Backend):
    """Runs .rknn models on the RK NPU, one instance or a pool of single-core instances."""

    KEY = KEY
    KINDS = ("rknn",)
    PRIORITY = 10
    Config = RknnConfig

    @classmethod
    def probe(cls, hardware) -> str | None:
        if not hardware.rknpu:
            return "no Rockchip NPU found (device tree)"
        return sdk_missing(_api)

    def open(self, model_file: ModelFile, config: RknnConfig) -> None:
        lite = _api()
        if config.pool > 1:
            if config.core_mask != "auto":
                raise ModelError("rknn: pool pins each instance to its own core; leave core_mask at auto")
            masks = [getattr(lite, name) for name in SINGLE_CORES[: config.pool]]
        else:
            masks = [getattr(lite, CORE_MASKS[config.core_mask])]
        self._instances = []
        self._free = queue.Queue()
        try:
            for mask in masks:
                r = self._start(lite, model_file, mask)
                self._instances.append(r)
                self._free.put(r)
            self.inputs = (TensorSpec("input", config.input_shape, np.dtype(config.input_dtype),
                                      layout="NHWC" if len(config.input_shape) == 4 else None),)
            try:
                warm = self.run([np.zeros(config.input_shape, config.input_dtype)])
            except DeviceError:
                raise ConfigError(f"rknn option input_shape: the model does not take {config.input_dtype} "
                                  f"{tuple(config.input_shape)} (a warm-up run failed)") from None
            self.outputs = tuple(TensorSpec(f"output{i}", o.shape, o.dtype) for i, o in enumerate(warm))
        except Exception:
            self.release()
            raise

    @staticmethod
    def _start(lite, model_file: ModelFile, mask):
        r = lite()
        ret = r.load_rknn(str(model_file.path))
        if ret != 0:
            r.release()
            raise ModelError(f"rknn: load_rknn({model_file.path}) returned {ret}: unreadable or not an RKNN model")
        ret = r.init_runtime(core_mask=mask)
        if ret != 0:
            r.release()
            raise BackendUnavailable(f"rknn: init_runtime(core_mask={mask}) returned {ret} for {model_file.path}: "
                                     "a corrupt model, a model built for another SoC (target_platform), a "
                                     "librknnrt older than the model, no NPU, or cores this SoC lacks (0_1_2 "
                                     "and 2 need an RK3588); the runtime's log says which")
        return r

    def run(self, inputs: list) -> list:
        r = self._free.get()
        try:
            out = r.inference(inputs=list(inputs))
        finally:
            self._free.put(r)
        if out is None:
            raise DeviceError("rknn: inference returned None (the runtime logged why: input size, a released "
                              "context or an NPU fault)")
        return [np.asarray(o) for o in out]

    def release(self) -> None:
        instances = getattr(self, "_instances", [])
        # Wait (briefly) for runs in other threads to hand their instance back before freeing it.
        for _ in instances:
            try:
                self._free.get(timeout=2.0)
            except queue.Empty:
                break
        for r in instances:
            r.release()
        self._instances = []
