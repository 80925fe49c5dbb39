"""SSD anchor boxes from MediaPipe's SSD-anchor options (BlazeFace, BlazePalm, MobileNet-SSD style)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edgert.core.errors import ConfigError


@dataclass(frozen=True)
class SsdAnchorOptions:
    """The options MediaPipe's SsdAnchorsCalculator takes; the defaults are BlazeFace (short range).

    Attributes:
        input_size_width, input_size_height: Model input size in pixels.
        num_layers: Feature-map layers.
        min_scale, max_scale: Anchor scale of the first and last layer (linear in between).
        strides: Stride of each layer (layers sharing a stride share one feature map).
        aspect_ratios: Aspect ratios of each layer's anchors.
        anchor_offset_x, anchor_offset_y: Anchor centre inside its cell, in cells.
        fixed_anchor_size: Anchors of width and height 1 (the regressor predicts absolute sizes).
        interpolated_scale_aspect_ratio: Adds an anchor of scale sqrt(s_i * s_i+1) with this
            ratio; 0 disables it.
        reduce_boxes_in_lowest_layer: The first layer uses ratios (1, 2, 0.5) at scales (0.1, s, s).
        feature_map_width, feature_map_height: Explicit feature-map sizes instead of ceil(size / stride).
    """

    input_size_width: int = 128
    input_size_height: int = 128
    num_layers: int = 4
    min_scale: float = 0.1484375
    max_scale: float = 0.75
    strides: tuple = (8, 16, 16, 16)
    aspect_ratios: tuple = (1.0,)
    anchor_offset_x: float = 0.5
    anchor_offset_y: float = 0.5
    fixed_anchor_size: bool = True
    interpolated_scale_aspect_ratio: float = 1.0
    reduce_boxes_in_lowest_layer: bool = False
    feature_map_width: tuple = field(default=())
    feature_map_height: tuple = field(default=())

    def __post_init__(self):
        if self.num_layers < 1 or len(self.strides) != self.num_layers:
            raise ConfigError(f"anchors: {len(self.strides)} strides for {self.num_layers} layers")
        if self.feature_map_width and (len(self.feature_map_width) != self.num_layers
                                       or len(self.feature_map_height) != self.num_layers):
            raise ConfigError("anchors: feature_map_width/height need one entry per layer")
        if min(self.input_size_width, self.input_size_height) < 1 or min(self.strides) < 1:
            raise ConfigError("anchors: input size and strides must be >= 1")
        if not self.aspect_ratios or min(self.aspect_ratios) <= 0:
            raise ConfigError("anchors: aspect_ratios must be positive")


def _scale(o: SsdAnchorOptions, layer: int) -> float:
    if o.num_layers == 1:
        return (o.min_scale + o.max_scale) / 2
    return o.min_scale + (o.max_scale - o.min_scale) * layer / (o.num_layers - 1)


def ssd_anchors(o: SsdAnchorOptions) -> np.ndarray:
    """float32 ``(N, 4)`` anchors: x_centre, y_centre, width, height, normalised to the input."""
    out = []
    layer = 0
    while layer < o.num_layers:
        ratios, scales = [], []
        last = layer
        # Layers that share a stride share a feature map: their anchors are emitted together.
        while last < o.num_layers and o.strides[last] == o.strides[layer]:
            s = _scale(o, last)
            if last == 0 and o.reduce_boxes_in_lowest_layer:
                ratios += [1.0, 2.0, 0.5]
                scales += [0.1, s, s]
            else:
                ratios += list(o.aspect_ratios)
                scales += [s] * len(o.aspect_ratios)
                if o.interpolated_scale_aspect_ratio > 0:
                    nxt = 1.0 if last == o.num_layers - 1 else _scale(o, last + 1)
                    scales.append(math.sqrt(s * nxt))
                    ratios.append(o.interpolated_scale_aspect_ratio)
            last += 1
        sizes = [(sc * math.sqrt(r), sc / math.sqrt(r)) for sc, r in zip(scales, ratios)]
        if o.feature_map_width:
            fw, fh = o.feature_map_width[layer], o.feature_map_height[layer]
        else:
            fw = math.ceil(o.input_size_width / o.strides[layer])
            fh = math.ceil(o.input_size_height / o.strides[layer])
        ys, xs = np.mgrid[0:fh, 0:fw]
        cx = ((xs + o.anchor_offset_x) / fw).reshape(-1, 1)
        cy = ((ys + o.anchor_offset_y) / fh).reshape(-1, 1)
        wh = np.ones((len(sizes), 2)) if o.fixed_anchor_size else np.array(sizes)
        k = len(sizes)
        cells = np.concatenate([np.repeat(cx, k, 1)[..., None], np.repeat(cy, k, 1)[..., None],
                                np.broadcast_to(wh, (cx.shape[0], k, 2))], axis=2)
        out.append(cells.reshape(-1, 4))
        layer = last
    return np.concatenate(out).astype(np.float32)
