"""The Coral backend's code path (delegate loading, device choice, errors) against the libedgetpu fake."""
import numpy as np
import pytest
from test_hardware import make_tree
from tflite_builder import add_model, custom_op_model

import edgert
from edgert.core.errors import BackendUnavailable, ConfigError

SHAPE = (1, 4)


@pytest.fixture
def tpu(fake_edgetpu):
    return fake_edgetpu


@pytest.fixture
def compiled(tmp_path):
    """A CPU model and its "Edge TPU-compiled" twin (the CPU model inside the custom op)."""
    cpu = add_model(SHAPE, 3.0)
    (tmp_path / "m.tflite").write_bytes(cpu)
    (tmp_path / "m_edgetpu.tflite").write_bytes(custom_op_model(payload=cpu, dtype=np.float32, shape=SHAPE))
    return tmp_path / "m.tflite", tmp_path / "m_edgetpu.tflite"


def test_runs_through_the_delegate_with_the_cpu_twins_results(tpu, compiled):
    fake = tpu(devices=("usb:0",))
    cpu_path, tpu_path = compiled
    x = np.array([[1.0, -2.0, 0.5, 8.0]], np.float32)
    with edgert.load(tpu_path, backend="coral", device="usb:0", performance="Max") as m:
        assert m.backend == "coral"
        np.testing.assert_array_equal(m.run(x)[0], x + 3.0)
    assert fake.DELEGATE_CALLS == [("libedgetpu.so.1", {"device": "usb:0", "Performance": "Max"})]


def test_missing_library_and_missing_device(tpu, compiled):
    _, tpu_path = compiled
    tpu(library_present=False)
    with pytest.raises(BackendUnavailable, match="libedgetpu1-std"):
        edgert.load(tpu_path, backend="coral")
    tpu(devices=("pci:0",))
    with pytest.raises(BackendUnavailable, match="no Edge TPU answers at device 'usb:1'"):
        edgert.load(tpu_path, backend="coral", device="usb:1")
    assert edgert.load(tpu_path, backend="coral", device="pci").backend == "coral"


def test_one_model_per_edge_tpu(tpu, compiled):
    tpu(devices=("usb:0", "usb:1"))
    _, tpu_path = compiled
    first = edgert.load(tpu_path, backend="coral", device="usb:0")
    with pytest.raises(BackendUnavailable, match="already runs"):
        edgert.load(tpu_path, backend="coral", device="usb:0")
    second = edgert.load(tpu_path, backend="coral", device="usb:1")
    first.close()
    third = edgert.load(tpu_path, backend="coral", device="usb:0")
    for m in (second, third):
        m.close()


def test_failed_delegate_frees_the_device(tpu, compiled):
    tpu(devices=())
    _, tpu_path = compiled
    for _ in range(2):  # the failed first attempt must not leave usb:0 marked as in use
        with pytest.raises(BackendUnavailable, match="no Edge TPU"):
            edgert.load(tpu_path, backend="coral", device="usb:0")


def test_device_option_is_validated(tpu, compiled):
    tpu()
    _, tpu_path = compiled
    with pytest.raises(ConfigError, match="device"):
        edgert.load(tpu_path, backend="coral", device="usb0")


def test_auto_picks_coral_where_an_edge_tpu_is(tpu, compiled, tmp_path, monkeypatch):
    tpu(devices=("pci:0",))
    _, tpu_path = compiled
    monkeypatch.setenv("EDGERT_HW_ROOT", str(make_tree(tmp_path / "root", apex=True)))
    with edgert.load(tpu_path) as m:
        assert m.backend == "coral"
    monkeypatch.setenv("EDGERT_HW_ROOT", str(make_tree(tmp_path / "bare")))
    with pytest.raises(BackendUnavailable, match="no Edge TPU found"):
        edgert.load(tpu_path)


def test_a_dropped_model_frees_its_edge_tpu(tpu, compiled):
    import gc
    tpu(devices=("usb:0",))
    _, tpu_path = compiled
    edgert.load(tpu_path, backend="coral", device="usb:0")  # never closed, never kept
    gc.collect()
    edgert.load(tpu_path, backend="coral", device="usb:0").close()


def test_fake_interpreter_takes_what_litert_takes(tpu, tmp_path):
    """The fake's Interpreter has ai_edge_litert's signature (no catch-all), and fails as it does."""
    import inspect

    from ai_edge_litert import interpreter as litert

    fake = tpu(devices=("usb:0",))
    assert inspect.signature(fake.Interpreter.__init__) == inspect.signature(litert.Interpreter.__init__)
    assert inspect.signature(fake.load_delegate) == inspect.signature(litert.load_delegate)
    with pytest.raises(TypeError):
        fake.Interpreter(model_content=add_model(SHAPE), device="usb:0")  # an option LiteRT does not have
    with pytest.raises(ValueError, match="Could not open"):
        fake.Interpreter(model_path=str(tmp_path / "missing.tflite"))
