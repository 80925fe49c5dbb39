"""Gallery export and import: one NPZ file (``numpy.savez``, no pickles).

Format ``edgert-faces-1``, arrays:

* ``format``: the string ``"edgert-faces-1"``;
* ``model_id``: the embedding model's ``name:version`` (`edgert.apps.surveillance.faces.embedder.model_id`);
* ``dim``: the embedding size (int64 scalar);
* ``names``: ``(N,)`` unicode, the person of each embedding;
* ``vectors``: ``(N, dim)`` float32, L2-normalised embeddings.

Import refuses a file of another format, model or size (naming both), and adds its embeddings to the
gallery in one transaction per person.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from edgert.core import durable
from edgert.core.errors import GalleryError

FORMAT = "edgert-faces-1"


def export_gallery(gallery, path) -> int:
    """Write every embedding of `gallery` to `path` (atomically); returns how many."""
    names, vectors = gallery.entries()
    with durable.atomic_file(Path(path)) as handle:
        np.savez(handle, format=np.array(FORMAT), model_id=np.array(gallery.model_id), dim=np.int64(gallery.dim),
                 names=np.array(names, dtype=str).reshape(-1), vectors=vectors.astype(np.float32))
    return len(names)


def read_export(path) -> tuple[str, int, list[str], np.ndarray]:
    """``(model_id, dim, names, vectors)`` of an export file.

    Raises:
        GalleryError: not an export of this format, or inconsistent arrays.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in ("format", "model_id", "dim", "names", "vectors")}
    except KeyError as exc:
        raise GalleryError(f"{path}: not an edgert faces export (no {exc} array)") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise GalleryError(f"{path}: not an edgert faces export ({' '.join(str(exc).split())})") from None
    if str(data["format"]) != FORMAT:
        raise GalleryError(f"{path}: format {str(data['format'])!r}, expected {FORMAT!r}")
    dim, vectors, names = int(data["dim"]), data["vectors"], [str(n) for n in data["names"].reshape(-1)]
    if vectors.ndim != 2 or vectors.shape != (len(names), dim):
        raise GalleryError(f"{path}: vectors of shape {vectors.shape} for {len(names)} names of size {dim}")
    return str(data["model_id"]), dim, names, vectors.astype(np.float32)


def import_gallery(gallery, path) -> dict[str, int]:
    """Add the embeddings of an export file to `gallery`; ``{name: embeddings added}``.

    Raises:
        GalleryError: another model or embedding size (both named), or a bad file (nothing added).
    """
    model_id, dim, names, vectors = read_export(path)
    if dim != gallery.dim:
        raise GalleryError(f"{path}: embeddings of size {dim} (model {model_id}), the gallery holds size "
                           f"{gallery.dim} (model {gallery.model_id})")
    if model_id != gallery.model_id:
        raise GalleryError(f"{path}: made with embedding model {model_id}, the gallery with {gallery.model_id}")
    added: dict[str, int] = {}
    for name in dict.fromkeys(names):
        rows = vectors[[i for i, n in enumerate(names) if n == name]]
        added[name] = gallery.add(name, rows, ["import"] * len(rows))
    return added
