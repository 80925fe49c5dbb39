"""`edgert.service.install.install` into temporary roots: what it lays down, what it never touches, atomic and
idempotent writes, and its errors."""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgert.core.errors import ConfigError
from edgert.core.shipped import known_boards, shipped_folder
from edgert.service import install as installer
from edgert.service.install import (
    CONFIG_PATH,
    NOTES_DIR,
    STATE_DIR,
    SYSUSERS_PATH,
    TRUSTED_KEYS_DIR,
    UDEV_DIR,
    UNIT_PATH,
    install,
)

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = b"# example kiosk config\nsource: {kind: synthetic}\n"


@pytest.fixture
def example_config(monkeypatch):
    """A known example config, whether or not edgert/examples/kiosk.yaml exists yet."""
    monkeypatch.setattr(installer, "_example_config", lambda: EXAMPLE)
    return EXAMPLE


def _shipped_rules() -> set[str]:
    return {entry.name for entry in shipped_folder("firmware-config").joinpath("udev").iterdir()
            if entry.name.endswith(".rules")}


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_lays_down_unit_rules_sysusers_config_notes_and_state_dir(tmp_path, example_config):
    written = install(tmp_path)
    unit = (tmp_path / UNIT_PATH).read_text()
    assert "\nExecStart=/usr/local/bin/edgert run --config /etc/edgert/edgert.yaml\n" in unit
    assert "\nUser=edgert\n" in unit and "\nGroup=edgert\n" in unit
    assert (tmp_path / SYSUSERS_PATH).read_text().count("\nu edgert ") == 1
    assert {p.name for p in (tmp_path / UDEV_DIR).iterdir()} == _shipped_rules() != set()
    assert (tmp_path / CONFIG_PATH).read_bytes() == example_config
    notes = tmp_path / NOTES_DIR
    assert {p.name for p in notes.iterdir() if p.is_dir()} == set(known_boards()) >= {"rpi5", "rock5b"}
    assert (notes / "rpi5" / "config.txt").read_bytes() == (REPO / "firmware-config/rpi5/config.txt").read_bytes()
    state = tmp_path / STATE_DIR
    assert state.is_dir() and state.stat().st_mode & 0o7 == 0
    keys = tmp_path / TRUSTED_KEYS_DIR
    assert keys.is_dir() and not any(keys.iterdir())  # where signers' public keys go
    assert set(written) == {p for p in tmp_path.rglob("*") if p.is_file()} | {state, keys}
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in written if p.is_file())


def test_second_run_writes_nothing_and_keeps_files(tmp_path, example_config):
    install(tmp_path)
    before = {p: p.stat().st_ino for p in tmp_path.rglob("*")}
    assert install(tmp_path) == []
    assert install(tmp_path, force=True) == []
    assert {p: p.stat().st_ino for p in tmp_path.rglob("*")} == before


def test_existing_config_is_never_overwritten_even_with_force(tmp_path, example_config):
    config = tmp_path / CONFIG_PATH
    config.parent.mkdir(parents=True)
    config.write_bytes(b"mine: true\n")
    written = install(tmp_path, force=True)
    assert config.read_bytes() == b"mine: true\n"
    assert config not in written


def test_missing_example_config_is_skipped_with_a_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(installer, "_example_config", lambda: None)
    with caplog.at_level(logging.WARNING, logger="edgert.service.install"):
        written = install(tmp_path)
    assert not (tmp_path / CONFIG_PATH).exists()
    assert "kiosk.yaml" in caplog.text
    assert tmp_path / UNIT_PATH in written


def test_changed_managed_file_needs_force_and_nothing_is_written_without_it(tmp_path, example_config):
    install(tmp_path)
    unit = tmp_path / UNIT_PATH
    unit.write_text(unit.read_text() + "\n# local edit\n")
    rule = next((tmp_path / UDEV_DIR).iterdir())
    rule.unlink()
    with pytest.raises(ConfigError, match="edgert.service.*force"):
        install(tmp_path)
    assert unit.read_text().endswith("# local edit\n")
    assert not rule.exists()  # the refusal came before any write
    inode = unit.stat().st_ino
    written = install(tmp_path, force=True)
    assert set(written) == {unit, rule}
    assert "# local edit" not in unit.read_text()
    assert unit.stat().st_ino != inode  # replaced by a rename, not rewritten in place


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, example_config, monkeypatch):
    install(tmp_path)
    unit = tmp_path / UNIT_PATH
    unit.write_text("old unit\n")

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(installer.os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space"):
        install(tmp_path, force=True)
    assert unit.read_text() == "old unit\n"
    assert [p.name for p in unit.parent.iterdir()] == ["edgert.service"]


def test_config_appearing_meanwhile_is_not_clobbered(tmp_path, example_config, monkeypatch):
    # Another writer creates the config between the check and the write: os.link refuses, edgert keeps it.
    real_link = os.link

    def racing_link(src, dst):
        Path(dst).write_bytes(b"theirs\n")
        return real_link(src, dst)

    monkeypatch.setattr(installer.os, "link", racing_link)
    written = install(tmp_path)
    assert (tmp_path / CONFIG_PATH).read_bytes() == b"theirs\n"
    assert tmp_path / CONFIG_PATH not in written
    assert not [p for p in (tmp_path / CONFIG_PATH).parent.iterdir() if p.name.endswith(".tmp")]


def test_board_selects_its_notes(tmp_path, example_config):
    install(tmp_path, board="rpi5")
    notes = tmp_path / NOTES_DIR
    assert {p.name for p in notes.iterdir()} == {"README.md", "rpi5"}
    assert (notes / "rpi5" / "pins.yaml").is_file()


def test_unknown_board_lists_the_known_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown board 'rpi4'; known boards: rock5b, rpi5"):
        install(tmp_path, board="rpi4")
    assert not any(tmp_path.iterdir())


def test_user_is_filled_in_and_checked(tmp_path, example_config):
    install(tmp_path, user="kiosk")
    unit = (tmp_path / UNIT_PATH).read_text()
    assert "\nUser=kiosk\n" in unit and "\nGroup=kiosk\n" in unit and "User=edgert" not in unit
    assert "\nu kiosk " in (tmp_path / SYSUSERS_PATH).read_text()
    for bad in ("Kiosk", "0day", "kiosk user", "a" * 40, ""):
        with pytest.raises(ConfigError, match="user"):
            install(tmp_path / "other", user=bad)


@pytest.mark.parametrize("path", ["edgert", "/opt/my venv/bin/edgert", "/opt/%i/edgert", "/home/pi/venv/bin/edgert",
                                  "/root/.local/bin/edgert"])
def test_bad_executables_are_refused(tmp_path, path):
    with pytest.raises(ConfigError, match="executable"):
        install(tmp_path, executable=path)


def test_on_the_device_the_edgert_beside_python_is_used(tmp_path, monkeypatch):
    venv_bin = tmp_path / "opt" / "edgert" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "edgert").write_text("#!/bin/sh\n")
    (venv_bin / "edgert").chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python3"))
    assert installer._resolve_executable(Path("/"), None) == str(venv_bin / "edgert")
    # Building an image elsewhere: the build machine's venv means nothing on the target.
    assert installer._resolve_executable(tmp_path, None) == installer.DEFAULT_EXECUTABLE


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="systemd-sysusers is not installed")
def test_sysusers_file_creates_the_account_and_groups(tmp_path, example_config):
    install(tmp_path)
    result = subprocess.run(["systemd-sysusers", f"--root={tmp_path}"], check=False, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    passwd = (tmp_path / "etc/passwd").read_text()
    groups = {line.split(":")[0] for line in (tmp_path / "etc/group").read_text().splitlines()}
    assert any(line.startswith("edgert:") and ":/var/lib/edgert:" in line for line in passwd.splitlines())
    assert {"edgert", "video", "render", "gpio", "plugdev", "apex"} <= groups


def test_wheel_build_ships_the_service_files(tmp_path):
    pytest.importorskip("Cython")
    result = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "-d", str(tmp_path)], cwd=REPO,
                            check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for folder in ("systemd", "firmware-config"):
        built = tmp_path / "edgert" / "_files" / folder
        assert _tree(built) == _tree(REPO / folder) != {}


def test_install_command_lays_a_root_and_says_what_next(tmp_path, capsys):
    from edgert.cli.main import main

    assert main(["install", "--root", str(tmp_path), "--board", "rpi5"]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "edgert.service" in out and "next:" in out
    assert (tmp_path / "etc/edgert/edgert.yaml").is_file()
    assert main(["install", "--root", str(tmp_path), "--board", "rpi5"]) == 0
    assert "already up to date" in capsys.readouterr().out
    assert main(["install", "--root", str(tmp_path), "--board", "pi9"]) == 2
    assert "unknown board 'pi9'" in capsys.readouterr().err
