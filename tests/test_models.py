"""The committed real models (tests/data, made by benchmarks/models/make_models.py) through edgert:
accuracy as recorded, outputs that depend on the input, and the same decoded result on every backend."""
import json
from pathlib import Path

import numpy as np
import pytest
from tflite_builder import custom_op_model

import edgert
from edgert.postprocess import YoloDecoder, classify
from edgert.preprocess import Preprocessor

DATA = Path(__file__).parent / "data"
MANIFEST = json.loads((DATA / "models.json").read_text())


def digits():
    d = np.load(DATA / "digits_test.npz")
    return d["images"], d["labels"]


@pytest.mark.parametrize("name,key", [("digits_int8.tflite", "int8_accuracy"), ("digits_fp32.tflite", "fp32_accuracy")])
def test_digits_accuracy_as_recorded(name, key):
    """edgert's preprocessing + classify reproduce the accuracy measured with TensorFlow's interpreter."""
    images, labels = digits()
    with edgert.load(DATA / name) as m:
        pre = Preprocessor(m.inputs[0], "GRAY", (8, 8), "stretch", "nearest", mean=0, std=255)
        top1 = [classify(m.run(pre(img).copy())[0], m.outputs[0], top_k=1)[0][0] for img in images]
    accuracy = float(np.mean(np.array(top1) == labels))
    assert accuracy >= MANIFEST["digits"][key] - 0.005
    assert accuracy > 0.9


def test_int8_and_fp32_digits_agree():
    images, _ = digits()
    with edgert.load(DATA / "digits_int8.tflite") as q, edgert.load(DATA / "digits_fp32.tflite") as f:
        pq = Preprocessor(q.inputs[0], "GRAY", (8, 8), "stretch", "nearest", mean=0, std=255)
        pf = Preprocessor(f.inputs[0], "GRAY", (8, 8), "stretch", "nearest", mean=0, std=255)
        agree = [classify(q.run(pq(i).copy())[0], q.outputs[0], 1)[0][0] == classify(f.run(pf(i).copy())[0],
                                                                                  f.outputs[0], 1)[0][0]
                 for i in images[:100]]
    assert np.mean(agree) >= 0.95


def _mobilenet_inputs(m, count=6):
    images, _ = digits()
    pre = Preprocessor(m.inputs[0], "GRAY", (8, 8), "stretch", "bilinear", mean=127.5, std=127.5)
    return [pre(img).copy() for img in images[:count]]


def test_mobilenet_outputs_depend_on_the_input():
    """Batch-norm statistics from real data: different digits give different outputs (and classes)."""
    with edgert.load(DATA / "mobilenetv2_int8.tflite") as m:
        outs = [m.run(x)[0] for x in _mobilenet_inputs(m)]
    assert len({o.tobytes() for o in outs}) == len(outs)
    assert len({int(np.argmax(o)) for o in outs}) >= 3


def _same_top5_on(backend_model, cpu_model, inputs):
    for x in inputs:
        want = classify(cpu_model.run(x)[0], cpu_model.outputs[0], top_k=5)
        got = classify(backend_model.run(x)[0], backend_model.outputs[0], top_k=5)
        assert [i for i, _ in got] == [i for i, _ in want]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-6)


def test_mobilenet_same_top5_on_every_backend(tmp_path, fake_rknn, fake_hailo, fake_edgetpu):
    data = (DATA / "mobilenetv2_int8.tflite").read_bytes()
    (tmp_path / "m.rknn").write_bytes(fake_rknn.make_rknn(data))
    (tmp_path / "m.hef").write_bytes(fake_hailo.make_hef(data))
    with edgert.load(DATA / "mobilenetv2_int8.tflite") as cpu:
        inputs = _mobilenet_inputs(cpu, 3)
        with edgert.load(tmp_path / "m.rknn", backend="rknn", input_shape=cpu.inputs[0].shape) as npu:
            assert npu.outputs[0].dtype == np.float32  # RKNN Lite returns dequantized floats
            _same_top5_on(npu, cpu, inputs)
        with edgert.load(tmp_path / "m.hef", backend="hailo") as hailo:
            assert hailo.outputs[0].dtype == np.uint8  # raw, quantized as the device returns it
            _same_top5_on(hailo, cpu, inputs)
        fake_edgetpu(devices=("usb:0",))
        compiled = custom_op_model(payload=data, shape=cpu.inputs[0].shape, out_shape=cpu.outputs[0].shape)
        (tmp_path / "m_edgetpu.tflite").write_bytes(compiled)
        with edgert.load(tmp_path / "m_edgetpu.tflite", backend="coral") as tpu:
            _same_top5_on(tpu, cpu, inputs)


def squares_image(rng, size=320):
    img = (rng.uniform(0, 0.2, (size, size, 3)) * 255).astype(np.uint8)
    img[100:160, 50:110, 1] = 255  # a green square: class 1
    img[200:240, 220:260, 2] = 255  # a blue one: class 2
    return img


def test_yolov8_decodes_alike_quantized_and_float(tmp_path, fake_rknn):
    """The detector is only briefly trained (its boxes are not accurate): what counts here is that the
    int8 output on the CPU and its dequantized float32 form from RKNN decode to the same detections."""
    rng = np.random.default_rng(0)
    with edgert.load(DATA / "yolov8_int8.tflite") as cpu:
        pre = Preprocessor(cpu.inputs[0], "RGB", (320, 320), "stretch", "bilinear", mean=0, std=255)
        x = pre(squares_image(rng)).copy()
        dets = YoloDecoder(cpu.outputs, conf=0.4, iou=0.5, input_size=(320, 320))(cpu.run(x))
        (tmp_path / "y.rknn").write_bytes(fake_rknn.make_rknn((DATA / "yolov8_int8.tflite").read_bytes()))
        with edgert.load(tmp_path / "y.rknn", backend="rknn", input_shape=cpu.inputs[0].shape) as npu:
            float_dets = YoloDecoder(npu.outputs, conf=0.4, iou=0.5, input_size=(320, 320),
                                     normalized=True)(npu.run(x))
    assert len(dets) > 0
    np.testing.assert_array_equal(float_dets.classes, dets.classes)
    np.testing.assert_array_equal(float_dets.boxes, dets.boxes)


def test_yolov8_dfl_heads_decode_alike_quantized_and_float(tmp_path, fake_rknn):
    rng = np.random.default_rng(1)
    with edgert.load(DATA / "yolov8_dfl_int8.tflite") as cpu:
        pre = Preprocessor(cpu.inputs[0], "RGB", (320, 320), "stretch", "bilinear", mean=0, std=255)
        x = pre(squares_image(rng)).copy()
        dec = YoloDecoder(cpu.outputs, conf=0.3, input_size=(320, 320))
        assert dec.layout == "dfl" and not dec.dfl_nchw and len(dec.heads) == 3
        dets = dec(cpu.run(x))
        assert len(dets) > 0
        (tmp_path / "d.rknn").write_bytes(fake_rknn.make_rknn((DATA / "yolov8_dfl_int8.tflite").read_bytes()))
        with edgert.load(tmp_path / "d.rknn", backend="rknn", input_shape=cpu.inputs[0].shape) as npu:
            float_dets = YoloDecoder(npu.outputs, conf=0.3, input_size=(320, 320))(npu.run(x))
    np.testing.assert_array_equal(float_dets.classes, dets.classes)
    np.testing.assert_allclose(float_dets.boxes, dets.boxes, atol=1e-4)
