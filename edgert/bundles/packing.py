"""Writing bundles: packing a folder into a tar (gzip or plain) and adding a signature, durably."""
from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

from edgert.bundles.archive import (
    ExtractLimits,
    _Budget,
    _check_bundle,
    _each_tar_member,
    _is_gzip,
    _read_dir_file,
    _walk_dir,
)
from edgert.bundles.manifest import MANIFEST_NAME, MAX_MANIFEST_BYTES, SIGNATURE_NAME
from edgert.core import durable
from edgert.core.errors import BundleError


def _compression_for(out: Path) -> bool:
    name = out.name
    if name.endswith((".tar.gz", ".tgz")):
        return True
    if name.endswith(".tar"):
        return False
    raise BundleError(f"{out}: a bundle archive is named *.tar, *.tar.gz or *.tgz")


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    # Reproducible archives: the same files give the same bytes (no times, owners or modes carried).
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = size, 0, 0o644, 0, 0, "", ""
    return info


def _write_atomically(out: Path, gzipped: bool, fill: Callable[[tarfile.TarFile], None]) -> Path:
    with durable.atomic_file(out) as raw:
        stream = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) if gzipped else raw
        with tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as tar:
            fill(tar)
        if gzipped:
            stream.close()
    return Path(out)




def bundle_files(src_dir: Path, limits: ExtractLimits = ExtractLimits(), *, exclude: Path | None = None) -> list[str]:
    """Relative paths of the files of a source directory, manifest.json and manifest.sig aside.

    Args:
        src_dir: The directory.
        limits: Caps on its files and bytes.
        exclude: A file to leave out if it is inside `src_dir` (the archive being packed from it).

    Raises:
        BundleError: links, special files, or more files/bytes than `limits` allow.
    """
    src_dir = Path(src_dir)
    if not src_dir.is_dir():
        raise BundleError(f"{src_dir}: not a directory")
    skip = frozenset()
    if exclude is not None and Path(exclude).resolve().is_relative_to(src_dir.resolve()):
        skip = frozenset({Path(exclude).resolve().relative_to(src_dir.resolve()).as_posix()})
    names: list[str] = []
    _walk_dir(src_dir, _Budget(src_dir, limits, None), lambda name, path, size: names.append(name), skip=skip)
    return [n for n in names if n not in (MANIFEST_NAME, SIGNATURE_NAME)]


def pack(src_dir: Path, out: Path, *, manifest: bytes | None = None, signature: bytes | None = None) -> Path:
    """Write the files of `src_dir` as a tar bundle (gzip when `out` ends in .tar.gz/.tgz), atomically.

    manifest.json (then manifest.sig) come first, so a reader finds them without reading the rest.

    Args:
        src_dir: The bundle's files (links and special files are refused).
        out: The archive to write (replaced atomically if it exists; never packed itself).
        manifest: manifest.json bytes (default: ``src_dir/manifest.json``).
        signature: manifest.sig bytes (default: none, an unsigned bundle; a manifest.sig in
            `src_dir` is never copied, as it may sign another manifest).

    Raises:
        BundleError: no manifest, a bad output name, or unsafe source files.
    """
    src_dir, out = Path(src_dir), Path(out)
    gzipped = _compression_for(out)
    names = bundle_files(src_dir, exclude=out)  # an archive written into src_dir by an earlier run stays out
    if manifest is None:
        manifest = _read_dir_file(src_dir, MANIFEST_NAME, MAX_MANIFEST_BYTES)
        if manifest is None:
            raise BundleError(f"{src_dir}: no {MANIFEST_NAME} to pack")

    def fill(tar: tarfile.TarFile) -> None:
        tar.addfile(_tar_info(MANIFEST_NAME, len(manifest)), io.BytesIO(manifest))
        if signature is not None:
            tar.addfile(_tar_info(SIGNATURE_NAME, len(signature)), io.BytesIO(signature))
        for name in names:
            path = src_dir / name
            with open(path, "rb") as f:
                tar.addfile(_tar_info(name, os.fstat(f.fileno()).st_size), f)

    return _write_atomically(out, gzipped, fill)


def write_signature(bundle: Path, signature: bytes, limits: ExtractLimits = ExtractLimits()) -> None:
    """Store manifest.sig in a bundle, replacing any old one, atomically.

    A directory bundle gets the file (temp file + rename); a tar bundle is rewritten beside itself
    with manifest.sig after manifest.json, same compression, then renamed over the original.

    Raises:
        BundleError: the bundle is unsafe or unreadable (the original is left as it was).
    """
    bundle = _check_bundle(bundle)
    if bundle.is_dir():
        durable.write_bytes(bundle / SIGNATURE_NAME, signature, make_parents=False)
        return

    def fill(out_tar: tarfile.TarFile) -> None:
        def visit(path, member, tar):
            if path is None or path == SIGNATURE_NAME:
                return False
            if member.isdir():
                out_tar.addfile(member)
                return False
            out_tar.addfile(_tar_info(path, member.size), tar.extractfile(member))
            if path == MANIFEST_NAME:
                out_tar.addfile(_tar_info(SIGNATURE_NAME, len(signature)), io.BytesIO(signature))
                signed.append(path)
            return False

        _each_tar_member(bundle, limits, visit)
        if not signed:
            raise BundleError(f"{bundle}: no {MANIFEST_NAME} in the bundle; nothing to sign")

    signed: list[str] = []

    _write_atomically(bundle, _is_gzip(bundle), fill)
