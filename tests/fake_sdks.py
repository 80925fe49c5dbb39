"""Fixtures that inject the SDK-faithful fakes of tests/fakes (loaded by conftest.py as a plugin)."""
import importlib
import importlib.util
import sys
from pathlib import Path

import ai_edge_litert
import pytest

FAKES = Path(__file__).parent / "fakes"


@pytest.fixture
def fake_rknn(monkeypatch):
    """The fake `rknnlite` package (fresh module state per test); yields its `rknnlite.fake_rig`
    (SOC, CALLS, FAIL_NEXT_INFERENCE, make_rknn, RKNNLite)."""
    monkeypatch.syspath_prepend(str(FAKES))
    for name in [m for m in sys.modules if m.split(".")[0] == "rknnlite"]:
        monkeypatch.delitem(sys.modules, name)
    importlib.import_module("rknnlite.api")
    yield importlib.import_module("rknnlite.fake_rig")
    for name in [m for m in sys.modules if m.split(".")[0] == "rknnlite"]:
        sys.modules.pop(name, None)


@pytest.fixture
def fake_hailo(monkeypatch):
    """The fake `hailo_platform` package; yields its pyhailort module (DEVICES, VDEVICES, make_hef)."""
    monkeypatch.syspath_prepend(str(FAKES))
    for name in [m for m in sys.modules if m == "hailo_platform" or m.startswith("hailo_platform.")]:
        monkeypatch.delitem(sys.modules, name)
    importlib.import_module("hailo_platform")
    rt = importlib.import_module("hailo_platform.pyhailort.pyhailort")
    monkeypatch.setattr(rt, "DEVICES", ["0000:01:00.0"])
    monkeypatch.setattr(rt, "VDEVICES", [])
    yield rt
    for name in [m for m in sys.modules if m == "hailo_platform" or m.startswith("hailo_platform.")]:
        sys.modules.pop(name, None)


@pytest.fixture
def fake_edgetpu(monkeypatch):
    """Install a LiteRT interpreter module whose libedgetpu sees the given Edge TPUs: call it with
    ``devices=("usb:0",)`` and/or ``library_present=False``; returns the fake module."""
    spec = importlib.util.spec_from_file_location("fake_edgetpu", FAKES / "edgetpu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def install(**kwargs):
        fake = mod.make_module(**kwargs)
        monkeypatch.setattr(ai_edge_litert, "interpreter", fake)
        monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", fake)
        return fake
    return install


@pytest.fixture
def fake_picamera2(monkeypatch):
    """The fake `picamera2` package (and the `libcamera` it needs), fresh per test; yields its
    `fake_rig.rig` (cameras attached, frame period, scene, dislodged cables). Every camera opened
    is closed at teardown and calls that would block forever are released."""
    names = ("picamera2", "libcamera")
    monkeypatch.syspath_prepend(str(FAKES))
    for name in [m for m in sys.modules if m.split(".")[0] in names]:
        monkeypatch.delitem(sys.modules, name)
    importlib.import_module("libcamera")
    importlib.import_module("picamera2")
    rig = importlib.import_module("picamera2.fake_rig").rig
    yield rig
    rig.hang_breaker.set()
    for camera in rig.instances:
        camera.close()
    for name in [m for m in sys.modules if m.split(".")[0] in names]:
        sys.modules.pop(name, None)
