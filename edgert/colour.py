"""Colour-conversion constants (BT.601), in Q14 fixed point as the kernels use them.

R = Y' + 1.402 V', G = Y' - 0.344136 U' - 0.714136 V', B = Y' + 1.772 U' (full range), and with
Y' = 255/219 (Y - 16) and chroma gains scaled by 255/224 for limited ("TV") range, which is what
cameras and video decoders deliver unless told otherwise. Each coefficient is rounded to Q14.
"""
from __future__ import annotations

from edgert.errors import ConfigError

Q = 14


def _q(x: float) -> int:
    return int(round(x * (1 << Q)))


def yuv_coefficients(yuv_range: str) -> tuple:
    """``(y_gain, r_v, g_u, g_v, b_u, y_offset)`` in Q14 for ``"limited"`` or ``"full"`` range."""
    if yuv_range == "full":
        return (_q(1.0), _q(1.402), _q(0.344136), _q(0.714136), _q(1.772), 0)
    if yuv_range == "limited":
        c = 255 / 224
        return (_q(255 / 219), _q(1.402 * c), _q(0.344136 * c), _q(0.714136 * c), _q(1.772 * c), 16)
    raise ConfigError(f"yuv_range: expected 'limited' or 'full', got {yuv_range!r}")


#: Luma weights (R, G, B) for colour -> gray, Q14; they sum to 1 << 14.
GRAY_WEIGHTS = (4899, 9617, 1868)
