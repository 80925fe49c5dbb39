"""The on-device model store: atomic install with a canary check, activation, rollback, pruning.

Layout::

    <root>/<name>/<version>/      an installed bundle (manifest.json, manifest.sig, its files)
    <root>/<name>/current         symlink -> <version>: what the service runs
    <root>/<name>/previous        symlink -> <version>: what `rollback` returns to
    <root>/.staging/<random>/     work area of an install or a removal in progress

Every change is one rename followed by an fsync of its directory (`edgert.bundles.links`), in an
order chosen so that a ``kill -9`` or a power cut at any point leaves `current` pointing at a complete,
verified version: the old one or the new one. `recover` (run at service start) deletes what an
interrupted install left in ``.staging``. A refused bundle leaves the store exactly as it was.
Mutations take an exclusive `flock` on the store root, so the CLI and the daemon never interleave;
each runs `recover` first under that lock. An install that would make an older version current
is refused unless ``allow_downgrade`` is given, so of two racing installs the newer always ends current.
"""
from __future__ import annotations

import fcntl
import logging
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path

from edgert.bundles.archive import ExtractLimits, read_signed_manifest
from edgert.bundles.canary import CanaryReport, run_canary
from edgert.bundles.crashpoints import crash_point as _crash_point
from edgert.bundles.installed import (
    NAME_PATTERN,
    InstalledVersion,
    StoreConfig,
    check_name,
    check_version,
    file_problems,
)
from edgert.bundles.links import (
    TEMP_PREFIX,
    move_dir,
    read_link,
    remove_link,
    switch_link,
)
from edgert.bundles.manifest import (
    Manifest,
    Variant,
    parse_manifest,
    version_key,
)
from edgert.bundles.signing import verify_signature
from edgert.bundles.targets import choose_variant
from edgert.bundles.verify import verify_bundle
from edgert.core.durable import fsync_dir
from edgert.core.errors import BundleError

log = logging.getLogger(__name__)

CURRENT, PREVIOUS, STAGING = "current", "previous", ".staging"
MANIFEST = "manifest.json"
def _fsync_tree(root: Path) -> None:
    """Flush every file and directory below `root`, so a renamed-in version is on disk, not in cache."""
    for here, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(here, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(here))


class ModelStore:
    """The models installed on this device, their current and previous versions.

    Args:
        root: Store directory (created on the first install).
        trusted_keys: Directory of trusted public keys (``*.pub``) that bundles must be signed by.
        keep: Versions kept per model after an install (current and previous always stay).
        min_free_mb: Free space that must remain after unpacking a bundle.
        canary_timeout_s: Time limit of the canary child process.
        limits: Caps on what a bundle may unpack to (default `ExtractLimits()`).
    """

    def __init__(self, root: Path, trusted_keys: Path, keep: int = 3, *, min_free_mb: float = 50.0,
                 canary_timeout_s: float = 60.0, limits: ExtractLimits | None = None):
        if keep < 1:
            raise BundleError(f"store keep must be >= 1, got {keep}")
        # Absolute: the canary child runs in another working directory.
        self.root = Path(root).absolute()
        self.trusted_keys = Path(trusted_keys).absolute()
        self.keep = keep
        self.min_free_mb = min_free_mb
        self.canary_timeout_s = canary_timeout_s
        self.limits = limits if limits is not None else ExtractLimits()
        #: What the canary measured in the last install that ran one.
        self.last_canary: CanaryReport | None = None
        #: True when the last `install` found that version installed already, identical to the bundle.
        self.last_install_identical = False

    @classmethod
    def from_config(cls, config: StoreConfig, state_dir: Path) -> ModelStore:
        """The store a `StoreConfig` describes, below the service state directory `state_dir`."""
        return cls(config.root(state_dir), config.trusted_keys, config.keep, min_free_mb=config.min_free_mb,
                   canary_timeout_s=config.canary_timeout_s)

    # -- reading ----------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Names of the installed models, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if NAME_PATTERN.match(p.name) and p.is_dir())

    def versions(self, name: str) -> list[InstalledVersion]:
        """Installed versions of `name`, oldest version number first."""
        base = self.root / check_name(name)
        if not base.is_dir():
            return []
        found = [p.name for p in base.iterdir()
                 if not p.is_symlink() and p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).is_file()]
        return [self._load(name, v) for v in sorted(found, key=version_key)]

    def current(self, name: str) -> InstalledVersion | None:
        """The active version of `name`, or None."""
        return self._linked(name, CURRENT)

    def previous(self, name: str) -> InstalledVersion | None:
        """The version `rollback` would return to, or None."""
        return self._linked(name, PREVIOUS)

    def _linked(self, name: str, link: str) -> InstalledVersion | None:
        target = read_link(self.root / check_name(name) / link)
        if target is None or not (self.root / name / target / MANIFEST).is_file():
            return None
        return self._load(name, target)

    def _load(self, name: str, version: str) -> InstalledVersion:
        path = self.root / check_name(name) / check_version(version)
        try:
            data = (path / MANIFEST).read_bytes()
        except FileNotFoundError:
            raise BundleError(f"{name} {version} is not installed in {self.root}") from None
        return InstalledVersion(name, version, path, parse_manifest(data, str(path / MANIFEST)))

    # -- changing ---------------------------------------------------------------------------------

    @contextmanager
    def _locked(self):
        """Hold the store lock; what an interrupted change left is cleaned first. Yields those lines."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except PermissionError as exc:
            where = exc.filename or self.root
            raise BundleError(f"cannot create or open {where} (permission denied) for the model store {self.root}; "
                              "run as a user who may write there (e.g. sudo -u edgert) or choose another state "
                              "directory (--state-dir, service.state_dir)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield self._recover_locked()
        finally:
            os.close(fd)  # releases the lock

    @contextmanager
    def _work_dir(self, kind: str):
        """A fresh directory under ``.staging``; it, and ``.staging`` if this made it, are gone afterwards."""
        staging = self.root / STAGING
        made_staging = not staging.exists()
        staging.mkdir(exist_ok=True)
        work = staging / f"{kind}-{secrets.token_hex(6)}"
        work.mkdir()
        try:
            yield work
        finally:
            shutil.rmtree(work, ignore_errors=True)
            if made_staging:
                try:
                    staging.rmdir()
                except OSError:
                    pass

    def install(self, bundle: Path, *, activate: bool = True, backend: str = "auto",
                allow_downgrade: bool = False) -> InstalledVersion:
        """Verify, check and install a bundle; by default make it the current version.

        Steps: signature (against the trusted keys) -> not older than the current version (when
        activating) -> every file of the bundle checked in ``.staging`` -> an installed copy of this
        version? (identical: nothing more to do, `last_install_identical` is set; different: refused)
        -> a variant this device can run -> free space -> canary in a child process (load on the
        chosen backend, golden set agreement and latency) -> rename into place -> activate -> prune
        to `keep` versions.

        Args:
            bundle: A bundle directory or tar(.gz).
            activate: Make it `current` (the old current becomes `previous`).
            backend: "auto" or the backend whose variant the canary checks.
            allow_downgrade: Let it replace a newer current version.

        Raises:
            BundleError: the bundle was refused (one line saying why); the store is unchanged.
        """
        bundle = Path(bundle).absolute()
        self.last_install_identical = False
        with self._locked():
            data, signature = read_signed_manifest(bundle)
            key = verify_signature(data, signature, self.trusted_keys)
            manifest = parse_manifest(data, f"{bundle}: {MANIFEST}")
            name, version = check_name(manifest.name), check_version(manifest.version)
            if activate and not allow_downgrade:
                self._check_not_older(name, version)
            installed = self._installed_copy(bundle, manifest, data)
            if installed is None:
                variant = choose_variant(manifest.variants, backend)
                self._check_space(manifest)
                try:
                    self._stage_and_move(bundle, manifest, variant)
                except OSError as exc:  # e.g. the disk filled up meanwhile; the work dir is gone again
                    raise BundleError(f"installing {name} {version} failed: {exc.strerror or exc}"
                                      + (f" ({exc.filename})" if exc.filename else "")) from None
                installed = self._load(name, version)
                log.info("installed %s %s (signed by %s) in %s", name, version, key, installed.path)
            else:
                self.last_install_identical = True
            if activate:
                self._activate(installed)
            self._prune(name, keep_also=version)
            return installed

    def _check_not_older(self, name: str, version: str) -> None:
        current = read_link(self.root / name / CURRENT)
        if current is not None and version_key(version) < version_key(current):
            raise BundleError(f"{name} {version} is older than the current {current}; refused (give "
                              "--allow-downgrade to make it current anyway, or --no-activate to only install it)")

    def _installed_copy(self, bundle: Path, manifest: Manifest, data: bytes) -> InstalledVersion | None:
        path = self.root / manifest.name / manifest.version
        if not path.exists():
            return None
        what = f"{manifest.name} {manifest.version}: same version, different content"
        try:
            same = (path / MANIFEST).read_bytes() == data
        except OSError:
            same = False
        if not same:
            raise BundleError(f"{what} (the manifests differ); give the new bundle a new version")
        with self._work_dir("verify") as work:  # the same manifest says nothing of the bundle's payload
            try:
                verify_bundle(bundle, self.trusted_keys, work, self.limits)
            except BundleError as exc:
                raise BundleError(f"{what} ({exc}); refused") from None
        problems = file_problems(path, self._load(manifest.name, manifest.version).manifest)
        if problems:
            raise BundleError(f"{manifest.name} {manifest.version} is installed but damaged ({problems[0]}); "
                              "remove it and install again")
        return self._load(manifest.name, manifest.version)

    def _check_space(self, manifest: Manifest) -> None:
        need = manifest.total_size()
        st = os.statvfs(self.root)
        free = st.f_bavail * st.f_frsize
        margin = self.min_free_mb * 2**20
        if need + margin > free:
            raise BundleError(f"not enough free space in {self.root}: the bundle unpacks to {need / 2**20:.1f} MB, "
                              f"{self.min_free_mb:.1f} MB must stay free, {free / 2**20:.1f} MB available")

    def _stage_and_move(self, bundle: Path, manifest: Manifest, variant: Variant) -> None:
        with self._work_dir("install") as work:
            _crash_point("staged")
            verified = verify_bundle(bundle, self.trusted_keys, work, self.limits)
            if verified.manifest != manifest:  # the file was replaced between the two reads
                raise BundleError(f"{bundle}: changed while it was being installed; refused")
            root = verified.root  # holds the exact signed manifest.json and manifest.sig too
            _crash_point("extracted")
            self.last_canary = run_canary(self._canary_job(root, manifest, variant), self.canary_timeout_s, work)
            _crash_point("canary_passed")
            _fsync_tree(root)
            base = self.root / manifest.name
            if not base.exists():
                base.mkdir()
                fsync_dir(self.root)
            move_dir(root, base / manifest.version)
            _crash_point("moved")

    @staticmethod
    def _canary_job(root: Path, manifest: Manifest, variant: Variant) -> dict:
        job = {"model": str(root / variant.file), "backend": variant.backend, "options": dict(variant.options),
               "preprocess": manifest.input.preprocess_kwargs(), "task": manifest.task, "golden": None,
               "labels": list(manifest.labels)}
        if manifest.golden is not None:
            g = manifest.golden
            job["golden"] = {"inputs": str(root / g.inputs), "expected": str(root / g.expected),
                             "agreement": g.agreement, "latency_budget_ms": g.latency_budget_ms}
        return job

    def activate(self, name: str, version: str) -> InstalledVersion:
        """Make an installed version current (the old current becomes previous).

        Raises:
            BundleError: that version is not installed.
        """
        with self._locked():
            installed = self._load(name, version)
            self._activate(installed)
            return installed

    def rollback(self, name: str) -> InstalledVersion:
        """Make the previous version current again (the current one becomes previous).

        Raises:
            BundleError: there is no previous version.
        """
        with self._locked():
            target = read_link(self.root / check_name(name) / PREVIOUS)
            if target is None or not (self.root / name / target).is_dir():
                raise BundleError(f"{name}: no previous version to roll back to")
            installed = self._load(name, target)
            self._activate(installed)
            return installed

    def _activate(self, installed: InstalledVersion) -> None:
        base = installed.path.parent
        old = read_link(base / CURRENT)
        if old == installed.version:
            return
        # previous first: a crash between the two renames leaves current on the old, complete version.
        if old is not None and (base / old).is_dir():
            switch_link(base / PREVIOUS, old)
        _crash_point("previous_linked")
        switch_link(base / CURRENT, installed.version)
        _crash_point("current_linked")
        log.info("%s: current is now %s (previous %s)", installed.name, installed.version, old)

    def _prune(self, name: str, keep_also: str) -> None:
        base = self.root / name
        protected = {read_link(base / CURRENT), read_link(base / PREVIOUS), keep_also}
        versions = [v.version for v in self.versions(name)]
        excess = len(versions) - self.keep
        doomed = [v for v in versions if v not in protected][:max(excess, 0)]
        for version in doomed:
            self._delete_version(name, version)
        if doomed:
            _crash_point("pruned")
            log.info("%s: pruned %s (keeping %d versions)", name, ", ".join(doomed), self.keep)

    def _delete_version(self, name: str, version: str) -> None:
        with self._work_dir("remove") as work:
            move_dir(self.root / name / version, work / version)  # out of the store in one rename
            _crash_point("pruning")

    def remove(self, name: str, version: str) -> None:
        """Delete an installed version that is not current (removing previous also drops that link).

        Raises:
            BundleError: not installed, or it is the current version.
        """
        with self._locked():
            installed = self._load(name, version)
            base = installed.path.parent
            if read_link(base / CURRENT) == version:
                raise BundleError(f"{name} {version} is the current version; activate or roll back to another "
                                  "before removing it")
            if read_link(base / PREVIOUS) == version:
                remove_link(base / PREVIOUS)
            self._delete_version(name, version)
            if not any(base.iterdir()):
                base.rmdir()
                fsync_dir(self.root)

    def recover(self) -> list[str]:
        """Undo what an interrupted install or removal left behind (every change does this first).

        Deletes ``.staging`` (unfinished extractions, versions half way out of the store),
        temporary links, version directories without a readable manifest, and links that point
        nowhere (a dangling `current` falls back to `previous` when that is complete).

        Returns:
            One line per thing cleaned (empty when the store was tidy).
        """
        if not self.root.is_dir():
            return []
        with self._locked() as done:
            return done

    def _recover_locked(self) -> list[str]:
        done = []
        staging = self.root / STAGING
        if staging.exists():
            leftovers = sorted(p.name for p in staging.iterdir())
            shutil.rmtree(staging)
            fsync_dir(self.root)
            done.append(f"removed staging leftovers: {', '.join(leftovers) or '(empty)'}")
        for name in self.names():
            done += self._recover_model(name)
        for line in done:
            log.warning("store recovery: %s", line)
        return done

    def _recover_model(self, name: str) -> list[str]:
        base, done = self.root / name, []
        for entry in sorted(base.iterdir()):
            if entry.name.startswith(TEMP_PREFIX) and entry.is_symlink():
                entry.unlink()
                done.append(f"{name}: removed temporary link {entry.name}")
            elif not entry.is_symlink() and entry.is_dir() and not (entry / MANIFEST).is_file():
                shutil.rmtree(entry)
                done.append(f"{name}: removed incomplete version directory {entry.name}")
        for link in (PREVIOUS, CURRENT):
            target = read_link(base / link)
            if target is not None and not (base / target / MANIFEST).is_file():
                remove_link(base / link)
                done.append(f"{name}: removed dangling {link} link (-> {target})")
        if read_link(base / CURRENT) is None and read_link(base / PREVIOUS) is not None:
            target = read_link(base / PREVIOUS)
            switch_link(base / CURRENT, target)
            done.append(f"{name}: current restored to previous version {target}")
        fsync_dir(base)
        return done
