"""`DECODERS`: output decoders by task or output format (entry-point group ``edgert.decoders``).

A model's card or bundle names how its outputs are decoded (``classify``, ``yolo``, ``ssd``,
``hailo_nms``); a third party adds a decoder for another format in the same group. Entries are
imported when first asked for.
"""
from __future__ import annotations

from edgert.core.plugins import Registry

DECODERS = Registry("edgert.decoders", {
    "classify": "edgert.postprocess:classify",
    "yolo": "edgert.postprocess.yolo:YoloDecoder",
    "ssd": "edgert.postprocess.ssd:SsdDecoder",
    "hailo_nms": "edgert.postprocess.hailo_nms:parse_hailo_nms",
}, what="decoder", kind_field=None)

