"""Colour-conversion constants (BT.601), in Q14 fixed point as the kernels use them.

BT.601 by default (BT.709 selectable): R = Y' + 1.402 V', G = Y' - 0.344136 U' - 0.714136 V',
B = Y' + 1.772 U' in full range; limited ("TV") range takes Y' = 255/219 (Y - 16) and scales the
chroma gains by 255/224. Each coefficient is rounded to Q14.

Which one a camera gives: picamera2's preview and still configurations use sYCC (BT.601, full
range); its video configuration uses Rec.709 (limited) from 1280x720 up and SMPTE 170M (BT.601,
limited) below; video decoders and most USB cameras give BT.601 limited.
"""
from __future__ import annotations

import numpy as np

from edgert.core.errors import ConfigError

Q = 14


def _q(x: float) -> int:
    return int(round(x * (1 << Q)))


#: (Kr, Kb) of the YUV matrices: Kg = 1 - Kr - Kb.
MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}


def yuv_coefficients(yuv_range: str, matrix: str = "bt601") -> tuple:
    """``(y_gain, r_v, g_u, g_v, b_u, y_offset)`` in Q14 for ``"limited"`` or ``"full"`` range.

    R = Y + r_v V', G = Y - g_u U' - g_v V', B = Y + b_u U' from the matrix's Kr, Kb; limited range
    scales Y by 255/219 after removing 16 and the chroma gains by 255/224.
    """
    if matrix not in MATRICES:
        raise ConfigError(f"yuv_matrix: expected one of {', '.join(MATRICES)}, got {matrix!r}")
    kr, kb = MATRICES[matrix]
    kg = 1.0 - kr - kb
    r_v, b_u = 2 * (1 - kr), 2 * (1 - kb)
    g_u, g_v = b_u * kb / kg, r_v * kr / kg
    if yuv_range == "full":
        return (_q(1.0), _q(r_v), _q(g_u), _q(g_v), _q(b_u), 0)
    if yuv_range == "limited":
        c = 255 / 224
        return (_q(255 / 219), _q(r_v * c), _q(g_u * c), _q(g_v * c), _q(b_u * c), 16)
    raise ConfigError(f"yuv_range: expected 'limited' or 'full', got {yuv_range!r}")


def luma_levels(yuv_range: str) -> np.ndarray:
    """The 8-bit gray level of each luma code: the Y term of `yuv_coefficients`, clamped (int64[256])."""
    y_gain, *_, offset = yuv_coefficients(yuv_range)
    return np.clip(((np.arange(256) - offset) * y_gain + (1 << (Q - 1))) >> Q, 0, 255)


#: Luma weights (R, G, B) for colour -> gray, Q14; they sum to 1 << 14.
GRAY_WEIGHTS = (4899, 9617, 1868)
