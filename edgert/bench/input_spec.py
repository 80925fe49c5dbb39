"""Where `edgert bench` gets a model's input spec for backends that cannot read it from the file.

An .rknn file does not say its input shape to RKNN Toolkit Lite2 (its format is not published and
Lite2 has no query for it), so the rknn backend takes ``input_shape``/``input_dtype`` options. They
come from the bundle manifest's variant options or the model card (``"input_shape"``,
``"input_dtype"``), and from ``--input-shape``/``--input-dtype``; when both give one, they must agree.
An .onnx model with dynamic axes takes ``input_shape`` the same way (its dtype is in the file).
"""
from __future__ import annotations

from pathlib import Path

from edgert.core.errors import ConfigError

OPTIONS = ("input_shape", "input_dtype")
CARD = "the model card"
MANIFEST = "the bundle manifest"


def parse_shape(text: str) -> tuple:
    """``"1x224x224x3"`` (or ``"1,224,224,3"``) as a tuple of positive ints."""
    try:
        shape = tuple(int(v) for v in text.lower().replace(",", "x").split("x"))
    except ValueError:
        shape = ()
    if not shape or any(v < 1 for v in shape):
        raise ConfigError(f"--input-shape: expected positive sizes like 1x224x224x3, got {text!r}")
    return shape


def apply(plan: list, cli: dict, source_options: dict, source: str, model_path: Path) -> list:
    """The plan with each runnable backend's options completed with the input spec.

    Args:
        plan: ``[(backend, model file, options, reason skipped or None)]``.
        cli: ``{"input_shape": tuple, "input_dtype": str}`` from the command line (None when not given).
        source_options: The input spec of the model card (bare model files; bundles carry theirs in
            each variant's options).
        source: What `source_options` or the variant options came from, for messages.
        model_path: The model or bundle given to bench.

    Raises:
        ConfigError: the command line disagrees with the card or manifest, is given for backends
            that read the spec from the model, or a backend needs an input shape nobody gave.
    """
    from edgert.backends.loader import backend_config
    from edgert.backends.registry import backend_classes

    classes = backend_classes()
    given = {k: v for k, v in cli.items() if v is not None}
    out, used = [], False
    for key, path, options, skip in plan:
        fields = classes[key].Config.model_fields if key in classes else {}
        if "input_shape" not in fields:
            out.append((key, path, options, skip))
            continue
        used = True  # also when skipped here (no NPU on this machine): the flags were meant for it
        if skip is not None:
            out.append((key, path, options, skip))
            continue
        options = {**{k: v for k, v in source_options.items() if k in OPTIONS and k in fields}, **options}
        for name, value in given.items():
            if name not in fields:
                raise ConfigError(f"--{name.replace('_', '-')}: the {key} backend reads it from the model file")
            known = options.get(name)
            if known is not None and _same(known) != _same(value):
                raise ConfigError(f"--{name.replace('_', '-')} {_show(value)} disagrees with {source}: "
                                  f"{name} {_show(known)}")
            options[name] = value
        if fields["input_shape"].is_required() and "input_shape" not in options:
            where = (f"its model card {model_path.with_suffix('.json').name}" if source == CARD
                     else f"the {key} variant's options in {source}")
            raise ConfigError(f"{model_path.name}: the {key} backend needs the model's input shape and the file "
                              f"does not say it: give --input-shape 1x224x224x3 (and --input-dtype uint8, int8 or "
                              f"float32), or \"input_shape\": [1, 224, 224, 3] in {where}")
        backend_config(classes[key], options)  # a bad shape is bad input, not a failed run
        out.append((key, path, options, skip))
    if given and not used:
        names = ", ".join(f"--{k.replace('_', '-')}" for k in given)
        raise ConfigError(f"{names}: no backend this bench runs takes an input spec (the model file gives it)")
    return out


def _same(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _show(value) -> str:
    return "x".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)
