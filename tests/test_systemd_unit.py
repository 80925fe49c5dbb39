"""The installed edgert.service against systemd's own tools: `systemd-analyze verify` and the offline
security review (exposure <= 3.0), plus the settings the daemon relies on."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from edgert.service.install import UNIT_PATH, install

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None,
    reason="systemd-analyze is not installed (Debian: apt-get install systemd); .ci/run installs it when it can",
)
MAX_EXPOSURE = 3.0
EXPOSURE_LINE = re.compile(r"Overall exposure level for (\S+): (\d+(?:\.\d+)?)")


@pytest.fixture
def installed_unit(tmp_path) -> Path:
    """edgert.service as `install` lays it down, with ExecStart= pointing at a real stub executable."""
    stub = tmp_path / "opt" / "bin" / "edgert"
    stub.parent.mkdir(parents=True)
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    install(tmp_path / "root", executable=str(stub))
    return tmp_path / "root" / UNIT_PATH


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SYSTEMD_ANALYZE, *args], check=False, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_LOG_COLOR": "0", "LC_ALL": "C"})


def _verify_problems(unit: Path) -> list[str]:
    """What `systemd-analyze verify` says about this unit (lines about other, host units are ignored)."""
    result = _run("verify", "--man=no", str(unit))
    lines = (result.stdout + result.stderr).splitlines()
    ours = [line for line in lines if unit.name in line or str(unit) in line]
    if result.returncode != 0:
        ours.append(f"exit status {result.returncode}: {lines}")
    return ours


def _exposure(unit: Path) -> float:
    result = _run("security", "--offline=true", "--no-pager", str(unit))
    match = EXPOSURE_LINE.search(result.stdout + result.stderr)
    assert match, f"no exposure line in systemd-analyze security output:\n{result.stdout}{result.stderr}"
    assert match.group(1) == unit.name
    return float(match.group(2))


def _settings(unit: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_systemd_analyze_verify_accepts_the_installed_unit(installed_unit):
    assert _verify_problems(installed_unit) == []


def test_verify_check_reports_a_broken_unit(installed_unit, tmp_path):
    # The check above must be able to fail: an unknown key and a missing binary are both reported.
    broken = tmp_path / "edgert.service"
    text = installed_unit.read_text().replace("WatchdogSec=30", "WatchdogSecs=30")
    broken.write_text(re.sub(r"^ExecStart=\S+", "ExecStart=/nonexistent/edgert", text, flags=re.MULTILINE))
    problems = " ".join(_verify_problems(broken))
    assert "WatchdogSecs" in problems and "/nonexistent/edgert" in problems


def test_exposure_is_at_most_3(installed_unit):
    exposure = _exposure(installed_unit)
    print(f"systemd-analyze security exposure of edgert.service: {exposure}")
    assert exposure <= MAX_EXPOSURE


def test_exposure_parser_sees_an_unhardened_unit(installed_unit, tmp_path):
    settings = _settings(installed_unit)
    bare = tmp_path / "edgert.service"
    bare.write_text(f"[Service]\nType=notify\nExecStart={settings['ExecStart'][0]}\n")
    assert _exposure(bare) > MAX_EXPOSURE


def test_unit_has_the_settings_the_daemon_relies_on(installed_unit):
    settings = _settings(installed_unit)
    assert settings["Type"] == ["notify"] and settings["NotifyAccess"] == ["main"]
    assert settings["WatchdogSec"] == ["30"]
    assert settings["Restart"] == ["on-failure"] and "StartLimitBurst" in settings
    assert settings["ExecReload"] == ["/bin/kill -HUP $MAINPID"]  # systemd 252: no Type=notify-reload
    assert settings["ExecStart"][0].endswith(" run --config /etc/edgert/edgert.yaml")
    assert settings["User"] == ["edgert"] and settings["Group"] == ["edgert"]
    assert settings["ConfigurationDirectory"] == ["edgert"] and settings["StateDirectory"] == ["edgert"]
    assert settings["DevicePolicy"] == ["closed"]
    assert "PrivateDevices" not in settings  # would hide every accelerator
    allowed = {entry.split()[0] for entry in settings["DeviceAllow"]}
    for name in ("hailo", "apex", "usb_device", "gpiochip", "video4linux", "media", "dma_heap", "drm"):
        assert f"char-{name}" in allowed
    groups = settings["SupplementaryGroups"][0].split()
    assert {"video", "render", "gpio", "plugdev", "apex"} <= set(groups)
