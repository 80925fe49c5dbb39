"""The GPIO lines of a board's header, read from its pin map (``firmware-config/<board>/pins.yaml``)."""
from __future__ import annotations

from functools import cache

import yaml

from edgert.core.shipped import known_boards, shipped_folder

#: Sections of a pin map whose keys are GPIO lines a device may be wired to.
_LINE_SECTIONS = ("free", "free_without_spi0", "reserved")


@cache
def boards() -> tuple[str, ...]:
    """Boards with a pin map in firmware-config/."""
    return tuple(board for board in known_boards() if shipped_folder("firmware-config").joinpath(board, "pins.yaml")
                 .is_file())


@cache
def header_lines(board: str) -> tuple[int, ...]:
    """The GPIO line numbers (BCM numbers on a Raspberry Pi) on `board`'s header, sorted.

    Raises:
        ValueError: the board has no pin map, or its map is malformed.
    """
    if board not in boards():
        raise ValueError(f"unknown board {board!r}; boards with a pin map: {', '.join(boards())}")
    data = yaml.safe_load(shipped_folder("firmware-config").joinpath(board, "pins.yaml").read_text(encoding="utf-8"))
    lines = set()
    for section in _LINE_SECTIONS:
        entries = (data or {}).get(section) or {}
        if not isinstance(entries, dict) or any(type(line) is not int for line in entries):
            raise ValueError(f"firmware-config/{board}/pins.yaml: {section} must map line numbers to header pins")
        lines.update(entries)
    return tuple(sorted(lines))


def check_header_pins(board: str | None, pins: dict[int, str]) -> None:
    """Check that every pin (mapped to a description of its user) is a GPIO line of `board`'s header.

    Raises:
        ValueError: a pin is not on the header (or the board's map lists no lines); None checks nothing.
    """
    if board is None or not pins:
        return
    lines = header_lines(board)
    where = f"firmware-config/{board}/pins.yaml"
    if not lines:
        raise ValueError(f"{where} lists no GPIO lines yet: fill it in after checking the board with gpioinfo, "
                         "or set actuators.board: null to skip this check")
    for pin, user in pins.items():
        if pin not in lines:
            raise ValueError(f"pin {pin} is not a GPIO line of the {board} header (used by {user}; {where} has "
                             f"{', '.join(map(str, lines))}); set actuators.board to your board, or null to skip "
                             "this check")
