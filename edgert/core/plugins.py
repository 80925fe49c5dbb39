"""`Registry`: the one plugin idiom — a built-in table plus a setup.py entry-point group.

A registry maps a key (a source ``kind``, a backend ``KEY``, a decoder name) to a class named by
module path (``"edgert.sources.opencv:VideoSource"``). Third parties add one in their own
setup.py, under the same group edgert lists its built-ins in::

    entry_points={"edgert.sources": ["thermal = thermocam.edgert:ThermalSource"]}

Classes are imported only when asked for, so listing the keys imports nothing. A plugin with a
config section carries it as ``Config``; its ``kind`` literal must name the plugin's key, and
`Registry.config_union` builds the pydantic union the config file is validated against (as
Frigate builds its detector union from its detector classes).

The built-in table is the truth for edgert's own entries: entry points into ``edgert.*`` modules
are ignored, so an editable checkout with stale package metadata still finds every built-in.
"""
from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points
from typing import Annotated, Literal, Union, get_args, get_origin

from pydantic import BeforeValidator, Field

from edgert.core.errors import ConfigError, EdgertError, one_line


def discover(group: str) -> dict[str, list[str]]:
    """``{name: [module:attr, ...]}`` of the installed entry points of `group`."""
    found: dict[str, list[str]] = {}
    for ep in entry_points(group=group):
        found.setdefault(ep.name, []).append(ep.value)
    return found


def _is_edgerts(reference: str) -> bool:
    module = reference.partition(":")[0].strip()
    return module == "edgert" or module.startswith("edgert.")


class Registry:
    """Plugins of one sort: edgert's built-ins plus the entry points of one group.

    Args:
        group: The entry-point group (``"edgert.sources"``).
        builtins: ``{key: "module:attr"}`` of edgert's own entries (setup.py lists the same).
        what: What one entry is, for messages (``"source"``).
        key_attr: Attribute that must equal the key (``"KEY"`` for backends); None: not checked.
        kind_field: Field of a loaded class's ``Config`` whose literal must include the key; None:
            not checked (a backend's ``Config`` holds options, not a kind).
    """

    def __init__(self, group: str, builtins: dict[str, str], *, what: str, key_attr: str | None = None,
                 kind_field: str | None = "kind"):
        self.group = group
        self.what = what
        self.key_attr = key_attr
        self.kind_field = kind_field
        self._builtins = dict(builtins)
        self._references: dict[str, str] | None = None
        self._loaded: dict[str, object] = {}

    def references(self) -> dict[str, str]:
        """``{key: "module:attr"}``: the built-ins first, then third-party entries by name."""
        if self._references is None:
            found = dict(self._builtins)
            for name, values in sorted(discover(self.group).items()):
                values = [v for v in values if not _is_edgerts(v)]
                if not values:
                    continue
                if name in found or len(values) > 1:
                    taken = [found[name]] if name in found else []
                    raise ConfigError(f"{self.what} plugin {name!r} is registered more than once in entry-point "
                                      f"group {self.group}: {', '.join(taken + values)}")
                found[name] = values[0]
            self._references = found
        return dict(self._references)

    def keys(self) -> list[str]:
        """Every registered key, without importing anything."""
        return list(self.references())

    def refresh(self) -> None:
        """Forget what was discovered and loaded (after installing a plugin; for tests)."""
        self._references = None
        self._loaded.clear()

    def _unknown(self, key, where: str) -> ConfigError:
        """The error for a key nobody registered, naming `where` and the known keys."""
        return ConfigError(f"{where}: unknown {self.what} {key!r}; expected one of {', '.join(self.keys())}")

    def load(self, key: str, where: str | None = None):
        """The class registered as `key`, imported now and checked against its key.

        Raises:
            ConfigError: `key` is unknown (naming `where`), its module cannot be imported, or the
                class declares another key.
        """
        if key in self._loaded:
            return self._loaded[key]
        references = self.references()
        if key not in references:
            raise self._unknown(key, where or f"{self.what} kind")
        reference = references[key]
        module, _, attr = reference.partition(":")
        attr = attr.partition("[")[0].strip()  # "module:attr [extra]": the extra is pip's business
        try:
            obj = import_module(module.strip())
            for part in attr.split(".") if attr else ():
                obj = getattr(obj, part)
        except EdgertError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken plugin is one clear line, whatever it raised
            raise ConfigError(f"{self.what} plugin {key!r} ({reference}) cannot be loaded: {one_line(exc)}") from exc
        self._check(key, reference, obj)
        self._loaded[key] = obj
        return obj

    def classes(self) -> dict:
        """``{key: class}`` of every entry (imports them all)."""
        return {key: self.load(key) for key in self.keys()}

    def _check(self, key: str, reference: str, obj) -> None:
        if self.key_attr is not None and getattr(obj, self.key_attr, None) != key:
            raise ConfigError(f"{self.what} plugin {key!r} ({reference}) declares {self.key_attr} "
                              f"{getattr(obj, self.key_attr, None)!r}; the entry point's name must equal it")
        config = getattr(obj, "Config", None)
        if config is not None and self.kind_field is not None:
            kinds = self.kinds_of(config)
            if key not in kinds:
                declared = f"{self.kind_field} {' | '.join(map(repr, kinds))}" if kinds else \
                    f"no Literal {self.kind_field!r} field"
                raise ConfigError(f"{self.what} plugin {key!r} ({reference}): its Config {config.__name__} has "
                                  f"{declared}; the entry point's name must be one of them")

    def kinds_of(self, config: type) -> tuple:
        """The values of `config`'s ``kind`` literal (empty if it has none)."""
        field = getattr(config, "model_fields", {}).get(self.kind_field)
        annotation = getattr(field, "annotation", None)
        return get_args(annotation) if get_origin(annotation) is Literal else ()

    def config_union(self, default: str | None = None):
        """The discriminated union of every entry's ``Config``, for a config section's annotation.

        Args:
            default: The kind assumed when a section gives none (None: ``kind`` is required).
        """
        configs: dict[type, str] = {}
        claimed: dict[str, str] = {}
        for key in self.keys():
            config = getattr(self.load(key), "Config", None)
            if config is None:
                raise ConfigError(f"{self.what} plugin {key!r} ({self.references()[key]}) has no Config class")
            configs.setdefault(config, key)
            for kind in self.kinds_of(config):
                if claimed.setdefault(kind, configs[config]) != configs[config]:
                    raise ConfigError(f"{self.what} plugins {claimed[kind]!r} and {key!r} both claim "
                                      f"{self.kind_field} {kind!r}")
        # Union[...] (not A | B): the members are known only at run time.
        union = Annotated[Union[tuple(configs)], Field(discriminator=self.kind_field)]  # noqa: UP007
        if default is None:
            return union
        field = self.kind_field

        def _default_kind(value):
            return {**value, field: default} if isinstance(value, dict) and field not in value else value

        return Annotated[union, BeforeValidator(_default_kind)]
