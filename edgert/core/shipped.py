"""The folders edgert ships beside its code (systemd/, firmware-config/): found in the wheel or the source tree."""
from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from edgert.core.errors import ConfigError

_SHARED_FOLDERS = ("systemd", "firmware-config")
_NOT_BOARDS = {"udev"}


def known_boards() -> list[str]:
    """Boards with notes in firmware-config/ (folder names, e.g. "rpi5", "rock5b")."""
    folder = shipped_folder("firmware-config")
    return sorted(entry.name for entry in folder.iterdir() if entry.is_dir() and entry.name not in _NOT_BOARDS)


def shipped_folder(name: str) -> Traversable:
    """The shipped copy of a top-level folder ("systemd" or "firmware-config").

    Raises:
        ConfigError: The folder is in neither the installed package nor the source tree.
    """
    if name not in _SHARED_FOLDERS:
        raise ValueError(f"not a shipped folder: {name!r}")
    packaged = resources.files("edgert").joinpath("_files", name)
    if packaged.is_dir():
        return packaged
    source = Path(__file__).resolve().parents[2] / name  # editable install / source checkout
    if source.is_dir():
        return source
    raise ConfigError(f"edgert's {name}/ files are missing from this installation (looked in {packaged} "
                      f"and {source}); reinstall edgert from a full source tree or wheel")
