"""The kiosk config: validation messages (file, line, key path, expectation) and `edgert config check`."""
from __future__ import annotations

import textwrap
from importlib import resources

import pytest

from edgert.cli.main import main
from edgert.core.config_file import load_file, parse_text
from edgert.core.errors import ConfigError
from edgert.service.config import file_model

KioskFile = file_model("kiosk")  # a whole config file: the kiosk's sections and the service's

GOOD = (resources.files("edgert") / "examples" / "demo.yaml").read_text()


def replace(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_text(text, KioskFile, "edgert.yaml")
    message = str(info.value)
    assert "\n" not in message
    return message


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_shipped_examples_validate():
    for name in ("demo.yaml", "kiosk.yaml"):
        config = parse_text((resources.files("edgert") / "examples" / name).read_text(), KioskFile, name)
        assert config.policy.bins["bottle"] == "plastic"


def test_malformed_yaml_names_the_line():
    bad = replace(GOOD, "  votes: 5", "  votes: [5")
    message = error_of(bad)
    assert message.startswith("edgert.yaml: line ") and "not valid YAML" in message


def test_unknown_key_names_path_and_line():
    bad = replace(GOOD, "  votes: 5", "  votes: 5\n  vots: 3")
    message = error_of(bad)
    assert f"line {line_of(bad, 'vots')}:" in message
    assert "policy.vots: unknown key" in message


def test_wrong_type_inside_a_list_names_the_element():
    bad = replace(GOOD, "pin: 23", "pin: twenty-three")
    message = error_of(bad)
    assert "actuators.devices[1].channels.paper.pin" in message and "twenty-three" in message
    assert f"line {line_of(bad, 'twenty-three')}:" in message


def test_key_given_twice_is_refused():
    bad = replace(GOOD, "  votes: 5", "  votes: 5\n  votes: 7")
    assert "key 'votes' given twice" in error_of(bad)


def test_missing_section_and_bad_kind():
    assert "policy: required key is missing" in error_of(GOOD[:GOOD.index("policy:")] + GOOD[GOOD.index("actuators:"):])
    message = error_of(replace(GOOD, "kind: conveyor", "kind: webcam"))
    assert "source" in message and "webcam" in message


def test_pin_used_twice_is_refused_with_both_users():
    bad = replace(GOOD, "pin: 23", "pin: 18")
    message = error_of(bad)
    assert "18" in message and "diverter" in message and "air-jet" in message


def test_beam_break_pin_shared_with_an_actuator_is_refused():
    bad = replace(GOOD, "  kind: frame_diff", "  kind: beam_break\n  pin: 23")
    message = error_of(bad)
    assert "presence.pin: pin 23 is also used by" in message and "air-jet" in message


def test_config_check_command(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    assert main(["config", "check", str(good)]) == 0
    assert "ok" in capsys.readouterr().out

    bad = tmp_path / "bad.yaml"
    bad.write_text(replace(GOOD, "can: metal", "can: metal, cardboard: paper"))
    assert main(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cardboard" in err and "not in the model" in err

    missing_model = tmp_path / "nomodel.yaml"
    missing_model.write_text(replace(GOOD, "builtin:conveyor", str(tmp_path / "gone.tflite")))
    assert main(["config", "check", str(missing_model)]) == 2
    assert "gone.tflite" in capsys.readouterr().err

    assert main(["config", "check", str(tmp_path / "absent.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_unreadable_config_file(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="binary.yaml"):
        load_file(path, KioskFile)


def test_top_level_must_be_a_mapping():
    assert "expected a mapping" in error_of(textwrap.dedent("- a\n- b\n"))


# -- issue 15: bins nothing serves, pins checked by type and against the board's header map ---------------

def test_bin_no_actuator_serves_is_refused_and_config_check_exits_2(tmp_path, capsys):
    message = error_of(replace(GOOD, "paper: paper", "paper: papr"))
    assert "policy.bins.paper: bin 'papr' has no actuator" in message and "actuators.no_actuator" in message
    bad = tmp_path / "bad.yaml"
    bad.write_text(replace(GOOD, "paper: paper", "paper: papr"))
    assert main(["config", "check", str(bad)]) == 2
    assert "bin 'papr' has no actuator" in capsys.readouterr().err


def test_reject_bin_needs_an_actuator_too():
    message = error_of(replace(GOOD, "reject_bin: reject", "reject_bin: rejects"))
    assert "policy.reject_bin: bin 'rejects' has no actuator" in message


def test_bin_without_actuator_on_purpose_is_said_explicitly():
    text = replace(GOOD, "reject_bin: reject", "reject_bin: belt-end")
    config = parse_text(replace(text, "  conveyor_delay_s:", "  no_actuator: [belt-end]\n  conveyor_delay_s:"),
                        KioskFile, "edgert.yaml")
    assert config.actuators.no_actuator == ["belt-end"]
    both = replace(GOOD, "  conveyor_delay_s:", "  no_actuator: [reject]\n  conveyor_delay_s:")
    assert "actuators.no_actuator: bin 'reject' is also served by 'diverter'" in error_of(both)
    unused = replace(GOOD, "  conveyor_delay_s:", "  no_actuator: [rejcet]\n  conveyor_delay_s:")
    assert "actuators.no_actuator: 'rejcet' is not a bin of the policy" in error_of(unused)


@pytest.mark.parametrize("pin", ["true", "false", "'18'", "18.0"])
def test_pins_must_be_integers_not_bools_or_strings(pin):
    message = error_of(replace(GOOD, "pin: 18", f"pin: {pin}"))
    assert "actuators.devices[0].pin" in message and "integer" in message
    message = error_of(replace(GOOD, "  kind: frame_diff", f"  kind: beam_break\n  pin: {pin}"))
    assert "presence.pin" in message and "integer" in message


@pytest.mark.parametrize("factory", ["lgpio", "mock"])
def test_pins_are_checked_against_the_boards_header_map(factory):
    text = replace(GOOD, "pin_factory: mock", f"pin_factory: {factory}")
    message = error_of(replace(text, "pin: 18", "pin: 999"))
    assert "actuators.devices" in message and "pin 999 is not a GPIO line of the rpi5 header" in message
    assert "firmware-config/rpi5/pins.yaml" in message
    assert "pin 28 is not a GPIO line" in error_of(replace(text, "pin: 23", "pin: 28"))
    beam = error_of(replace(text, "  kind: frame_diff", "  kind: beam_break\n  pin: 40"))
    assert "presence.pin: pin 40 is not a GPIO line of the rpi5 header" in beam
    # Every line of the header map is accepted, the SPI0 lines too (free while SPI0 is disabled).
    for pin in (4, 27, 8):
        parse_text(replace(text, "pin: 18", f"pin: {pin}"), KioskFile, "edgert.yaml")


def test_board_without_a_filled_in_map_says_so_and_null_skips_the_check():
    text = replace(GOOD, "  conveyor_delay_s:", "  board: rock5b\n  conveyor_delay_s:")
    assert "firmware-config/rock5b/pins.yaml lists no GPIO lines" in error_of(text)
    assert "unknown board 'rpi4'" in error_of(replace(text, "board: rock5b", "board: rpi4"))
    config = parse_text(replace(replace(text, "board: rock5b", "board: null"), "pin: 18", "pin: 999"),
                        KioskFile, "edgert.yaml")
    assert config.actuators.devices[0].pin == 999


# Runs `edgert config check FILE` in a child whose address space is capped, so a loader that expands
# aliases fails with MemoryError instead of taking the machine down; prints rc and peak-RSS growth.
_CHECK_IN_A_BOUNDED_CHILD = """
import contextlib, io, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31))
from edgert.cli.main import main
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
err = io.StringIO()
with contextlib.redirect_stderr(err):
    rc = main(["config", "check", sys.argv[1]])
growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(rc, round(growth_mb, 1), err.getvalue().strip(), sep="\\n")
"""


def check_in_bounded_child(path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _CHECK_IN_A_BOUNDED_CHILD, str(path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rc, growth_mb, message = done.stdout.split("\n", 2)
    return int(rc), float(growth_mb), message.strip()


def alias_bomb(levels=9, width=9) -> str:
    """The classic "billion laughs": each level is a list of `width` aliases of the level below."""
    names = "abcdefghijklmnopqrstuvwxyz"
    lines = ["a: &a [" + ",".join(["lol"] * width) + "]"]
    for below, name in zip(names[:levels - 1], names[1:levels]):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{below}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_in_one_line_without_expanding(tmp_path):
    bomb = alias_bomb()
    assert len(bomb) < 400  # 9 levels of 9 aliases: 9**9 (387 million) values from a few hundred bytes
    path = tmp_path / "bomb.yaml"
    path.write_text(GOOD + bomb)
    rc, growth_mb, message = check_in_bounded_child(path)
    assert rc == 2 and "\n" not in message, message
    assert "bomb.yaml: line " in message and "aliases are expanded" in message
    assert growth_mb < 50, f"peak RSS grew by {growth_mb} MB"


def test_huge_flow_list_is_refused_in_one_line(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text(GOOD + "extra: [" + ",".join(["1"] * 600_000) + "]\n")  # 1.2 MB
    rc, growth_mb, message = check_in_bounded_child(big)
    assert rc == 2 and "\n" not in message and "big.yaml: larger than 1 MiB" in message, message
    assert growth_mb < 20, f"peak RSS grew by {growth_mb} MB"

    under_the_cap = tmp_path / "under.yaml"
    under_the_cap.write_text(GOOD + "extra: [" + ",".join(["1"] * 400_000) + "]\n")  # 0.8 MB
    rc, growth_mb, message = check_in_bounded_child(under_the_cap)
    assert rc == 2 and "\n" not in message and "more than 20000 values" in message, message
    assert growth_mb < 50, f"peak RSS grew by {growth_mb} MB"


def test_aliases_within_the_budget_still_work_and_errors_name_where_they_are_used():
    text = replace(GOOD, "  votes: 5", "  votes: &five 5")
    assert parse_text(replace(text, "conveyor_delay_s: 0.6", "conveyor_delay_s: *five"),
                      KioskFile).actuators.conveyor_delay_s == 5
    # The same mapping used twice, wrong at its second use: the line is the one that uses it.
    bad = replace(GOOD, "paper: {pin: 23, pulse_s: 0.15}", "paper: &ch {pin: 23, pulse_s: 0.15}")
    bad = replace(bad, "journal:\n  snapshots: true\n  snapshot_max_mb: 20", "journal: *ch")
    message = error_of(bad)
    assert f"line {line_of(bad, 'journal: *ch')}: journal.pin: unknown key" in message, message


def test_a_list_as_a_key_is_refused_in_one_line():
    assert "a key must be a plain value" in error_of("? [a]\n: b\n")


# `edgert config check` in a child where the compiled kernels cannot be imported (a machine that
# has not built them): a finder first on sys.meta_path refuses edgert._ext and everything below it.
_CHECK_WITHOUT_KERNELS = """
import sys

class NoKernels:
    def find_spec(self, name, path=None, target=None):
        if name == "edgert._ext" or name.startswith("edgert._ext."):
            raise ImportError(f"kernels not built: {name}")
        return None

sys.meta_path.insert(0, NoKernels())
try:
    import edgert._ext.preprocess
except ImportError:
    pass
else:
    sys.exit("the kernels were not blocked")
from edgert.cli.main import main
sys.exit(main(["config", "check", sys.argv[1]]))
"""


@pytest.mark.parametrize("name", ["kiosk.yaml", "demo.yaml"])
def test_config_check_runs_where_the_kernels_are_not_built(name):
    import subprocess
    import sys

    path = resources.files("edgert") / "examples" / name
    done = subprocess.run([sys.executable, "-c", _CHECK_WITHOUT_KERNELS, str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"{path}: ok (source ") and "model builtin:conveyor with 5 classes" in done.stdout
