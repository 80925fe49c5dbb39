"""`edgert.postprocess.db_text`: DB text maps -> quads (synthetic maps with known geometry), and the PP-OCR detector
finding the text rows of rendered plates."""
import cv2
import numpy as np
import pytest
from plate_renderer import render_case

from edgert import Quantization, TensorSpec
from edgert.core.errors import ConfigError, DecodeError
from edgert.postprocess.db_text import DbTextDecoder, order_corners

SPEC = TensorSpec("map", (1, 1, 96, 160), np.float32)


def _map(rects, value=0.9):
    m = np.zeros((96, 160), np.float32)
    for rect in rects:
        cv2.fillPoly(m, [np.round(cv2.boxPoints(rect)).astype(np.int32)], value)
    return m.reshape(1, 1, 96, 160)


def test_one_rotated_region_grown_back_by_the_unclip_distance():
    rect = ((80, 48), (60, 12), 10.0)
    got = DbTextDecoder(SPEC, unclip_ratio=1.5)(_map([rect]))
    # The rasterised rectangle takes a few edge pixels of the map's background.
    assert got.quads.shape == (1, 4, 2) and 0.8 <= got.scores[0] <= 0.9
    def size(q):
        return ((np.linalg.norm(q[1] - q[0]) + np.linalg.norm(q[2] - q[3])) / 2,
                (np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1])) / 2)

    q = got.quads[0]
    w0, h0 = size(DbTextDecoder(SPEC, unclip_ratio=0.0)(_map([rect])).quads[0])  # the region as found
    assert w0 == pytest.approx(60, abs=2.5) and h0 == pytest.approx(12, abs=2.5)  # rasterised inclusively
    grow = w0 * h0 * 1.5 / (2 * (w0 + h0))
    w, h = size(q)
    assert w == pytest.approx(w0 + 2 * grow, abs=0.01) and h == pytest.approx(h0 + 2 * grow, abs=0.01)
    assert np.allclose(q.mean(0), (80, 48), atol=1.0)
    assert q[0, 0] < q[1, 0] and q[0, 1] < q[3, 1]  # top-left, top-right, ..., bottom-left


def test_thresholds_and_min_size():
    rects = [((40, 30), (50, 10), 0.0), ((120, 70), (2, 20), 0.0)]  # the second is 2 px wide
    got = DbTextDecoder(SPEC, min_size=3)(_map(rects))
    assert len(got.quads) == 1
    assert len(DbTextDecoder(SPEC, box_threshold=0.95)(_map(rects)).quads) == 0  # mean 0.9 < 0.95
    assert len(DbTextDecoder(SPEC, threshold=0.95)(_map(rects)).quads) == 0      # nothing above threshold
    assert len(DbTextDecoder(SPEC)(np.zeros((1, 1, 96, 160), np.float32)).quads) == 0


def test_quantized_map_and_to_source():
    spec = TensorSpec("map", (1, 1, 96, 160), np.uint8, Quantization(1 / 255, 0))
    m = np.round(_map([((80, 48), (60, 12), 0.0)]) * 255).astype(np.uint8)
    got = DbTextDecoder(spec)(m, to_source=lambda b: b * 2)
    assert got.quads.shape == (1, 4, 2) and np.allclose(got.quads[0].mean(0), (160, 96), atol=2)


def test_refusals():
    d = DbTextDecoder(SPEC)
    with pytest.raises(DecodeError, match="does not fit"):
        d(np.zeros((1, 1, 10, 10), np.float32))
    bad = np.zeros((1, 1, 96, 160), np.float32)
    bad[0, 0, 3, 3] = np.nan
    with pytest.raises(DecodeError, match="NaN"):
        d(bad)
    with pytest.raises(ConfigError, match="threshold"):
        DbTextDecoder(SPEC, threshold=2)
    with pytest.raises(ConfigError, match="probability map"):
        DbTextDecoder(TensorSpec("x", (2, 1, 4, 4), np.float32))
    with pytest.raises(ConfigError, match="not 'db'"):
        DbTextDecoder.from_card(SPEC, {"kind": "ctc"})


def test_order_corners_of_a_45_degree_square():
    pts = np.array([[10, 0], [20, 10], [10, 20], [0, 10]], np.float32)
    out = order_corners(pts)
    assert len({tuple(p) for p in out.tolist()}) == 4


def test_ppocr_detector_finds_the_rows_of_rendered_plates():
    pytest.importorskip("onnxruntime")
    from edgert.models.resolve import resolve
    from edgert.preprocess import Preprocessor

    m = resolve("builtin:ch_PP-OCRv4_det", task="text_detect")
    try:
        decoder = DbTextDecoder.from_card(m.model.outputs[0], m.decoder)
        for seed in range(6):
            case = render_case(seed)
            pre = Preprocessor(m.model.inputs[0], "BGR", (640, 360), **m.preprocess)
            found = decoder(m.model.run(pre(case.frame))[0], to_source=pre.to_source)
            assert len(found.quads) == len(case.rows), f"seed {seed}: {len(found.quads)} regions"
            lo, hi = case.quad.min(0) - 8, case.quad.max(0) + 8
            centres = found.quads.mean(1)
            assert ((centres > lo) & (centres < hi)).all(), f"seed {seed}: {centres} outside {lo}..{hi}"
    finally:
        m.model.close()
