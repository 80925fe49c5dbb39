"""Warps (`edgert.warp`) and face alignment (`edgert.alignment`) against their twins, OpenCV and the definitions.

Tolerances: the warp kernel equals its twin (`edgert._reference_warp.warp`) exactly; against
``cv2.warpAffine`` (INTER_LINEAR, WARP_INVERSE_MAP, BORDER_CONSTANT; OpenCV 5 computes in float32)
within 1 unit; the similarity estimate equals Umeyama's SVD solution to 1e-9 and OpenCV's
``estimateAffinePartial2D`` to 1e-6 (exact points) / 1e-3 (noisy points, after its refinement).
"""
import numpy as np
import pytest
from conftest import ALL_FORMATS, image_spec
from hypothesis import given
from hypothesis import strategies as st
from strategies import MAPPINGS, warper_and_frame

from edgert import _reference_warp
from edgert.alignment import ARCFACE_112, Aligner, estimate_similarity, template
from edgert.core.errors import AlignmentError, FrameError
from edgert.warp import Warper, quad_homographies

cv2 = pytest.importorskip("cv2")


def _matrix(draw, fw, fh):
    """A random similarity-ish or general affine map (output index -> source index) over the frame."""
    angle, scale = draw(st.floats(-3.2, 3.2)), draw(st.floats(0.2, 3.0))
    shear = draw(st.floats(-0.3, 0.3))
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    tx, ty = draw(st.floats(-0.5 * fw, 1.5 * fw)), draw(st.floats(-0.5 * fh, 1.5 * fh))
    return np.array([[c, -s + shear, tx], [s, c, ty]])


@st.composite
def warp_cases(draw, mappings=MAPPINGS, formats=ALL_FORMATS):
    warper, frame, fmt, (fw, fh), (w, h, channels), layout, mapping, seed = draw(
        warper_and_frame((20, 20), mappings, formats))
    mats = np.array([_matrix(draw, fw, fh) for _ in range(draw(st.integers(1, 3)))])
    return warper, frame, mats, f"{fmt} {fw}x{fh} -> {w}x{h}x{channels} {layout} {mapping} seed={seed} {mats.tolist()}"


@given(case=warp_cases())
def test_warp_kernel_equals_twin(case):
    warper, frame, mats, what = case
    got = warper.affine(frame, mats)
    want = _reference_warp.warp(frame, warper, mats)
    assert got.shape == want.shape and got.dtype == warper.spec.dtype, what
    np.testing.assert_array_equal(got, want, err_msg=what)


@given(case=warp_cases(mappings=("identity",), formats=("BGR", "RGB", "BGRA", "GRAY")))
def test_warp_within_one_unit_of_cv2_warp_affine(case):
    """Packed sources, 8-bit output: cv2.warpAffine with the same (inverse) matrix and border, within 1."""
    warper, frame, mats, what = case
    got = warper.affine(frame, mats).astype(np.int64)
    w, h = warper.out_size
    pad = np.asarray(warper._pre_args["pad_value"], np.float64).reshape(-1)
    for k, m in enumerate(mats):
        if warper.format.is_gray:
            if len(set(pad.tolist())) > 1:  # a gray frame has one border value
                return
            ref = cv2.warpAffine(np.ascontiguousarray(frame), m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=float(pad[0]))
            ref = np.repeat(ref.reshape(h, w, 1), warper.channels, 2)
        else:
            rgb = np.ascontiguousarray(frame[..., :3][..., ::-1] if warper.format.name in ("BGR", "BGRA") else
                                       frame[..., :3])
            order = warper._pre_args["channel_order"]
            src = rgb if order == "RGB" else np.ascontiguousarray(rgb[..., ::-1])
            border = [float(v) for v in np.broadcast_to(pad, (3,))]
            ref = cv2.warpAffine(src, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=border)
            if warper.channels == 1:
                return  # gray output of a colour frame: covered by the twin
        img = got[k] if warper.nhwc else np.moveaxis(got[k], 0, -1)
        assert np.abs(img - ref.reshape(img.shape)).max() <= 1, what


def test_quad_of_an_axis_aligned_rectangle_is_its_crop_and_a_turned_one_is_turned():
    rng = np.random.default_rng(11)
    frame = rng.integers(0, 256, (50, 70, 3), np.uint8)
    warper = Warper(image_spec(10, 20, 3), "RGB", (70, 50))
    quad = [[30, 5], [50, 5], [50, 15], [30, 15]]  # tl, tr, br, bl
    np.testing.assert_array_equal(warper.quads(frame, quad)[0], frame[5:15, 30:50])
    turned = [[50, 5], [50, 25], [40, 25], [40, 5]]  # read top to bottom: text rotated 90 degrees clockwise
    np.testing.assert_array_equal(warper.quads(frame, turned)[0], np.rot90(frame[5:25, 40:50], 1))
    m = quad_homographies(quad, (20, 10))[0]
    np.testing.assert_allclose(m, [[1, 0, 30], [0, 1, 5], [0, 0, 1]], atol=1e-12)


@given(seed=st.integers(0, 2**32 - 1), k=st.integers(2, 8), noise=st.sampled_from([0.0, 0.5, 2.0]))
def test_similarity_estimate_is_umeyamas(seed, k, noise):
    rng = np.random.default_rng(seed)
    src = rng.uniform(0, 200, (k, 2))
    dst = rng.uniform(0, 112, (k, 2))
    try:
        got = estimate_similarity(src, dst, min_spread=0.0)
    except AlignmentError:
        return
    np.testing.assert_allclose(got, _reference_warp.umeyama(src, dst), atol=1e-9, err_msg=f"seed {seed}")


@pytest.mark.parametrize("noise, tol", [(0.0, 1e-6), (0.7, 1e-3)])
def test_similarity_estimate_against_opencv_and_skimage(noise, tol):
    rng = np.random.default_rng(5)
    for trial in range(20):
        angle, scale = rng.uniform(-0.6, 0.6), rng.uniform(0.3, 3)
        a = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) * scale
        t = rng.uniform(-50, 50, 2)
        src = (ARCFACE_112 - t) @ np.linalg.inv(a).T + rng.normal(0, noise, (5, 2))  # the face in the frame
        got = estimate_similarity(src, ARCFACE_112)
        ref, _ = cv2.estimateAffinePartial2D(src.astype(np.float32), ARCFACE_112.astype(np.float32),
                                             ransacReprojThreshold=50.0, refineIters=100)  # all inliers
        assert np.abs(got - ref).max() <= tol * max(1.0, np.abs(ref).max()), f"trial {trial}: {got} vs {ref}"
        if noise == 0:
            np.testing.assert_allclose(got[:, :2], a, atol=1e-9)


def test_similarity_estimate_against_skimage():
    transform = pytest.importorskip("skimage.transform")
    rng = np.random.default_rng(8)
    for _ in range(10):
        src = ARCFACE_112 * rng.uniform(0.5, 3) + rng.uniform(0, 300, 2) + rng.normal(0, 1.0, (5, 2))
        if hasattr(transform.SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
            ref = transform.SimilarityTransform.from_estimate(src, ARCFACE_112)
        else:
            ref = transform.SimilarityTransform()
            ref.estimate(src, ARCFACE_112)
        np.testing.assert_allclose(estimate_similarity(src, ARCFACE_112), ref.params[:2], atol=1e-9)


@pytest.mark.parametrize("points, says", [
    ([[0, 0], [10, 10], [20, 20], [30, 30], [40, 40.01]], "collinear"),
    ([[5, 5]] * 5, "coincide"),
    ([[0, 0], [np.nan, 1], [2, 3], [4, 4], [5, 9]], "not finite"),
    ([[-3, 0], [10, 1], [2, 30], [40, 4], [5, 9]], "outside the 64x48 frame"),
])
def test_degenerate_keypoints_refused_in_one_line(points, says):
    with pytest.raises(AlignmentError, match=says) as err:
        estimate_similarity(points, ARCFACE_112, frame_size=(64, 48))
    assert "\n" not in str(err.value)


def _face_frame(rng, true_m, size=(320, 240)):
    """A noise frame and the 5 keypoints that `true_m` (frame -> template) maps onto the template."""
    frame = rng.integers(0, 256, (size[1], size[0], 3), np.uint8)
    inv = np.linalg.inv(np.vstack([true_m, [0, 0, 1]]))[:2]
    kp = ARCFACE_112 @ inv[:, :2].T + inv[:, 2]
    return frame, kp


def test_aligner_matches_estimate_then_cv2_warp_and_counts_refusals():
    rng = np.random.default_rng(21)
    c, s = np.cos(0.3) * 0.6, np.sin(0.3) * 0.6
    true_m = np.array([[c, -s, -40.0], [s, c, -30.0]])
    frame, kp = _face_frame(rng, true_m)
    bad = np.array([[0, 0], [10, 10], [20, 20], [30, 30], [40, 40]], np.float64)
    aligner = Aligner(image_spec(112, 112, 3, "NHWC", np.int8), "BGR", (320, 240), mean=127.5, std=127.5,
                      channel_order="BGR", pad_value=127)
    got = aligner(frame, np.stack([kp, bad, kp - 1000]))
    assert got.ok.tolist() == [True, False, False]
    assert got.reasons[0] is None and "collinear" in got.reasons[1] and "outside the 320x240" in got.reasons[2]
    np.testing.assert_allclose(got.matrices[0], true_m, atol=1e-9)
    ref = cv2.warpAffine(frame, got.matrices[0], (112, 112), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=(127, 127, 127))
    uint8 = Aligner(image_spec(112, 112, 3), "BGR", (320, 240), channel_order="BGR", pad_value=127)(frame, kp[None])
    assert np.abs(uint8.tensor[0].astype(int) - ref).max() <= 1
    assert (got.tensor[1] == got.tensor[1].flat[0]).all()  # a refused face is the border value throughout


def test_blazeface_keypoints_use_eyes_nose_and_mouth_centre():
    rng = np.random.default_rng(4)
    frame, kp5 = _face_frame(rng, np.array([[0.5, 0.0, -20.0], [0.0, 0.5, -10.0]]))
    mouth = kp5[3:].mean(0)
    kp6 = np.vstack([kp5[:3], mouth, [[1.0, 1.0], [2.0, 200.0]]])  # ears anywhere in the frame
    aligner = Aligner(image_spec(112, 112, 3), "BGR", (320, 240), landmarks="blazeface6")
    got = aligner(frame, kp6[None])
    want = estimate_similarity(kp6[:4], template("blazeface6"))
    np.testing.assert_allclose(got.matrices[0], want, atol=1e-12)
    with pytest.raises(FrameError, match=r"expected shape \(N, 6, 2\)"):
        aligner(frame, kp5[None])


@given(case=warp_cases(mappings=("identity", "int8-quant", "float32"), formats=("BGR", "RGBA", "GRAY", "NV12")),
       seed=st.integers(0, 2**32 - 1))
def test_aligner_one_call_equals_estimate_then_warp(case, seed):
    """The fused path (similarity + warp in one compiled call) gives what its two halves give, refused faces
    included (they warp to the border)."""
    warper, frame, _, what = case
    fw, fh = warper.src_size
    rng = np.random.default_rng(seed)
    faces = [rng.uniform(0, [fw, fh], (5, 2)) for _ in range(3)]
    faces.append(np.tile([fw / 2, fh / 2], (5, 1)))  # coincident
    faces.append(np.linspace([0, 0], [fw, fh], 5))  # collinear
    faces.append(np.where(np.arange(10).reshape(5, 2) == 3, np.nan, faces[0]))  # not finite
    aligner = Aligner(warper.spec, warper.format.name, (fw, fh), **warper._pre_args)
    got = aligner(frame, np.stack(faces))
    assert got.ok[3:].tolist() == [False, False, False], what
    assert "coincide" in got.reasons[3] and "collinear" in got.reasons[4] and "not finite" in got.reasons[5]
    for k, face in enumerate(faces):
        try:
            m = estimate_similarity(face, aligner.template, frame_size=(fw, fh), min_spread=aligner.min_spread)
        except AlignmentError as e:
            assert not got.ok[k] and got.reasons[k] == str(e), what
            inverse = [[0, 0, -1e5], [0, 0, -1e5]]
        else:
            assert got.ok[k] and got.reasons[k] is None, what
            np.testing.assert_allclose(got.matrices[k], m, atol=1e-12)
            inverse = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
        want = _reference_warp.warp(frame, aligner.warper, np.asarray(inverse, np.float64)[None])[0]
        # the kernel's inverse and NumPy's differ in the last bits: positions by ~1e-13 px
        assert np.abs(got.tensor[k].astype(np.float64) - want).max() <= (1 if want.dtype != np.float32 else 0.02), what


def test_aligner_writes_into_out_and_returns_a_read_only_batch_otherwise():
    rng = np.random.default_rng(2)
    c, s = np.cos(0.2) * 0.5, np.sin(0.2) * 0.5
    frame, kp = _face_frame(rng, np.array([[c, -s, -20.0], [s, c, -10.0]]))
    aligner = Aligner(image_spec(112, 112, 3, "NHWC", np.int8), "BGR", (320, 240), mean=127.5, std=127.5)
    first = aligner(frame, kp[None])
    assert not first.tensor.flags.writeable and first.ok.tolist() == [True]
    out = np.zeros((2, 112, 112, 3), np.int8)
    got = aligner(frame, np.stack([kp, kp]), out=out)
    assert got.tensor is out and (out[0] == first.tensor[0]).all() and (out[1] == out[0]).all()
    with pytest.raises(FrameError, match="out: expected int8 array of shape"):
        aligner(frame, kp[None], out=out)
    empty = aligner(frame, np.zeros((0, 5, 2)))
    assert empty.tensor.shape == (0, 112, 112, 3) and empty.ok.shape == (0,) and empty.reasons == ()
