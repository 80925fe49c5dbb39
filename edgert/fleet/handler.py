"""`StoreHandler`: fleet commands carried out on the on-device model store.

install = `download` (resumable, sha256-checked) then ``store.install`` (signature, hashes, safe extraction,
canary, activation: all in the store); activate and rollback go straight to the store. The daemon learns
about a new current version through `on_change` and does the hot swap itself.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgert.core.errors import BundleError, ConfigError, GalleryError
from edgert.fleet.download import download

log = logging.getLogger(__name__)


class StoreHandler:
    """Implements `edgert.fleet.mqtt.FleetHandler` over a `edgert.bundles.store.ModelStore`.

    Args:
        store: The model store (``install``, ``activate``, ``rollback``, ``names``, ``current``,
            ``previous``).
        state_fn: Extra state for the state topic (e.g. ``{"backend": "hailo", "health": "ok"}``), merged
            over the store's ``{"models": {name: {"current": v, "previous": v}}}``; None for none.
        downloads_dir: Where bundles are downloaded (``.part`` files stay there between attempts).
        on_change: Called with the store's new current version after an install, activate or rollback
            (the daemon's hot swap); an exception from it becomes the command's error.
        ca_file: CA certificates (PEM) for https downloads (default: the system's).
        timeout: Network timeout of a download, in seconds (per connect or read).
        faces: The `edgert.apps.surveillance.faces.admin.FaceAdmin` of the face gallery, for the
            ``faces.*`` commands (None: they are refused, the device runs no face recognition).
    """

    def __init__(self, store, state_fn: Callable[[], dict] | None, downloads_dir: Path, *,
                 on_change: Callable[[Any], None] | None = None, ca_file: Path | None = None,
                 timeout: float = 30.0, faces=None):
        self.faces = faces
        self.store = store
        self.state_fn = state_fn
        self.downloads_dir = Path(downloads_dir)
        self.on_change = on_change
        self.ca_file = ca_file
        self.timeout = timeout

    def install(self, url: str, name: str, version: str, sha256: str, size: int | None) -> dict:
        """Downloads the bundle, checks it is `name` `version`, installs and activates it.

        The downloaded file is removed once the store has taken it or refused it; a download that was cut
        short keeps its ``.part`` so the same command resumes it.
        """
        path = download(url, self.downloads_dir / f"{name}-{version}.bundle", expected_sha256=sha256,
                        expected_size=size, timeout=self.timeout, ca_file=self.ca_file)
        try:
            _check_identity(path, name, version)
            installed = self.store.install(path)
        finally:
            path.unlink(missing_ok=True)
        self._changed(name)
        return {"name": installed.name, "version": installed.version, "path": str(installed.path)}

    def activate(self, name: str, version: str) -> dict:
        """Makes an installed version current."""
        installed = self.store.activate(name, version)
        self._changed(name)
        return {"name": installed.name, "version": installed.version}

    def rollback(self, name: str) -> dict:
        """Makes the previous version current again."""
        installed = self.store.rollback(name)
        self._changed(name)
        return {"name": installed.name, "version": installed.version}

    def faces_enrol(self, name: str, images: list[tuple[str, str]]) -> dict:
        """Enrols `name` from ``[(label, base64 of an encoded image)]`` (all or nothing)."""
        import base64
        import binascii

        from edgert.apps.surveillance.faces.admin import decode_image

        decoded = []
        for label, text in images:
            try:
                data = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise GalleryError(f"{label}: jpeg_b64 is not base64") from None
            decoded.append((label, decode_image(data, label)))
        return self._faces().enrol(name, decoded)

    def faces_list(self) -> dict:
        """``{"people": [{"name", "embeddings"}]}``."""
        return {"people": self._faces().people()}

    def faces_remove(self, name: str) -> dict:
        """Forgets a person."""
        return self._faces().remove(name)

    def faces_export(self) -> dict:
        """The gallery's export file: ``{"format", "model_id", "embeddings", "people", "size", "sha256",
        "npz_b64"}`` (the keys ``faces.import`` takes are ``npz_b64``, ``sha256`` and ``size``).

        Raises:
            GalleryError: no gallery yet, or an export larger than `MAX_GALLERY_FILE_BYTES` (its size said).
        """
        import base64
        import hashlib

        from edgert.apps.surveillance.faces.transfer import FORMAT
        from edgert.fleet.commands import MAX_GALLERY_FILE_BYTES

        faces = self._faces()
        data, embeddings, people = faces.export_bytes()
        if len(data) > MAX_GALLERY_FILE_BYTES:
            raise GalleryError(f"faces.export: the gallery's export is {len(data)} bytes ({embeddings} embeddings "
                               f"of {people} people), more than the {MAX_GALLERY_FILE_BYTES} bytes one MQTT "
                               f"message carries; move it with edgert faces export FILE on the device")
        return {"format": FORMAT, "model_id": faces.embedder().model_id, "embeddings": embeddings,
                "people": people, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                "npz_b64": base64.b64encode(data).decode("ascii")}

    def faces_import(self, npz_b64: str, sha256: str, size: int) -> dict:
        """Adds the embeddings of an export file (checked against `size` and `sha256` first; all or
        nothing); ``{"added": {name: n}, "embeddings": total in the gallery}``.

        Raises:
            GalleryError: not base64, size or sha256 mismatch, not an export, another model or embedding size.
        """
        import base64
        import binascii
        import hashlib

        try:
            data = base64.b64decode(npz_b64, validate=True)
        except (binascii.Error, ValueError):
            raise GalleryError("faces.import: npz_b64 is not base64") from None
        if len(data) != size:
            raise GalleryError(f"faces.import: npz_b64 holds {len(data)} bytes, the command says size {size}")
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256.lower():
            raise GalleryError(f"faces.import: the export's sha256 is {digest}, the command says {sha256.lower()} "
                               f"(damaged or altered on the way); nothing imported")
        return self._faces().import_bytes(data, "faces.import")

    def _faces(self):
        if self.faces is None:
            raise ConfigError("faces: this device runs no face recognition (no face_recognition section)")
        return self.faces

    def state(self) -> dict:
        """``{"models": {name: {"current": v | None, "previous": v | None}}, **state_fn()}``."""
        models = {}
        for name in self.store.names():
            current, previous = self.store.current(name), self.store.previous(name)
            models[name] = {"current": current.version if current else None,
                            "previous": previous.version if previous else None}
        extra = self.state_fn() if self.state_fn is not None else {}
        return {"models": models, **extra}

    def _changed(self, name: str) -> None:
        if self.on_change is not None:
            current = self.store.current(name)
            if current is not None:
                self.on_change(current)


def _check_identity(bundle: Path, name: str, version: str) -> None:
    """Refuses a bundle whose manifest names another model or version than the command asked for.

    Only the manifest is read here, to fail early and leave the store untouched; the store checks the
    signature before it trusts anything in the bundle.
    """
    from edgert.bundles.archive import read_manifest
    from edgert.bundles.manifest import parse_manifest

    manifest = parse_manifest(read_manifest(bundle), str(bundle))
    if (manifest.name, manifest.version) != (name, version):
        raise BundleError(f"{bundle.name}: bundle is {manifest.name} {manifest.version}, "
                          f"the command asked for {name} {version}")
