"""Reading a YAML config file into a validated model, with errors that say file, line, key path and what was expected."""
from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from edgert.core.errors import ConfigError


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML would keep the last silently)."""


def _construct_mapping(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(f"line {key_node.start_mark.line + 1}: key {key!r} given twice "
                              f"(first on line {seen[key] + 1})")
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line_map(node, path=(), out=None) -> dict:
    """``{key path tuple: line number}`` for every node of a composed YAML tree."""
    out = {} if out is None else out
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[path + (key,)] = key_node.start_mark.line + 1
            _line_map(value_node, path + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, path + (i,), out)
    return out


def format_path(loc) -> str:
    """``("actuators", "devices", 1, "pin")`` -> ``"actuators.devices[1].pin"``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or "(top level)"


def _describe(error: dict) -> str:
    kind, msg = error["type"], error["msg"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    msg = msg.removeprefix("Value error, ")
    if kind not in ("value_error", "assertion_error") and "input" in error and not isinstance(error["input"], (dict, list)):
        return f"{msg} (got {error['input']!r})"
    return msg


def parse_text(text: str, model: type[BaseModel], source: str = "<config>") -> BaseModel:
    """Validate YAML text against a config model.

    Raises:
        ConfigError: one line naming the source, line, key path and what was expected.
    """
    try:
        node = yaml.compose(text, Loader=_UniqueKeyLoader)
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}:{where}: not valid YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level, got {type(data).__name__}")
    lines = _line_map(node) if node is not None else {}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        loc = _clean_loc(data, first["loc"])
        line = _nearest_line(lines, loc)
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        where = f" line {line}:" if line else ""
        raise ConfigError(f"{source}:{where} {format_path(loc)}: {_describe(first)}{more}") from None


def _clean_loc(data, loc) -> tuple:
    """The error path as the user wrote it: drops the tags pydantic adds for unions ("servo", "int")."""
    out, node = [], data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, dict) and isinstance(part, str):
            if part in node:
                out.append(part)
                node = node[part]
            elif last:
                out.append(part)  # a missing or unknown key
            continue  # otherwise a union tag
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            out.append(part)
            node = node[part]
            continue
        if isinstance(part, int) or last:
            out.append(part)
        node = None
    return tuple(out)


def _nearest_line(lines: dict, loc: tuple) -> int | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def load_file(path, model: type[BaseModel]) -> BaseModel:
    """Read and validate a YAML config file.

    Raises:
        ConfigError: the file is missing or unreadable, is not YAML, or does not validate.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror if isinstance(exc, OSError) else exc}") from None
    return parse_text(text, model, str(path))
