"""The Model API on the CPU backend, with real .tflite models built from the flatbuffer schema."""
import numpy as np
import pytest
from tflite_builder import add_model, custom_op_model, quantize_model

import edgert
from edgert.core.errors import (
    BackendUnavailable,
    ClosedError,
    ConfigError,
    FrameError,
    ModelError,
)


@pytest.fixture
def write(tmp_path):
    def _write(name, data):
        p = tmp_path / name
        p.write_bytes(data)
        return p
    return _write


def test_float_model_runs_and_reports_its_tensors(write):
    """y = x + 1.5 comes back computed by LiteRT, with the specs the file declares."""
    m = edgert.load(write("add.tflite", add_model((1, 4), 1.5)))
    assert m.backend == "cpu"
    assert [s.shape for s in m.inputs] == [(1, 4)] and m.inputs[0].dtype == np.float32
    x = np.array([[0.0, 1.0, -2.0, 7.25]], np.float32)
    (y,) = m.run(x)
    np.testing.assert_array_equal(y, x + 1.5)
    (y2,) = m.run(x * 2)
    np.testing.assert_array_equal(y2, x * 2 + 1.5)
    assert not np.shares_memory(y, y2)  # outputs are copies, not views the next run overwrites


@pytest.mark.parametrize("dtype,zp", [(np.uint8, 128), (np.int8, -3)])
def test_quantized_output_spec_and_values(write, dtype, zp):
    """The output's quantization is read from the file; values follow round(x / scale) + zp, saturated."""
    m = edgert.load(write("q.tflite", quantize_model((1, 8), 0.25, zp, dtype)))
    spec = m.outputs[0]
    assert spec.dtype == dtype and float(spec.quant.scale) == 0.25 and int(spec.quant.zero_point) == zp
    x = np.linspace(-40, 40, 8, dtype=np.float32).reshape(1, 8)
    (q,) = m.run(x)
    info = np.iinfo(dtype)
    expected = np.clip(np.round(x / 0.25) + zp, info.min, info.max)
    assert np.abs(q.astype(int) - expected).max() <= 1


def test_num_threads_option_is_validated(write):
    p = write("add.tflite", add_model())
    assert edgert.load(p, num_threads=2).run(np.zeros((1, 4), np.float32))[0].shape == (1, 4)
    with pytest.raises(ConfigError, match="num_threads"):
        edgert.load(p, num_threads=0)
    with pytest.raises(ConfigError, match="colour"):
        edgert.load(p, colour="red")


def test_wrong_inputs_are_refused_with_what_was_expected(write):
    m = edgert.load(write("add.tflite", add_model((1, 4))))
    with pytest.raises(FrameError, match=r"float32 \(1, 4\)"):
        m.run(np.zeros((1, 5), np.float32))
    with pytest.raises(FrameError, match="float32"):
        m.run(np.zeros((1, 4), np.float64))
    with pytest.raises(FrameError, match="1 input"):
        m.run([np.zeros((1, 4), np.float32)] * 2)
    with pytest.raises(FrameError, match="ndarray"):
        m.run([[0.0, 1.0, 2.0, 3.0]])


def test_closed_model_refuses_to_run_and_closing_twice_is_safe(write):
    with edgert.load(write("add.tflite", add_model())) as m:
        m.run(np.zeros((1, 4), np.float32))
    assert m.closed
    m.close()
    with pytest.raises(ClosedError, match="closed"):
        m.run(np.zeros((1, 4), np.float32))


@pytest.mark.parametrize("name,data,match", [
    ("empty.tflite", b"", "empty"),
    ("random.tflite", bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "not a TFLite"),
    ("truncated.tflite", add_model()[:40], "TFLite|corrupted|cannot load"),
    ("notes.txt", b"hello", "unknown model type"),
])
def test_bad_model_files_raise_model_error(write, name, data, match):
    with pytest.raises(ModelError, match=match):
        edgert.load(write(name, data))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        edgert.load(tmp_path / "nope.tflite")
    with pytest.raises(ModelError, match="directory"):
        edgert.load(tmp_path)


def test_unknown_custom_op_names_the_op(write):
    with pytest.raises(ModelError, match="MyCustomOp"):
        edgert.load(write("custom.tflite", custom_op_model("MyCustomOp")))


def test_edgetpu_model_is_not_run_on_the_cpu(write):
    """An Edge TPU-compiled model needs the coral backend: auto refuses with a reason, cpu is refused."""
    p = write("m_edgetpu.tflite", custom_op_model())
    with pytest.raises(BackendUnavailable, match="edgetpu"):
        edgert.load(p)
    with pytest.raises(ConfigError, match="cannot run a edgetpu model"):
        edgert.load(p, backend="cpu")


def test_backend_choice_and_override(write, monkeypatch):
    p = write("add.tflite", add_model())
    with pytest.raises(ConfigError, match="unknown backend 'tpu'"):
        edgert.load(p, backend="tpu")
    monkeypatch.setenv("EDGERT_BACKEND", "nonesuch")
    with pytest.raises(ConfigError, match="EDGERT_BACKEND: unknown backend 'nonesuch'"):
        edgert.load(p)
    monkeypatch.setenv("EDGERT_BACKEND", "cpu")
    assert edgert.load(p).backend == "cpu"


def test_hef_and_rknn_files_without_their_backends(write):
    with pytest.raises(BackendUnavailable, match="hef"):
        edgert.load(write("model.hef", b"\x01HEF" + bytes(64)))
    with pytest.raises(BackendUnavailable, match="rknn"):
        edgert.load(write("model.rknn", b"RKNN" + bytes(64)))


def test_a_model_whose_input_is_not_an_image_is_refused_by_the_preprocessor(write):
    from edgert.preprocess import Preprocessor
    m = edgert.load(write("add.tflite", add_model((1, 4))))
    with pytest.raises(ConfigError, match="not an image input"):
        Preprocessor(m.inputs[0], "BGR", (64, 48))


def test_corrupted_quantization_is_refused_before_litert_sees_it(write):
    """A zero point outside its type (a flipped byte) crashes LiteRT's allocate_tensors: refuse it first."""
    data = bytearray(quantize_model((1, 8), 0.25, 128, np.uint8))
    good = edgert.load(write("q.tflite", bytes(data)))
    good.close()
    import flatbuffers  # noqa: F401 - the schema below needs it
    from ai_edge_litert import schema_py_generated as schema
    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytes(data), 0))
    m.subgraphs[0].tensors[1].quantization.zeroPoint = [1078]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    with pytest.raises(ModelError, match="zero points outside"):
        edgert.load(write("bad.tflite", bytes(b.Output())))


def test_inputs_that_are_not_arrays_are_frame_errors(write):
    m = edgert.load(write("add.tflite", add_model()))
    for bad in (None, 5, np.float32(1.0)):
        with pytest.raises(FrameError, match="ndarray"):
            m.run(bad)


def test_two_threads_share_one_cpu_model_safely(write):
    import threading
    m = edgert.load(write("add.tflite", add_model((1, 4), 1.0)))
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
