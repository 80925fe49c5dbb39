"""Device context of `edgert bench` over fake sysfs/procfs trees and a fake `vcgencmd` on PATH."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import stat
import time
from pathlib import Path

import pytest

from edgert.bench import context

MODEL = Path(__file__).parent / "data" / "digits_int8.tflite"

PI5_CPUINFO = "".join(f"processor\t: {i}\nBogoMIPS\t: 108.00\nCPU implementer\t: 0x41\nCPU part\t: 0xd0b\n\n"
                      for i in range(4)) + "Revision\t: d04170\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n"
RK3588_CPUINFO = "".join(f"processor\t: {i}\nCPU part\t: {'0xd05' if i < 4 else '0xd0b'}\n\n" for i in range(8))


def make_tree(root: Path, *, board=b"Raspberry Pi 5 Model B Rev 1.0\x00", cpuinfo=PI5_CPUINFO, cpus=4,
              governor="performance", cur_khz=2400000, max_khz=2400000, temps=(("cpu-thermal", 52350),),
              firmware_throttled=None) -> Path:
    if board is not None:
        (root / "proc/device-tree").mkdir(parents=True, exist_ok=True)
        (root / "proc/device-tree/model").write_bytes(board)
    (root / "proc").mkdir(parents=True, exist_ok=True)
    (root / "proc/cpuinfo").write_text(cpuinfo)
    for i in range(cpus):
        freq = root / f"sys/devices/system/cpu/cpu{i}/cpufreq"
        freq.mkdir(parents=True)
        (freq / "scaling_governor").write_text(f"{governor}\n")
        (freq / "scaling_cur_freq").write_text(f"{cur_khz}\n")
        (freq / "cpuinfo_max_freq").write_text(f"{max_khz}\n")
    (root / "sys/devices/system/cpu/cpufreq").mkdir(parents=True, exist_ok=True)  # not a cpuN folder
    for n, (kind, milli) in enumerate(temps):
        zone = root / f"sys/class/thermal/thermal_zone{n}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(f"{milli}\n")
    if firmware_throttled is not None:
        fw = root / "sys/devices/platform/soc/soc:firmware"
        fw.mkdir(parents=True)
        (fw / "get_throttled").write_text(firmware_throttled + "\n")
    return root


def set_governor(root: Path, governor: str, cpus=None) -> None:
    for p in sorted((root / "sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_governor")):
        if cpus is None or p.parent.parent.name in cpus:
            p.write_text(governor + "\n")


@pytest.fixture
def fake_vcgencmd(tmp_path, monkeypatch):
    """A `vcgencmd` on PATH answering `get_throttled` with the value in a file the test changes."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    value = tmp_path / "throttled_value"
    value.write_text("0x0")
    exe = bin_dir / "vcgencmd"
    exe.write_text(f'#!/bin/sh\n[ "$1" = get_throttled ] || exit 1\necho "throttled=$(cat {value})"\n')
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return value


@pytest.fixture(autouse=True)
def no_real_vcgencmd(monkeypatch, tmp_path):
    """Keep a real vcgencmd (when the tests run on a Pi) out of the fake trees."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", f"{empty}{os.pathsep}/usr/bin{os.pathsep}/bin")
    monkeypatch.delenv("EDGERT_HW_ROOT", raising=False)


def test_pi5_tree(tmp_path):
    ctx = context.device_context(make_tree(tmp_path, governor="ondemand", cur_khz=1500000))
    assert ctx["board"] == "Raspberry Pi 5 Model B Rev 1.0"
    assert ctx["cpu_model"] == "4x Cortex-A76" and ctx["cpu_count"] == 4
    assert ctx["cpufreq"]["cpu3"] == {"governor": "ondemand", "cur_mhz": 1500.0, "max_mhz": 2400.0}
    assert list(ctx["cpufreq"]) == ["cpu0", "cpu1", "cpu2", "cpu3"]
    assert ctx["temperatures_c"] == {"cpu-thermal": 52.4}
    assert ctx["throttled"] is None
    assert "model_sha256" not in ctx
    json.dumps(ctx)  # stored in BenchResult.context: must be JSON-ready


def test_rk3588_cores_and_repeated_zone_types(tmp_path):
    root = make_tree(tmp_path, board=b"Radxa ROCK 5B\x00", cpuinfo=RK3588_CPUINFO, cpus=8,
                     temps=(("soc-thermal", 45000), ("npu-thermal", 47500), ("soc-thermal", 46000)))
    ctx = context.device_context(root)
    assert ctx["board"] == "Radxa ROCK 5B" and ctx["cpu_count"] == 8
    assert ctx["cpu_model"] == "4x Cortex-A55 + 4x Cortex-A76"
    assert ctx["temperatures_c"] == {"soc-thermal": 45.0, "npu-thermal": 47.5, "soc-thermal (thermal_zone2)": 46.0}
    assert list(ctx["cpufreq"]) == [f"cpu{i}" for i in range(8)]


def test_dmi_then_machine_fallback(tmp_path):
    root = make_tree(tmp_path / "pc", board=None, cpuinfo="processor\t: 0\nmodel name\t: Intel(R) N100\n", cpus=1)
    (root / "sys/class/dmi/id").mkdir(parents=True)
    (root / "sys/class/dmi/id/product_name").write_text("NUC13ANHi5\n")
    ctx = context.device_context(root)
    assert ctx["board"] == "NUC13ANHi5" and ctx["cpu_model"] == "Intel(R) N100"
    empty = tmp_path / "empty"
    empty.mkdir()
    ctx = context.device_context(empty)
    assert ctx["board"] == platform.machine()
    assert ctx["cpufreq"] == {} and ctx["temperatures_c"] == {} and ctx["cpu_count"] >= 1
    assert context.warnings(ctx, ctx) == []


def test_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGERT_HW_ROOT", str(make_tree(tmp_path, board=b"Raspberry Pi 4 Model B Rev 1.5\x00")))
    assert context.device_context()["board"] == "Raspberry Pi 4 Model B Rev 1.5"


def test_versions_and_model_hash(tmp_path):
    ctx = context.device_context(tmp_path, model_path=MODEL)
    assert ctx["model_sha256"] == hashlib.sha256(MODEL.read_bytes()).hexdigest()
    assert ctx["model"] == MODEL.name
    v = ctx["versions"]
    assert v["python"] == platform.python_version()
    import numpy

    import edgert

    assert v["numpy"] == numpy.__version__ and v["edgert"] == edgert.__version__
    assert "hailort" not in v and "pycoral" not in v  # not installed here: left out, not None
    assert ctx["kernel"]


def test_governor_not_performance_warns(tmp_path):
    root = make_tree(tmp_path)
    before = context.sample_thermal(root)
    assert context.warnings(before, context.sample_thermal(root)) == []
    set_governor(root, "powersave")
    found = context.warnings(before, context.sample_thermal(root))
    assert len(found) == 1 and '"powersave" on cpu0-3' in found[0]
    set_governor(root, "performance")
    set_governor(root, "schedutil", cpus={"cpu1", "cpu3"})
    found = context.warnings(before, context.sample_thermal(root))
    assert len(found) == 1 and "cpu1, cpu3" in found[0] and '"schedutil"' in found[0]


def test_parse_throttled_bits():
    t = context.parse_throttled("throttled=0x50005")
    assert t["raw"] == "0x50005"
    assert t["now"] == ["under-voltage", "throttled"] and t["since_boot"] == ["under-voltage", "throttled"]
    t = context.parse_throttled(0x80008)
    assert t["now"] == ["soft temperature limit"] and t["since_boot"] == ["soft temperature limit"]
    t = context.parse_throttled("0x20000")
    assert t["now"] == [] and t["since_boot"] == ["arm frequency capped"]
    assert context.parse_throttled("throttled=0x0") == {"raw": "0x0", "now": [], "since_boot": []}


def test_vcgencmd_on_path_and_throttling_during_run(tmp_path, fake_vcgencmd):
    root = make_tree(tmp_path / "root")
    before = context.device_context(root)
    assert before["throttled"] == {"raw": "0x0", "now": [], "since_boot": [], "source": "vcgencmd"}
    fake_vcgencmd.write_text("0x50005")
    after = context.sample_thermal(root)
    assert after["throttled"]["now"] == ["under-voltage", "throttled"]
    found = context.warnings(before, after)
    assert any("under-voltage, throttled during the run" in w and "0x50005" in w for w in found), found


def test_throttling_since_before_the_run_is_not_blamed_on_it(tmp_path, fake_vcgencmd):
    root = make_tree(tmp_path / "root")
    fake_vcgencmd.write_text("0x10000")  # under-voltage happened at some point since boot, not now
    before = context.sample_thermal(root)
    assert context.warnings(before, context.sample_thermal(root)) == []
    fake_vcgencmd.write_text("0x30002")  # arm frequency capped: new during the run, and active now
    found = context.warnings(before, context.sample_thermal(root))
    assert len(found) == 1 and "arm frequency capped during the run" in found[0]


def test_vcgencmd_that_hangs_is_killed(tmp_path, fake_vcgencmd, monkeypatch):
    exe = fake_vcgencmd.parent / "bin" / "vcgencmd"
    exe.write_text("#!/bin/sh\nsleep 30\n")  # a child of the script holds the pipe open
    monkeypatch.setattr(context, "VCGENCMD_TIMEOUT_S", 0.3)
    t0 = time.monotonic()
    assert context.throttling(tmp_path) is None
    assert time.monotonic() - t0 < 10


def test_firmware_sysfs_when_no_vcgencmd(tmp_path):
    root = make_tree(tmp_path, firmware_throttled="50000")
    assert context.throttling(root) == {"raw": "0x50000", "now": [], "since_boot": ["under-voltage", "throttled"],
                                        "source": "sysfs"}


def test_hot_soc_and_frequency_drop_warn(tmp_path):
    root = make_tree(tmp_path, temps=(("cpu-thermal", 61000),))
    before = context.sample_thermal(root)
    (root / "sys/class/thermal/thermal_zone0/temp").write_text("84500\n")
    for p in (root / "sys/devices/system/cpu").glob("cpu[02]/cpufreq/scaling_cur_freq"):
        p.write_text("1500000\n")
    found = context.warnings(before, context.sample_thermal(root))
    assert any("cpu-thermal at 84.5 C" in w for w in found), found
    assert sum("frequency dropped from 2400 to 1500 MHz" in w for w in found) == 2, found
    # A small wobble of the clock is not a drop.
    (root / "sys/class/thermal/thermal_zone0/temp").write_text("60000\n")
    for p in (root / "sys/devices/system/cpu").glob("cpu*/cpufreq/scaling_cur_freq"):
        p.write_text("2300000\n")
    assert context.warnings(before, context.sample_thermal(root)) == []
