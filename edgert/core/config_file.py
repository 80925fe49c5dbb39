"""Reading a YAML config file into a validated model, with errors that say file, line, key path and what was expected."""
from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from edgert.core.errors import ConfigError

#: A kiosk config is a few KB; past this the file is refused before it is parsed.
MAX_CONFIG_BYTES = 1 << 20
#: The most scalars, lists and mappings a config may stand for, each alias counted as the nodes it
#: repeats (an alias bomb is a few hundred bytes that stand for billions); the examples have ~150.
MAX_CONFIG_NODES = 20_000


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML would keep the last silently)
    and a document that stands for more than `MAX_CONFIG_NODES` nodes."""

    def __init__(self, stream):
        super().__init__(stream)
        self._sizes = {}  # id(node) -> nodes it stands for, aliases expanded
        self._total = 0  # nodes composed so far, each alias counted at its size

    def compose_node(self, parent, index):
        line = self.peek_event().start_mark.line + 1
        node = super().compose_node(parent, index)
        size = self._sizes.get(id(node))
        if size is not None:  # an alias of a node composed earlier
            self._total += size
        else:
            size = 1
            if isinstance(node, yaml.MappingNode):
                size += sum(self._sizes[id(k)] + self._sizes[id(v)] for k, v in node.value)
            elif isinstance(node, yaml.SequenceNode):
                size += sum(self._sizes[id(item)] for item in node.value)
            self._sizes[id(node)] = size
            self._total += 1
        if self._total > MAX_CONFIG_NODES:
            raise ConfigError(f"line {line}: more than {MAX_CONFIG_NODES} values once aliases are expanded "
                              f"(a config has a few hundred); refused")
        return node


def _construct_mapping(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, (list, dict)):
            raise ConfigError(f"line {key_node.start_mark.line + 1}: a key must be a plain value, "
                              f"got a {type(key).__name__}")
        if key in seen:
            raise ConfigError(f"line {key_node.start_mark.line + 1}: key {key!r} given twice "
                              f"(first on line {seen[key] + 1})")
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line_map(node, path=(), out=None, seen=None) -> dict:
    """``{key path tuple: line number}`` for every node of a composed YAML tree.

    A node reached again through an alias gets the line of where it is used, and is not walked
    again, so the walk is linear in the document's size; errors inside it name that line.
    """
    out = {} if out is None else out
    seen = set() if seen is None else seen
    if id(node) in seen:
        out.setdefault(path, node.start_mark.line + 1)  # a mapping value keeps its key's line
        return out
    seen.add(id(node))
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[path + (key,)] = key_node.start_mark.line + 1
            _line_map(value_node, path + (key,), out, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, path + (i,), out, seen)
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


def parse_text(text: str, model, source: str = "<config>") -> BaseModel:
    """Validate YAML text against a config model (a class, or ``model(data) -> class``).

    Raises:
        ConfigError: one line naming the source, line, key path and what was expected.
    """
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: larger than {MAX_CONFIG_BYTES >> 20} MiB (a config is a few KB); refused")
    try:
        node, data = _compose_and_construct(text)
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
    if not isinstance(model, type):  # a chooser: the config model depends on the document (its ``app:``)
        try:
            model = model(data)
        except ConfigError as exc:
            line = _nearest_line(lines, ("app",))
            raise ConfigError(f"{source}:{f' line {line}:' if line else ''} {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        loc = _clean_loc(data, first["loc"])
        description = _describe(first)
        loc, description = _sub_path(lines, loc, description)
        line = _nearest_line(lines, loc)
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        where = f" line {line}:" if line else ""
        raise ConfigError(f"{source}:{where} {format_path(loc)}: {description}{more}") from None


def _compose_and_construct(text: str):
    """The composed node tree and the data built from it, in one pass over the text."""
    loader = _UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


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


_SUB_PATH = re.compile(r"^([A-Za-z_][\w-]*(?:\[\d+\]|\.[A-Za-z_][\w-]*)*): (.+)$")


def _sub_path(lines: dict, loc: tuple, description: str) -> tuple[tuple, str]:
    """A validator's message that starts with a key path under `loc` (``"zones[1].id: ..."``), when that
    key is in the document: the longer path (its line is the one named) and the rest of the message."""
    match = _SUB_PATH.match(description)
    if match is None:
        return loc, description
    parts = tuple(int(p[1:-1]) if p.startswith("[") else p
                  for p in re.findall(r"\[\d+\]|[^.\[\]]+", match.group(1)))
    if loc + parts not in lines:
        return loc, description
    return loc + parts, match.group(2)


def _nearest_line(lines: dict, loc: tuple) -> int | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def load_file(path, model) -> BaseModel:
    """Read and validate a YAML config file.

    Raises:
        ConfigError: the file is missing or unreadable, is not YAML, or does not validate.
    """
    path = Path(path)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES >> 20} MiB (a config is a few KB); refused")
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror if isinstance(exc, OSError) else exc}") from None
    return parse_text(text, model, str(path))
