"""Ed25519 keys and signatures over manifest bytes (the `cryptography` package).

A publisher keeps ``<name>.key`` (PKCS#8 PEM, mode 0600) and ships ``<name>.pub``; a device trusts
every ``*.pub`` in its trusted-keys directory. ``manifest.sig`` holds the raw 64-byte signature over
the exact bytes of ``manifest.json``.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from edgert.core.errors import BundleError

SIGNATURE_BYTES = 64
_KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MAX_KEY_FILE = 64 * 1024
log = logging.getLogger(__name__)


def _crypto():
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise BundleError("signing needs the 'cryptography' package: pip install 'edgert[ota]'") from None
    return InvalidSignature, serialization, ed25519


def keygen(out_dir: Path, name: str) -> tuple[Path, Path]:
    """Make an Ed25519 key pair: ``<out_dir>/<name>.key`` (mode 0600) and ``<name>.pub``.

    Raises:
        BundleError: bad name, or either file already exists (keys are never overwritten).
    """
    _, serialization, ed25519 = _crypto()
    if not _KEY_NAME.match(name):
        raise BundleError(f"key name {name!r}: use letters, digits, '.', '_' and '-'")
    out_dir = Path(out_dir)
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # a new key folder is the owner's alone
    private_path, public_path = out_dir / f"{name}.key", out_dir / f"{name}.pub"
    for path in (private_path, public_path):
        if os.path.lexists(path):
            raise BundleError(f"{path}: already exists; refusing to overwrite a key")
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    _write_new(private_path, private_pem, 0o600)
    try:
        _write_new(public_path, public_pem, 0o644)
    except BaseException:
        private_path.unlink()
        raise
    return private_path, public_path


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL: never follow or replace something placed there meanwhile; the mode is set at creation
    # (and again with fchmod, past the umask), so the private key is never readable by others.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_key_file(path: Path) -> bytes:
    try:
        if path.stat().st_size > _MAX_KEY_FILE:
            raise BundleError(f"{path}: too large for a key file")
        return path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{path}: key file not found") from None
    except OSError as exc:
        raise BundleError(f"{path}: cannot read key: {exc.strerror}") from None


def sign(manifest: bytes, private_key: Path) -> bytes:
    """The 64-byte Ed25519 signature of `manifest` with the PEM private key at `private_key`.

    Raises:
        BundleError: the key is missing, unreadable, encrypted or not an Ed25519 private key.
    """
    _, serialization, ed25519 = _crypto()
    private_key = Path(private_key)
    pem = _read_key_file(private_key)
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise BundleError(f"{private_key}: not a usable PEM private key ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise BundleError(f"{private_key}: not an Ed25519 private key ({type(key).__name__})")
    return key.sign(manifest)


def trusted_keys(trusted_dir: Path) -> dict[str, object]:
    """The Ed25519 public keys of ``<trusted_dir>/*.pub``, by name (the file stem).

    Files that are not Ed25519 public keys are skipped with a warning.

    Raises:
        BundleError: the directory is missing or holds no usable key.
    """
    _, serialization, ed25519 = _crypto()
    trusted_dir = Path(trusted_dir)
    if not trusted_dir.is_dir():
        raise BundleError(f"trusted keys: {trusted_dir} is not a directory")
    keys = {}
    for path in sorted(trusted_dir.glob("*.pub")):
        try:
            key = serialization.load_pem_public_key(_read_key_file(path))
        except (BundleError, ValueError, TypeError) as exc:
            log.warning("trusted keys: skipping %s: %s", path, exc)
            continue
        if not isinstance(key, ed25519.Ed25519PublicKey):
            log.warning("trusted keys: skipping %s: not an Ed25519 public key", path)
            continue
        keys[path.stem] = key
    if not keys:
        raise BundleError(f"trusted keys: no Ed25519 public key (*.pub) in {trusted_dir}")
    return keys


def verify_signature(manifest: bytes, signature: bytes, trusted_dir: Path) -> str:
    """The name of the trusted key whose signature `signature` is over `manifest`.

    Raises:
        BundleError: "signature: not signed by a trusted key", a malformed signature, or no trusted keys.
    """
    invalid_signature, _, _ = _crypto()
    if len(signature) != SIGNATURE_BYTES:
        raise BundleError(f"signature: manifest.sig is {len(signature)} bytes, an Ed25519 signature is "
                          f"{SIGNATURE_BYTES}")
    keys = trusted_keys(trusted_dir)
    for name, key in keys.items():
        try:
            key.verify(signature, manifest)
        except invalid_signature:
            continue
        return name
    raise BundleError(f"signature: not signed by a trusted key (checked {len(keys)} key(s) in {trusted_dir}; "
                      "was the manifest changed after signing?)")
