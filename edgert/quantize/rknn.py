"""`edgert quantize MODEL.onnx --target rknn --soc rk3588`: an int8 ``.rknn`` with Rockchip's rknn-toolkit2.

Where ``rknn-toolkit2`` is importable (an x86_64 or aarch64 Linux host; ``pip install rknn-toolkit2``),
the float ONNX model is loaded, quantised (``w8a8``, the toolkit's "normal" min/max algorithm) with the
same calibration samples as every other target, and exported. The calibration samples are written in
the toolkit's dataset format: one ``.npy`` per sample, NHWC pixel values after edgert's resize and
colour conversion (the `Preprocessor` with mean 0, std 1), listed one path a line; the card's mean and
std go to ``config(mean_values, std_values)`` so the NPU normalises exactly as edgert would. Without
the toolkit the command is refused in one line before anything is written.

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

import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

from edgert.core.errors import BackendUnavailable, ConfigError, ModelError
from edgert.quantize.tflite import Quantised

SOCS = ("rk3588", "rk3576", "rk3568", "rk3566", "rk3562", "rv1103", "rv1106")
INSTALL = "pip install rknn-toolkit2 (Rockchip's converter, x86_64 or aarch64 Linux hosts)"


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


def _nhwc(tensor) -> np.ndarray:
    t = np.asarray(tensor, np.float32)
    nchw = t.ndim == 4 and t.shape[1] in (1, 3) and t.shape[-1] not in (1, 3)
    return np.ascontiguousarray(np.transpose(t, (0, 2, 3, 1))) if nchw else t


def quantize_rknn(model_path: Path, samples, preprocess: dict, soc: str, progress=None) -> Quantised:
    """Convert and quantise with rknn-toolkit2; `samples` are pixel tensors (mean 0, std 1) in model layout.

    Raises:
        BackendUnavailable: the toolkit is not installed.
        ModelError: a toolkit step failed (it returns non-zero codes and logs why).
    """
    RKNN = import_toolkit()
    with tempfile.TemporaryDirectory(prefix="edgert-rknn-") as tmp:
        paths, channels = [], 3
        for i, tensor in enumerate(samples):
            nhwc = _nhwc(tensor)
            channels = nhwc.shape[-1]
            path = Path(tmp) / f"{i:05d}.npy"
            np.save(path, nhwc)
            paths.append(str(path))
            if progress is not None:
                progress(i + 1)
        dataset = Path(tmp) / "dataset.txt"
        dataset.write_text("\n".join(paths) + "\n")
        mean = _per_channel(preprocess.get("mean", 0.0), channels)
        std = _per_channel(preprocess.get("std", 1.0), channels)
        rknn = RKNN(verbose=False)
        try:
            rknn.config(mean_values=[mean], std_values=[std], target_platform=soc, quantized_dtype="w8a8",
                        quantized_algorithm="normal")
            for step, call in (("load_onnx", lambda: rknn.load_onnx(model=str(model_path))),
                               ("build", lambda: rknn.build(do_quantization=True, dataset=str(dataset))),
                               ("export_rknn", lambda: rknn.export_rknn(str(Path(tmp) / "out.rknn")))):
                if call() != 0:
                    raise ModelError(f"{model_path}: rknn-toolkit2 {step} failed (see its log above)")
            data = (Path(tmp) / "out.rknn").read_bytes()
        finally:
            rknn.release()
    return Quantised(data, (), f"rknn-toolkit2 {metadata.version('rknn-toolkit2')}",
                     {"weights": "int8", "activations": "int8", "target": soc, "algorithm": "normal"})
