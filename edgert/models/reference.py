"""Model references as config files write them: a file path, ``builtin:<name>`` or ``store:<name>``."""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from edgert.core.errors import ConfigError

BUILTIN_PREFIX = "builtin:"
STORE_PREFIX = "store:"


def store_model_name(ref) -> str | None:
    """The store model a reference names (``"store:waste"`` -> ``"waste"``), else None."""
    ref = str(ref)
    return ref[len(STORE_PREFIX):] if ref.startswith(STORE_PREFIX) else None


def builtin_dir() -> Path:
    """The folder of models shipped in the package."""
    return Path(str(resources.files("edgert") / "models"))


def model_path(ref: str) -> Path:
    """The file a model reference names: a file path, or ``builtin:<name>`` for a shipped model.

    Raises:
        ConfigError: no shipped model of that name.
    """
    ref = str(ref)
    if ref.startswith(BUILTIN_PREFIX):
        name = ref[len(BUILTIN_PREFIX):]
        folder = builtin_dir()
        card = folder / f"{name}.json"
        if card.is_file():  # the card names its model file (conveyor.json -> conveyor_int8.tflite)
            try:
                model = json.loads(card.read_text(encoding="utf-8")).get("model")
            except (OSError, ValueError, AttributeError):
                model = None
            if isinstance(model, str) and (folder / model).is_file():
                return folder / model
        found = []
        if folder.is_dir():
            found = sorted(folder.glob(f"{name}.tflite")) or sorted(folder.glob(f"{name}_*.tflite"))
        if not found:
            known = sorted({p.stem.split("_")[0] for p in folder.glob("*.tflite")}) if folder.is_dir() else []
            raise ConfigError(f"model: no built-in model {name!r}; built-in: {', '.join(known) or 'none'}")
        return found[0]
    return Path(ref)
