"""Face recognition with real models: the project's synthetic-identity embedder (held-out identities differ,
same identities match, EER through `evaluate_embedder`), int8 outputs dequantised, BlazeFace enrolment
(no face / several faces refused naming the image), `FaceRecognition` on frames, and `edgert faces`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import synthetic_faces
from face_photos import FRAMES, make_frame

from edgert.apps.surveillance.faces.admin import FaceAdmin, threshold_from_bench
from edgert.apps.surveillance.faces.embedder import FaceEmbedder
from edgert.apps.surveillance.faces.gallery import Gallery
from edgert.apps.surveillance.faces.recognition import FaceRecognition
from edgert.bench.accuracy import evaluate_embedder
from edgert.cli.main import main
from edgert.core.errors import DecodeError, GalleryError
from edgert.core.tensor import TensorSpec
from edgert.models.resolve import resolve
from edgert.postprocess.embeddings import embedding_size, unit_embeddings

pytest.importorskip("skimage")
cv2 = pytest.importorskip("cv2")

DATA = Path(__file__).parent / "data"
FP32 = DATA / "synthetic_face_embedder_fp32.tflite"
INT8 = DATA / "synthetic_face_embedder_int8.tflite"
HELD_OUT = range(400, 430)  # identities the embedder never saw in training


@pytest.fixture(scope="module")
def embedder_entry():
    entry = resolve(FP32, "embed", backend="cpu")
    yield entry
    entry.model.close()


def embed_images(entry, images):
    from edgert.preprocess import Preprocessor

    pre = Preprocessor(entry.model.inputs[0], "RGB", images.shape[2:0:-1], **entry.preprocess)
    spec = entry.model.outputs[0]
    return np.concatenate([unit_embeddings(entry.model.run(pre(img))[0], spec) for img in images])


def test_held_out_identities_differ_and_same_identities_match(embedder_entry):
    images, ids = synthetic_faces.render_set(HELD_OUT, 4)
    e = embed_images(embedder_entry, images)
    sim = e @ e.T
    same = ids[:, None] == ids[None, :]
    off_diagonal = ~np.eye(len(ids), dtype=bool)
    genuine, impostor = sim[same & off_diagonal], sim[~same]
    assert genuine.mean() > impostor.mean() + 0.4
    # Each image's nearest other image is of the same identity for nearly all of them.
    np.fill_diagonal(sim, -np.inf)
    assert np.mean(ids[np.argmax(sim, axis=1)] == ids) > 0.9
    assert np.ptp(e, axis=0).max() > 0.1  # outputs differ across inputs


def test_bench_metrics_on_a_held_out_folder(embedder_entry, tmp_path):
    for ident in HELD_OUT[:20]:
        folder = tmp_path / f"id{ident}"
        folder.mkdir()
        for k in range(5):
            cv2.imwrite(str(folder / f"{k}.png"), synthetic_faces.render(ident, k)[:, :, ::-1])
    result = evaluate_embedder(embedder_entry.model, tmp_path, preprocess=embedder_entry.preprocess)
    m = result["model"]
    assert result["identities"] == 20 and m["eer"] < 0.1 and m["auc"] > 0.97 and m["rank1"] > 0.9
    assert threshold_from_bench({"runs": [{"accuracy": result}]}) == m["eer_threshold"]


def test_int8_outputs_are_dequantised_once_and_agree_with_float(embedder_entry):
    entry = resolve(INT8, "embed", backend="cpu")
    try:
        assert entry.model.outputs[0].dtype == np.int8 and entry.model.outputs[0].quant is not None
        images, _ = synthetic_faces.render_set(HELD_OUT[:5], 2)
        q, f = embed_images(entry, images), embed_images(embedder_entry, images)
        assert np.all(np.einsum("ij,ij->i", q, f) > 0.95)
        np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    finally:
        entry.model.close()


def test_an_output_that_is_not_a_vector_is_refused():
    with pytest.raises(DecodeError, match=r"\(1, 8, 8, 3\).*1-D"):
        embedding_size(TensorSpec("feature_map", (1, 8, 8, 3), np.float32))
    with pytest.raises(DecodeError, match="all zeros"):
        unit_embeddings(np.zeros((1, 4), np.float32), TensorSpec("e", (1, 4), np.float32))


def bgr(name):
    return np.ascontiguousarray(make_frame(FRAMES[name])[:, :, ::-1])


@pytest.fixture
def admin(tmp_path, embedder_entry):
    return FaceAdmin(tmp_path / "faces.sqlite3", embedder_entry)


def test_enrolment_takes_one_face_per_image_and_refuses_others_naming_them(admin):
    result = admin.enrol("astronaut", [("a.jpg", bgr("astronaut")), ("b.jpg", bgr("astronaut_flipped"))])
    assert result == {"name": "astronaut", "added": 2, "embeddings": 2}
    with pytest.raises(GalleryError, match=r"^coffee\.jpg: no face found"):
        admin.enrol("ana", [("a.jpg", bgr("astronaut")), ("coffee.jpg", bgr("coffee"))])
    with pytest.raises(GalleryError, match=r"^two\.jpg: 2 faces found"):
        admin.enrol("ana", [("two.jpg", bgr("two_astronauts_600x300"))])
    assert admin.people() == [{"name": "astronaut", "embeddings": 2}]  # nothing half-stored


def test_tracks_are_recognised_on_frames_and_strangers_are_unknown(admin, embedder_entry):
    admin.enrol("astronaut", [("a.jpg", bgr("astronaut"))])
    frame = bgr("astronaut")
    dets = admin.detector()(frame)
    embedder = FaceEmbedder(embedder_entry)
    gallery = Gallery.open(admin.gallery_path, embedder.model_id, embedder.dim, threshold=0.5)
    try:
        rec = FaceRecognition("gate", embedder, gallery)
        events = []
        for t in range(3):
            events += rec.update(frame, float(t), [1], dets.boxes[:1], dets.keypoints[:1])
        (event,) = events
        assert event.kind == "face_recognised" and event.name == "astronaut" and event.similarity > 0.99
        assert event.details()["camera"] == "gate" and event.details()["track_id"] == 1
        assert rec.counts["tried"] == 2 and rec.counts["skipped_done"] == 1
        gallery.remove("astronaut")
        gallery.add("someone else", embed_images(embedder_entry, synthetic_faces.render_set([401], 1)[0]))
        for t in range(5):
            events = rec.update(frame, 10.0 + t, [2], dets.boxes[:1], dets.keypoints[:1])
        assert [e.kind for e in events] == ["face_unknown"]
        small = dets.boxes[:1].copy()
        small[:, 2:] = small[:, :2] + 10
        assert rec.update(frame, 20.0, [3], small, dets.keypoints[:1]) == [] and rec.counts["skipped_small"] == 1
    finally:
        gallery.close()


def test_cli_enrol_list_export_remove_import_threshold(tmp_path, capsys):
    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), bgr("astronaut"))
    coffee = tmp_path / "coffee.jpg"
    cv2.imwrite(str(coffee), bgr("coffee"))
    common = ["--model", str(FP32), "--backend", "cpu", "--gallery", str(tmp_path / "g.sqlite3")]

    def run(*argv):
        code = main(["faces", *argv, *common])
        return code, capsys.readouterr()

    assert run("enrol", "Eileen Collins", str(photo))[0] == 0
    code, out = run("enrol", "Nobody", str(coffee))
    assert code == 2 and "coffee.jpg: no face found" in out.err
    assert run("list")[1].out == "Eileen Collins\t1\n"
    assert run("export", str(tmp_path / "g.npz"))[0] == 0
    assert run("remove", "Eileen Collins")[1].out.startswith("Eileen Collins: removed")
    assert run("list")[1].out == "no one enrolled\n"
    assert run("import", str(tmp_path / "g.npz"))[1].out == "Eileen Collins: 1 embedding(s) imported\n"
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"accuracy": {"task": "embedding", "model": {"eer_threshold": 0.42}}}))
    assert run("threshold", "--from-bench", str(bench))[1].out.startswith("gallery threshold 0.4200")
    with _open(tmp_path / "g.sqlite3") as g:
        assert g.threshold == 0.42
    code, out = run("remove", "Nobody")
    assert code == 2 and "not enrolled" in out.err


def _open(path):
    entry = resolve(FP32, "embed", backend="cpu")
    try:
        e = FaceEmbedder(entry)
        return Gallery.open(path, e.model_id, e.dim, create=False)
    finally:
        entry.model.close()
