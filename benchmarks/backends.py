"""Time `Model.run` against the raw interpreter calls a user would otherwise make, in one process.

    python benchmarks/backends.py [--model tests/data/mobilenetv2_int8.tflite] [--onnx-model M.onnx] [--calls 300]

CPU backend: ``set_tensor`` + ``invoke`` + ``get_tensor`` on the same LiteRT interpreter settings
(1 thread, XNNPACK) versus ``edgert.load(...).run``; the overhead edgert adds must stay <= 3%.
Medians over interleaved rounds; results printed and saved as JSON. Also the infer p50 that
``edgert bench`` reports (its runner on 640x480 frames) against the raw median measured just before
and after it: the two must agree within 15%.

onnx backend (when onnxruntime is installed): ``InferenceSession.run`` with the same session options
(1 intra-op thread, 1 inter-op thread, all graph optimisations, CPU provider) and a feed dict built
once, versus ``edgert.load(...).run``, on `--onnx-model` (a fixed-shape model) or, by default, a
small float CNN (224x224x3, three stride-2 convolutions, seeded random weights) built here; overhead
target <= 3%. Then its int8 QDQ version (``quantize_static``): edgert feeds and returns the int8
tensors inside (the edge Quantize/DequantizeLinear taken out) against the float-edged session a user
would run, as a ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

import edgert  # noqa: E402
from edgert.bench.frames import load_frames  # noqa: E402
from edgert.bench.runner import BenchSettings, run_backend  # noqa: E402

HERE = Path(__file__).resolve().parent


def race(fns: dict, calls: int, rounds: int = 10) -> dict:
    """Median ms of each function, interleaved in rounds so machine noise hits all alike."""
    for fn in fns.values():
        for _ in range(10):
            fn()
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(max(1, calls // rounds)):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return {k: float(np.median(v) * 1e3) for k, v in times.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(HERE.parent / "tests/data/mobilenetv2_int8.tflite"))
    ap.add_argument("--onnx-model", help="fixed-shape .onnx model for the onnx backend (default: a CNN built here)")
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--json", default=str(HERE / "results/backends.json"))
    args = ap.parse_args(argv)
    model = edgert.load(args.model, backend="cpu", num_threads=1)
    raw = Interpreter(model_path=args.model, num_threads=1)
    raw.allocate_tensors()
    i, o = raw.get_input_details()[0]["index"], raw.get_output_details()[0]["index"]
    x = np.random.default_rng(0).integers(0, 256, model.inputs[0].shape).astype(model.inputs[0].dtype)
    np.testing.assert_array_equal(model.run(x)[0], (raw.set_tensor(i, x), raw.invoke(), raw.get_tensor(o))[2])

    def raw_run():
        raw.set_tensor(i, x)
        raw.invoke()
        return raw.get_tensor(o)

    t = race({"raw interpreter": raw_run, "edgert Model.run": lambda: model.run(x)}, args.calls)
    overhead = t["edgert Model.run"] / t["raw interpreter"] - 1
    print(f"{Path(args.model).name} on the cpu backend, 1 thread")
    for k, v in t.items():
        print(f"  {k:<20} {v:8.3f} ms (median)")
    print(f"  overhead of Model.run: {overhead * 100:+.2f}% (target <= 3%)"
          + ("  ok" if overhead <= 0.03 else "  ABOVE TARGET"))

    raw_p50 = [race({"raw": raw_run}, args.calls)["raw"]]
    frames = load_frames("synthetic", (640, 480), "BGR", count=4)
    run = run_backend(args.model, "cpu", frames, BenchSettings(frames=args.calls, warmup=10, src_size=(640, 480)))
    if run.status != "ok":
        raise SystemExit(f"edgert bench runner: {run.status}: {run.reason}")
    raw_p50.append(race({"raw": raw_run}, args.calls)["raw"])
    bench_ratio = run.stages["infer"].p50 / float(np.median(raw_p50))
    print(f"  edgert bench infer p50 {run.stages['infer'].p50:8.3f} ms: {bench_ratio:.3f}x the raw median "
          "(target 0.85-1.15)" + ("  ok" if 0.85 <= bench_ratio <= 1.15 else "  OUTSIDE TARGET"))
    results = {"model": Path(args.model).name, "ms": t, "overhead": overhead,
               "bench_infer_p50_ms": run.stages["infer"].p50, "bench_ratio": bench_ratio}
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("onnx backend: onnxruntime is not installed (pip install 'edgert[onnx]'); not measured")
    else:
        results["onnx"] = onnx_overhead(args.onnx_model, args.calls)
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    return 0


def small_cnn(path: Path, seed: int = 0) -> Path:
    """A float CNN as ONNX: (1, 3, 224, 224) -> 3 x (Conv 3x3 stride 2 + Relu) -> pool -> Gemm -> (1, 10)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, weights, prev, channels = [], [], "image", 3
    for k, out in enumerate((16, 32, 64)):
        w = rng.normal(0, np.sqrt(2 / (9 * channels)), (out, channels, 3, 3)).astype(np.float32)
        weights += [numpy_helper.from_array(w, f"w{k}"), numpy_helper.from_array(np.zeros(out, np.float32), f"b{k}")]
        nodes += [helper.make_node("Conv", [prev, f"w{k}", f"b{k}"], [f"c{k}"], strides=[2, 2], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{k}"], [f"r{k}"])]
        prev, channels = f"r{k}", out
    weights += [numpy_helper.from_array(rng.normal(0, 0.1, (channels, 10)).astype(np.float32), "fc"),
                numpy_helper.from_array(np.zeros(10, np.float32), "fcb")]
    nodes += [helper.make_node("GlobalAveragePool", [prev], ["pool"]),
              helper.make_node("Flatten", ["pool"], ["flat"]),
              helper.make_node("Gemm", ["flat", "fc", "fcb"], ["logits"])]
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 224, 224])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])
    graph = helper.make_graph(nodes, "cnn", [image], [logits], weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def int8_qdq(float_path: Path, out: Path, shape: tuple, seed: int = 0) -> Path:
    """`quantize_static` (QDQ, int8) of `float_path`, calibrated on 8 seeded random inputs."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    rng = np.random.default_rng(seed)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._feeds = iter([{"image": rng.random(shape, np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self._feeds, None)

    quantize_static(str(float_path), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return out


def _raw_session(path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def onnx_overhead(model_path, calls: int) -> dict:
    """The onnx backend's `Model.run` against `InferenceSession.run` (see the module docstring)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="edgert-onnx-bench-") as work:
        path = Path(model_path) if model_path else small_cnn(Path(work) / "cnn.onnx")
        model = edgert.load(path, backend="onnx", num_threads=1, quantized_io=False)
        spec, session = model.inputs[0], _raw_session(path)
        x = np.random.default_rng(0).random(spec.shape).astype(spec.dtype)
        feed, names = {spec.name: x}, [o.name for o in session.get_outputs()]
        np.testing.assert_array_equal(model.run(x)[0], session.run(names, feed)[0])
        t = race({"raw session.run": lambda: session.run(names, feed), "edgert Model.run": lambda: model.run(x)},
                 calls)
        overhead = t["edgert Model.run"] / t["raw session.run"] - 1
        print(f"{path.name} on the onnx backend, 1 thread")
        for k, v in t.items():
            print(f"  {k:<20} {v:8.3f} ms (median)")
        print(f"  overhead of Model.run: {overhead * 100:+.2f}% (target <= 3%)"
              + ("  ok" if overhead <= 0.03 else "  ABOVE TARGET"))
        result = {"model": path.name, "ms": t, "overhead": overhead}
        if model_path is None:
            result["int8"] = _int8_ratio(int8_qdq(path, Path(work) / "cnn_int8.onnx", spec.shape), x, calls)
        model.close()
    return result


def _int8_ratio(path: Path, x: np.ndarray, calls: int) -> dict:
    model = edgert.load(path, backend="onnx", num_threads=1)
    spec, session = model.inputs[0], _raw_session(path)
    q = spec.quant.quantize(x, spec.dtype)
    feed, names = {spec.name: x}, [o.name for o in session.get_outputs()]
    t = race({"raw session.run (float edges)": lambda: session.run(names, feed),
              "edgert Model.run (int8 edges)": lambda: model.run(q)}, calls)
    ratio = t["raw session.run (float edges)"] / t["edgert Model.run (int8 edges)"]
    print(f"{path.name} (int8 QDQ) on the onnx backend, 1 thread")
    for k, v in t.items():
        print(f"  {k:<30} {v:8.3f} ms (median)")
    print(f"  edgert with int8 edges: {ratio:.3f}x the speed of the float-edged session")
    model.close()
    return {"model": path.name, "ms": t, "speed_ratio": ratio}


if __name__ == "__main__":
    raise SystemExit(main())
