"""Gallery export and import: one NPZ file (``numpy.savez``, no pickles).

Format ``edgert-faces-1``, arrays:

* ``format``: the string ``"edgert-faces-1"``;
* ``model_id``: the embedding model's ``name:version`` (`edgert.apps.surveillance.faces.embedder.model_id`);
* ``dim``: the embedding size (int64 scalar);
* ``names``: ``(N,)`` unicode, the person of each embedding;
* ``vectors``: ``(N, dim)`` float32, L2-normalised embeddings.

The same bytes travel as a file (`edgert faces export`) or inside a fleet command (``faces.export`` /
``faces.import``, base64). Import refuses a file of another format, model or size (naming both), and adds
all of its embeddings in one transaction: a bad row anywhere leaves the gallery as it was.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from edgert.core import durable
from edgert.core.errors import GalleryError

FORMAT = "edgert-faces-1"
#: An export whose arrays unpack to more than this is refused before any is read (an NPZ may hold deflated
#: members: a few MB could otherwise unpack to gigabytes on the device).
MAX_UNPACKED_BYTES = 64 * 1024 * 1024


def export_bytes(gallery) -> tuple[bytes, int]:
    """``(NPZ bytes, embeddings)`` of every embedding of `gallery`."""
    names, vectors = gallery.entries()
    buffer = io.BytesIO()
    np.savez(buffer, format=np.array(FORMAT), model_id=np.array(gallery.model_id), dim=np.int64(gallery.dim),
             names=np.array(names, dtype=str).reshape(-1), vectors=vectors.astype(np.float32))
    return buffer.getvalue(), len(names)


def export_gallery(gallery, path) -> int:
    """Write every embedding of `gallery` to `path` (atomically); returns how many."""
    data, count = export_bytes(gallery)
    with durable.atomic_file(Path(path)) as handle:
        handle.write(data)
    return count


def read_export(source, label: str | None = None) -> tuple[str, int, list[str], np.ndarray]:
    """``(model_id, dim, names, vectors)`` of an export (a file path, or its bytes named `label` in refusals).

    Raises:
        GalleryError: not an export of this format, or inconsistent arrays.
    """
    in_memory = isinstance(source, (bytes, bytearray))
    where = label or ("export" if in_memory else str(source))
    opened = io.BytesIO(source) if in_memory else Path(source)
    try:
        _check_unpacked_size(opened, where)
        with np.load(opened, allow_pickle=False) as z:
            data = {k: z[k] for k in ("format", "model_id", "dim", "names", "vectors")}
    except KeyError as exc:
        raise GalleryError(f"{where}: not an edgert faces export (no {exc} array)") from None
    except AttributeError:  # np.load returned a plain array (.npy), not an archive
        raise GalleryError(f"{where}: not an edgert faces export (a single .npy array, not an NPZ)") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise GalleryError(f"{where}: not an edgert faces export ({' '.join(str(exc).split())})") from None
    if str(data["format"]) != FORMAT:
        raise GalleryError(f"{where}: format {str(data['format'])!r}, expected {FORMAT!r}")
    try:
        dim = int(data["dim"])
        names = [str(n) for n in data["names"].reshape(-1)]
        vectors = np.asarray(data["vectors"], np.float32)
    except (TypeError, ValueError) as exc:
        raise GalleryError(f"{where}: not an edgert faces export ({' '.join(str(exc).split())})") from None
    if vectors.ndim != 2 or vectors.shape != (len(names), dim):
        raise GalleryError(f"{where}: vectors of shape {vectors.shape} for {len(names)} names of size {dim}")
    return str(data["model_id"]), dim, names, vectors


def _check_unpacked_size(opened, where: str) -> None:
    """Refuse an archive whose members unpack to more than `MAX_UNPACKED_BYTES` (read from its directory)."""
    if not zipfile.is_zipfile(opened):
        return  # np.load says what it is
    if hasattr(opened, "seek"):
        opened.seek(0)
    with zipfile.ZipFile(opened) as archive:
        unpacked = sum(info.file_size for info in archive.infolist())
    if hasattr(opened, "seek"):
        opened.seek(0)
    if unpacked > MAX_UNPACKED_BYTES:
        raise GalleryError(f"{where}: its arrays unpack to {unpacked} bytes, more than {MAX_UNPACKED_BYTES}; refused")


def import_gallery(gallery, source, label: str | None = None) -> dict[str, int]:
    """Add the embeddings of an export (a path, or bytes) to `gallery`; ``{name: embeddings added}``.

    Raises:
        GalleryError: another model or embedding size (both named), or a bad export (nothing added).
    """
    where = label or (str(source) if not isinstance(source, (bytes, bytearray)) else "export")
    model_id, dim, names, vectors = read_export(source, where)
    if dim != gallery.dim:
        raise GalleryError(f"{where}: embeddings of size {dim} (model {model_id}), the gallery holds size "
                           f"{gallery.dim} (model {gallery.model_id})")
    if model_id != gallery.model_id:
        raise GalleryError(f"{where}: made with embedding model {model_id}, the gallery with {gallery.model_id}")
    people = []
    for name in dict.fromkeys(names):
        rows = vectors[[i for i, n in enumerate(names) if n == name]]
        people.append((name, rows, ["import"] * len(rows)))
    return gallery.add_many(people)
