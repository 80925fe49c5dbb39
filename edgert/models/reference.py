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


def _card_model(card: Path) -> Path | None:
    """The model file a builtin card names (``conveyor.json`` -> ``conveyor_int8.tflite``), if it exists."""
    try:
        model = json.loads(card.read_text(encoding="utf-8")).get("model")
    except (OSError, ValueError, AttributeError):
        return None
    return card.parent / model if isinstance(model, str) and (card.parent / model).is_file() else None


def builtin_names(folder: Path) -> list:
    """Names ``builtin:`` knows: model stems in the folder (before their first ``_``) and in its subfolders."""
    if not folder.is_dir():
        return []
    return sorted({p.stem.split("_")[0] for p in folder.glob("*.tflite")} | {p.stem for p in folder.glob("*/*.tflite")}
                  | {p.stem for p in folder.glob("*/*.json") if _card_model(p) is not None})


def model_path(ref: str) -> Path:
    """The file a model reference names: a file path, or ``builtin:<name>`` for a shipped model.

    A shipped model lives in the models folder (``builtin:conveyor`` -> ``conveyor_int8.tflite``) or in
    a subfolder with its licence and source (``builtin:face_detection_short_range`` ->
    ``blazeface/face_detection_short_range.tflite``); a card of the name may name the file.

    Raises:
        ConfigError: no shipped model of that name.
    """
    ref = str(ref)
    if not ref.startswith(BUILTIN_PREFIX):
        return Path(ref)
    name = ref[len(BUILTIN_PREFIX):]
    folder = builtin_dir()
    if name and "/" not in name and folder.is_dir():
        for card in [folder / f"{name}.json", *sorted(folder.glob(f"*/{name}.json"))]:
            if card.is_file() and (model := _card_model(card)) is not None:
                return model
        found = (sorted(folder.glob(f"{name}.tflite")) or sorted(folder.glob(f"*/{name}.tflite"))
                 or sorted(folder.glob(f"{name}_*.tflite")))
        if found:
            return found[0]
    raise ConfigError(f"model: no built-in model {name!r}; built-in: {', '.join(builtin_names(folder)) or 'none'}")
