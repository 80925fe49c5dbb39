"""The Model API on the onnx backend (ONNX Runtime), with real .onnx models built with onnx's helper API."""
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed: pip install 'edgert[onnx]'")
pytest.importorskip("onnx", reason="the onnx package is not installed: pip install 'edgert[onnx]'")
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import helper  # noqa: E402
from onnx_builder import add_model, graph_model, qdq_relu_model, save, two_input_model  # noqa: E402

import edgert  # noqa: E402
from edgert.backends import chooser  # noqa: E402
from edgert.backends.registry import backend_classes  # noqa: E402
from edgert.core.errors import (  # noqa: E402
    BackendUnavailable,
    ClosedError,
    ConfigError,
    DeviceError,
    FrameError,
    ModelError,
)
from edgert.core.model_files import identify  # noqa: E402


@pytest.fixture
def write(tmp_path):
    def _write(name, model_or_bytes):
        p = tmp_path / name
        if isinstance(model_or_bytes, bytes):
            p.write_bytes(model_or_bytes)
            return p
        return save(model_or_bytes, p)
    return _write


def test_float_model_runs_and_reports_its_tensors(write):
    """y = x + 1.5 comes back computed by ONNX Runtime, with the specs the file declares."""
    m = edgert.load(write("add.onnx", add_model((1, 4), 1.5)))
    assert m.backend == "onnx" and m.asynchronous is False
    assert [(s.name, s.shape, s.dtype, s.quant) for s in m.inputs] == [("x", (1, 4), np.float32, None)]
    assert [(s.name, s.shape) for s in m.outputs] == [("y", (1, 4))]
    x = np.array([[0.0, 1.0, -2.0, 7.25]], np.float32)
    (y,) = m.run(x)
    np.testing.assert_array_equal(y, x + 1.5)
    (y2,) = m.submit(x * 2).result()
    np.testing.assert_array_equal(y2, x * 2 + 1.5)
    assert not np.shares_memory(y, y2)


def test_onnx_files_are_recognised_by_their_structure_and_choose_the_onnx_backend(write, monkeypatch):
    monkeypatch.delenv("EDGERT_BACKEND", raising=False)
    p = write("add.onnx", add_model())
    assert identify(p).kind == "onnx"
    assert chooser.choose("onnx", "auto", lambda: None).KEY == "onnx"
    assert "onnx" in backend_classes()
    with pytest.raises(ConfigError, match="'cpu' cannot run a onnx model"):
        edgert.load(p, backend="cpu")


def test_auto_probes_no_other_backend_for_an_onnx_file(write, monkeypatch):
    """Only backends whose KINDS include onnx are probed (a .onnx never imports LiteRT or a vendor SDK)."""
    monkeypatch.delenv("EDGERT_BACKEND", raising=False)
    probed = []
    for key, cls in backend_classes().items():
        monkeypatch.setattr(cls, "probe", classmethod(lambda c, hw, k=key, real=cls.probe: probed.append(k) or (
            real.__func__(c, hw))))
    edgert.load(write("add.onnx", add_model())).close()
    assert probed == ["onnx"]


def test_a_dynamic_model_needs_input_shape_and_names_the_input_and_dimension(write):
    p = write("dyn.onnx", add_model(("batch", 4)))
    with pytest.raises(ConfigError, match=r"input 'x' has a dynamic dimension 0 \('batch'\).*input_shape"):
        edgert.load(p)
    m = edgert.load(p, input_shape=(3, 4))
    assert m.inputs[0].shape == (3, 4) and m.outputs[0].shape == (3, 4)
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(m.run(x)[0], x + 1.5)
    with pytest.raises(FrameError, match=r"float32 \(3, 4\)"):
        m.run(np.zeros((1, 4), np.float32))


def test_an_input_without_a_declared_shape_takes_the_whole_shape_from_input_shape(write):
    model = add_model((1, 4))
    model.graph.input[0].type.tensor_type.ClearField("shape")
    p = write("noshape.onnx", model.SerializeToString())  # the checker wants a shape; ONNX Runtime does not
    with pytest.raises(ConfigError, match="input 'x' declares no shape.*input_shape"):
        edgert.load(p)
    m = edgert.load(p, input_shape=(1, 4))
    np.testing.assert_array_equal(m.run(np.ones((1, 4), np.float32))[0], np.full((1, 4), 2.5, np.float32))


@pytest.mark.parametrize("shape,match", [
    ((2, 4, 1), "3 dimensions; the model's has 2"),
    ((2, 5), "dimension 1 is fixed at 4"),
    ((0, 4), "sizes must be positive"),
])
def test_input_shape_that_disagrees_with_the_model_is_refused(write, shape, match):
    with pytest.raises(ConfigError, match=match):
        edgert.load(write("dyn.onnx", add_model(("batch", 4))), input_shape=shape)


def test_input_shape_per_input_name_for_several_inputs(write):
    p = write("two.onnx", two_input_model(("n", 3), ("n", 3)))
    with pytest.raises(ConfigError, match=r"2 inputs \('a', 'b'\).*input name"):
        edgert.load(p, input_shape=(2, 3))
    with pytest.raises(ConfigError, match=r"'c', not input"):
        edgert.load(p, input_shape={"c": (2, 3)})
    with pytest.raises(ConfigError, match="input 'b' has a dynamic dimension 0"):
        edgert.load(p, input_shape={"a": (2, 3)})
    m = edgert.load(p, input_shape={"a": (2, 3), "b": (2, 3)})
    a, b = np.full((2, 3), 2, np.float32), np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(m.run([a, b])[0], a * b)
    with pytest.raises(FrameError, match="2 input"):
        m.run(a)


@pytest.mark.parametrize("dtype,zp_in,zp_out", [(np.int8, -3, -128), (np.uint8, 128, 0)])
def test_quantized_edges_become_quantized_tensors_with_their_parameters(write, dtype, zp_in, zp_out):
    """Q at the input and DQ at the output are taken out: the model takes and gives the integers inside."""
    p = write("qdq.onnx", qdq_relu_model((1, 8), 0.05, zp_in, 0.04, zp_out, dtype))
    m = edgert.load(p)
    (i,), (o,) = m.inputs, m.outputs
    assert (i.dtype, float(i.quant.scale), int(i.quant.zero_point)) == (dtype, np.float32(0.05), zp_in)
    assert (o.dtype, float(o.quant.scale), int(o.quant.zero_point)) == (dtype, np.float32(0.04), zp_out)
    x = np.linspace(-3, 3, 8, dtype=np.float32).reshape(1, 8)
    q = i.quant.quantize(x, dtype)
    (y,) = m.run(q)
    assert y.dtype == dtype
    direct = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(o.quant.dequantize(y), direct, atol=0.04 + 1e-6)  # 1 LSB: rounding of halves
    assert len(set(y.ravel().tolist())) > 3  # outputs that differ: the relu of a ramp

    f = edgert.load(p, quantized_io=False)
    assert f.inputs[0].dtype == np.float32 and f.inputs[0].quant is None and f.outputs[0].dtype == np.float32
    np.testing.assert_array_equal(f.run(x)[0], direct)


def test_an_input_read_by_more_than_its_quantizer_stays_float(write):
    """x feeds both a QuantizeLinear and an Add: feeding it quantized would change the Add, so it is kept."""
    w = {"s": np.float32(0.1), "z": np.int8(0)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             helper.make_node("Add", ["xd", "x"], ["y"])]
    m = edgert.load(write("mixed.onnx", graph_model(nodes, [("x", np.float32, [1, 4])], [("y", np.float32, [1, 4])],
                                                   w)))
    assert m.inputs[0].dtype == np.float32 and m.outputs[0].dtype == np.float32
    x = np.array([[0.1, 0.24, -0.5, 2.0]], np.float32)
    np.testing.assert_allclose(m.run(x)[0], np.round(x / 0.1) * 0.1 + x, atol=1e-6)


def test_a_quantizer_behind_a_transpose_is_still_an_edge(write):
    """NHWC input -> Transpose -> QuantizeLinear (tf2onnx models): the input is fed quantized, transposed as int8."""
    w = {"s": np.float32(0.5), "z": np.int8(1)}
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
             helper.make_node("QuantizeLinear", ["t", "s", "z"], ["tq"]),
             helper.make_node("DequantizeLinear", ["tq", "s", "z"], ["y"])]
    m = edgert.load(write("t.onnx", graph_model(nodes, [("x", np.float32, [1, 2, 2, 3])],
                                                [("y", np.float32, [1, 3, 2, 2])], w)), quantized_io=True)
    assert m.inputs[0].dtype == np.int8 and m.inputs[0].layout == "NHWC" and m.outputs[0].layout == "NCHW"
    q = np.arange(12, dtype=np.int8).reshape(1, 2, 2, 3)
    np.testing.assert_array_equal(m.run(q)[0], q.transpose(0, 3, 1, 2))


def test_an_output_dequantized_then_reshaped_is_given_quantized(write):
    """DQ -> Reshape -> output: the Reshape moves the int8 values instead; an output also read inside stays float."""
    w = {"s": np.float32(0.25), "z": np.uint8(10), "shape": np.array([1, 2, 2], np.int64)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             helper.make_node("Relu", ["xd"], ["r"]),
             helper.make_node("QuantizeLinear", ["r", "s", "z"], ["rq"]),
             helper.make_node("DequantizeLinear", ["rq", "s", "z"], ["d"]),
             helper.make_node("Reshape", ["d", "shape"], ["y"]),
             helper.make_node("Neg", ["d"], ["n"])]
    both = graph_model(nodes, [("x", np.float32, [1, 4])], [("y", np.float32, [1, 2, 2]), ("n", np.float32, [1, 4])],
                       w)
    m = edgert.load(write("both.onnx", both))
    assert m.inputs[0].dtype == np.uint8 and [o.dtype for o in m.outputs] == [np.float32, np.float32]
    reshaped = graph_model(nodes[:6], [("x", np.float32, [1, 4])], [("y", np.float32, [1, 2, 2])], w)
    m = edgert.load(write("reshaped.onnx", reshaped))
    (o,) = m.outputs
    assert (o.dtype, o.shape, float(o.quant.scale), int(o.quant.zero_point)) == (np.uint8, (1, 2, 2), 0.25, 10)
    q = np.array([[0, 10, 200, 255]], np.uint8)
    np.testing.assert_array_equal(m.run(q)[0], np.maximum(q, 10).reshape(1, 2, 2))  # relu: zero is 10


def test_a_model_card_gives_the_input_shape_of_a_dynamic_model(write):
    import json

    from edgert.models.resolve import resolve

    p = write("dyn.onnx", add_model(("batch", 4)))
    p.with_suffix(".json").write_text(json.dumps({"name": "dyn", "version": "1.0", "input_shape": [2, 4],
                                                  "input_dtype": "uint8"}))  # dtype: for .rknn, not taken here
    with resolve(p).model as m:
        assert m.backend == "onnx" and m.inputs[0].shape == (2, 4) and m.inputs[0].dtype == np.float32


def test_uint8_pixel_inputs_are_given_without_quantization(write):
    nodes = [helper.make_node("Cast", ["img"], ["f"], to=onnx.TensorProto.FLOAT),
             helper.make_node("Mul", ["f", "k"], ["y"])]
    m = edgert.load(write("u8.onnx", graph_model(nodes, [("img", np.uint8, [1, 8, 8, 3])],
                                                 [("y", np.float32, [1, 8, 8, 3])], {"k": np.float32([0.5])})))
    assert m.inputs[0].dtype == np.uint8 and m.inputs[0].quant is None and m.inputs[0].layout == "NHWC"
    img = np.random.default_rng(3).integers(0, 256, (1, 8, 8, 3), dtype=np.uint8)
    np.testing.assert_array_equal(m.run(img)[0], img * np.float32(0.5))


def test_threads_and_providers_options(write):
    p = write("add.onnx", add_model())
    x = np.zeros((1, 4), np.float32)
    assert edgert.load(p, num_threads=2, providers=["cpu"]).run(x)[0].shape == (1, 4)
    assert edgert.load(p, providers=["CPUExecutionProvider"]).run(x)[0].shape == (1, 4)
    assert edgert.load(p, providers="cpu").run(x)[0].shape == (1, 4)  # one provider, as a config file gives it
    with pytest.raises(ConfigError, match="named twice"):
        edgert.load(p, providers=["cpu", "CPUExecutionProvider"])
    with pytest.raises(ConfigError, match="num_threads"):
        edgert.load(p, num_threads=0)
    with pytest.raises(ConfigError, match="colour"):
        edgert.load(p, colour="red")
    with pytest.raises(ConfigError, match="unknown execution provider 'FastestExecutionProvider'"):
        edgert.load(p, providers=["FastestExecutionProvider"])
    missing = next(n for n in ("OpenVINOExecutionProvider", "XnnpackExecutionProvider", "CUDAExecutionProvider")
                   if n not in ort.get_available_providers())
    with pytest.raises(BackendUnavailable, match=rf"no {missing} \(it has .*CPUExecutionProvider"):
        edgert.load(p, providers=[missing])


def test_wrong_inputs_are_refused_with_what_was_expected(write):
    m = edgert.load(write("add.onnx", add_model((1, 4))))
    with pytest.raises(FrameError, match=r"float32 \(1, 4\)"):
        m.run(np.zeros((1, 5), np.float32))
    with pytest.raises(FrameError, match="float32"):
        m.run(np.zeros((1, 4), np.float64))
    with pytest.raises(FrameError, match="1 input"):
        m.run([np.zeros((1, 4), np.float32)] * 2)
    for bad in (None, [[0.0, 1.0, 2.0, 3.0]]):
        with pytest.raises(FrameError, match="ndarray"):
            m.run(bad)


def test_a_non_contiguous_input_view_is_run_as_its_values(write):
    m = edgert.load(write("add.onnx", add_model((1, 4), 1.0)))
    big = np.arange(8, dtype=np.float32).reshape(1, 8)
    np.testing.assert_array_equal(m.run(big[:, ::2])[0], big[:, ::2] + 1.0)


def test_closed_model_refuses_to_run_and_closing_twice_is_safe(write):
    with edgert.load(write("add.onnx", add_model())) as m:
        m.run(np.zeros((1, 4), np.float32))
    assert m.closed
    m.close()
    with pytest.raises(ClosedError, match="closed"):
        m.run(np.zeros((1, 4), np.float32))
    with pytest.raises(ClosedError, match="closed"):
        m.submit(np.zeros((1, 4), np.float32))


@pytest.mark.parametrize("name,data,match", [
    ("empty.onnx", b"", "empty"),
    ("random.onnx", bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "not an ONNX model"),
    ("truncated.onnx", None, "truncated ONNX model"),
    ("tflite.onnx", b"\x1c\x00\x00\x00TFL3" + bytes(64), "not an ONNX model"),
    ("notes.txt", b"hello", "unknown model type"),
])
def test_bad_model_files_raise_model_error(write, name, data, match):
    if data is None:
        data = add_model().SerializeToString()[:-7]
    with pytest.raises(ModelError, match=match):
        edgert.load(write(name, data))


def test_a_graph_onnx_runtime_refuses_is_a_model_error_naming_the_op(write):
    nodes = [helper.make_node("NoSuchOp", ["x"], ["y"], domain="example.custom")]
    model = graph_model(nodes, [("x", np.float32, [1, 4])], [("y", np.float32, [1, 4])])
    model.opset_import.append(helper.make_opsetid("example.custom", 1))
    p = write("custom.onnx", model.SerializeToString())
    with pytest.raises(ModelError, match="onnxruntime cannot load it.*NoSuchOp"):
        edgert.load(p)


def test_a_failing_run_is_a_device_error(write):
    """Reshape to a shape the data cannot take fails inside ONNX Runtime: one line, DeviceError."""
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"])]
    model = graph_model(nodes, [("x", np.float32, [1, 4])], [("y", np.float32, [1, 3])],
                        {"shape": np.array([1, 3], np.int64)})
    p = write("bad_reshape.onnx", model.SerializeToString())
    with pytest.raises(DeviceError, match="onnxruntime run failed.*Reshape") as info:
        edgert.load(p).run(np.zeros((1, 4), np.float32))
    assert "\n" not in str(info.value)


def test_two_threads_share_one_onnx_model_safely(write):
    m = edgert.load(write("add.onnx", add_model((1, 4), 1.0)))
    errors, wrong = [], []

    def worker(v):
        try:
            for _ in range(200):
                y = m.run(np.full((1, 4), v, np.float32))[0]
                if not np.all(y == v + 1.0):
                    wrong.append(y)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(float(v),)) for v in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and not wrong


def test_without_onnx_runtime_the_backend_says_what_to_install(write, monkeypatch):
    import sys

    p = write("add.onnx", add_model())
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.delenv("EDGERT_BACKEND", raising=False)
    with pytest.raises(BackendUnavailable, match=r"onnx: onnx backend needs ONNX Runtime.*pip install"):
        edgert.load(p)
    with pytest.raises(BackendUnavailable, match="pip install onnxruntime"):
        edgert.load(p, backend="onnx")


def test_truncated_and_bit_flipped_files_fail_as_edgert_errors_only(tmp_path):
    """Every prefix of a model and 100 random byte changes (seeded): loaded and run, or an EdgertError; never
    another exception (protobuf hands invalid UTF-8 names over as bytes, for instance)."""
    from edgert.core.errors import EdgertError

    seed = 7
    rng = np.random.default_rng(seed)
    data = qdq_relu_model().SerializeToString()
    variants = [data[:n] for n in range(1, len(data))]
    for _ in range(100):
        b = bytearray(data)
        b[rng.integers(len(b))] = rng.integers(256)
        variants.append(bytes(b))
    path = tmp_path / "m.onnx"
    for i, v in enumerate(variants):
        path.write_bytes(v)
        try:
            with edgert.load(path) as m:
                m.run([np.zeros(s.shape, s.dtype) for s in m.inputs])
        except EdgertError as exc:
            assert "\n" not in str(exc)
        except Exception as exc:  # noqa: BLE001 - the failure this test looks for
            pytest.fail(f"variant {i} (seed {seed}): {type(exc).__name__}: {exc}")


@given(st.data())
@settings(max_examples=40)
def test_stripped_edges_give_what_the_file_gives_over_shapes_types_and_parameters(tmp_path_factory, data):
    """Random QDQ models (shape, int8/uint8, scale, zero points, an optional input Transpose and output
    Reshape): edgert's integers, dequantized with the spec, equal ONNX Runtime on the unedited file
    fed the same real values."""
    dtype = data.draw(st.sampled_from([np.int8, np.uint8]))
    info = np.iinfo(dtype)
    rank = data.draw(st.integers(2, 4))
    dims = data.draw(st.lists(st.integers(1, 5), min_size=rank, max_size=rank))
    s_in, s_out = (data.draw(st.floats(1e-3, 2.0)) for _ in range(2))
    z_in, z_out = (data.draw(st.integers(int(info.min), int(info.max))) for _ in range(2))
    transpose, reshape = data.draw(st.booleans()), data.draw(st.booleans())
    perm = list(reversed(range(rank)))
    inner = [dims[p] for p in perm] if transpose else dims
    w = {"s_in": np.float32(s_in), "z_in": np.array(z_in, dtype), "s_out": np.float32(s_out),
         "z_out": np.array(z_out, dtype), "flat": np.array([-1], np.int64)}
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=perm)] if transpose else []
    nodes += [helper.make_node("QuantizeLinear", ["t" if transpose else "x", "s_in", "z_in"], ["xq"]),
              helper.make_node("DequantizeLinear", ["xq", "s_in", "z_in"], ["xd"]),
              helper.make_node("Relu", ["xd"], ["r"]),
              helper.make_node("QuantizeLinear", ["r", "s_out", "z_out"], ["rq"]),
              helper.make_node("DequantizeLinear", ["rq", "s_out", "z_out"], ["d" if reshape else "y"])]
    out_dims = [int(np.prod(dims))] if reshape else inner
    if reshape:
        nodes.append(helper.make_node("Reshape", ["d", "flat"], ["y"]))
    p = save(graph_model(nodes, [("x", np.float32, dims)], [("y", np.float32, out_dims)], w),
             tmp_path_factory.mktemp("prop") / "m.onnx")
    m = edgert.load(p)
    (i,), (o,) = m.inputs, m.outputs
    assert i.dtype == dtype and o.dtype == dtype and o.shape == tuple(out_dims)
    q = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).integers(
        int(info.min), int(info.max) + 1, dims).astype(dtype)
    x = i.quant.dequantize(q)  # real values on the input's grid: both paths quantize them to q exactly
    direct = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(o.quant.dequantize(m.run(q)[0]), direct, rtol=1e-6, atol=1e-6)
    m.close()
