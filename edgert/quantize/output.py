"""Writing the quantised model and its card: both whole, or neither new.

The model and the card (``OUT.json``, read by `edgert.models.cards.read_card` and `edgert model
pack`) each go through `edgert.core.durable`. The card is placed inside the model's atomic write, after
the model's bytes are on disk, so a failure writing either leaves no new file: a failed model write
takes back the card just placed, and a failed card write never renames the model.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from edgert.core import durable
from edgert.core.errors import ConfigError, ModelError


def card_path(out) -> Path:
    """The card beside an output model."""
    return Path(out).with_suffix(".json")


def _float_cards(model_path: Path) -> list:
    stem = model_path.stem
    cards = [model_path.with_suffix(".json")]
    if "_" in stem:
        cards.append(model_path.with_name(stem.rsplit("_", 1)[0] + ".json"))
    return cards


def check_output(model_path, out, suffix: str | None = None) -> Path:
    """The output path, if it is usable before any work is done.

    Raises:
        ConfigError: `out` is the input model or would replace its card, does not have the input's
            suffix (or `suffix`: ``.rknn``), or its folder does not exist.
    """
    model_path, out = Path(model_path), Path(out)
    suffix = suffix or model_path.suffix
    if out.suffix != suffix:
        raise ConfigError(f"--out {out}: expected a {suffix} file name")
    if out.resolve() == model_path.resolve() or (out.exists() and model_path.exists()
                                                  and os.path.samefile(out, model_path)):
        raise ConfigError(f"--out {out}: is the input model; give another file name")
    card = card_path(out)
    if any(card.resolve() == c.resolve() for c in _float_cards(model_path) if c.is_file()):
        raise ConfigError(f"--out {out}: its card {card.name} would replace the float model's card; "
                          "give another file name")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: folder {out.parent} does not exist")
    return out


def write_model(out, data: bytes, card: dict) -> tuple:
    """Write the model and its card durably; returns ``(model_path, card_path)``.

    Raises:
        ModelError: the disk refused (full, read-only); no new file is left, an older model or card
            at these paths is as it was.
    """
    out = Path(out)
    card_file = card_path(out)
    card_text = json.dumps(card, indent=2) + "\n"
    old_card = card_file.read_bytes() if card_file.is_file() else None
    placed = False
    try:
        with durable.atomic_file(out, make_parents=False) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            durable.write_text(card_file, card_text, make_parents=False)
            placed = True
    except OSError as exc:
        if placed and old_card is None:
            card_file.unlink(missing_ok=True)
        elif placed:
            durable.write_bytes(card_file, old_card, make_parents=False)
        raise ModelError(f"{out}: could not write the quantised model ({exc.strerror or exc}); nothing written") \
            from None
    return out, card_file
