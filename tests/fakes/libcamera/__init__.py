"""Fake `libcamera` Python bindings: the parts picamera2 configurations use (ColorSpace, Transform).

Written from libcamera's ``color_space.h`` / ``transform.h`` and the pybind names picamera2 uses:
``ColorSpace.Sycc()`` is sYCC (Rec.709 primaries, sRGB transfer, Rec.601 matrix, full range),
``Smpte170m()`` is BT.601 limited, ``Rec709()`` BT.709 limited. Constructing ``ColorSpace(other)``
copies, as picamera2's ``colour_space_to_libcamera`` does.
"""
from __future__ import annotations

import enum


class ColorSpace:
    """A libcamera colour space: primaries, transfer function, YCbCr matrix and range."""

    class Primaries(enum.IntEnum):
        Raw = 0
        Smpte170m = 1
        Rec709 = 2
        Rec2020 = 3

    class TransferFunction(enum.IntEnum):
        Linear = 0
        Srgb = 1
        Rec709 = 2

    class YcbcrEncoding(enum.IntEnum):
        Null = 0
        Rec601 = 1
        Rec709 = 2
        Rec2020 = 3

    class Range(enum.IntEnum):
        Full = 0
        Limited = 1

    def __init__(self, primaries_or_other=None, transferFunction=None, ycbcrEncoding=None, range=None):
        if isinstance(primaries_or_other, ColorSpace):
            other = primaries_or_other
            self.primaries, self.transferFunction = other.primaries, other.transferFunction
            self.ycbcrEncoding, self.range = other.ycbcrEncoding, other.range
            return
        if None in (primaries_or_other, transferFunction, ycbcrEncoding, range):
            raise TypeError("ColorSpace(): expected a ColorSpace or primaries, transferFunction, ycbcrEncoding, range")
        self.primaries = ColorSpace.Primaries(primaries_or_other)
        self.transferFunction = ColorSpace.TransferFunction(transferFunction)
        self.ycbcrEncoding = ColorSpace.YcbcrEncoding(ycbcrEncoding)
        self.range = ColorSpace.Range(range)

    @staticmethod
    def Raw():
        c = ColorSpace
        return c(c.Primaries.Raw, c.TransferFunction.Linear, c.YcbcrEncoding.Null, c.Range.Full)

    @staticmethod
    def Srgb():
        c = ColorSpace
        return c(c.Primaries.Rec709, c.TransferFunction.Srgb, c.YcbcrEncoding.Null, c.Range.Full)

    @staticmethod
    def Sycc():
        c = ColorSpace
        return c(c.Primaries.Rec709, c.TransferFunction.Srgb, c.YcbcrEncoding.Rec601, c.Range.Full)

    @staticmethod
    def Smpte170m():
        c = ColorSpace
        return c(c.Primaries.Smpte170m, c.TransferFunction.Rec709, c.YcbcrEncoding.Rec601, c.Range.Limited)

    @staticmethod
    def Rec709():
        c = ColorSpace
        return c(c.Primaries.Rec709, c.TransferFunction.Rec709, c.YcbcrEncoding.Rec709, c.Range.Limited)

    @staticmethod
    def Rec2020():
        c = ColorSpace
        return c(c.Primaries.Rec2020, c.TransferFunction.Rec709, c.YcbcrEncoding.Rec2020, c.Range.Limited)

    def _key(self):
        return (self.primaries, self.transferFunction, self.ycbcrEncoding, self.range)

    def __eq__(self, other):
        return isinstance(other, ColorSpace) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __str__(self):
        names = {ColorSpace.Sycc(): "sYCC", ColorSpace.Smpte170m(): "SMPTE170M", ColorSpace.Rec709(): "Rec709",
                 ColorSpace.Rec2020(): "Rec2020", ColorSpace.Raw(): "RAW", ColorSpace.Srgb(): "sRGB"}
        return names.get(self, "/".join(v.name for v in self._key()))

    def __repr__(self):
        return f"<libcamera.ColorSpace '{self}'>"


class Transform:
    """A libcamera image transform (flips and transpose)."""

    def __init__(self, hflip=0, vflip=0, transpose=0, rotation=0):
        if rotation not in (0, 180):
            raise ValueError(f"Unsupported rotation {rotation}")  # 90/270 need transpose, which Pi ISPs lack
        flip = rotation == 180
        self.hflip, self.vflip, self.transpose = bool(hflip) ^ flip, bool(vflip) ^ flip, bool(transpose)

    def __eq__(self, other):
        return isinstance(other, Transform) and (self.hflip, self.vflip, self.transpose) == (
            other.hflip, other.vflip, other.transpose)

    def __hash__(self):
        return hash((self.hflip, self.vflip, self.transpose))

    def __repr__(self):
        return f"<libcamera.Transform 'hflip={int(self.hflip)} vflip={int(self.vflip)} transpose={int(self.transpose)}'>"
