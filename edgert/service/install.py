"""`edgert install`: lay the service unit, udev rules, service account, example config and state directory
into a filesystem root.

The root is "/" on the device itself, or an image being built. What is laid down:

    etc/systemd/system/edgert.service       the unit (User=, Group= and ExecStart= filled in)
    etc/sysusers.d/edgert.conf              the service account and any missing device group
    etc/udev/rules.d/*.rules                device permissions (Hailo, Coral, RK NPU, GPIO, cameras)
    etc/edgert/edgert.yaml                  the example kiosk config, only if no config is there
    usr/share/edgert/firmware-config/       the board's boot-config notes and pin map (reference)
    var/lib/edgert/                         the state directory (systemd chowns it at start)
    etc/edgert/trusted-keys/                public keys whose signed model bundles may be installed

Every file is written atomically (a temporary file in the same folder, then a rename), so a power cut
leaves either the old or the new file. Files that already hold the wanted content are left alone, so a
second run writes nothing. A managed file (unit, rules, sysusers) that differs from what edgert would write
is replaced only with ``force``; the config file is never replaced, not even with ``force``.

The unit, rules and notes ship inside the wheel as ``edgert/_files/`` (setup.py copies the top-level
``systemd/`` and ``firmware-config/`` folders there); an editable install reads the source tree instead.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import sys
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath

from edgert.core import durable
from edgert.core.errors import ConfigError
from edgert.core.shipped import known_boards, shipped_folder

log = logging.getLogger(__name__)

UNIT_PATH = PurePosixPath("etc/systemd/system/edgert.service")
SYSUSERS_PATH = PurePosixPath("etc/sysusers.d/edgert.conf")
UDEV_DIR = PurePosixPath("etc/udev/rules.d")
CONFIG_PATH = PurePosixPath("etc/edgert/edgert.yaml")
NOTES_DIR = PurePosixPath("usr/share/edgert/firmware-config")
STATE_DIR = PurePosixPath("var/lib/edgert")
TRUSTED_KEYS_DIR = PurePosixPath("etc/edgert/trusted-keys")
DEFAULT_EXECUTABLE = "/usr/local/bin/edgert"

# A user name systemd accepts in User= without quoting (a portable subset of its rules).
_USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,30}")
# Characters that would need escaping in ExecStart= (specifiers, variables, quoting, whitespace).
_UNSAFE_IN_EXEC = re.compile(r"[\s%$\\\"';]")
_HIDDEN_BY_PROTECT_HOME = ("/home/", "/root/", "/run/user/")


@dataclass(frozen=True)
class _PlannedFile:
    path: PurePosixPath
    content: bytes
    mode: int
    replace: bool  # False: an existing file is kept whatever it holds (the config)


def install(root: Path, *, board: str | None = None, user: str = "edgert", force: bool = False,
            executable: str | None = None) -> list[Path]:
    """Lays edgert's service files into ``root`` and returns the paths it wrote or created.

    Args:
        root: The filesystem root: "/" on the device, or the folder of an image being built.
        board: Whose firmware notes to copy ("rpi5", "rock5b", see `known_boards()`); None copies all.
        user: The account the service runs as (User= and Group=, and the sysusers.d entry).
        force: Replace unit, udev rules and sysusers.d files that differ from edgert's. Never the config.
        executable: Absolute path of the ``edgert`` command on the target. Default: when ``root`` is "/",
            the ``edgert`` next to this Python (a venv's bin/) or on PATH; otherwise /usr/local/bin/edgert.

    Returns:
        The files written and folders created, in order; empty when everything was already in place.

    Raises:
        ConfigError: Unknown board, invalid user or executable, or managed files that differ (without force).
    """
    root = Path(root)
    boards = _pick_boards(board)
    if not _USER_NAME.fullmatch(user):
        raise ConfigError(f"user {user!r} is not a valid service account name (lowercase letters, digits, "
                          "'_' and '-', starting with a letter or '_', at most 31 characters)")
    exe = _resolve_executable(root, executable)
    planned = _plan(boards, user, exe)

    differing = [f.path for f in planned
                 if f.replace and (root / f.path).exists() and _differs(root / f.path, f.content)]
    if differing and not force:
        names = ", ".join(str(p) for p in differing[:3])
        if len(differing) > 3:
            names += f" and {len(differing) - 3} more"
        raise ConfigError(f"{len(differing)} file(s) under {root} differ from what edgert would write ({names}); "
                          "rerun with force to replace them")

    written: list[Path] = []
    for item in planned:
        target = root / item.path
        if not _differs(target, item.content):
            continue
        if not _write_atomic(target, item.content, item.mode, replace=item.replace):
            log.info("kept the existing %s (edgert never overwrites a config)", target)
            continue
        log.info("wrote %s", target)
        written.append(target)

    for folder, mode in ((STATE_DIR, 0o750), (TRUSTED_KEYS_DIR, 0o755)):
        path = root / folder
        if not path.is_dir():
            path.mkdir(mode=mode, parents=True)
            log.info("created %s", path)
            written.append(path)
    return written


def next_steps(root: Path) -> list[str]:
    """Shell commands that activate what `install` laid into ``root`` (user, udev rules, unit)."""
    if Path(root).resolve() == Path("/"):
        return ["systemd-sysusers", "udevadm control --reload && udevadm trigger",
                "systemctl daemon-reload", "systemctl enable --now edgert.service"]
    return [f"systemd-sysusers --root={root}", f"systemctl --root={root} enable edgert.service",
            "(on first boot of the image, udev and systemd read the rest by themselves)"]


def _pick_boards(board: str | None) -> list[str]:
    boards = known_boards()
    if board is None:
        return boards
    if board not in boards:
        raise ConfigError(f"unknown board {board!r}; known boards: {', '.join(boards)}")
    return [board]


def _resolve_executable(root: Path, executable: str | None) -> str:
    if executable is None:
        executable = _find_executable() if root.resolve() == Path("/") else DEFAULT_EXECUTABLE
    if not os.path.isabs(executable) or _UNSAFE_IN_EXEC.search(executable):
        raise ConfigError(f"edgert executable {executable!r} must be an absolute path without spaces, quotes, "
                          "'%', '$', '\\' or ';' (it goes into ExecStart=)")
    if executable.startswith(_HIDDEN_BY_PROTECT_HOME):
        raise ConfigError(f"edgert executable {executable} is under a home folder, which the service cannot see "
                          "(ProtectHome=yes); install edgert into /opt or /usr/local, or pass its path there")
    return executable


def _find_executable() -> str:
    beside_python = Path(sys.executable).parent / "edgert"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    return shutil.which("edgert") or DEFAULT_EXECUTABLE


def _plan(boards: list[str], user: str, executable: str) -> list[_PlannedFile]:
    systemd_files = shipped_folder("systemd")
    firmware = shipped_folder("firmware-config")
    unit = _render_unit(systemd_files.joinpath("edgert.service").read_text(encoding="utf-8"), user, executable)
    sysusers = _render_sysusers(systemd_files.joinpath("edgert.sysusers").read_text(encoding="utf-8"), user)
    planned = [
        _PlannedFile(UNIT_PATH, unit.encode(), 0o644, True),
        _PlannedFile(SYSUSERS_PATH, sysusers.encode(), 0o644, True),
    ]
    for rule in sorted(firmware.joinpath("udev").iterdir(), key=lambda t: t.name):
        if rule.name.endswith(".rules"):
            planned.append(_PlannedFile(UDEV_DIR / rule.name, rule.read_bytes(), 0o644, True))
    example = _example_config()
    if example is not None:
        # 0644: the service user must read it and /etc/edgert is root-owned (ConfigurationDirectory=).
        planned.append(_PlannedFile(CONFIG_PATH, example, 0o644, False))
    else:
        log.warning("no example config in this edgert (edgert/examples/kiosk.yaml); %s not written", CONFIG_PATH)
    planned.append(_PlannedFile(NOTES_DIR / "README.md", firmware.joinpath("README.md").read_bytes(), 0o644, True))
    for board in boards:
        planned.extend(_PlannedFile(NOTES_DIR / board / rel, data, 0o644, True)
                       for rel, data in _tree_files(firmware.joinpath(board)))
    return planned


def _example_config() -> bytes | None:
    example = resources.files("edgert").joinpath("examples", "kiosk.yaml")
    return example.read_bytes() if example.is_file() else None


def _render_unit(text: str, user: str, executable: str) -> str:
    for key, value in (("User", user), ("Group", user)):
        text = _replace_line(text, rf"^{key}=.*$", f"{key}={value}")
    return _replace_line(text, r"^ExecStart=\S+", f"ExecStart={executable}")


def _render_sysusers(text: str, user: str) -> str:
    return _replace_line(text, r"^u edgert ", f"u {user} ")


def _replace_line(text: str, pattern: str, replacement: str) -> str:
    new, count = re.subn(pattern, lambda _: replacement, text, flags=re.MULTILINE)
    if count != 1:
        raise ConfigError(f"shipped service file is malformed: expected one line matching {pattern!r}, found {count}")
    return new


def _tree_files(folder: Traversable, prefix: PurePosixPath | None = None) -> list[tuple[PurePosixPath, bytes]]:
    prefix = prefix or PurePosixPath()
    out = []
    for entry in sorted(folder.iterdir(), key=lambda t: t.name):
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue
        if entry.is_dir():
            out.extend(_tree_files(entry, prefix / entry.name))
        else:
            out.append((prefix / entry.name, entry.read_bytes()))
    return out


def _differs(path: Path, content: bytes) -> bool:
    try:
        return path.read_bytes() != content
    except FileNotFoundError:
        return True


def _write_atomic(path: Path, content: bytes, mode: int, *, replace: bool) -> bool:
    """Writes via a temporary file and a rename; with ``replace=False`` an existing file wins (returns False)."""
    try:
        durable.write_bytes(path, content, mode, replace=replace)
    except FileExistsError:
        return False
    return True
