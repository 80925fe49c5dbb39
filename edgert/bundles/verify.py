"""Verifying a bundle end to end: signature first, then safe extraction, then every file against the manifest."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from edgert import __version__
from edgert.bundles.archive import ExtractLimits, read_signed_manifest, safe_extract
from edgert.bundles.manifest import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    Manifest,
    file_digest,
    parse_manifest,
    version_key,
)
from edgert.bundles.signing import verify_signature
from edgert.core.errors import BundleError


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose signature, files and sizes all checked out.

    Attributes:
        manifest: The signed manifest.
        root: The extracted bundle (inside the staging directory given to `verify_bundle`).
        key: Name of the trusted key that signed it (the ``.pub`` file's stem).
    """

    manifest: Manifest
    root: Path
    key: str


def check_min_edgert(manifest: Manifest, running: str = __version__) -> None:
    """Refuse a bundle that needs a newer edgert than `running`."""
    if version_key(running) < version_key(manifest.min_edgert):
        raise BundleError(f"{manifest.name} {manifest.version} needs edgert >= {manifest.min_edgert}; "
                          f"this is edgert {running}")


def _listed_files(root: Path) -> set[str]:
    found = set()
    for folder, _dirs, files in os.walk(root):
        rel = Path(folder).relative_to(root)
        found.update((rel / name).as_posix() for name in files)
    return found - {MANIFEST_NAME, SIGNATURE_NAME}


def check_files(root: Path, manifest: Manifest, source: str) -> None:
    """Every file under `root` is listed in the manifest and matches its size and sha256, and none is missing.

    Raises:
        BundleError: the first unlisted, missing, resized or changed file.
    """
    present = _listed_files(root)
    extra = sorted(present - manifest.files.keys())
    if extra:
        raise BundleError(f"{source}: file {extra[0]!r} is not listed in the manifest"
                          + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))
    missing = sorted(manifest.files.keys() - present)
    if missing:
        raise BundleError(f"{source}: file {missing[0]!r} listed in the manifest is missing"
                          + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    for path, entry in sorted(manifest.files.items()):
        size = (root / path).stat().st_size
        if size != entry.size:
            raise BundleError(f"{source}: file {path!r} is {size} bytes, the manifest says {entry.size} "
                              "(changed after signing?)")
        if file_digest(root / path).sha256 != entry.sha256:
            raise BundleError(f"{source}: file {path!r} does not match its sha256 in the manifest "
                              "(changed after signing?)")


def _make_dirs(path: Path) -> Path | None:
    """Create `path` and missing parents; the topmost directory created (None if it existed)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        folder.mkdir()
    return missing[-1] if missing else None


def verify_bundle(bundle: Path, trusted_dir: Path, staging: Path, limits: ExtractLimits = ExtractLimits()
                  ) -> VerifiedBundle:
    """Check a bundle's signature, unpack it safely into `staging` and check every file.

    The signature is checked before anything is unpacked; the manifest's own total size is checked
    against `limits` before extraction as well. On failure nothing is left in `staging` (it is
    and any parents are removed again if this call created them).

    Args:
        bundle: A directory or a tar / tar.gz bundle.
        trusted_dir: Directory of trusted Ed25519 public keys (``*.pub``).
        staging: Directory to unpack into (created if missing); the bundle lands in
            ``staging/<name>-<version>``, which must not exist yet.
        limits: Caps on the unpacked size, file count and compression ratio.

    Raises:
        BundleError: one line saying what was wrong (signature, schema, edgert version, unsafe
            archive, unlisted/missing/changed file).
    """
    bundle, staging = Path(bundle), Path(staging)
    manifest_data, signature = read_signed_manifest(bundle, limits)
    key = verify_signature(manifest_data, signature, trusted_dir)
    manifest = parse_manifest(manifest_data, f"{bundle}: {MANIFEST_NAME}")
    check_min_edgert(manifest)
    if manifest.total_size() > limits.max_total_bytes or len(manifest.files) + 2 > limits.max_files:
        raise BundleError(f"{bundle}: the manifest lists {len(manifest.files)} files of {manifest.total_size()} bytes, "
                          f"over the limits ({limits.max_files} files, {limits.max_total_bytes} bytes)")
    root = staging / f"{manifest.name}-{manifest.version}"
    if os.path.lexists(root):
        raise BundleError(f"{root}: extraction target already exists")
    created = _make_dirs(staging)
    try:
        safe_extract(bundle, root, limits)
        # A directory bundle could change between reading the signature and copying: what was
        # copied must be what was signed.
        for name, signed in ((MANIFEST_NAME, manifest_data), (SIGNATURE_NAME, signature)):
            copied = root / name
            if not copied.is_file() or copied.read_bytes() != signed:
                raise BundleError(f"{bundle}: {name} changed while the bundle was being read")
        check_files(root, manifest, str(bundle))
    except BaseException:
        shutil.rmtree(created or root, ignore_errors=True)
        raise
    return VerifiedBundle(manifest, root, key)
