"""The plugin registries: built-ins without package metadata, third-party entry points in the config
unions and factories, refused plugins, and config imports that load no driver."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from edgert.actuators import ACTUATORS
from edgert.apps.kiosk.presence import PRESENCE
from edgert.backends.registry import BACKENDS, backend_class
from edgert.core import plugins
from edgert.core.errors import ConfigError
from edgert.postprocess import DECODERS
from edgert.sources import SOURCES, make_source

ROOT = Path(__file__).resolve().parents[1]
REGISTRIES = {r.group: r for r in (SOURCES, ACTUATORS, PRESENCE, DECODERS, BACKENDS)}

#: A third-party package: one source, presence trigger, actuator and decoder, plus misfits.
PLUGIN = textwrap.dedent('''
    from typing import Literal

    from edgert.actuators import Actuator, DeviceConfig
    from edgert.core.settings import Section
    from edgert.sources import Source


    class ThermalConfig(Section):
        kind: Literal["thermal"] = "thermal"
        size: tuple[int, int] = (64, 48)


    class ThermalSource(Source):
        Config = ThermalConfig

        def __init__(self, config):
            super().__init__()
            self.config = config
            self.name = "thermal"


    class InfraredSource(ThermalSource):
        """Registered as 'infrared', but its Config says 'thermal'."""


    class AlwaysConfig(Section):
        kind: Literal["always"] = "always"


    class AlwaysPresence:
        Config = AlwaysConfig

        def __init__(self, config):
            self.config = config

        def update(self, frame):
            return True

        def close(self):
            pass


    class FlagConfig(DeviceConfig):
        kind: Literal["flag"]
        pin: int
        bin: str

        def used_pins(self):
            return [(self.pin, repr(self.label))]

        def served_bins(self):
            return [self.bin]


    class FlagActuator(Actuator):
        Config = FlagConfig

        def __init__(self, config, pin_factory):
            self.name = config.label
            self.bins = frozenset([config.bin])

        def _fire(self, bin):
            return "flag up"

        def safe(self):
            pass

        def _release(self):
            pass


    def argmax(values):
        return max(range(len(values)), key=values.__getitem__)
''')

ENTRY_POINTS = {
    "edgert.sources": ["thermal = edgert_thermal:ThermalSource"],
    "edgert.presence": ["always = edgert_thermal:AlwaysPresence"],
    "edgert.actuators": ["flag = edgert_thermal:FlagActuator"],
    "edgert.decoders": ["argmax = edgert_thermal:argmax"],
}


def write_plugin(folder: Path, entry_points: dict = ENTRY_POINTS) -> None:
    """The plugin module and the dist-info a pip install of it would leave."""
    (folder / "edgert_thermal.py").write_text(PLUGIN)
    info = folder / "edgert_thermal-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: edgert-thermal\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "".join(f"[{group}]\n" + "".join(f"{line}\n" for line in lines) for group, lines in entry_points.items()))


@pytest.fixture
def fake_entry_points(tmp_path, monkeypatch):
    """Call with ``{group: ["name = module:attr", ...]}``: the entry points discovery then finds
    (the plugin module is importable); every registry is refreshed before and after."""
    (tmp_path / "edgert_thermal.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))

    def install(groups: dict) -> None:
        found = [EntryPoint(*(part.strip() for part in line.split("=")), group)
                 for group, lines in groups.items() for line in lines]
        monkeypatch.setattr(plugins, "entry_points", lambda group: [ep for ep in found if ep.group == group])
        for registry in REGISTRIES.values():
            registry.refresh()

    yield install
    monkeypatch.undo()
    sys.modules.pop("edgert_thermal", None)
    for registry in REGISTRIES.values():
        registry.refresh()


def setup_entry_points() -> dict:
    """``{group: {name: "module:attr"}}`` as setup.py declares them."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    call = next(node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup")
    groups = ast.literal_eval(next(k.value for k in call.keywords if k.arg == "entry_points"))
    return {group: dict(tuple(p.strip() for p in line.split("=")) for line in lines)
            for group, lines in groups.items() if group != "console_scripts"}


def test_setup_py_registers_exactly_the_builtin_tables():
    assert setup_entry_points() == {group: r.references() for group, r in REGISTRIES.items()}


def test_builtins_load_without_package_metadata(fake_entry_points):
    # An editable checkout whose metadata predates a group, or names edgert modules that moved.
    fake_entry_points({"edgert.sources": ["opencv = edgert.pipeline.old_sources:VideoSource",
                                          "ghost = edgert.sources.gone:GhostSource"]})
    assert SOURCES.keys() == ["picamera2", "opencv", "folder", "conveyor", "street"]
    assert SOURCES.load("opencv").__name__ == "VideoSource"
    assert set(backend_class(key).KEY for key in ("cpu", "simulated")) == {"cpu", "simulated"}
    assert PRESENCE.keys() == ["frame_diff", "beam_break"] and ACTUATORS.keys() == ["servo", "relay"]
    for name in DECODERS.keys():
        assert callable(DECODERS.load(name))


def test_third_party_source_joins_the_union_and_the_factory(fake_entry_points):
    fake_entry_points({"edgert.sources": ["thermal = edgert_thermal:ThermalSource"]})
    assert SOURCES.keys()[-1] == "thermal"
    union = TypeAdapter(SOURCES.config_union())
    config = union.validate_python({"kind": "thermal", "size": [32, 24]})
    source = make_source(config)
    assert type(source).__name__ == "ThermalSource" and source.config.size == (32, 24)
    assert type(union.validate_python({"kind": "folder", "path": "."})).__name__ == "FolderConfig"
    with pytest.raises(ValidationError, match="'thermal'"):
        union.validate_python({"kind": "webcam"})


def test_third_party_decoder_is_found_by_name(fake_entry_points):
    fake_entry_points({"edgert.decoders": ["argmax = edgert_thermal:argmax"]})
    assert DECODERS.load("argmax")([0.1, 0.7, 0.2]) == 1
    with pytest.raises(ConfigError, match=r"^bench.decoder: unknown decoder 'ctc'; expected one of classify, yolo, "
                                          r"ssd, hailo_nms, argmax$"):
        DECODERS.load("ctc", "bench.decoder")


def test_plugin_whose_key_and_kind_disagree_is_refused(fake_entry_points):
    fake_entry_points({"edgert.sources": ["infrared = edgert_thermal:InfraredSource"]})
    with pytest.raises(ConfigError) as info:
        SOURCES.config_union()
    message = str(info.value)
    assert message == ("source plugin 'infrared' (edgert_thermal:InfraredSource): its Config ThermalConfig has kind "
                       "'thermal'; the entry point's name must be one of them"), message


def test_backend_whose_key_disagrees_is_refused(fake_entry_points):
    fake_entry_points({"edgert.backends": ["npu = edgert_thermal:ThermalSource"]})
    with pytest.raises(ConfigError, match=r"backend plugin 'npu' \(edgert_thermal:ThermalSource\) declares KEY None"):
        backend_class("npu")


@pytest.mark.parametrize("groups, fragment", [
    ({"edgert.sources": ["opencv = edgert_thermal:ThermalSource"]}, "'opencv' is registered more than once"),
    ({"edgert.sources": ["dup = edgert_thermal:ThermalSource", "dup = other:Source"]}, "'dup' is registered more"),
    ({"edgert.sources": ["broken = edgert_missing:Source"]}, "'broken' (edgert_missing:Source) cannot be loaded: "
                                                             "No module named 'edgert_missing'"),
    ({"edgert.sources": ["nothing = edgert_thermal:NoSuchSource"]}, "(edgert_thermal:NoSuchSource) cannot be loaded"),
    ({"edgert.sources": ["argmax = edgert_thermal:argmax"]}, "'argmax' (edgert_thermal:argmax) has no Config class"),
])
def test_misregistered_plugins_are_refused_in_one_line(fake_entry_points, groups, fragment):
    fake_entry_points(groups)
    with pytest.raises(ConfigError) as info:
        SOURCES.config_union()
    assert fragment in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_unknown_kind_in_a_factory_names_the_key_and_the_known_kinds():
    class Stray:
        kind = "webcam"

    with pytest.raises(ConfigError, match=r"^source.kind: unknown source 'webcam'; expected one of picamera2, "
                                          r"opencv, folder, conveyor, street$"):
        make_source(Stray())


_END_TO_END = '''
from importlib import resources

from gpiozero.pins.mock import MockFactory, MockPWMPin

from edgert.actuators import open_actuators
from edgert.apps.kiosk.presence import make_presence
from edgert.core.config_file import parse_text
from edgert.service.config import file_model
from edgert.core.errors import ConfigError
from edgert.postprocess import DECODERS
from edgert.sources import make_source

text = (resources.files("edgert") / "examples" / "demo.yaml").read_text()
for old, new in [("  kind: conveyor\\n  fps: 30\\n  seed: 2026\\n", "  kind: thermal\\n  size: [32, 24]\\n"),
                 ("  kind: frame_diff", "  kind: always"),
                 ("    - kind: relay            # the paper bin's air jet\\n      name: air-jet\\n      channels:\\n"
                  "        paper: {pin: 23, pulse_s: 0.15}", "    - {kind: flag, name: paper-flag, pin: 23, bin: paper}")]:
    assert old in text, old
    text = text.replace(old, new)
KioskConfig = file_model("kiosk")
config = parse_text(text, KioskConfig, "plugin.yaml")
actuators = open_actuators(config.actuators, MockFactory(pin_class=MockPWMPin))
print(type(make_source(config.source)).__name__, make_source(config.source).config.size,
      type(make_presence(config.presence)).__name__, [a.name for a in actuators], DECODERS.load("argmax")([0, 3, 1]))
for old, new in [("kind: thermal", "kind: webcam"), ("pin: 23, bin: paper", "pin: 18, bin: paper")]:
    try:
        parse_text(text.replace(old, new), KioskConfig, "plugin.yaml")
    except ConfigError as exc:
        print(exc)
'''


def test_installed_plugin_package_works_through_the_kiosk_config(tmp_path):
    write_plugin(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", _END_TO_END], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    built, unknown, clash = done.stdout.splitlines()
    assert built == "ThermalSource (32, 24) AlwaysPresence ['diverter', 'paper-flag'] 1"
    assert unknown.startswith("plugin.yaml: line 5: source: ") and "'webcam'" in unknown
    assert "'picamera2', 'opencv', 'folder', 'conveyor', 'street', 'thermal'" in unknown, unknown
    assert "pin 18 is used twice" in clash and "'paper-flag'" in clash, clash


def test_presence_kind_still_defaults_to_frame_diff():
    from edgert.apps.kiosk.config import PresenceSection

    assert TypeAdapter(PresenceSection).validate_python({"step": 4}).kind == "frame_diff"


def _modules_after_import(module: str) -> set:
    probe = f"import sys, {module}; print(' '.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_importing_the_kiosk_config_loads_no_driver():
    loaded = _modules_after_import("edgert.apps.kiosk.config")
    assert not {"cv2", "picamera2", "libcamera", "gpiozero"} & loaded, sorted(loaded)


@pytest.mark.parametrize("module", ["edgert.apps.kiosk.config", "edgert.service.config"])
def test_importing_the_config_loads_no_kernels(module):
    assert "edgert._ext" not in _modules_after_import(module)
