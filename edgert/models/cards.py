"""Model cards: the JSON beside a model file that says how to feed it and what its outputs mean.

``conveyor_int8.tflite`` is described by ``conveyor.json`` or ``conveyor_int8.json`` next to it:
``{"name", "version", "classes": [...], "preprocess": {"resize", "interpolation", "mean", "std",
"channel_order", "pad_value", "pixel_centers"}, "task", "decoder": {...}}``, and for model files that do
not say their input (.rknn) ``"input_shape"`` (e.g. ``[1, 224, 224, 3]``) and ``"input_dtype"``.
``"task"`` is one of `edgert.models.tasks.TASKS`. ``"pixel_centers"`` names the pixel-centre convention
the model was trained behind ("half" or "corner", `edgert.resample_maps`; "half" when the card does not
say). ``"decoder"`` holds the settings of the model's output decoder (``{"kind": "ssd", "anchors": {...},
...}``: `edgert.postprocess.ssd.SsdDecoder.from_card`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from edgert.core.errors import ConfigError, ModelError
from edgert.models.tasks import task_name

#: The `edgert.preprocess.Preprocessor` arguments a model card (or a manifest, a config file) may set.
PREPROCESS_KEYS = ("resize", "interpolation", "mean", "std", "pad_value", "channel_order", "pixel_centers")


@dataclass(frozen=True)
class ModelCard:
    """What a model file needs around it.

    Attributes:
        path: The model file.
        name: Model name (the file stem when the card does not say).
        version: Version string ("" when unknown).
        labels: Class names in output order (``()`` when unknown).
        preprocess: `Preprocessor` keyword arguments from the card.
        input_spec: ``input_shape``/``input_dtype`` backend options from the card (``{}`` when it
            gives none).
        task: What the model does (`edgert.models.tasks.TASKS`), or None when the card does not say.
        decoder: Output decoder settings (``{}`` when the card gives none).
    """

    path: Path
    name: str
    version: str = ""
    labels: tuple = ()
    preprocess: dict = field(default_factory=dict)
    input_spec: dict = field(default_factory=dict)
    task: str | None = None
    decoder: dict = field(default_factory=dict)


def _card_file(model_path: Path) -> Path | None:
    stem = model_path.stem
    candidates = [model_path.with_suffix(".json")]
    if "_" in stem:
        candidates.append(model_path.with_name(stem.rsplit("_", 1)[0] + ".json"))
    return next((c for c in candidates if c.is_file()), None)


def read_card(model_path: Path) -> ModelCard:
    """The card of a model file (an empty one when there is no JSON beside it).

    Raises:
        ModelError: the card exists but is not valid JSON or has wrong types.
    """
    card_path = _card_file(model_path)
    if card_path is None:
        return ModelCard(model_path, model_path.stem)
    try:
        data = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{card_path}: unreadable model card: {exc}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{card_path}: a model card must be a JSON object")
    labels = data.get("classes", data.get("labels", []))
    if not isinstance(labels, list) or not all(isinstance(v, str) for v in labels):
        raise ModelError(f"{card_path}: 'classes' must be a list of names")
    pre = data.get("preprocess", {})
    if not isinstance(pre, dict):
        raise ModelError(f"{card_path}: 'preprocess' must be an object")
    shape = data.get("input_shape")
    if shape is not None and (not isinstance(shape, list) or not shape
                              or not all(type(v) is int and v >= 1 for v in shape)):
        raise ModelError(f"{card_path}: 'input_shape' must be a list of positive sizes, e.g. [1, 224, 224, 3]")
    if "input_dtype" in data and not isinstance(data["input_dtype"], str):
        raise ModelError(f"{card_path}: 'input_dtype' must be a string (uint8, int8 or float32)")
    spec = {k: data[k] for k in ("input_shape", "input_dtype") if data.get(k) is not None}
    decoder = data.get("decoder", {})
    if not isinstance(decoder, dict):
        raise ModelError(f"{card_path}: 'decoder' must be an object")
    try:
        task = task_name(data.get("task"), f"{card_path}: 'task'")
    except ConfigError as exc:
        raise ModelError(str(exc)) from None
    return ModelCard(model_path, str(data.get("name", model_path.stem)), str(data.get("version", "")),
                     tuple(labels), {k: pre[k] for k in PREPROCESS_KEYS if k in pre}, spec, task, dict(decoder))
