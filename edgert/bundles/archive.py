"""Bundle containers: a directory or a tar (plain or gzip), read and unpacked without trusting them.

Unpacking refuses absolute paths, ``..``, symlinks and hardlinks, device files, FIFOs, sparse and
other special members, names given twice, more files than allowed, more bytes than allowed, and a
compression ratio over the limit. Sizes come from the tar headers, so an oversized member or a
decompression bomb is refused before a byte of it is written. A directory bundle is copied through
the same checks. Nothing is ever written outside the destination, which is removed again on failure.
"""
from __future__ import annotations

import gzip
import io
import os
import shutil
import stat
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgert.bundles.manifest import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    SIGNATURE_NAME,
    check_relative_path,
)
from edgert.core.errors import BundleError

_CHUNK = 1 << 20
_TAR_BLOCK = 512
#: Decompressed bytes allowed on top of ``max_ratio`` x the archive size: tar headers and padding
#: compress very well, so a small honest bundle can have a high ratio.
_RATIO_SLACK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_SIGNATURE_MAX = 1024
_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


@dataclass(frozen=True)
class ExtractLimits:
    """Caps on what unpacking a bundle may produce.

    Attributes:
        max_total_bytes: Bytes of all files together (tar headers included).
        max_files: Number of archive members or directory entries.
        max_ratio: Unpacked bytes per byte of a compressed archive (plus 1 MiB of slack).
    """

    max_total_bytes: int = 1 << 30
    max_files: int = 256
    max_ratio: float = 100.0


def _member_path(bundle: Path, name: str) -> str | None:
    """The member's path inside the bundle, None for the archive's root entry; unsafe names refused."""
    while name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/") if name not in ("/", "") else name
    if name in ("", "."):
        return None
    try:
        return check_relative_path(name)
    except ValueError as exc:
        raise BundleError(f"{bundle}: unsafe member path: {exc}") from None


def _check_member_type(bundle: Path, member: tarfile.TarInfo) -> None:
    if member.issym() or member.islnk():
        kind = "symlink" if member.issym() else "hardlink"
        raise BundleError(f"{bundle}: member {member.name!r} is a {kind} (to {member.linkname!r}); links are refused")
    if member.ischr() or member.isblk() or member.isfifo():
        kind = "FIFO" if member.isfifo() else "device file"
        raise BundleError(f"{bundle}: member {member.name!r} is a {kind}; only files and directories are allowed")
    if member.issparse() or not (member.isreg() or member.isdir()):
        raise BundleError(f"{bundle}: member {member.name!r} has an unsupported type {member.type!r}")


class _Budget:
    """Counts files and bytes against the limits before anything is written."""

    def __init__(self, bundle: Path, limits: ExtractLimits, compressed_size: int | None):
        self.bundle, self.limits, self.compressed = bundle, limits, compressed_size
        self.files = self.bytes = 0

    def take(self, name: str, size: int, overhead: int = 0) -> None:
        self.files += 1
        self.bytes += size + overhead
        limits = self.limits
        if self.files > limits.max_files:
            raise BundleError(f"{self.bundle}: more than {limits.max_files} files; refused")
        if self.bytes > limits.max_total_bytes:
            raise BundleError(f"{self.bundle}: unpacks to more than {limits.max_total_bytes} bytes "
                              f"(at {name!r}); refused")
        if self.compressed is not None and self.bytes > limits.max_ratio * self.compressed + _RATIO_SLACK:
            raise BundleError(f"{self.bundle}: compression ratio over {limits.max_ratio:g} ({self.bytes} bytes from "
                              f"{self.compressed} at {name!r}): a decompression bomb?; refused")


class _CountingReader(io.RawIOBase):
    """Counts every byte tarfile reads (member data and headers alike) and refuses past the limits.

    tarfile reads a GNU long-name or pax header into memory whole before it hands out the member, so
    a budget kept per member would come too late: a few hundred kB of gzip can hold a header of
    gigabytes. This runs before the signature is checked, so it must hold against anyone.
    """

    def __init__(self, stream, bundle: Path, limits: ExtractLimits, compressed: int | None):
        self._stream = stream
        self._bundle = bundle
        self._cap = limits.max_total_bytes + _RATIO_SLACK
        if compressed is not None:
            self._cap = min(self._cap, int(limits.max_ratio * compressed) + _RATIO_SLACK)
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size if size is not None and size >= 0 else _CHUNK)
        self.count += len(data)
        if self.count > self._cap:
            raise BundleError(f"{self._bundle}: unpacks to more than {self._cap} bytes (headers included): "
                              "a decompression bomb?; refused")
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _each_tar_member(bundle: Path, limits: ExtractLimits,
                     visit: Callable[[str | None, tarfile.TarInfo, tarfile.TarFile], bool]) -> None:
    """Stream through a tar bundle, checking every member before `visit` sees it; `visit` returns True to stop."""
    compressed = _is_gzip(bundle)
    budget = _Budget(bundle, limits, bundle.stat().st_size if compressed else None)
    with open(bundle, "rb") as raw:
        inner = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        stream = _CountingReader(inner, bundle, limits, bundle.stat().st_size if compressed else None)
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    path = _member_path(bundle, member.name)
                    _check_member_type(bundle, member)
                    budget.take(member.name, member.size if member.isreg() else 0, _TAR_BLOCK)
                    if visit(path, member, tar):
                        return
                # Read to the end, so a download cut after the last member (in the end-of-archive
                # padding or the gzip trailer, whose CRC and length are only checked there) is refused.
                while chunk := stream.read(_CHUNK):
                    budget.take("(data after the last member)", len(chunk))
                    budget.files -= 1
        except _ARCHIVE_ERRORS as exc:
            why = str(exc) or type(exc).__name__
            if budget.files == 0:
                raise BundleError(f"{bundle}: not a readable tar or tar.gz bundle ({why})") from None
            raise BundleError(f"{bundle}: truncated or corrupt archive ({why})") from None
        finally:
            if compressed:
                inner.close()


def _read_member(bundle: Path, tar: tarfile.TarFile, member: tarfile.TarInfo, cap: int) -> bytes:
    if not member.isreg():
        raise BundleError(f"{bundle}: {member.name!r} is not a regular file")
    if member.size > cap:
        raise BundleError(f"{bundle}: {member.name!r} is {member.size} bytes, more than {cap}")
    data = tar.extractfile(member).read()
    if len(data) != member.size:
        raise BundleError(f"{bundle}: truncated or corrupt archive ({member.name!r} is cut short)")
    return data


def _read_dir_file(bundle: Path, name: str, cap: int) -> bytes | None:
    path = bundle / name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BundleError(f"{path}: cannot read ({exc.strerror}; links are refused)") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise BundleError(f"{path}: not a regular file")
        if info.st_size > cap:
            raise BundleError(f"{path}: {info.st_size} bytes, more than {cap}")
        return f.read(cap + 1)


def _check_bundle(bundle: Path) -> Path:
    bundle = Path(bundle)
    if not bundle.exists():
        raise BundleError(f"{bundle}: bundle not found")
    if not (bundle.is_dir() or bundle.is_file()):
        raise BundleError(f"{bundle}: a bundle is a directory or a tar file")
    return bundle


def _read_control(bundle: Path, limits: ExtractLimits) -> tuple[bytes | None, bytes | None]:
    """manifest.json and manifest.sig of a bundle (None when absent), nothing else unpacked."""
    bundle = _check_bundle(bundle)
    if bundle.is_dir():
        return (_read_dir_file(bundle, MANIFEST_NAME, MAX_MANIFEST_BYTES),
                _read_dir_file(bundle, SIGNATURE_NAME, _SIGNATURE_MAX))
    found: dict[str, bytes] = {}
    caps = {MANIFEST_NAME: MAX_MANIFEST_BYTES, SIGNATURE_NAME: _SIGNATURE_MAX}

    def visit(path, member, tar):
        if path in caps:
            if path in found:
                raise BundleError(f"{bundle}: {path} appears twice in the archive")
            found[path] = _read_member(bundle, tar, member, caps[path])
        return len(found) == len(caps)

    _each_tar_member(bundle, limits, visit)
    return found.get(MANIFEST_NAME), found.get(SIGNATURE_NAME)


def read_manifest(bundle: Path, limits: ExtractLimits = ExtractLimits()) -> bytes:
    """The exact bytes of a bundle's manifest.json (signed or not).

    Raises:
        BundleError: no manifest, or the container is unsafe or unreadable.
    """
    manifest, _ = _read_control(bundle, limits)
    if manifest is None:
        raise BundleError(f"{bundle}: no {MANIFEST_NAME} in the bundle")
    return manifest


def read_signed_manifest(bundle: Path, limits: ExtractLimits = ExtractLimits()) -> tuple[bytes, bytes]:
    """The manifest bytes and signature bytes of a bundle, without unpacking anything else.

    Raises:
        BundleError: no manifest, not signed, or the container is unsafe or unreadable.
    """
    manifest, signature = _read_control(bundle, limits)
    if manifest is None:
        raise BundleError(f"{bundle}: no {MANIFEST_NAME} in the bundle")
    if signature is None:
        raise BundleError(f"{bundle}: signature: the bundle is not signed (no {SIGNATURE_NAME})")
    return manifest, signature


def _write_file(target: Path, source, size: int, bundle: Path, name: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL + O_NOFOLLOW: a name given twice, or a path through something not made here, fails.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    written = 0
    with os.fdopen(fd, "wb") as out:
        while written < size and (chunk := source.read(min(_CHUNK, size - written))):
            out.write(chunk)
            written += len(chunk)
    if written != size:
        raise BundleError(f"{bundle}: truncated or corrupt archive ({name!r} is cut short: {written} of {size} bytes)")


def _walk_dir(bundle: Path, budget: _Budget, visit: Callable[[str, Path, int], None], rel: str = "",
              skip: frozenset[str] = frozenset()) -> None:
    with os.scandir(bundle / rel if rel else bundle) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        name = f"{rel}/{entry.name}" if rel else entry.name
        if name in skip:
            continue
        if entry.is_symlink():
            raise BundleError(f"{bundle}: {name!r} is a symlink (to {os.readlink(entry.path)!r}); links are refused")
        if entry.is_dir(follow_symlinks=False):
            budget.take(name, 0)
            _walk_dir(bundle, budget, visit, name, skip)
        elif entry.is_file(follow_symlinks=False):
            size = entry.stat(follow_symlinks=False).st_size
            budget.take(name, size)
            visit(name, Path(entry.path), size)
        else:
            raise BundleError(f"{bundle}: {name!r} is not a regular file or directory (a FIFO, socket or device); "
                              "refused")


def safe_extract(bundle: Path, dest: Path, limits: ExtractLimits = ExtractLimits()) -> None:
    """Unpack (or, for a directory bundle, copy) a bundle into `dest`, which must not exist yet.

    Raises:
        BundleError: an unsafe or over-limit member, a truncated archive, or `dest` already exists.
            `dest` is removed again, so nothing is left behind.
    """
    bundle, dest = _check_bundle(bundle), Path(dest)
    if os.path.lexists(dest):
        raise BundleError(f"{dest}: extraction target already exists")
    dest.mkdir(mode=0o755)
    try:
        if bundle.is_dir():
            _copy_dir(bundle, dest, limits)
        else:
            _extract_tar(bundle, dest, limits)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def _copy_dir(bundle: Path, dest: Path, limits: ExtractLimits) -> None:
    def visit(name: str, path: Path, size: int) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            raise BundleError(f"{bundle}: cannot read {name!r}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as source:
            if not stat.S_ISREG(os.fstat(source.fileno()).st_mode):
                raise BundleError(f"{bundle}: {name!r} is not a regular file")
            _write_file(dest / name, source, size, bundle, name)
            if source.read(1):
                raise BundleError(f"{bundle}: {name!r} grew while being copied")

    _walk_dir(bundle, _Budget(bundle, limits, None), visit)


def _extract_tar(bundle: Path, dest: Path, limits: ExtractLimits) -> None:
    seen: set[str] = set()

    def visit(path, member, tar):
        if path is None:
            return False
        if path in seen:
            raise BundleError(f"{bundle}: member {path!r} appears twice in the archive")
        seen.add(path)
        target = dest / path
        try:
            if member.isdir():
                target.mkdir(mode=0o755, parents=True, exist_ok=True)
            else:
                _write_file(target, tar.extractfile(member), member.size, bundle, path)
        except (FileExistsError, NotADirectoryError):
            raise BundleError(f"{bundle}: member {path!r} clashes with another member") from None
        return False

    _each_tar_member(bundle, limits, visit)
