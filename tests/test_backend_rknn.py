"""The RKNN backend against the SDK-faithful RKNNLite fake (tests/fakes/rknnlite)."""
import sys
import threading

import numpy as np
import pytest
from test_hardware import make_tree
from tflite_builder import add_model

import edgert
from edgert.core.errors import (
    BackendUnavailable,
    ClosedError,
    ConfigError,
    DeviceError,
    FrameError,
)

SHAPE = (1, 2, 2, 3)


@pytest.fixture
def models(tmp_path, fake_rknn):
    tfl = add_model(SHAPE, 2.0)
    (tmp_path / "m.tflite").write_bytes(tfl)
    (tmp_path / "m.rknn").write_bytes(fake_rknn.make_rknn(tfl))
    return tmp_path / "m.tflite", tmp_path / "m.rknn"


def test_same_outputs_as_the_cpu_backend(models):
    cpu_path, rknn_path = models
    x = np.random.default_rng(0).random(SHAPE, dtype=np.float32)
    with edgert.load(cpu_path) as cpu, edgert.load(rknn_path, backend="rknn", input_shape=SHAPE,
                                                   input_dtype="float32") as npu:
        assert npu.backend == "rknn" and npu.outputs[0].shape == SHAPE and npu.outputs[0].dtype == np.float32
        np.testing.assert_allclose(npu.run(x)[0], cpu.run(x)[0], rtol=1e-6)


def test_pool_pins_one_instance_per_core_and_serves_threads(models, fake_rknn):
    _, rknn_path = models
    m = edgert.load(rknn_path, backend="rknn", input_shape=SHAPE, input_dtype="float32", pool=3)
    masks = [mask for mask, _ in fake_rknn.CALLS]
    lite = fake_rknn.RKNNLite
    assert masks == [lite.NPU_CORE_0, lite.NPU_CORE_1, lite.NPU_CORE_2]
    assert len({inst for _, inst in fake_rknn.CALLS}) == 3
    results, errors = [], []

    def worker(seed):
        try:
            x = np.full(SHAPE, seed, np.float32)
            for _ in range(20):
                results.append(float(m.run(x)[0].max()) == seed + 2.0)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 80 and all(results)


def test_all_three_cores_need_an_rk3588(models, fake_rknn):
    _, rknn_path = models
    fake_rknn.SOC = "rk3566"
    with pytest.raises(BackendUnavailable, match="init_runtime"):
        edgert.load(rknn_path, backend="rknn", input_shape=SHAPE, input_dtype="float32", core_mask="0_1_2")


def test_return_values_become_exceptions(models, fake_rknn, tmp_path):
    _, rknn_path = models
    bad = tmp_path / "bad.rknn"
    bad.write_bytes(b"not an rknn model")  # Lite2 reads it fine; init_runtime fails to parse it
    with pytest.raises(BackendUnavailable, match="corrupt model"):
        edgert.load(bad, backend="rknn", input_shape=SHAPE)
    m = edgert.load(rknn_path, backend="rknn", input_shape=SHAPE, input_dtype="float32")
    fake_rknn.FAIL_NEXT_INFERENCE.append(True)
    with pytest.raises(DeviceError, match="inference returned None"):
        m.run(np.zeros(SHAPE, np.float32))
    assert m.run(np.zeros(SHAPE, np.float32))[0].shape == SHAPE  # the next frame works again


def test_input_checks_close_and_release(models):
    _, rknn_path = models
    m = edgert.load(rknn_path, backend="rknn", input_shape=SHAPE, input_dtype="float32")
    with pytest.raises(FrameError, match="float32"):
        m.run(np.zeros(SHAPE, np.uint8))
    m.close()
    m.close()
    with pytest.raises(ClosedError):
        m.run(np.zeros(SHAPE, np.float32))


def test_wrong_declared_input_shape_fails_at_load_and_releases(models, fake_rknn, monkeypatch):
    _, rknn_path = models
    released = []
    original = fake_rknn.RKNNLite.release
    monkeypatch.setattr(fake_rknn.RKNNLite, "release", lambda self: (released.append(self), original(self)))
    with pytest.raises(ConfigError, match="input_shape"):
        edgert.load(rknn_path, backend="rknn", input_shape=(1, 3, 3, 3), input_dtype="float32", pool=2)
    assert len(released) == 2  # both instances freed after the failed warm-up
    with pytest.raises(ConfigError, match="input_shape"):
        edgert.load(rknn_path, backend="rknn", input_shape=())
    for shape, what in (((1, 0, 2, 3), "positive"), ((1, 99999, 99999, 3), "elements")):
        with pytest.raises(ConfigError, match=f"input_shape: .*{what}"):  # before any allocation
            edgert.load(rknn_path, backend="rknn", input_shape=shape)


def test_missing_sdk_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "rknnlite", None)
    p = tmp_path / "m.rknn"
    p.write_bytes(b"RKNN" + add_model(SHAPE))
    with pytest.raises(BackendUnavailable, match="rknn-toolkit-lite2"):
        edgert.load(p, backend="rknn", input_shape=SHAPE)


def test_auto_picks_rknn_on_an_rk3588(models, tmp_path, monkeypatch):
    _, rknn_path = models
    monkeypatch.setenv("EDGERT_HW_ROOT", str(make_tree(tmp_path / "root", rk3588=True)))
    assert edgert.load(rknn_path, input_shape=SHAPE, input_dtype="float32").backend == "rknn"
    monkeypatch.setenv("EDGERT_HW_ROOT", str(make_tree(tmp_path / "pi")))
    with pytest.raises(BackendUnavailable, match="no Rockchip NPU"):
        edgert.load(rknn_path, input_shape=SHAPE, input_dtype="float32")


def test_fake_has_the_surface_of_lite2_2_3_2(fake_rknn):
    """rknnlite.api exports only RKNNLite; the core masks are its class attributes (rknn_lite.py, 2.3.2)."""
    import inspect

    import rknnlite.api as api

    assert {n for n in vars(api) if not n.startswith("_")} == {"RKNNLite", "rknn_lite"}
    assert not hasattr(api, "NPU_CORE_AUTO")
    lite = api.RKNNLite
    assert (lite.NPU_CORE_AUTO, lite.NPU_CORE_0, lite.NPU_CORE_1, lite.NPU_CORE_2, lite.NPU_CORE_0_1,
            lite.NPU_CORE_0_1_2, lite.NPU_CORE_ALL) == (0, 1, 2, 4, 3, 7, 0xffff)
    signatures = {name: str(inspect.signature(getattr(lite, name))) for name in
                  ("__init__", "load_rknn", "list_devices", "init_runtime", "inference", "get_sdk_version",
                   "list_support_target_platform", "release")}
    assert signatures == {
        "__init__": "(self, verbose=False, verbose_file=None)",
        "load_rknn": "(self, path)",
        "list_devices": "(self)",
        "init_runtime": "(self, target=None, device_id=None, async_mode=False, core_mask=0)",
        "inference": "(self, inputs, data_type=None, data_format=None, inputs_pass_through=None, "
                     "get_frame_id=False)",
        "get_sdk_version": "(self)",
        "list_support_target_platform": "(self, rknn_model=None)",
        "release": "(self)",
    }


def test_fake_fails_where_lite2_fails(models, fake_rknn, tmp_path):
    _, rknn_path = models
    lite = fake_rknn.RKNNLite()
    assert lite.load_rknn(str(tmp_path / "missing.rknn")) == -1
    assert lite.init_runtime() == -1  # no model loaded
    assert lite.load_rknn(str(rknn_path)) == 0
    assert lite.get_sdk_version() is None  # before init_runtime
    assert lite.init_runtime(core_mask=lite.NPU_CORE_0) == 0
    x = np.zeros(SHAPE, np.float32)
    assert lite.inference(inputs=(x,)) is None  # a tuple: "Inputs should be placed in a list"
    assert lite.inference(inputs=[x.tolist()]) is None  # "Type of inputs[0] is not np.ndarray!"
    assert lite.inference(inputs=[x.astype(np.float64)]) is None  # "Unsupport inputs[0].dtype"
    assert lite.inference(inputs=[x], data_type="uint8") is None  # dtype is not data_type
    out = lite.inference(inputs=[x], get_frame_id=True)
    assert len(out) == 2 and out[0].shape == SHAPE and isinstance(out[1], int)
    assert lite.release() is None and lite.release() is None
    assert lite.inference(inputs=[x]) is None  # released
    assert lite.list_support_target_platform(str(tmp_path / "missing.rknn")) is None
