"""The canary: load a staged model and run its golden set, in a child process.

A model file that passed its hashes can still be one LiteRT (or a vendor runtime) is not hardened
against, and a crash inside it would take the caller down; so the store runs the check in a child
process and reads its verdict. The child is this module: ``python -m edgert.bundles.canary`` reads a
job (JSON) on stdin and prints one line of JSON on stdout::

    job:    {"model": path, "backend": key, "options": {...}, "preprocess": {...Preprocessor kwargs},
             "task": "classification", "golden": {"inputs": npz, "expected": npz, "agreement": 0.95,
             "latency_budget_ms": 20.0 | null} | null}
    result: {"ok": bool, "backend": key, "frames": n, "matches": k, "agreement": k/n, "required": 0.95,
             "p50_ms": ms, "budget_ms": ms | null, "error": "one line" | null}

Golden inputs are uint8 BGR frames fed through the `Preprocessor` as production does; classifiers
are judged on their top-1 class (`edgert.postprocess.classify`); detection and embedding models on
loading, running every golden frame and the latency budget. Without a golden set the canary only
loads the model and runs one blank frame.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from edgert.core.errors import BundleError, one_line

#: The child runs in isolated mode (-I: no PYTHONPATH, no current directory on sys.path, so nothing
#: in a bundle can shadow a module) with the edgert this process runs put first on its path.
_BOOTSTRAP = "import sys; sys.path.insert(0, {path!r}); from edgert.bundles.canary import main; sys.exit(main())"
_EDGERT_PARENT = str(Path(__file__).resolve().parent.parent.parent)


@dataclass(frozen=True)
class CanaryReport:
    """What the canary measured.

    Attributes:
        backend: The backend the model ran on.
        frames: Golden frames judged on their top-1 class (0 without a golden set or for non-classifiers).
        matches: Frames whose top-1 class matched the expected one.
        agreement: ``matches / frames`` (1.0 when nothing was judged).
        required: The manifest's agreement threshold (None when nothing was judged).
        p50_ms: Median inference time per frame (``model.run``), after one warm-up run.
        budget_ms: The manifest's latency budget, if any.
    """

    backend: str
    frames: int
    matches: int
    agreement: float
    required: float | None
    p50_ms: float
    budget_ms: float | None


def _check(job: dict) -> dict:
    import numpy as np

    from edgert.bundles.crashpoints import crash_point
    from edgert.models.resolve import resolve
    from edgert.postprocess import classify
    from edgert.preprocess import Preprocessor, input_geometry

    model = resolve(job["model"], job.get("task"), backend=job["backend"], options=job.get("options"),
                    labels=job.get("labels")).model  # labels checked against a classifier's outputs
    crash_point("canary_loaded")
    with model:
        golden = job.get("golden")
        if golden:
            images = np.load(golden["inputs"])["images"]
            expected = np.load(golden["expected"])["top1"].astype(np.int64).reshape(-1)
            if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
                raise ValueError(f"golden images must be uint8 N x H x W x 3, got {images.dtype} {images.shape}")
            if len(images) != len(expected) or len(images) == 0:
                raise ValueError(f"golden set has {len(images)} images and {len(expected)} expected classes")
        else:
            h, w, _, _ = input_geometry(model.inputs[0])
            images, expected = np.zeros((1, h, w, 3), np.uint8), None
        pre = Preprocessor(model.inputs[0], src_format="BGR", src_size=(images.shape[2], images.shape[1]),
                           **job.get("preprocess", {}))
        model.run(pre(images[0]))  # warm-up: first-run allocations are not the model's speed
        times, top1 = [], []
        for image in images:
            x = pre(image)
            start = time.perf_counter()
            outputs = model.run(x)
            times.append((time.perf_counter() - start) * 1000.0)
            if job.get("task", "classification") == "classification":
                top1.append(classify(outputs[0], model.outputs[0], top_k=1)[0][0])
        result = {"backend": model.backend, "p50_ms": float(np.median(times)), "budget_ms": None,
                  "frames": 0, "matches": 0, "agreement": 1.0, "required": None}
        if golden:
            result["budget_ms"] = golden.get("latency_budget_ms")
            if top1:  # top-1 agreement is defined for classifiers; other tasks: load, run and latency only
                result["required"] = golden["agreement"]
                result["frames"] = len(top1)
                result["matches"] = int(np.sum(np.asarray(top1) == expected))
                result["agreement"] = result["matches"] / len(top1)
        ok = result["required"] is None or result["agreement"] >= result["required"]
        ok = ok and (result["budget_ms"] is None or result["p50_ms"] <= result["budget_ms"])
        return {"ok": ok, "error": None, **result}


def main() -> int:
    """Child entry point: job on stdin, verdict on stdout; exit status 0 when the model passed."""
    try:
        result = _check(json.loads(sys.stdin.read()))
    except Exception as exc:  # noqa: BLE001 - every failure becomes the verdict, in one line
        result = {"ok": False, "error": f"{type(exc).__name__}: {one_line(exc)}"}
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def run_canary(job: dict, timeout_s: float, cwd: Path) -> CanaryReport:
    """Run the canary for `job` (see the module docstring) in a child process.

    Args:
        job: What to check.
        timeout_s: How long the child may take, start-up included.
        cwd: The child's working directory.

    Raises:
        BundleError: the model failed to load or run, crashed the child, took too long, disagreed
            with its golden set, or was over its latency budget; one line with the figures.
    """
    what = f"{Path(job['model']).name} on {job['backend']}"
    try:
        done = subprocess.run([sys.executable, "-I", "-c", _BOOTSTRAP.format(path=_EDGERT_PARENT)],
                              input=json.dumps(job), capture_output=True, text=True, timeout=timeout_s,
                              cwd=cwd, env=os.environ.copy())
    except subprocess.TimeoutExpired:
        raise BundleError(f"canary: {what} gave no verdict within {timeout_s:g} s") from None
    if done.returncode < 0:
        raise BundleError(f"canary: checking {what} crashed the child process ({_signal_name(done.returncode)})")
    lines = done.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = " ".join(done.stderr.strip().splitlines()[-1:]) or f"exit status {done.returncode}"
        raise BundleError(f"canary: checking {what} gave no verdict ({tail})") from None
    if result.get("error"):
        raise BundleError(f"canary: {what} failed: {result['error']}")
    report = CanaryReport(**{k: result[k] for k in CanaryReport.__dataclass_fields__})
    if report.required is not None and report.agreement < report.required:
        raise BundleError(f"canary: {what} agrees with the golden set on {report.matches}/{report.frames} "
                          f"images ({report.agreement:.3f}), below the required {report.required:.3f}")
    if report.budget_ms is not None and report.p50_ms > report.budget_ms:
        raise BundleError(f"canary: {what} takes {report.p50_ms:.2f} ms per frame (p50), over the budget "
                          f"of {report.budget_ms:g} ms")
    return report


if __name__ == "__main__":
    sys.exit(main())
