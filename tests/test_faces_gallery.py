"""The face gallery: SQLite (WAL, FULL, schema version), model id and size checks, cosine top-1 with threshold
and margin, several embeddings per person, refusals of corrupted files (left in place), export/import."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from edgert.apps.surveillance.faces.gallery import SCHEMA_VERSION, Gallery
from edgert.apps.surveillance.faces.recognition import open_gallery
from edgert.apps.surveillance.faces.transfer import FORMAT, export_gallery, import_gallery
from edgert.core.errors import GalleryError

MODEL, DIM = "emb:1", 16


def unit(rng, n, dim=DIM):
    v = rng.normal(size=(n, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def near(rng, v, noise=0.1):
    w = v + rng.normal(scale=noise, size=v.shape)
    return w / np.linalg.norm(w, axis=-1, keepdims=True)


@pytest.fixture
def gallery(tmp_path):
    g = Gallery.open(tmp_path / "faces.sqlite3", MODEL, DIM, threshold=0.5, margin=0.05)
    yield g
    g.close()


def test_match_names_the_best_person_by_their_best_embedding(gallery):
    rng = np.random.default_rng(1)
    people = {name: unit(rng, 3) for name in ("ana", "binh", "chi")}
    for name, rows in people.items():
        assert gallery.add(name, rows, [f"{name}{k}.jpg" for k in range(3)]) == 3
    assert gallery.people() == [("ana", 3), ("binh", 3), ("chi", 3)]
    m = gallery.match(near(rng, people["binh"][2], 0.05))
    assert (m.name, m.reason, m.best) == ("binh", "match", "binh")
    assert m.similarity > 0.9 and m.second in ("ana", "chi") and m.second_similarity < m.similarity
    stranger = gallery.match(unit(rng, 1)[0])
    assert stranger.name is None and stranger.reason == "below_threshold" and stranger.best is not None


def test_vectorised_scores_equal_a_plain_loop(gallery):
    seed = 7
    rng = np.random.default_rng(seed)
    names = [f"p{k}" for k in range(9)]
    for k, name in enumerate(names):
        gallery.add(name, unit(rng, 1 + k % 4) * rng.uniform(0.5, 3.0))  # not normalised: the gallery does it
    queries = unit(rng, 25)
    got = gallery.person_similarities(queries.astype(np.float32))
    _, vectors = gallery.entries()
    owners = [n for n, k in gallery.people() for _ in range(k)]
    for q, row in zip(queries, got):
        want = [max(float(q @ v) for v, o in zip(vectors, owners) if o == name) for name in names]
        np.testing.assert_allclose(row, want, atol=1e-5, err_msg=f"seed {seed}")


def test_unknown_below_threshold_and_ambiguous_within_margin(gallery):
    rng = np.random.default_rng(2)
    a = unit(rng, 1)[0]
    b = near(rng, a, 0.01)  # two people who look alike
    gallery.add("twin_a", a)
    gallery.add("twin_b", b)
    m = gallery.match(a)
    assert m.name is None and m.reason == "ambiguous" and {m.best, m.second} == {"twin_a", "twin_b"}
    gallery.remove("twin_b")
    assert gallery.match(a).name == "twin_a"
    empty = Gallery.open(gallery.path.with_name("other.sqlite3"), MODEL, DIM)
    assert empty.match(a).reason == "empty"
    empty.close()


def test_stored_durably_in_wal_with_schema_version_and_threshold(tmp_path):
    path = tmp_path / "g.sqlite3"
    rng = np.random.default_rng(3)
    with Gallery.open(path, MODEL, DIM) as g:
        g.add("ana", unit(rng, 2))
        g.set_threshold(0.61, margin=0.08)
        assert g._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert g._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with Gallery.open(path, MODEL, DIM) as g:
        assert g.people() == [("ana", 2)] and (g.threshold, g.margin) == (0.61, 0.08)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_a_bad_embedding_stores_nothing(gallery):
    rng = np.random.default_rng(4)
    rows = unit(rng, 3)
    rows[2, 0] = np.nan
    with pytest.raises(GalleryError, match="NaN"):
        gallery.add("ana", rows)
    with pytest.raises(GalleryError, match="size 8"):
        gallery.add("ana", unit(rng, 2, 8))
    with pytest.raises(GalleryError, match="name"):
        gallery.add("two\nlines", unit(rng, 1))
    assert gallery.people() == [] and len(gallery) == 0


def test_another_embedding_size_or_model_is_refused_naming_both(tmp_path):
    path = tmp_path / "g.sqlite3"
    Gallery.open(path, MODEL, DIM).close()
    with pytest.raises(GalleryError, match=r"size 16 \(model emb:1\).*emb:2 gives size 128"):
        Gallery.open(path, "emb:2", 128)
    with pytest.raises(GalleryError, match="made with embedding model emb:1, not emb:2"):
        Gallery.open(path, "emb:2", DIM)


def _filled(path):
    rng = np.random.default_rng(5)
    with Gallery.open(path, MODEL, DIM) as g:
        for k in range(60):
            g.add(f"person {k}", unit(rng, 4))
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path.read_bytes()


@pytest.mark.parametrize("damage", ["truncated", "garbled_header", "garbled_pages", "not_sqlite"])
def test_a_corrupted_gallery_is_refused_and_left_in_place(tmp_path, damage):
    path = tmp_path / "faces.sqlite3"
    data = bytearray(_filled(path))
    if damage == "truncated":
        data = data[: len(data) // 2 + 100]
    elif damage == "garbled_header":
        data[:16] = b"x" * 16
    elif damage == "garbled_pages":
        rng = np.random.default_rng(6)
        for page in range(1, len(data) // 4096):
            data[page * 4096 + 8: page * 4096 + 64] = rng.integers(0, 256, 56, dtype=np.uint8).tobytes()
    else:
        data = b"this is a text file, not a gallery\n" * 10
    path.write_bytes(bytes(data))
    with pytest.raises(GalleryError, match="left in place for inspection") as info:
        Gallery.open(path, MODEL, DIM)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert path.read_bytes() == bytes(data)  # untouched

    class Embedder:
        model_id, dim = MODEL, DIM

    gallery, why = open_gallery(path, Embedder())
    assert gallery is None and why.startswith("face recognition off: gallery ")


def test_a_foreign_sqlite_file_is_refused(tmp_path):
    path = tmp_path / "x.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE cats (name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(GalleryError, match="not a face gallery.*cats"):
        Gallery.open(path, MODEL, DIM)


def test_export_import_round_trip_and_refusals(tmp_path, gallery):
    rng = np.random.default_rng(8)
    gallery.add("ana", unit(rng, 2))
    gallery.add("binh", unit(rng, 3))
    out = tmp_path / "faces.npz"
    assert export_gallery(gallery, out) == 5
    with np.load(out, allow_pickle=False) as z:
        assert str(z["format"]) == FORMAT and str(z["model_id"]) == MODEL and int(z["dim"]) == DIM
    with Gallery.open(tmp_path / "copy.sqlite3", MODEL, DIM) as copy:
        assert import_gallery(copy, out) == {"ana": 2, "binh": 3}
        np.testing.assert_allclose(copy.entries()[1], gallery.entries()[1], atol=1e-6)
    with Gallery.open(tmp_path / "big.sqlite3", "emb:2", 32) as other:
        with pytest.raises(GalleryError, match=r"size 16 \(model emb:1\).*size 32 \(model emb:2\)"):
            import_gallery(other, out)
    with Gallery.open(tmp_path / "same.sqlite3", "emb:2", DIM) as other:
        with pytest.raises(GalleryError, match="emb:1"):
            import_gallery(other, out)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(GalleryError, match="not an edgert faces export"):
        import_gallery(gallery, bad)
