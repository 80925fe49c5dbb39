"""Hypothesis strategies of preprocessing cases: a source stream, a model input and a value mapping."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from conftest import ALL_FORMATS, YUV420_FORMATS, channel_axis, image_spec, make_frame
from hypothesis import strategies as st

from edgert import Quantization
from edgert.preprocess import Preprocessor

MAPPINGS = ("identity", "uint8-quant", "int8-quant", "int8-raw", "float32", "per-channel")


@dataclass(frozen=True)
class Case:
    """One preprocessing configuration and the frame fed to it (shown by hypothesis on failure)."""

    fmt: str
    src: tuple
    stride_pad: int
    dst: tuple
    resize: str
    interpolation: str
    layout: str
    channels: int
    channel_order: str
    yuv_range: str
    mapping: str
    dtype: type = np.uint8
    quant: Quantization | None = None
    mean: tuple = (0.0,)
    std: tuple = (1.0,)
    pad_value: tuple = (114,)
    content: str = "noise"
    seed: int = 0
    pixel_centers: str = "half"

    def spec(self, dtype=None, quant="same"):
        w, h = self.dst
        return image_spec(h, w, self.channels, self.layout, self.dtype if dtype is None else dtype,
                          self.quant if quant == "same" else quant)

    def preprocessor(self, **overrides) -> Preprocessor:
        """The case's preprocessor; `overrides` replace the value mapping (spec, mean, std)."""
        kw = dict(spec=self.spec(), mean=self.mean, std=self.std)
        kw.update(overrides)
        return Preprocessor(kw["spec"], self.fmt, self.src, self.resize, self.interpolation, kw["mean"],
                            kw["std"], self.pad_value, channel_order=self.channel_order, yuv_range=self.yuv_range,
                            pixel_centers=self.pixel_centers)

    def identity_preprocessor(self) -> Preprocessor:
        """Same geometry and colour, uint8 output without normalisation: the 8-bit resampled values."""
        return self.preprocessor(spec=self.spec(np.uint8, None), mean=0.0, std=1.0)

    def frame(self) -> np.ndarray:
        return make_frame(self.fmt, *self.src, np.random.default_rng(self.seed), self.stride_pad, self.content)


@st.composite
def sizes(draw, even: bool):
    """``(src, dst)`` sizes: small, tiny, large upscales and large downscales."""
    kind = draw(st.sampled_from(["small", "small", "tiny", "upscale", "downscale"]))
    side = st.integers(1, 12).map(lambda k: 2 * k) if even else st.integers(1, 24)
    if kind == "tiny":
        src = (2, 2) if even else draw(st.sampled_from([(1, 1), (1, 5), (5, 1)]))
        dst = (draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    elif kind == "upscale":
        src = (draw(st.sampled_from([2, 4])),) * 2 if even else (3, 3)
        dst = draw(st.sampled_from([(64, 64), (48, 64), (64, 33)]))
    elif kind == "downscale":
        src = draw(st.sampled_from([(300, 200), (128, 96)] if even else [(300, 200), (301, 199)]))
        dst = (draw(st.integers(8, 12)), draw(st.integers(8, 12)))  # area refuses more than 64x
    else:
        src = (draw(side), draw(side))
        dst = (draw(st.integers(1, 24)), draw(st.integers(1, 24)))
    return src, dst


@st.composite
def mapping_args(draw, mapping: str, channels: int, layout: str) -> dict:
    """dtype, quant, mean and std of a value mapping."""
    # Mostly usual values; sometimes negative, tiny or huge ones (tables that saturate or are not affine).
    mean = tuple(draw(st.lists(st.floats(0, 255) | st.floats(-1000, 1000), min_size=channels, max_size=channels)))
    std = tuple(draw(st.lists(st.floats(0.5, 128) | st.floats(-128, -0.5) | st.floats(1e-3, 1e4),
                              min_size=channels, max_size=channels)))
    scale = st.floats(0.004, 2.0) | st.floats(1e-5, 1e3)
    if mapping == "identity":
        return dict(dtype=np.uint8, quant=None, mean=(0.0,), std=(1.0,))
    if mapping == "uint8-quant":
        return dict(dtype=np.uint8, quant=Quantization(draw(scale), draw(st.integers(0, 255))), mean=mean, std=std)
    if mapping == "int8-quant":
        return dict(dtype=np.int8, quant=Quantization(draw(scale), draw(st.integers(-128, 127))), mean=mean, std=std)
    if mapping == "int8-raw":  # no quantization on an int8 input: scale 1, values saturate at 127
        return dict(dtype=np.int8, quant=None, mean=mean[:1], std=(1.0,))
    if mapping == "float32":
        return dict(dtype=np.float32, quant=None, mean=mean, std=std)
    dtype = draw(st.sampled_from([np.uint8, np.int8]))
    lo, hi = (0, 255) if dtype == np.uint8 else (-128, 127)
    scales = draw(st.lists(scale, min_size=channels, max_size=channels))
    zps = draw(st.lists(st.integers(lo, hi), min_size=channels, max_size=channels))
    axis = channel_axis(layout) - draw(st.sampled_from([0, len(image_spec(2, 2, channels, layout).shape)]))
    return dict(dtype=dtype, quant=Quantization(scales, zps, axis=axis), mean=mean, std=std)


@st.composite
def cases(draw, interpolations=("nearest", "bilinear", "area"), mappings=MAPPINGS, formats=ALL_FORMATS,
          resizes=("stretch", "letterbox", "center-crop")) -> Case:
    """A random `Case` over formats, sizes, strides, modes, layouts, channels and value mappings."""
    fmt = draw(st.sampled_from(formats))
    even = fmt in YUV420_FORMATS
    src, dst = draw(sizes(even))
    channels = draw(st.sampled_from([1, 3]))
    layout = draw(st.sampled_from(["NHWC", "NCHW", "HWC", "CHW"]))
    mapping = draw(st.sampled_from([m for m in mappings if m != "per-channel" or channels == 3]))
    args = draw(mapping_args(mapping, channels, layout))
    pad_value = tuple(draw(st.lists(st.integers(0, 255), min_size=1, max_size=1) |
                           st.lists(st.integers(0, 255), min_size=channels, max_size=channels)))
    return Case(fmt=fmt, src=src, stride_pad=draw(st.sampled_from([0, 0, 1, 3, 64])), dst=dst,
                resize=draw(st.sampled_from(resizes)), interpolation=draw(st.sampled_from(interpolations)),
                layout=layout, channels=channels, channel_order=draw(st.sampled_from(["RGB", "BGR"])),
                yuv_range=draw(st.sampled_from(["limited", "full"])), mapping=mapping, pad_value=pad_value,
                content=draw(st.sampled_from(["noise", "noise", "binary", "constant"])),
                seed=draw(st.integers(0, 2**32 - 1)), pixel_centers=draw(st.sampled_from(["half", "corner"])),
                **args)


@st.composite
def warper_and_frame(draw, max_out: tuple, mappings=MAPPINGS, formats=ALL_FORMATS):
    """A `Warper` of a random source format, frame size, output size (up to ``max_out`` = (w, h)), layout
    and value mapping, and a seeded frame for it: ``(warper, frame, fmt, (fw, fh), (w, h, channels),
    layout, mapping, seed)``."""
    from edgert.warp import Warper

    fmt = draw(st.sampled_from(formats))
    even = fmt in YUV420_FORMATS
    side = st.integers(1, 30).map(lambda k: 2 * k) if even else st.integers(1, 60)
    fw, fh = draw(side), draw(side)
    w, h = draw(st.integers(1, max_out[0])), draw(st.integers(1, max_out[1]))
    channels = draw(st.sampled_from([1, 3]))
    layout = draw(st.sampled_from(["NHWC", "NCHW", "HWC", "CHW"]))
    mapping = draw(st.sampled_from([m for m in mappings if m != "per-channel" or channels == 3]))
    args = draw(mapping_args(mapping, channels, layout))
    pad = tuple(draw(st.lists(st.integers(0, 255), min_size=channels, max_size=channels)))
    warper = Warper(image_spec(h, w, channels, layout, args["dtype"], args["quant"]), fmt, (fw, fh), args["mean"],
                    args["std"], pad, channel_order=draw(st.sampled_from(["RGB", "BGR"])),
                    yuv_range=draw(st.sampled_from(["limited", "full"])))
    seed = draw(st.integers(0, 2**32 - 1))
    frame = make_frame(fmt, fw, fh, np.random.default_rng(seed), draw(st.sampled_from([0, 3])))
    return warper, frame, fmt, (fw, fh), (w, h, channels), layout, mapping, seed
