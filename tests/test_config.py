"""The kiosk config: validation messages (file, line, key path, expectation) and `edgert config check`."""
from __future__ import annotations

import textwrap
from importlib import resources

import pytest

from edgert.apps.kiosk.config import KioskConfig
from edgert.cli.main import main
from edgert.core.config_file import load_file, parse_text
from edgert.core.errors import ConfigError

GOOD = (resources.files("edgert") / "examples" / "demo.yaml").read_text()


def replace(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_text(text, KioskConfig, "edgert.yaml")
    message = str(info.value)
    assert "\n" not in message
    return message


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_shipped_examples_validate():
    for name in ("demo.yaml", "kiosk.yaml"):
        config = parse_text((resources.files("edgert") / "examples" / name).read_text(), KioskConfig, name)
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
        load_file(path, KioskConfig)


def test_top_level_must_be_a_mapping():
    assert "expected a mapping" in error_of(textwrap.dedent("- a\n- b\n"))
