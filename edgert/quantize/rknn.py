"""`edgert quantize MODEL.onnx --target rknn --soc rk3588`: an int8 ``.rknn`` with Rockchip's rknn-toolkit2.

Where ``rknn-toolkit2`` is importable (an x86_64 or aarch64 Linux host; ``pip install rknn-toolkit2``,
which needs torch; benchmarks/models/requirements-rknn.txt is a set that works), one toolkit session
loads the float ONNX model (its input fixed to the shape edgert fixes: ``load_onnx(inputs=,
input_size_list=)``, which the toolkit requires for any dynamic dimension), quantises it (``w8a8``) on
the same calibration samples as every other target, exports the ``.rknn``, and, with ``--validation``,
runs the report in the toolkit's simulator (``init_runtime()`` without a target). The simulator only
runs a model built in the same session (a ``.rknn`` loaded from a file is refused there), so the
session stays open until the report has run.

What the NPU is given, and what calibration and the simulator see, is the device's input: uint8 NHWC
pixels after edgert's resize and colour conversion (``Preprocessor`` with mean 0 and std 1). The
card's mean and std go into the model (``config(mean_values, std_values)``): the toolkit applies them
to calibration samples and to every input, as the NPU will. Calibration samples are written in the
toolkit's dataset format: one ``.npy`` per sample in the ONNX model's own layout (NCHW; the toolkit
refuses NHWC ``.npy`` for an NCHW model), listed one path a line. edgert's Preprocessor gives integral
pixel levels in float32 too, so these are exactly the uint8 pixels the device gets. The ``.rknn``'s
card says so: ``preprocess`` mean 0, std 1, ``input_dtype`` uint8, an NHWC ``input_shape``, and the
normalisation folded into the model under ``quantization.normalisation``.

The report's int8 figures come from the simulator; the float figures from the float ONNX on edgert's
onnx backend, through the card's own preprocessing. The simulator model takes the float model's
tensors and turns each back into its uint8 pixels (``x * std + mean``, exact to the level) before
running them NHWC, so both models see the same images and the int8 one sees the device's bytes. The
simulator's speed says nothing of the NPU's: latency is measured on the board with ``edgert bench``.

``--method`` minmax is the toolkit's "normal" algorithm, entropy its "kl_divergence"; ``--per-tensor``
its "layer" method. ``--input-type``/``--output-type`` do not apply: the device takes uint8 pixels and
RKNN Toolkit Lite2 returns float32. A float ``.tflite`` is not taken: the toolkit's ``load_tflite``
imports TensorFlow (<= 2.14), which edgert's tooling does not install.

Measured with rknn-toolkit2 2.5.0 for rk3588 (benchmarks/quantize_rknn.py; benchmarks/quantize_rknn.json), on
450 held-out digits (45 a class: one image is 2.2 pt of a class): the digits perceptron of the tests keeps
top-1 99.56% in the simulator against 99.78% float, agreement 99.78%; a 32x32 depthwise-separable CNN 95.11%
against 95.33%, agreement 99.78%; ONNX Runtime's QDQ int8 of the same models scores the same top-1. Small
models grow (10 KB -> 32 KB, 50 KB -> 93 KB: the format's fixed overhead), each converted in under a second.
The PP-OCRv4 detector (4.75 MB float -> 2.50 MB, 0.53x; 14 s) finds the rows of 30/30 rendered plates as the
float model does, its text pixels overlapping the float map's with IoU 0.96 on average (0.92 at worst).

Hailo: the Dataflow Compiler (DFC) is not on a public index, so edgert does not drive it. The equivalent
steps, on a host with Hailo's DFC and Model Zoo (``hailomz``) from Hailo's developer zone:

1. Calibration set: the same samples, as pixel tensors without normalisation (the DFC folds mean/std
   into the network): ``calibration_set(spec, DIR, N, {**card.preprocess, "mean": 0, "std": 1})`` from
   `edgert.quantize.calibration`, stacked NHWC into one ``calib.npy``.
2. ``hailomz compile --ckpt model.onnx --hw-arch hailo8l --calib-path calib.npy --yaml model.yaml``, or
   with the DFC's Python API: ``ClientRunner(hw_arch="hailo8l")``, ``translate_onnx_model``, a model
   script line ``normalization1 = normalization([m, m, m], [s, s, s])`` from the card, ``optimize`` on
   the calibration set, ``compile`` -> ``model.hef``.
3. The same report on the device: ``edgert bench model.hef --reference model_fp32.tflite --dataset val/``
   (top-1 per class and agreement; ``--task embedding`` for EER/AUC/Rank-1).
"""
from __future__ import annotations

import ctypes
import logging
import os
import re
import sys
import tempfile
import weakref
from importlib import metadata
from pathlib import Path

import numpy as np

import edgert
from edgert.backends.base import Backend
from edgert.core.errors import BackendUnavailable, ConfigError, DeviceError, ModelError
from edgert.core.model import Model
from edgert.core.tensor import TensorSpec
from edgert.quantize.tflite import Quantised

SOCS = ("rk3588", "rk3576", "rk3568", "rk3566", "rk3562", "rv1103", "rv1106")
INSTALL = "pip install rknn-toolkit2 (Rockchip's converter, x86_64 or aarch64 Linux hosts)"
#: edgert's calibration methods -> the toolkit's ``quantized_algorithm``.
ALGORITHMS = {"minmax": "normal", "entropy": "kl_divergence"}
#: Largest distance of a recovered pixel from its level (the Preprocessor's float32 rounding).
_PIXEL_TOLERANCE = 1e-3
_LIBC = ctypes.CDLL(None)
_LOGGER = "rknnLogger"  # rknn-toolkit2's logging logger


def import_toolkit():
    """``rknn.api.RKNN``, or a one-line `BackendUnavailable` saying what to install."""
    try:
        from rknn.api import RKNN
    except ImportError:
        raise BackendUnavailable(f"--target rknn needs rknn-toolkit2, which is not installed: {INSTALL}") from None
    return RKNN


def check_target(model_path: Path, out: Path, soc: str | None) -> None:
    """Refuse what cannot become a ``.rknn`` before any work (the toolkit, the input, the SoC, the output)."""
    if soc not in SOCS:
        raise ConfigError(f"--soc {soc}: expected one of {', '.join(SOCS)} with --target rknn")
    if model_path.suffix != ".onnx":
        raise ConfigError(f"{model_path}: --target rknn converts float .onnx models")
    if out.suffix != ".rknn":
        raise ConfigError(f"--out {out}: expected a .rknn file name with --target rknn")
    import_toolkit()


def _per_channel(value, channels: int) -> list:
    v = np.broadcast_to(np.asarray(value if value is not None else 0.0, np.float64), (channels,))
    return [float(x) for x in v]


def _is_nchw(shape) -> bool:
    return len(shape) == 4 and shape[1] in (1, 3, 4) and shape[-1] not in (1, 3, 4)


def device_shape(shape) -> tuple:
    """The ``.rknn``'s input shape on the device: NHWC for a 4-D NCHW ONNX input, else as it is."""
    shape = tuple(int(v) for v in shape)
    return (shape[0], shape[2], shape[3], shape[1]) if _is_nchw(shape) else shape


class ToolkitLog:
    """Where the toolkit's chatter goes: file descriptors 1 and 2 and ``sys.stdout``/``sys.stderr``, while in use.

    rknn-toolkit2 prints progress bars and log lines from Python and from its compiled parts; edgert's
    own output stays readable, and a failure is reported by the toolkit's last error line (`error`).
    """

    _ESCAPES = re.compile(r"\x1b\[[0-9;]*m")

    def __init__(self, path: Path):
        self.path = Path(path)
        self._file = open(self.path, "a+", encoding="utf-8", errors="replace")  # noqa: SIM115 - closed by close()
        self._saved: list = []

    def __enter__(self):
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        self._saved.append((os.dup(1), os.dup(2), sys.stdout, sys.stderr))
        os.dup2(self._file.fileno(), 1)
        os.dup2(self._file.fileno(), 2)
        sys.stdout = sys.stderr = self._file
        # Its logger's handlers hold the sys.stderr of the time rknn.api was imported (a test runner's, maybe).
        streams = [(h, h.setStream(self._file)) for h in logging.getLogger(_LOGGER).handlers
                   if type(h) is logging.StreamHandler]  # not a test runner's capturing subclass
        self._saved.append(streams)
        return self

    def __exit__(self, *exc):
        _LIBC.fflush(None)  # the compiled parts' buffered printf output belongs to this log too
        for handler, stream in self._saved.pop():
            handler.setStream(stream)
        self._file.flush()
        out, err, sys.stdout, sys.stderr = self._saved.pop()
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.close(out)
        os.close(err)

    def error(self, exc: BaseException | None = None) -> str:
        """Why the last call failed, on one line: the message of `exc` (the toolkit raises its traceback as
        text), else its last error line in the log; "" when there is neither."""
        if exc is not None:
            lines = self._ESCAPES.sub("", str(exc)).splitlines()
            for i in range(len(lines) - 1, -1, -1):
                found = re.match(r"\s*\w*(?:Error|Exception): (.*)", lines[i])
                if found:
                    return " ".join(" ".join([found.group(1), *lines[i + 1:]]).split())
            if "".join(lines).strip():
                return " ".join(" ".join(lines).split())
        if not self._file.closed:
            self._file.flush()
        text = self._ESCAPES.sub("", self.path.read_text(encoding="utf-8", errors="replace"))
        errors = [ln[2:].strip() for ln in text.splitlines()
                  if ln.startswith("E ") and ln[2:].strip() and "version:" not in ln and "Traceback" not in ln]
        return " ".join(errors[-1].split()) if errors else ""

    def close(self) -> None:
        self._file.close()


class Conversion:
    """One rknn-toolkit2 session: convert and quantise, export, then serve the simulator until closed.

    Args:
        model_path: The float ``.onnx``.
        input_name: Its one input.
        shape: That input's shape as edgert fixes it (the ONNX layout, batch 1).
        preprocess: The card's preprocessing (its mean and std go into the model).
        soc: The target SoC (`SOCS`).
        method: edgert's calibration method (`ALGORITHMS`).
        per_channel: Per-channel weight scales (False: per layer).
        simulate: Keep the session for `open` (the report); False releases it after export.

    Raises:
        ConfigError: a calibration method the toolkit does not have.
    """

    def __init__(self, model_path: Path, input_name: str, shape, preprocess: dict, soc: str, method: str = "minmax",
                 per_channel: bool = True, simulate: bool = False):
        if method not in ALGORITHMS:
            raise ConfigError(f"--method {method}: rknn-toolkit2 calibrates with {', '.join(ALGORITHMS)} "
                              "(its normal and kl_divergence algorithms)")
        self.model_path, self.input_name, self.shape = Path(model_path), input_name, tuple(int(v) for v in shape)
        self.soc, self.algorithm, self.simulate = soc, ALGORITHMS[method], simulate
        self.granularity = "channel" if per_channel else "layer"
        channels = self.shape[1] if _is_nchw(self.shape) else self.shape[-1]
        self.mean = _per_channel(preprocess.get("mean", 0.0), channels)
        self.std = _per_channel(preprocess.get("std", 1.0), channels)
        self._tmp = tempfile.TemporaryDirectory(prefix="edgert-rknn-")
        self.log = ToolkitLog(Path(self._tmp.name) / "toolkit.log")
        self._holder: list = [None]  # the RKNN object, freed by close() or when this is dropped
        self._finalizer = weakref.finalize(self, Conversion._free, self._holder, self._tmp, self.log)

    @staticmethod
    def _free(holder, tmp, log) -> None:
        rknn = holder[0]
        holder[0] = None
        if rknn is not None:
            with log:
                rknn.release()
        log.close()
        tmp.cleanup()

    def _step(self, step: str, call):
        """Run one toolkit call with its output in the log; its failure (a code or an exception) in one line."""
        try:
            with self.log:
                ret = call()
        except Exception as exc:  # noqa: BLE001 - the toolkit raises bare ValueErrors for bad input
            raise ModelError(f"{self.model_path}: rknn-toolkit2 {step} failed: {self.log.error(exc)}") from None
        if isinstance(ret, int) and ret != 0:
            raise ModelError(f"{self.model_path}: rknn-toolkit2 {step} failed: {self.log.error() or f'code {ret}'}")
        return ret

    def _dataset(self, samples, progress) -> Path:
        root = Path(self._tmp.name)
        paths = []
        for i, tensor in enumerate(samples):
            t = np.asarray(tensor, np.float32)
            if tuple(t.shape) != self.shape:
                raise ConfigError(f"calibration sample {i}: shape {t.shape}, the model takes {self.shape}")
            if t.min() < 0 or t.max() > 255 or np.abs(t - np.round(t)).max() > _PIXEL_TOLERANCE:
                raise ConfigError(f"calibration sample {i}: --target rknn calibrates on pixel values 0..255 "
                                  "(the model normalises them); .npy tensors must hold pixels, not normalised input")
            path = root / f"{i:05d}.npy"
            np.save(path, np.round(t))
            paths.append(str(path))
            if progress is not None:
                progress(i + 1)
        dataset = root / "dataset.txt"
        dataset.write_text("\n".join(paths) + "\n")
        return dataset

    def quantise(self, samples, progress=None) -> Quantised:
        """Load, quantise on `samples` (pixel tensors in the model's layout), export; the ``.rknn``'s bytes.

        Raises:
            BackendUnavailable: the toolkit is not installed.
            ConfigError: a sample that is not a pixel tensor of the model's shape.
            ModelError: a toolkit step failed (with the toolkit's own error line).
        """
        RKNN = import_toolkit()
        dataset = self._dataset(samples, progress)
        out = Path(self._tmp.name) / "out.rknn"
        rknn = self._holder[0] = self._step("RKNN()", lambda: RKNN(verbose=False))
        self._step("config", lambda: rknn.config(mean_values=[self.mean], std_values=[self.std],
                                                 target_platform=self.soc, quantized_dtype="w8a8",
                                                 quantized_algorithm=self.algorithm,
                                                 quantized_method=self.granularity))
        self._step("load_onnx", lambda: rknn.load_onnx(model=str(self.model_path), inputs=[self.input_name],
                                                       input_size_list=[list(self.shape)]))
        self._step("build", lambda: rknn.build(do_quantization=True, dataset=str(dataset)))
        self._step("export_rknn", lambda: rknn.export_rknn(str(out)))
        data = out.read_bytes()
        if self.simulate:
            self._step("init_runtime (simulator)", lambda: rknn.init_runtime())
        else:
            self.close()
        return Quantised(data, (), f"rknn-toolkit2 {metadata.version('rknn-toolkit2')}",
                         {"weights": "int8", "activations": "int8", "target": self.soc, "algorithm": self.algorithm,
                          "granularity": "per-channel" if self.granularity == "channel" else "per-tensor",
                          "normalisation": {"mean": self.mean, "std": self.std}})

    def open(self, path) -> Model:
        """The report's models: the float ``.onnx`` on edgert's onnx backend, the ``.rknn`` in the simulator.

        Closing the simulator model ends the toolkit session.
        """
        if Path(path).suffix != ".rknn":
            return edgert.load(path, backend="onnx", input_shape=self.shape)
        if self._holder[0] is None or not self.simulate:
            raise ModelError(f"{path}: rknn-toolkit2's simulator runs only the model built in this session")
        backend = SimulatorBackend()
        backend.start(self)
        return Model(backend, Path(path))

    def inference(self, pixels: np.ndarray) -> list:
        """Outputs of the built model in the simulator for one uint8 NHWC pixel tensor."""
        try:
            with self.log:
                outputs = self._holder[0].inference(inputs=[pixels], data_format="nhwc")
        except Exception as exc:  # noqa: BLE001
            raise DeviceError(f"rknn-toolkit2 simulator inference failed: {self.log.error(exc)}") from None
        if outputs is None:
            raise DeviceError(f"rknn-toolkit2 simulator inference failed: {self.log.error() or 'no outputs'}")
        return [np.asarray(o, np.float32) for o in outputs]

    def close(self) -> None:
        """End the toolkit session and remove its files; safe to call more than once."""
        self._finalizer()


class SimulatorBackend(Backend):
    """The ``.rknn`` built by a `Conversion`, in rknn-toolkit2's simulator, behind the float model's input spec.

    It takes the tensors the float ONNX model takes (the card's preprocessing) and runs the uint8 NHWC
    pixels they were made from, as the device gets them; outputs are float32, as the simulator and
    RKNN Toolkit Lite2 give them. Not a registered backend: it exists only inside a conversion.
    """

    KEY = "rknn-simulator"
    AUTOMATIC = False

    def start(self, conversion: Conversion) -> None:
        self._conv = conversion
        self.inputs = (TensorSpec(conversion.input_name, conversion.shape, np.float32, None),)
        nchw = _is_nchw(conversion.shape)
        self._mean = np.asarray(conversion.mean, np.float64).reshape((-1, 1, 1) if nchw else (-1,))
        self._std = np.asarray(conversion.std, np.float64).reshape((-1, 1, 1) if nchw else (-1,))
        self._nchw = nchw
        warm = conversion.inference(np.zeros(device_shape(conversion.shape), np.uint8))
        self.outputs = tuple(TensorSpec(f"output{i}", o.shape, np.float32, None) for i, o in enumerate(warm))

    def pixels(self, tensor: np.ndarray) -> np.ndarray:
        """The uint8 NHWC pixels a float model tensor was made from (the card's mean and std undone)."""
        v = np.asarray(tensor, np.float64) * self._std + self._mean
        levels = np.round(v)
        if np.abs(v - levels).max() > _PIXEL_TOLERANCE or levels.min() < 0 or levels.max() > 255:
            raise ModelError("rknn simulator: the input is not the card's preprocessing of uint8 pixels")
        levels = levels.astype(np.uint8)
        return np.ascontiguousarray(levels.transpose(0, 2, 3, 1)) if self._nchw else levels

    def run(self, inputs: list) -> list:
        return self._conv.inference(self.pixels(inputs[0]))

    def release(self) -> None:
        self._conv.close()
