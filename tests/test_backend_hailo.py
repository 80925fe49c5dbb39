"""The Hailo backend against the SDK-faithful hailo_platform fake (tests/fakes/hailo_platform)."""
import sys

import numpy as np
import pytest
from test_hardware import make_tree
from tflite_builder import dequantize_reshape_model

import edgert
from edgert.core.errors import (
    BackendUnavailable,
    ClosedError,
    DeviceError,
    FrameError,
    ModelError,
)
from edgert.postprocess import YoloDecoder

IN_SHAPE = (1, 4, 6, 3)


@pytest.fixture
def hailo(fake_hailo):
    return fake_hailo


@pytest.fixture
def hef_pair(tmp_path, hailo):
    """A CPU model y = x_real + 0.25 and its HEF (outputs quantized by the device with scale 1/64)."""
    tfl = dequantize_reshape_model(IN_SHAPE, IN_SHAPE, 1 / 100, 0, add=0.25)
    (tmp_path / "m.tflite").write_bytes(tfl)
    (tmp_path / "m.hef").write_bytes(hailo.make_hef(tfl, {"output_quant": [[1 / 64, 0]]}))
    return tmp_path / "m.tflite", tmp_path / "m.hef"


def image(seed):
    return np.random.default_rng(seed).integers(0, 200, IN_SHAPE, dtype=np.uint8)


def test_raw_outputs_dequantize_to_the_cpu_result(hef_pair):
    cpu_path, hef_path = hef_pair
    x = image(0)
    with edgert.load(cpu_path) as cpu, edgert.load(hef_path, backend="hailo") as dev:
        spec = dev.outputs[0]
        assert dev.backend == "hailo" and spec.dtype == np.uint8 and spec.shape == IN_SHAPE
        assert float(spec.quant.scale) == pytest.approx(1 / 64)
        raw = dev.run(x)[0]
        real = edgert.postprocess.dequantize(raw, spec)
        np.testing.assert_allclose(real, cpu.run(x)[0], atol=0.5 / 64 + 1e-6)


def test_float32_outputs(hef_pair):
    cpu_path, hef_path = hef_pair
    x = image(1)
    with edgert.load(cpu_path) as cpu, edgert.load(hef_path, backend="hailo", output_format="float32") as dev:
        assert dev.outputs[0].dtype == np.float32
        np.testing.assert_allclose(dev.run(x)[0], cpu.run(x)[0], rtol=1e-6)


def test_models_share_one_round_robin_vdevice(hef_pair, hailo):
    _, hef_path = hef_pair
    a = edgert.load(hef_path, backend="hailo")
    b = edgert.load(hef_path, backend="hailo")
    assert len(hailo.VDEVICES) == 1
    assert hailo.VDEVICES[0].params.scheduling_algorithm == hailo.HailoSchedulingAlgorithm.ROUND_ROBIN
    for seed in range(3):  # both run, interleaved; without the scheduler the fake refuses to run
        assert a.run(image(seed))[0].shape == b.run(image(seed + 10))[0].shape == IN_SHAPE
    a.close()
    assert not hailo.VDEVICES[0]._released  # still used by b
    b.close()
    b.close()
    assert hailo.VDEVICES[0]._released
    with pytest.raises(ClosedError):
        b.run(image(0))
    edgert.load(hef_path, backend="hailo").close()
    assert len(hailo.VDEVICES) == 2  # a new VDevice after the last user released the old one


def test_frames_in_flight_come_back_in_order(hef_pair):
    cpu_path, hef_path = hef_pair
    frames = [image(s) for s in range(6)]
    with edgert.load(cpu_path) as cpu, edgert.load(hef_path, backend="hailo", max_in_flight=3,
                                                   output_format="float32") as dev:
        futures = [dev.submit(f) for f in frames]
        for f, fut in zip(frames, futures):
            np.testing.assert_allclose(fut.result()[0], cpu.run(f)[0], rtol=1e-6)


def test_on_chip_nms_parses_to_the_cpu_decode(tmp_path, hailo):
    """HAILO_NMS_BY_CLASS from the device gives the detections of the same YOLO output decoded on the CPU."""
    classes, n = 3, 40
    rng = np.random.default_rng(5)
    yolo = np.zeros((4 + classes, n), np.float32)
    yolo[:2] = rng.uniform(0.2, 0.8, (2, n))
    yolo[2:4] = rng.uniform(0.05, 0.2, (2, n))
    yolo[4:] = rng.uniform(0, 0.3, (classes, n))
    yolo[4 + rng.integers(0, classes, 8), rng.choice(n, 8, replace=False)] = rng.uniform(0.6, 0.95, 8)
    q = np.round(yolo * 250).astype(np.uint8)  # the "image" holds the quantized YOLO output
    shape_in = (1, 4 + classes, n, 1)
    tfl = dequantize_reshape_model(shape_in, (1, 4 + classes, n), 1 / 250, 0)
    (tmp_path / "d.hef").write_bytes(hailo.make_hef(tfl, {"nms": {"classes": classes, "max_bboxes": 10,
                                                                   "score_threshold": 0.5, "iou_threshold": 0.6}}))
    (tmp_path / "d.tflite").write_bytes(tfl)
    x = q.reshape(shape_in)
    with edgert.load(tmp_path / "d.hef", backend="hailo") as dev, edgert.load(tmp_path / "d.tflite") as cpu:
        assert dev.outputs[0].shape == (classes * (1 + 5 * 10),) and dev.outputs[0].dtype == np.float32
        on_chip = YoloDecoder(dev.outputs, conf=0.5, layout="hailo-nms", num_classes=classes, max_bboxes=10,
                              input_size=(320, 320))(dev.run(x))
        host = YoloDecoder(cpu.outputs, conf=0.5, iou=0.6, input_size=(320, 320), normalized=True)(cpu.run(x))
    assert len(on_chip) == len(host) > 0
    order = np.lexsort((on_chip.classes, -on_chip.scores))
    np.testing.assert_allclose(on_chip.boxes[order], host.boxes, atol=1e-3)
    np.testing.assert_array_equal(on_chip.classes[order], host.classes)


def test_errors(hef_pair, hailo, tmp_path):
    _, hef_path = hef_pair
    bad = tmp_path / "bad.hef"
    bad.write_bytes(b"not a hef at all")
    with pytest.raises(ModelError, match="cannot load"):
        edgert.load(bad, backend="hailo")
    m = edgert.load(hef_path, backend="hailo")
    with pytest.raises(FrameError, match="uint8"):
        m.run(np.zeros(IN_SHAPE, np.float32))
    m._impl._cim.shutdown()  # what HailoRT does after a failed transfer
    with pytest.raises(DeviceError, match="HailoRTStreamAborted"):
        m.run(image(0))
    m.close()
    hailo.DEVICES.clear()
    with pytest.raises(BackendUnavailable, match="cannot open the device"):
        edgert.load(hef_path, backend="hailo")


def test_missing_sdk_and_auto_choice(hef_pair, tmp_path, monkeypatch):
    _, hef_path = hef_pair
    monkeypatch.setenv("EDGERT_HW_ROOT", str(make_tree(tmp_path / "pi", hailo=True)))
    with edgert.load(hef_path) as m:
        assert m.backend == "hailo"
    monkeypatch.setitem(sys.modules, "hailo_platform", None)
    with pytest.raises(BackendUnavailable, match="HailoRT"):
        edgert.load(hef_path, backend="hailo")


@pytest.mark.parametrize("output_format", ["raw", "float32"])
def test_legacy_vstreams_api_gives_the_infer_model_results(hef_pair, output_format):
    _, hef_path = hef_pair
    x = image(3)
    with edgert.load(hef_path, backend="hailo", output_format=output_format) as new, \
            edgert.load(hef_path, backend="hailo", api="vstreams", output_format=output_format) as old:
        assert old.inputs == new.inputs and old.outputs == new.outputs
        np.testing.assert_array_equal(old.run(x)[0], new.run(x)[0])
        assert old.submit(x).result()[0].shape == new.outputs[0].shape


def test_legacy_vstreams_on_chip_nms_packs_like_infer_model(tmp_path, hailo):
    classes, n = 2, 12
    rng = np.random.default_rng(9)
    yolo = np.zeros((4 + classes, n), np.float32)
    yolo[:2], yolo[2:4] = rng.uniform(0.2, 0.8, (2, n)), rng.uniform(0.05, 0.2, (2, n))
    yolo[4:] = rng.uniform(0.5, 1.0, (classes, n))
    tfl = dequantize_reshape_model((1, 4 + classes, n, 1), (1, 4 + classes, n), 1 / 250, 0)
    (tmp_path / "n.hef").write_bytes(hailo.make_hef(tfl, {"nms": {"classes": classes, "max_bboxes": 5,
                                                                   "score_threshold": 0.6, "iou_threshold": 0.5}}))
    x = np.round(yolo * 250).astype(np.uint8).reshape(1, 4 + classes, n, 1)
    with edgert.load(tmp_path / "n.hef", backend="hailo") as new, \
            edgert.load(tmp_path / "n.hef", backend="hailo", api="vstreams") as old:
        a, b = new.run(x)[0], old.run(x)[0]
    assert a[0] > 0  # class 0 holds boxes
    np.testing.assert_array_equal(a, b)


def test_multi_process_service_needs_the_service(hef_pair):
    _, hef_path = hef_pair
    with pytest.raises(BackendUnavailable, match="hailort_service"):
        edgert.load(hef_path, backend="hailo", multi_process_service=True, group_id="svc")


def test_submitted_frames_are_copied_before_the_caller_reuses_its_buffer(hef_pair, hailo):
    """The device reads a frame after submit returns; the caller's next frame must not leak into it."""
    cpu_path, hef_path = hef_pair
    hailo.DEVICE_DELAY = 0.02
    buf = image(0)
    frames = [image(s) for s in range(3)]
    with edgert.load(cpu_path) as cpu, edgert.load(hef_path, backend="hailo", max_in_flight=3,
                                                   output_format="float32") as dev:
        futures = []
        for f in frames:
            buf[...] = f  # one reused buffer, as a Preprocessor returns
            futures.append(dev.submit(buf))
        for f, fut in zip(frames, futures):
            np.testing.assert_allclose(fut.result()[0], cpu.run(f)[0], rtol=1e-6)


def test_a_hung_device_gives_device_error_not_a_hang(hef_pair, hailo):
    _, hef_path = hef_pair
    with edgert.load(hef_path, backend="hailo", max_in_flight=1, timeout_ms=50) as dev:
        hailo.DEVICE_DELAY = 0.5
        first = dev.submit(image(0))
        with pytest.raises(DeviceError, match="no frame finished"):
            dev.submit(image(1))
        first.result(timeout=2)
        hailo.DEVICE_DELAY = 0.0
        assert dev.run(image(2))[0].shape == IN_SHAPE  # the slot came back


def test_a_cancelled_future_gives_its_slot_back(hef_pair, hailo):
    _, hef_path = hef_pair
    hailo.DEVICE_DELAY = 0.05
    with edgert.load(hef_path, backend="hailo", max_in_flight=1) as dev:
        assert dev.submit(image(0)).cancel()
        hailo.DEVICE_DELAY = 0.0
        assert dev.run(image(1))[0].shape == IN_SHAPE


def test_a_second_group_on_a_held_device_says_to_use_the_service(hef_pair):
    _, hef_path = hef_pair
    with edgert.load(hef_path, backend="hailo"):
        with pytest.raises(BackendUnavailable, match="multi_process_service"):
            edgert.load(hef_path, backend="hailo", group_id="other")


def test_fake_exports_only_names_hailort_exports(hailo):
    """Top-level names are a subset of HailoRT 4.23's hailo_platform/__init__.py; keyword names as in
    its pyhailort.py (a call by a name only the fake has would pass here and fail on a device)."""
    import inspect

    import hailo_platform

    real_top_level = {
        "EthernetDevice", "DvmTypes", "PowerMeasurementTypes", "SamplingPeriod", "AveragingFactor",
        "MeasurementBufferIndex", "UDPRateLimiter", "PcieDevice", "HEF", "ConfigureParams", "FormatType",
        "FormatOrder", "MipiDataTypeRx", "MipiPixelsPerClock", "MipiClockSelection", "MipiIspImageInOrder",
        "MipiIspImageOutDataType", "join_drivers_path", "IspLightFrequency", "HailoPowerMode", "Endianness",
        "HailoStreamInterface", "InputVStreamParams", "OutputVStreamParams", "InputVStreams", "OutputVStreams",
        "InferVStreams", "HailoStreamDirection", "HailoFormatFlags", "HailoCpuId", "Device", "VDevice",
        "HailoRTException", "HailoSchedulingAlgorithm", "HailoRTStreamAbortedByUser", "AsyncInferJob",
        "HailoCommunicationClosedException"}
    public = {n for n, v in vars(hailo_platform).items() if not n.startswith("_") and not inspect.ismodule(v)}
    assert public <= real_top_level, public - real_top_level
    params = {name: list(inspect.signature(fn).parameters)[1:] for name, fn in (
        ("set_batch_size", hailo.InferModel.set_batch_size),
        ("set_format_type", hailo.InferStream.set_format_type),
        ("set_format_order", hailo.InferStream.set_format_order),
        ("set_nms_score_threshold", hailo.InferStream.set_nms_score_threshold),
        ("set_nms_iou_threshold", hailo.InferStream.set_nms_iou_threshold),
        ("set_nms_max_proposals_per_class", hailo.InferStream.set_nms_max_proposals_per_class),
        ("activate", hailo.ConfiguredNetwork.activate),
        ("get_input_vstream_infos", hailo.ConfiguredNetwork.get_input_vstream_infos))}
    assert params == {"set_batch_size": ["batch_size"], "set_format_type": ["type"], "set_format_order": ["order"],
                      "set_nms_score_threshold": ["threshold"], "set_nms_iou_threshold": ["threshold"],
                      "set_nms_max_proposals_per_class": ["max_proposals"], "activate": ["network_group_params"],
                      "get_input_vstream_infos": ["network_name"]}
