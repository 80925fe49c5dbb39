"""What the store holds: its config section, installed versions, and the checks on names and files."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field

from edgert.bundles.manifest import Manifest, Variant, file_digest
from edgert.bundles.targets import choose_variant
from edgert.core.errors import BundleError
from edgert.core.settings import Section

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]*\Z")
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+-]*\Z")


class StoreConfig(Section):
    """Where models are installed on the device and how installs are checked."""

    path: Path = Field(Path("models"), description="Store directory, relative to the service state dir "
                                                   "(or absolute).")
    keep: int = Field(3, ge=1, le=100, description="Versions kept per model (current and previous are never "
                                                   "pruned).")
    trusted_keys: Path = Field(Path("/etc/edgert/trusted-keys"), description="Directory of trusted Ed25519 "
                                                                             "public keys (*.pub).")
    min_free_mb: float = Field(50.0, ge=0, description="Free space that must remain after unpacking a bundle.")
    canary_timeout_s: float = Field(60.0, gt=0, description="How long the canary check of a new model may take.")

    def root(self, state_dir: Path) -> Path:
        """The store directory for the service state directory `state_dir`."""
        return Path(state_dir) / self.path


@dataclass(frozen=True)
class InstalledVersion:
    """One installed version of a model.

    Attributes:
        name: Model name (the manifest's).
        version: Its semantic version.
        path: Its directory in the store (every file of the bundle below it).
        manifest: The parsed manifest.
    """

    name: str
    version: str
    path: Path
    manifest: Manifest = field(repr=False)

    def choose_variant(self, backend: str = "auto", hardware=None) -> tuple[Variant, Path]:
        """The variant this device can run and its model file (see `edgert.bundles.targets.choose_variant`).

        Raises:
            BundleError: no variant fits this device.
        """
        variant = choose_variant(self.manifest.variants, backend, hardware)
        return variant, self.path / variant.file


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise BundleError(f"model name {name!r} is not a valid name ([a-z0-9][a-z0-9_-]*)")
    return name


def check_version(version: str) -> str:
    if not isinstance(version, str) or not _VERSION.match(version):
        raise BundleError(f"version {version!r} is not a valid version")
    return version


def file_problems(version_dir: Path, manifest: Manifest) -> list[str]:
    """Files of an installed version that are missing or differ from the manifest (empty: complete)."""
    problems = []
    for rel, entry in sorted(manifest.files.items()):
        try:
            found = file_digest(version_dir / rel)
        except OSError as exc:
            problems.append(f"{rel}: {exc.strerror or exc}")
            continue
        if found != entry:
            problems.append(f"{rel}: content differs from the manifest")
    return problems
