"""Coral Edge TPU backend: the libedgetpu delegate loaded through LiteRT's `load_delegate`.

No pycoral: it has no wheels for Python >= 3.10 and imports tflite-runtime, which needs numpy < 2.
Each Edge TPU runs one model: a second model asking for a typed, indexed device ("usb:N", "pci:N")
that an open model of this process holds is refused. Untyped requests ("", "usb", ":N") are
resolved by libedgetpu and are not tracked here.
"""
from __future__ import annotations

import threading
from typing import Literal

from pydantic import Field

from edgert.backends.base import BackendConfig
from edgert.backends.cpu import CpuBackend, _interpreter_module
from edgert.core.errors import BackendUnavailable, ConfigError
from edgert.core.model_files import ModelFile

KEY = "coral"
LIBEDGETPU = "libedgetpu.so.1"

_in_use: dict = {}
_in_use_lock = threading.Lock()


class CoralConfig(BackendConfig):
    """Options of the Coral backend."""

    device: str = Field("", pattern=r"^(|:\d+|usb|usb:\d+|pci|pci:\d+)$",
                        description='Edge TPU to use: "" (any), ":N", "usb", "usb:N", "pci" or "pci:N".')
    performance: Literal["Low", "Medium", "High", "Max"] | None = Field(
        None, description="Edge TPU clock (libedgetpu's Performance option); None keeps its default.")


class CoralBackend(CpuBackend):
    """Runs Edge TPU-compiled .tflite models; the inference code is the CPU backend's."""

    KEY = KEY
    KINDS = ("edgetpu",)
    PRIORITY = 10
    Config = CoralConfig

    @classmethod
    def probe(cls, hardware) -> str | None:
        if not (hardware.coral_pcie or hardware.coral_usb):
            return "no Edge TPU found (no /dev/apex_N, no USB device 1a6e:089a or 18d1:9302)"
        return None

    def open(self, model_file: ModelFile, config: CoralConfig) -> None:
        if config.performance and not any(c.isdigit() for c in config.device):
            # libedgetpu applies options only to a device named with an index.
            raise ConfigError(f"coral option performance: needs an indexed device (usb:0, pci:0, :0), got "
                              f"device={config.device!r}")
        mod = _interpreter_module()
        options = {"device": config.device}
        if config.performance:
            options["Performance"] = config.performance
        self._device = config.device if config.device[:1].isalpha() and config.device[-1:].isdigit() else None
        with _in_use_lock:
            if self._device and self._device in _in_use:
                raise BackendUnavailable(f"coral: Edge TPU {self._device} already runs {_in_use[self._device]}; "
                                         "one model per Edge TPU: pass another device (usb:1, pci:0, ...)")
            if self._device:
                _in_use[self._device] = str(model_file.path)
        try:
            try:
                delegate = mod.load_delegate(LIBEDGETPU, options)
            except OSError:
                raise BackendUnavailable(f"coral: {LIBEDGETPU} not found: install libedgetpu1-std (Coral apt "
                                         "repository) or libedgetpu1-max") from None
            except ValueError:
                raise BackendUnavailable(f"coral: no Edge TPU answers at device {config.device or 'any'!r}: plug in "
                                         "the USB Accelerator (USB 3 port) or check the apex driver (/dev/apex_0)") from None
            self._start(mod, model_file, experimental_delegates=[delegate])
        except Exception:
            self.release()
            raise

    def release(self) -> None:
        super().release()
        with _in_use_lock:
            if getattr(self, "_device", None) and _in_use.get(self._device):
                del _in_use[self._device]
        self._device = None
