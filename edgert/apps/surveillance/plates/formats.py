"""Plate formats per country: what a plate may read, and the read text corrected where the format demands it.

A format is a template of slots and separators, one string per plate row: ``L`` a letter, ``D`` a digit,
``A`` either, ``{m,n}`` or ``{n}`` after a slot repeats it; any other character is a separator (``-``,
``.``, space) that the format writes itself. ``"DDL-DDD.DD"`` is a Vietnamese car plate (``51F-123.45``);
``("DD-LD", "DDD.DD")`` its two-row motorbike plate (``59-X1`` over ``234.56``, joined by a space:
``59-X1 234.56``).

Matching ignores what the recogniser read as separators (they are faint and often missed) and compares
the letters and digits to the slots. A character the slot does not take is corrected only through the
confusable pairs (0/O, 1/I, 8/B, 5/S, 2/Z) and only when the slot demands a letter or a digit: an ``A``
slot keeps what was read. Each correction is counted; a read that fits no format is not a plate.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple, Sequence

from edgert.core.errors import ConfigError

#: Digit read where the slot needs a letter -> that letter, and the reverse.
TO_LETTER = {"0": "O", "1": "I", "8": "B", "5": "S", "2": "Z"}
TO_DIGIT = {v: k for k, v in TO_LETTER.items()}
_SLOT_CLASS = {"L": "[A-Z" + "".join(TO_LETTER) + "]", "D": "[0-9" + "".join(TO_DIGIT) + "]", "A": "[A-Z0-9]"}
_TOKEN = re.compile(r"([LDA])(?:\{(\d+)(?:,(\d+))?\})?|(.)")


@dataclass(frozen=True)
class PlateFormat:
    """One plate layout of one country.

    Attributes:
        country: ISO 3166 alpha-2 code (``"VN"``) or ``"EU"``/``"US"`` for generic layouts.
        name: What kind of plate (``"car"``, ``"motorbike"``).
        rows: One template per plate row (see the module docstring).
    """

    country: str
    name: str
    rows: tuple

    def __post_init__(self):
        if not self.rows or not all(isinstance(r, str) and r for r in self.rows):
            raise ConfigError(f"plate format {self.country}/{self.name}: rows must be non-empty templates")
        for row in self.rows:
            if not any(piece in "LDA" for piece in _compile(row)[1]):
                raise ConfigError(f"plate format {self.country}/{self.name}: row {row!r} has no L, D or A slot")


class PlateText(NamedTuple):
    """A read fitted to a format.

    Attributes:
        text: The plate as the format writes it (rows joined by a space).
        chars: Its letters and digits only (what reads are compared and voted on).
        confidences: Per character of `chars`, the recogniser's confidence (corrected ones too).
        corrections: How many characters the format changed (0/O, 1/I, ...).
        format: The `PlateFormat` it fits.
    """

    text: str
    chars: str
    confidences: tuple
    corrections: int
    format: PlateFormat


@lru_cache(maxsize=256)
def _compile(row: str):
    """``(regex over letters and digits, slot kinds per position range, writer pieces)`` of a row template."""
    pattern, pieces = [], []
    for m in _TOKEN.finditer(row):
        slot, lo, hi, sep = m.groups()
        if sep is not None:
            pieces.append(sep)
            continue
        lo_n = int(lo) if lo else 1
        hi_n = int(hi) if hi else lo_n
        pattern.append(f"({_SLOT_CLASS[slot]}{{{lo_n},{hi_n}}})")
        pieces.append(slot)
    return re.compile("".join(pattern)), tuple(pieces)


def _fit_row(row: str, chars: str):
    """``(written row, corrected chars, corrections)`` of `chars` in a row template, or None."""
    regex, pieces = _compile(row)
    m = regex.fullmatch(chars)
    if m is None:
        return None
    out, fixed, corrections, group = [], [], 0, 0
    for piece in pieces:
        if piece not in "LDA":
            out.append(piece)
            continue
        group += 1
        for c in m.group(group):
            want = TO_LETTER.get(c, c) if piece == "L" else TO_DIGIT.get(c, c) if piece == "D" else c
            corrections += want != c
            fixed.append(want)
            out.append(want)
    return "".join(out), "".join(fixed), corrections


def _alnum(text: str, confidences: Sequence[float]):
    keep = [(c, p) for c, p in zip(text.upper(), confidences) if c.isascii() and c.isalnum()]
    return "".join(c for c, _ in keep), tuple(float(p) for _, p in keep)


def fit(rows: Sequence[tuple], fmt: PlateFormat) -> PlateText | None:
    """Fit read rows ``[(text, confidences), ...]`` (top row first) to one format; None when they do not fit."""
    if len(rows) != len(fmt.rows):
        return None
    written, chars, confs, corrections = [], [], [], 0
    for (text, conf), template in zip(rows, fmt.rows):
        alnum, c = _alnum(text, conf)
        got = _fit_row(template, alnum)
        if got is None:
            return None
        written.append(got[0])
        chars.append(got[1])
        confs.extend(c)
        corrections += got[2]
    return PlateText(" ".join(written), "".join(chars), tuple(confs), corrections, fmt)


def best_fit(rows: Sequence[tuple], formats: Sequence[PlateFormat]) -> PlateText | None:
    """The format the read fits with the fewest corrections (the first listed among equals), or None."""
    fits = [f for f in (fit(rows, fmt) for fmt in formats) if f is not None]
    return min(fits, key=lambda f: f.corrections) if fits else None


#: Built-in layouts. Vietnam: car plates (one row; 5-digit series with a dot, older 4-digit ones, two-letter
#: series) and two-row motorbike plates. EU: a few common national layouts. US: generic 5-7 characters.
FORMATS = {
    "VN": (PlateFormat("VN", "car", ("DDL-DDD.DD",)), PlateFormat("VN", "car-4", ("DDL-DDDD",)),
           PlateFormat("VN", "car-2", ("DDLL-DDD.DD",)), PlateFormat("VN", "motorbike", ("DD-LD", "DDD.DD")),
           PlateFormat("VN", "motorbike-4", ("DD-LD", "DDDD"))),
    "EU": (PlateFormat("FR", "car", ("LL-DDD-LL",)), PlateFormat("IT", "car", ("LL DDD LL",)),
           PlateFormat("ES", "car", ("DDDD LLL",)), PlateFormat("NL", "car", ("LL-DDD-L",)),
           PlateFormat("DE", "car", ("L{1,3} L{1,2} D{1,4}",))),
    "US": (PlateFormat("US", "car", ("DLLLDDD",)), PlateFormat("US", "generic", ("A{5,7}",))),
}


def formats_for(countries: Sequence[str]) -> tuple:
    """The built-in formats of the named regions (``["VN"]``, ``["EU", "US"]``), in that order.

    Raises:
        ConfigError: an unknown region, naming the known ones.
    """
    out = []
    for c in countries:
        if c not in FORMATS:
            raise ConfigError(f"plates: unknown country {c!r}; known: {', '.join(FORMATS)}")
        out.extend(FORMATS[c])
    return tuple(out)
