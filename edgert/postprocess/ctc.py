"""CTC text decoding: a recogniser's per-step class scores -> text with a confidence per character.

    decoder = CtcDecoder(model.outputs[0], read_dictionary("keys.txt"), blank=0, space=True)
    line = decoder(outputs[0])        # -> CtcText(text="51F12345", confidences=array([...]), labels=...)

Greedy decoding (the best class per time step, repeats collapsed, blanks dropped) runs in one compiled
pass (``ext/ctc.pyx``, GIL released) straight on the raw output: int8/uint8/int16 quantized or float32,
``(T, C)`` or ``(N, T, C)``; the text is joined and the result arrays made in the same compiled call.
Class layout as PaddleOCR's and most CRNNs': the blank (index `blank`,
usually 0), then the dictionary's entries in order, then a space when `space` is set.

Per-character confidence: the probability of the character's class at the best step of its run.
Probabilities are taken as the output gives them when the graph ends in a softmax (``probabilities``,
PP-OCR's case: its output is ``softmax_11.tmp_0``), and computed as the softmax over the step's classes
when the output holds logits (``probabilities=False``). Quantized outputs are dequantized with the spec's
scale and zero point per value; the argmax itself runs on the raw integers.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from edgert._ext import ctc as _k
from edgert.core.errors import ConfigError, DecodeError
from edgert.core.tensor import TensorSpec

_DTYPES = (np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16), np.dtype(np.float32))
#: Card ``decoder`` keys this decoder takes (besides ``kind: ctc``).
CARD_KEYS = ("blank", "dictionary", "space", "probabilities")


class CtcText(NamedTuple):
    """One decoded text line.

    Attributes:
        text: The characters read (a dictionary entry may be more than one character; entries are joined).
        confidences: float32 probability per entry read, in order (``len(labels)`` values).
        labels: int32 class index per entry read.
    """

    text: str
    confidences: np.ndarray
    labels: np.ndarray

    @property
    def confidence(self) -> float:
        """The weakest character's confidence (0.0 for an empty read): the line is as sure as its least sure part."""
        return float(self.confidences.min()) if len(self.confidences) else 0.0


def read_dictionary(path) -> tuple:
    """The entries of a dictionary file, one per line (UTF-8; the line break is not part of the entry).

    Raises:
        ConfigError: unreadable, empty, or with an empty line.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"dictionary {path}: unreadable: {exc}") from None
    if not lines:
        raise ConfigError(f"dictionary {path}: empty")
    empty = [i + 1 for i, v in enumerate(lines) if v == ""]
    if empty:
        raise ConfigError(f"dictionary {path}: line {empty[0]} is empty")
    return tuple(lines)


class CtcDecoder:
    """Greedy CTC decoder for one recogniser output.

    Args:
        spec: The output's `TensorSpec`: ``(T, C)`` or ``(N, T, C)``; its dtype and quantization.
        dictionary: The characters of classes after the blank, in order.
        blank: Index of the CTC blank class (0 for PP-OCR; some CRNNs put it last: ``C - 1``).
        space: A space class follows the dictionary (PaddleOCR's ``use_space_char``).
        probabilities: The output already holds probabilities (a softmax ends the graph); False
            computes a softmax over each step's classes for the confidences.

    Raises:
        ConfigError: a dictionary whose size (plus blank, plus space) is not the model's number of
            classes (both named), a blank outside the classes, or an unusable spec.
    """

    def __init__(self, spec: TensorSpec, dictionary: Sequence[str], blank: int = 0, space: bool = False,
                 probabilities: bool = True):
        if not isinstance(spec, TensorSpec):
            raise ConfigError(f"spec: expected an edgert.TensorSpec, got {type(spec).__name__}")
        if spec.dtype not in _DTYPES:
            raise ConfigError(f"spec {spec.name!r}: dtype {spec.dtype} cannot be CTC-decoded "
                              "(int8, uint8, int16 or float32)")
        if len(spec.shape) not in (2, 3) or min(spec.shape) < 1:
            raise ConfigError(f"spec {spec.name!r}: expected (T, C) or (N, T, C) scores, got shape {spec.shape}")
        if spec.quant is not None and spec.quant.per_channel:
            raise ConfigError(f"spec {spec.name!r}: per-channel quantization of CTC scores is not supported")
        entries = tuple(dictionary)
        if not all(isinstance(v, str) and v for v in entries):
            raise ConfigError("dictionary: entries must be non-empty strings")
        classes = spec.shape[-1]
        expected = len(entries) + 1 + bool(space)
        if expected != classes:
            extra = " + a space" if space else ""
            raise ConfigError(f"dictionary: {len(entries)} entries (+ blank{extra} = {expected} classes) do not fit "
                              f"the model's {classes} classes (output {spec.name!r}, shape {spec.shape})")
        if not isinstance(blank, (int, np.integer)) or not 0 <= blank < classes:
            raise ConfigError(f"blank: expected a class index in 0..{classes - 1}, got {blank!r}")
        blank = int(blank)
        chars = list(entries) + ([" "] if space else [])
        self.characters = tuple(chars[:blank] + [""] + chars[blank:])  # class index -> text
        self.spec, self.blank, self.probabilities = spec, blank, bool(probabilities)
        q = spec.quant
        self._scale = float(q.scale) if q is not None else 1.0
        self._zero_point = int(q.zero_point) if q is not None else 0
        self._mode = _k.PROBABILITIES if self.probabilities else _k.SOFTMAX
        self._dtype, self._tc = spec.dtype, tuple(spec.shape[-2:])

    @classmethod
    def from_card(cls, spec: TensorSpec, settings: dict, folder, **overrides) -> "CtcDecoder":
        """The decoder a model card's ``"decoder"`` object describes; its dictionary file is read from `folder`.

        Raises:
            ConfigError: another decoder kind, unknown keys, no dictionary, or a size mismatch.
        """
        if not isinstance(settings, dict) or settings.get("kind") != "ctc":
            kind = settings.get("kind") if isinstance(settings, dict) else settings
            raise ConfigError(f"decoder: the model card names decoder {kind!r}, not 'ctc'")
        unknown = sorted(set(settings) - {"kind", *CARD_KEYS})
        if unknown:
            raise ConfigError(f"decoder: unknown key(s) {', '.join(unknown)}; expected kind, {', '.join(CARD_KEYS)}")
        if not isinstance(settings.get("dictionary"), str):
            raise ConfigError("decoder: a ctc decoder needs 'dictionary' (a file beside the model card)")
        kwargs = {k: settings[k] for k in ("blank", "space", "probabilities") if k in settings}
        kwargs.update(overrides)
        return cls(spec, read_dictionary(Path(folder) / settings["dictionary"]), **kwargs)

    @property
    def steps(self) -> int:
        """Time steps per line (T)."""
        return self.spec.shape[-2]

    def __call__(self, output: np.ndarray, index: int = 0) -> CtcText:
        """Decode line `index` of a raw output (``(T, C)``, or ``(N, T, C)`` with N lines).

        Raises:
            DecodeError: wrong type, dtype or shape, a line outside the output, or a float output
                holding NaN or inf.
        """
        x = self._checked(output)
        lines = x.shape[0] if x.ndim == 3 else 1
        if not (isinstance(index, (int, np.integer)) and 0 <= index < lines):
            raise DecodeError(f"ctc: line {index!r} of an output with {lines} lines")
        return self._decode(x, int(index))

    def lines(self, output: np.ndarray) -> list:
        """Every line of a raw ``(N, T, C)`` (or ``(T, C)``) output, decoded."""
        x = self._checked(output)
        return [self._decode(x, i) for i in range(x.shape[0] if x.ndim == 3 else 1)]

    def _checked(self, output) -> np.ndarray:
        if not isinstance(output, np.ndarray):
            raise DecodeError(f"ctc: expected a numpy.ndarray, got {type(output).__name__}")
        dtype, tc = output.dtype, self._tc
        if dtype is not self._dtype and dtype != self._dtype:  # (numpy's dtypes are usually singletons)
            raise DecodeError(f"ctc: output dtype {dtype} differs from the spec's {self.spec.dtype}")
        if output.ndim not in (2, 3) or output.shape[-2:] != tc or output.size == 0:
            raise DecodeError(f"ctc: output of shape {output.shape} does not fit {tc} lines of spec "
                              f"{self.spec.name!r}")
        return output if output.flags.c_contiguous else np.ascontiguousarray(output)

    def _decode(self, x: np.ndarray, line: int) -> CtcText:
        read = _k.greedy_decode(x, line, self.blank, self._mode, self._scale, self._zero_point, self.characters)
        if read is None:
            raise DecodeError(f"ctc: output {self.spec.name!r} holds NaN or inf")
        return CtcText(*read)
