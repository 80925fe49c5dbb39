"""The contract every backend fulfils.

A backend runs one model on one kind of device. Subclasses:

Must override:
    KEY: Backend name ("cpu", "onnx", "coral", "hailo", "rknn"), as used by ``edgert.load(backend=...)``.
    KINDS: Model-file kinds it runs (see `edgert.core.model_files.KINDS`).
    Config: A pydantic model (``extra="forbid"``, described fields) of its options.
    open(model_file, config): Load the model; set ``self.inputs`` and ``self.outputs``. The vendor
        SDK is imported here; a missing SDK raises `BackendUnavailable` naming what to install.
    run(inputs): Run one inference on validated inputs; return the raw outputs (quantized dtype
        where quantized). A device failure raises `DeviceError`.
    release(): Free the device resources: called by `close` (once), and by `open` on a half-opened
        state when loading fails, so it must cope with either.

May override:
    PRIORITY: Rank among backends that accept a file kind (higher first) in automatic choice.
    AUTOMATIC: False for a backend that runs only when asked for by name (the simulated device).
    probe(hardware): Why this backend cannot run on this machine, or None when it can.
    submit(inputs): Start an inference and return a Future of its outputs (default: runs it now).
        A backend that overrides it keeps frames in flight: ``ASYNCHRONOUS`` becomes True.
"""
from __future__ import annotations

from concurrent.futures import Future
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from edgert.core.errors import BackendUnavailable, ClosedError
from edgert.core.model_files import ModelFile


def sdk_missing(load) -> str | None:
    """Why `load()` (a backend's SDK import) fails, or None when the SDK is there: for `probe`."""
    try:
        load()
    except BackendUnavailable as exc:
        return str(exc)
    return None


class BackendConfig(BaseModel):
    """Base of backend option models: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Backend:
    """Base class of backends (see the module docstring for what to override)."""

    KEY: ClassVar[str] = ""
    KINDS: ClassVar[tuple] = ()
    PRIORITY: ClassVar[int] = 0
    AUTOMATIC: ClassVar[bool] = True
    ASYNCHRONOUS: ClassVar[bool] = False
    Config: ClassVar[type[BackendConfig]] = BackendConfig

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.ASYNCHRONOUS = cls.submit is not Backend.submit

    def __init__(self):
        self.inputs: tuple = ()
        self.outputs: tuple = ()
        self._closed = False

    @classmethod
    def probe(cls, hardware) -> str | None:
        """Why this backend cannot run here (None: it can). `hardware` is an `edgert.core.hardware.Hardware`."""
        return None

    def open(self, model_file: ModelFile, config: BackendConfig) -> None:
        raise NotImplementedError

    def run(self, inputs: list) -> list:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def submit(self, inputs: list) -> Future:
        """Start one inference; the default runs it at once in the caller's thread."""
        future: Future = Future()
        try:
            future.set_result(self.run(inputs))
        except Exception as exc:  # noqa: BLE001 - handed to whoever waits on the future
            future.set_exception(exc)
        return future

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Free the device; safe to call more than once."""
        if not self._closed:
            self._closed = True
            self.release()

    def check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"{self.KEY} model is closed; load it again to run it")
