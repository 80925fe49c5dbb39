"""The on-device model store: install with canary, activate, rollback, prune, refusals, kill -9 at every step.

Bundles are real (tests/bundle_factory.py): the sklearn-digits int8 classifier, a golden set computed
by running it on the CPU, manifests signed with real Ed25519 keys. Canaries run in real child processes, and the
kill -9 tests SIGKILL a real installing process (tests/store_killer.py) at each named step.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from bundle_factory import DIGITS_MODEL, cpu_top1, make_bundle, make_keys

import edgert
from edgert.bundles.links import read_link, switch_link
from edgert.bundles.store import ModelStore, StoreConfig, file_problems
from edgert.bundles.targets import choose_variant
from edgert.cli.model import register
from edgert.core.errors import BundleError
from edgert.core.hardware import Hardware

KILLER = Path(__file__).parent / "store_killer.py"
# Children import the edgert these tests import (the installed one in CI, the checkout in a dev venv).
EDGERT_PATH = str(Path(edgert.__file__).resolve().parent.parent)
VERSIONS = {"0.9.0": "dir", "1.0.0": "tar", "2.0.0": "dir"}


# -- real bundles (tests/bundle_factory.py: the digits int8 classifier, golden set computed on the CPU) -----

def signed_bundle(folder: Path, keys: dict, version: str, **kwargs) -> Path:
    """A bundle signed by the trusted vendor key (a fresh sub-folder of `folder` each time)."""
    kwargs.setdefault("private_key", keys["key"])
    sub = folder / f"b-{os.urandom(4).hex()}"
    return make_bundle(sub, version=version, trusted=keys["trusted"], **kwargs).bundle


def tree_state(root: Path) -> dict:
    """Every entry below `root`: type, mode, link target or content hash (what "unchanged" means)."""
    state = {}
    for here, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(here) / name
            st = os.lstat(path)
            rel = path.relative_to(root).as_posix()
            if stat.S_ISLNK(st.st_mode):
                state[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                state[rel] = ("dir", st.st_mode)
            else:
                state[rel] = ("file", st.st_mode, hashlib.sha256(path.read_bytes()).hexdigest())
    return state


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """The vendor's private key and a trusted dir holding its public key; a rogue key nobody trusts."""
    key, _, trusted = make_keys(tmp_path_factory.mktemp("vendor"), "vendor")
    rogue, _, _ = make_keys(tmp_path_factory.mktemp("rogue"), "rogue")
    return {"key": key, "trusted": trusted, "rogue": rogue}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, keys):
    out = tmp_path_factory.mktemp("bundles")
    return {v: signed_bundle(out, keys, v, form=form) for v, form in VERSIONS.items()}


@pytest.fixture
def store(tmp_path, keys):
    return ModelStore(tmp_path / "state" / "models", keys["trusted"], keep=3, min_free_mb=0)


@pytest.fixture(scope="module")
def base_store(tmp_path_factory, keys, bundles):
    """A store with 0.9.0 (previous) and 1.0.0 (current), copied by tests that break it."""
    root = tmp_path_factory.mktemp("base") / "models"
    s = ModelStore(root, keys["trusted"], keep=2, min_free_mb=0)
    s.install(bundles["0.9.0"])
    s.install(bundles["1.0.0"])
    return root


def copy_store(base: Path, dest: Path) -> Path:
    shutil.copytree(base, dest, symlinks=True)
    return dest


def assert_complete(store: ModelStore, name: str = "digits") -> str:
    """`current` resolves to a version whose every file matches its manifest; returns that version."""
    current = store.current(name)
    assert current is not None, f"current of {name} is missing or dangling"
    assert file_problems(current.path, current.manifest) == []
    for link in ("current", "previous"):
        target = read_link(store.root / name / link)
        assert target is None or (store.root / name / target / "manifest.json").is_file(), f"{link} dangles"
    return current.version


# -- links and targets ------------------------------------------------------------------------------

def test_switch_link_replaces_atomically_and_leaves_no_temporary(tmp_path):
    (tmp_path / "1.0.0").mkdir()
    (tmp_path / "2.0.0").mkdir()
    switch_link(tmp_path / "current", "1.0.0")
    switch_link(tmp_path / "current", "2.0.0")
    assert read_link(tmp_path / "current") == "2.0.0"
    assert (tmp_path / "current").resolve() == (tmp_path / "2.0.0").resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.0.0", "2.0.0", "current"]
    assert read_link(tmp_path / "missing") is None


def test_target_check_names_the_bundle_targets_and_what_this_device_runs(bundles):
    from edgert.backends.chooser import usable
    from edgert.bundles.manifest import Variant

    variants = [Variant(backend="hailo", file="m.hef", arch="hailo8"),
                Variant(backend="rknn", file="m.rknn", arch="rk3588")]
    plain = Hardware(board="x86_64")
    with pytest.raises(BundleError) as err:
        choose_variant(variants, hardware=plain)
    runs_here = "cpu, onnx" if "onnx" in usable("auto", plain) else "cpu"  # onnx: where onnxruntime is installed
    assert str(err.value) == f"bundle has variants for hailo (hailo8), rknn (rk3588); this device can run: {runs_here}"
    cpu = Variant(backend="cpu", file="m.tflite")
    assert choose_variant(variants + [cpu], hardware=plain) is cpu
    with pytest.raises(BundleError, match="with backend cpu"):
        choose_variant(variants, backend="cpu", hardware=plain)


def test_rknn_variant_chosen_only_for_its_soc(fake_rknn):
    from edgert.bundles.manifest import Variant

    rk3588 = Hardware(board="Radxa ROCK 5B", soc=("radxa,rock-5b", "rockchip,rk3588"),
                      rknpu=("device-tree: rockchip,rk3588",))
    rk3566 = Hardware(board="Quartz64", soc=("rockchip,rk3566",), rknpu=("device-tree: rockchip,rk3566",))
    rknn = Variant(backend="rknn", file="m.rknn", arch="rk3588")
    cpu = Variant(backend="cpu", file="m.tflite")
    assert choose_variant([cpu, rknn], hardware=rk3588) is rknn  # the NPU outranks the CPU
    assert choose_variant([cpu, rknn], hardware=rk3566) is cpu
    with pytest.raises(BundleError, match=r"this device can run: rknn \(rk3566\), cpu"):
        choose_variant([rknn], hardware=rk3566)


# -- install, activate, rollback, remove, prune ----------------------------------------------------

def test_install_activate_rollback_and_prune(tmp_path, keys, bundles):
    store = ModelStore(tmp_path / "models", keys["trusted"], keep=2, min_free_mb=0)
    v1 = store.install(bundles["0.9.0"])
    assert v1.path == tmp_path / "models" / "digits" / "0.9.0"
    assert store.last_canary.backend == "cpu" and store.last_canary.frames == 24
    assert store.last_canary.agreement == 1.0
    assert assert_complete(store) == "0.9.0" and store.previous("digits") is None
    variant, model_file = store.current("digits").choose_variant()
    assert variant.backend == "cpu" and model_file.read_bytes() == DIGITS_MODEL.read_bytes()

    store.install(bundles["1.0.0"])
    assert assert_complete(store) == "1.0.0" and store.previous("digits").version == "0.9.0"
    assert store.rollback("digits").version == "0.9.0"
    assert store.current("digits").version == "0.9.0" and store.previous("digits").version == "1.0.0"
    assert store.activate("digits", "1.0.0").version == "1.0.0"
    assert store.previous("digits").version == "0.9.0"

    store.install(bundles["2.0.0"])  # keep=2: 0.9.0 is neither current nor previous, so it goes
    assert [v.version for v in store.versions("digits")] == ["1.0.0", "2.0.0"]
    assert (store.current("digits").version, store.previous("digits").version) == ("2.0.0", "1.0.0")
    assert store.names() == ["digits"]
    assert not (store.root / ".staging").exists()
    assert store.recover() == []  # nothing to clean after clean installs


def test_tar_bundle_installs_without_activating(store, keys, tmp_path):
    bundle = signed_bundle(tmp_path, keys, "3.1.0", form="tar.gz")
    installed = store.install(bundle, activate=False)
    assert installed.version == "3.1.0" and store.current("digits") is None
    assert file_problems(installed.path, installed.manifest) == []
    assert store.activate("digits", "3.1.0").version == "3.1.0"
    assert_complete(store)


def test_bundle_without_golden_set_is_loaded_and_run_once(store, keys, tmp_path):
    installed = store.install(signed_bundle(tmp_path, keys, "4.0.0", golden=False))
    assert installed.manifest.golden is None and store.current("digits").version == "4.0.0"
    report = store.last_canary
    assert (report.frames, report.required, report.backend) == (0, None, "cpu") and report.p50_ms > 0


def test_reinstall_of_the_same_version_is_a_no_op_and_different_contents_are_refused(store, keys, bundles,
                                                                                      tmp_path):
    store.install(bundles["1.0.0"])
    before = tree_state(store.root)
    assert store.install(bundles["1.0.0"]).version == "1.0.0"
    assert tree_state(store.root) == before
    other = signed_bundle(tmp_path, keys, "1.0.0", template={"decoder": {"top_k": 3}})
    with pytest.raises(BundleError, match="same version, different content"):
        store.install(other)
    assert tree_state(store.root) == before


def test_remove_and_rollback_refusals(store, bundles):
    with pytest.raises(BundleError, match="no previous version"):
        store.rollback("digits")
    store.install(bundles["0.9.0"])
    store.install(bundles["1.0.0"])
    with pytest.raises(BundleError, match="is the current version"):
        store.remove("digits", "1.0.0")
    with pytest.raises(BundleError, match="not installed"):
        store.remove("digits", "5.0.0")
    with pytest.raises(BundleError, match="not a valid"):
        store.activate("digits", "../../etc")
    store.remove("digits", "0.9.0")  # the previous version: its link goes with it
    assert store.previous("digits") is None and [v.version for v in store.versions("digits")] == ["1.0.0"]
    with pytest.raises(BundleError, match="no previous version"):
        store.rollback("digits")
    assert_complete(store)


# -- refusals: one line, store unchanged -------------------------------------------------------------

def _truncated_model() -> bytes:
    data = DIGITS_MODEL.read_bytes()
    return data[: len(data) // 2]


BAD = {
    "unsigned": lambda out, k: signed_bundle(out, k, "2.0.0", signed=False),
    "untrusted key": lambda out, k: signed_bundle(out, k, "2.0.0", private_key=k["rogue"]),
    "file changed after signing": lambda out, k: _tamper(signed_bundle(out, k, "2.0.0")),
    "target this device lacks": lambda out, k: signed_bundle(
        out, k, "2.0.0", variants=[{"backend": "hailo", "file": "model/digits.hef", "arch": "hailo8"},
                                   {"backend": "rknn", "file": "model/digits.rknn", "arch": "rk3588"}],
        extra_files={"model/digits.hef": b"HEF", "model/digits.rknn": b"RKNN"}),
    "model that fails to load": lambda out, k: signed_bundle(out, k, "2.0.0", model_bytes=_truncated_model()),
    "golden set disagreement": lambda out, k: signed_bundle(out, k, "2.0.0", agreement=0.9,
                                                            expected=((cpu_top1() + 1) % 10).tolist()),
    "over latency budget": lambda out, k: signed_bundle(out, k, "2.0.0", latency_budget_ms=1e-9),
}
EXPECTED = {
    "unsigned": "the bundle is not signed",
    "untrusted key": "not signed by a trusted key",
    "file changed after signing": "does not match its sha256",
    "target this device lacks": "variants for hailo (hailo8), rknn (rk3588); this device can run: cpu",
    "model that fails to load": "canary: digits_int8.tflite on cpu failed: ModelError",
    "golden set disagreement": "agrees with the golden set on 0/24 images (0.000), below the required 0.900",
    "over latency budget": "over the budget of 1e-09 ms",
}


def _tamper(bundle: Path) -> Path:
    model = bundle / "model" / "digits_int8.tflite"
    data = bytearray(model.read_bytes())
    data[-100] ^= 0xFF
    model.write_bytes(bytes(data))
    return bundle


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_bundle_is_refused_with_one_line_and_the_store_unchanged(case, tmp_path, keys, base_store):
    store = ModelStore(copy_store(base_store, tmp_path / "models"), keys["trusted"], keep=2, min_free_mb=0)
    before = tree_state(store.root)
    bundle = BAD[case](tmp_path, keys)
    with pytest.raises(BundleError) as err:
        store.install(bundle)
    message = str(err.value)
    assert EXPECTED[case] in message and "\n" not in message
    assert tree_state(store.root) == before
    assert assert_complete(store) == "1.0.0"


def test_disk_too_full_to_stage_is_refused_before_unpacking(tmp_path, keys, base_store):
    store = ModelStore(copy_store(base_store, tmp_path / "models"), keys["trusted"], keep=2,
                       min_free_mb=10 * 2**20)  # 10 TB must stay free
    before = tree_state(store.root)
    with pytest.raises(BundleError, match=r"not enough free space in .*10485760.0 MB must stay free"):
        store.install(signed_bundle(tmp_path, keys, "2.0.0"))
    assert tree_state(store.root) == before


def test_disk_too_full_on_a_real_small_filesystem(tmp_path, keys, bundles):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where = tmp_path / "small"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")
    try:
        store = ModelStore(where / "models", keys["trusted"], min_free_mb=0)
        store.install(bundles["1.0.0"])
        before = tree_state(store.root)
        big = signed_bundle(tmp_path, keys, "2.0.0", extra_files={"extra.bin": os.urandom(2 * 2**20)})
        with pytest.raises(BundleError, match=r"unpacks to 2\.\d MB, 0\.0 MB must stay free, 0\.\d MB available"):
            store.install(big)
        assert tree_state(store.root) == before and assert_complete(store) == "1.0.0"
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_canary_crash_and_timeout_do_not_touch_the_caller_or_the_store(tmp_path, keys, base_store, monkeypatch):
    store = ModelStore(copy_store(base_store, tmp_path / "models"), keys["trusted"], keep=2, min_free_mb=0)
    before = tree_state(store.root)
    bundle = signed_bundle(tmp_path, keys, "2.0.0")
    monkeypatch.setenv("EDGERT_STORE_CRASH_AT", "canary_loaded")  # the child SIGKILLs itself after loading
    with pytest.raises(BundleError, match=r"checking digits_int8.tflite on cpu crashed the child process \(SIGKILL"):
        store.install(bundle)
    monkeypatch.delenv("EDGERT_STORE_CRASH_AT")
    assert tree_state(store.root) == before
    store.canary_timeout_s = 0.01  # not even enough to start Python
    with pytest.raises(BundleError, match="gave no verdict within 0.01 s"):
        store.install(bundle)
    assert tree_state(store.root) == before
    store.canary_timeout_s = 60
    assert store.install(bundle).version == "2.0.0"


# -- kill -9 at every step ----------------------------------------------------------------------------

#: Step -> the version that must be current after a SIGKILL there.
KILL_STEPS = {"staged": "1.0.0", "extracted": "1.0.0", "canary_passed": "1.0.0", "moved": "1.0.0",
              "previous_linked": "1.0.0", "current_linked": "2.0.0", "pruning": "2.0.0", "pruned": "2.0.0"}


@pytest.mark.parametrize("step", list(KILL_STEPS))
def test_kill_9_at_each_step_leaves_a_complete_version_and_recovers(step, tmp_path, keys, bundles, base_store):
    root = copy_store(base_store, tmp_path / "models")
    env = {**os.environ, "PYTHONPATH": EDGERT_PATH, "EDGERT_STORE_CRASH_AT": step}
    done = subprocess.run([sys.executable, str(KILLER), str(root), str(keys["trusted"]), str(bundles["2.0.0"]), "2"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == -9, f"the install was not killed at {step}: {done.stdout} {done.stderr}"

    store = ModelStore(root, keys["trusted"], keep=2, min_free_mb=0)
    assert assert_complete(store) == KILL_STEPS[step]
    cleaned = store.recover()
    assert bool(cleaned) == (step not in ("previous_linked", "current_linked", "pruned"))
    assert not (root / ".staging").exists()
    assert not [p for p in (root / "digits").iterdir() if p.name.startswith(".")]
    assert assert_complete(store) == KILL_STEPS[step]

    installed = store.install(bundles["2.0.0"])  # the retry completes the install
    assert installed.version == "2.0.0" and assert_complete(store) == "2.0.0"
    assert store.previous("digits").version == "1.0.0"
    assert [v.version for v in store.versions("digits")] == ["1.0.0", "2.0.0"]
    assert file_problems(installed.path, installed.manifest) == []


def test_recover_repairs_leftovers_by_hand(tmp_path, keys, base_store):
    root = copy_store(base_store, tmp_path / "models")
    (root / ".staging" / "install-dead" / "digits-3.0.0").mkdir(parents=True)  # an unfinished extraction
    (root / "digits" / "3.0.0").mkdir()  # a version directory without a manifest
    os.symlink("1.0.0", root / "digits" / ".tmp-current-dead")  # a switch cut short before its rename
    (root / "digits" / "current").unlink()
    os.symlink("7.7.7", root / "digits" / "current")  # dangling
    store = ModelStore(root, keys["trusted"])
    assert store.current("digits") is None
    cleaned = store.recover()
    assert len(cleaned) == 5, cleaned
    assert assert_complete(store) == "0.9.0"  # the dangling current fell back to previous
    assert sorted(p.name for p in (root / "digits").iterdir()) == ["0.9.0", "1.0.0", "current", "previous"]
    assert not (root / ".staging").exists()


# -- config and CLI -----------------------------------------------------------------------------------

def test_store_config_paths_and_refusal_of_unknown_keys(tmp_path):
    config = StoreConfig()
    assert config.root(tmp_path) == tmp_path / "models" and config.keep == 3
    assert StoreConfig(path=Path("/srv/models")).root(tmp_path) == Path("/srv/models")
    with pytest.raises(ValueError, match="extra"):
        StoreConfig(kept=2)


def _cli(*argv) -> int:
    parser = argparse.ArgumentParser(prog="edgert")
    model = parser.add_subparsers(dest="command").add_parser("model")
    register(model.add_subparsers(dest="model_command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_cli_install_list_activate_rollback_remove(tmp_path, keys, bundles, capsys):
    opts = ["--state-dir", str(tmp_path), "--trusted", str(keys["trusted"])]
    assert _cli("model", "install", str(bundles["0.9.0"]), *opts) == 0
    out = capsys.readouterr().out
    assert "digits 0.9.0: current" in out and "24/24 golden images agree" in out
    assert _cli("model", "install", str(bundles["1.0.0"]), "--no-activate", *opts) == 0
    assert "installed, not active" in capsys.readouterr().out
    assert _cli("model", "activate", "digits", "1.0.0", *opts) == 0
    assert capsys.readouterr().out == "digits: current is now 1.0.0\n"
    assert _cli("model", "list", *opts) == 0
    assert capsys.readouterr().out.splitlines() == [
        "digits", f"  {'1.0.0':<12} {'current':<9} {'classification':<15} cpu",
        f"  {'0.9.0':<12} {'previous':<9} {'classification':<15} cpu"]
    assert _cli("model", "list", "--json", *opts) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["models"][0]["current"] == "1.0.0" and listing["models"][0]["previous"] == "0.9.0"
    assert [v["variants"] for v in listing["models"][0]["versions"]] == ["cpu", "cpu"]
    assert _cli("model", "rollback", "digits", *opts) == 0
    assert "current is now 0.9.0" in capsys.readouterr().out
    with pytest.raises(BundleError, match="current version"):
        _cli("model", "remove", "digits", "0.9.0", *opts)
    assert _cli("model", "remove", "digits", "1.0.0", *opts) == 0
    store = ModelStore(tmp_path / "models", keys["trusted"])
    assert [v.version for v in store.versions("digits")] == ["0.9.0"]


def test_cli_takes_the_state_dir_from_the_kiosk_config(tmp_path, keys, bundles, capsys):
    example = (Path(edgert.__file__).parent / "examples" / "kiosk.yaml").read_text()
    config = tmp_path / "edgert.yaml"
    config.write_text(example.replace("state_dir: /var/lib/edgert", f"state_dir: {tmp_path / 'state'}"))
    assert _cli("model", "install", str(bundles["0.9.0"]), "--config", str(config), "--trusted",
                str(keys["trusted"])) == 0
    assert (tmp_path / "state" / "models" / "digits" / "current").is_symlink()
    capsys.readouterr()
    assert _cli("model", "list", "--config", str(config)) == 0
    assert capsys.readouterr().out.splitlines()[0] == "digits"


# -- issue 15: paths, permissions, reinstalls, recovery, racing installs -------------------------------

def test_cli_install_with_a_relative_state_dir_and_bundle(tmp_path, keys, bundles, capsys, monkeypatch):
    shutil.copytree(bundles["0.9.0"], tmp_path / "b")
    monkeypatch.chdir(tmp_path)  # the canary child runs elsewhere: relative paths must be resolved first
    assert _cli("model", "install", "b", "--state-dir", "state", "--trusted", str(keys["trusted"])) == 0
    assert "digits 0.9.0: current" in capsys.readouterr().out
    assert assert_complete(ModelStore(tmp_path / "state" / "models", keys["trusted"])) == "0.9.0"


def test_store_dir_the_user_cannot_create_is_one_line_naming_it(tmp_path, keys, bundles, monkeypatch):
    locked = tmp_path / "var-lib"
    locked.mkdir(mode=0o555)
    if os.geteuid() == 0:  # root may write anywhere: make mkdir fail as it does for a user without the right
        real_mkdir = Path.mkdir

        def mkdir(self, *args, **kwargs):
            if self.is_relative_to(locked):
                raise PermissionError(13, "Permission denied", str(locked / "edgert"))
            return real_mkdir(self, *args, **kwargs)

        monkeypatch.setattr(Path, "mkdir", mkdir)
    opts = ["--state-dir", str(locked / "edgert"), "--trusted", str(keys["trusted"])]
    with pytest.raises(BundleError) as err:
        _cli("model", "install", str(bundles["0.9.0"]), *opts)
    message = str(err.value)
    assert "\n" not in message and str(locked / "edgert") in message and "--state-dir" in message, message
    assert "permission denied" in message.lower()


def test_reinstall_verifies_the_payload_identical_or_same_version_different_content(tmp_path, keys, bundles,
                                                                                    capsys):
    opts = ["--state-dir", str(tmp_path / "state"), "--trusted", str(keys["trusted"])]
    assert _cli("model", "install", str(bundles["1.0.0"]), *opts) == 0
    capsys.readouterr()
    store = ModelStore(tmp_path / "state" / "models", keys["trusted"])
    before = tree_state(store.root)
    assert _cli("model", "install", str(bundles["1.0.0"]), *opts) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("digits 1.0.0: already installed, identical")
    tampered = _tamper(signed_bundle(tmp_path, keys, "1.0.0"))  # same signed manifest, another payload
    with pytest.raises(BundleError, match=r"digits 1\.0\.0: same version, different content .*sha256"):
        _cli("model", "install", str(tampered), *opts)
    assert tree_state(store.root) == before


@pytest.mark.parametrize("command", ["list", "activate", "rollback", "install"])
def test_every_store_command_cleans_what_a_killed_install_left(command, tmp_path, keys, bundles, base_store):
    root = copy_store(base_store, tmp_path / "state" / "models")
    env = {**os.environ, "PYTHONPATH": EDGERT_PATH, "EDGERT_STORE_CRASH_AT": "extracted"}
    done = subprocess.run([sys.executable, str(KILLER), str(root), str(keys["trusted"]), str(bundles["2.0.0"]), "2"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == -9, done.stderr
    assert list((root / ".staging").iterdir()), "the kill left nothing to clean: the test proves nothing"
    opts = ["--state-dir", str(tmp_path / "state"), "--trusted", str(keys["trusted"])]
    argv = {"list": ["list"], "activate": ["activate", "digits", "1.0.0"], "rollback": ["rollback", "digits"],
            "install": ["install", str(bundles["1.0.0"])]}[command]
    assert _cli("model", *argv, *opts) == 0
    assert not (root / ".staging").exists()


def _paused_install(store: ModelStore, bundle: Path, results: dict, key: str, **kwargs):
    try:
        results[key] = store.install(bundle, **kwargs).version
    except BundleError as exc:
        results[key] = exc


@pytest.mark.parametrize("first", ["older", "newer"])
def test_racing_installs_never_leave_the_older_version_current(first, tmp_path, keys, bundles, monkeypatch):
    """Two installs in two threads, each with its own store object (as two processes): the first holds
    the store lock, paused after its canary, while the second is started; the second can only run after."""
    import threading

    from edgert.bundles import store as store_module

    root = tmp_path / "models"
    holding, release = threading.Event(), threading.Event()
    first_thread = {}

    def pause(step):
        if step == "canary_passed" and threading.current_thread() is first_thread.get("t"):
            holding.set()
            assert release.wait(120)

    monkeypatch.setattr(store_module, "_crash_point", pause)
    version = {"older": "1.0.0", "newer": "2.0.0"}
    second = "newer" if first == "older" else "older"
    results: dict = {}
    stores = {k: ModelStore(root, keys["trusted"], keep=3, min_free_mb=0) for k in version}
    t1 = threading.Thread(target=_paused_install, args=(stores[first], bundles[version[first]], results, first))
    t2 = threading.Thread(target=_paused_install, args=(stores[second], bundles[version[second]], results, second))
    first_thread["t"] = t1
    t1.start()
    assert holding.wait(120), f"first install never reached its canary: {results}"
    t2.start()
    release.set()
    t1.join(120)
    t2.join(120)
    store = ModelStore(root, keys["trusted"])
    assert assert_complete(store) == "2.0.0", results
    assert results["newer"] == "2.0.0"
    if first == "newer":  # the older one came second: refused, the store says why
        assert isinstance(results["older"], BundleError) and "older than the current 2.0.0" in str(results["older"])
        assert "--allow-downgrade" in str(results["older"])
        assert [v.version for v in store.versions("digits")] == ["2.0.0"]
    else:
        assert results["older"] == "1.0.0" and store.previous("digits").version == "1.0.0"


def test_downgrade_needs_allow_downgrade_or_no_activate(tmp_path, keys, bundles, capsys):
    opts = ["--state-dir", str(tmp_path), "--trusted", str(keys["trusted"])]
    assert _cli("model", "install", str(bundles["2.0.0"]), *opts) == 0
    with pytest.raises(BundleError, match=r"digits 1\.0\.0 is older than the current 2\.0\.0"):
        _cli("model", "install", str(bundles["1.0.0"]), *opts)
    assert _cli("model", "install", str(bundles["1.0.0"]), "--no-activate", *opts) == 0
    assert _cli("model", "install", str(bundles["0.9.0"]), "--allow-downgrade", *opts) == 0
    store = ModelStore(tmp_path / "models", keys["trusted"])
    assert store.current("digits").version == "0.9.0" and store.previous("digits").version == "2.0.0"
