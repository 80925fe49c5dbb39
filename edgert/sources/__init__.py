"""Frame sources: picamera2, OpenCV (USB, RTSP/HTTP, files), image folders, the synthetic conveyor and street.

`SOURCES` is the registry of source kinds (entry-point group ``edgert.sources``; a third party
adds one there): each entry is a `Source` subclass whose ``Config`` has the ``kind`` literal the
entry is named by. `make_source(config)` builds the source a config section names; a source's
driver (OpenCV, picamera2) is imported only when the source is created.
"""
from __future__ import annotations

from edgert.core.plugins import Registry
from edgert.sources.base import Backoff, Source, SourceHealth

__all__ = ["SOURCES", "Backoff", "Source", "SourceHealth", "make_source"]

SOURCES = Registry("edgert.sources", {
    "picamera2": "edgert.sources.picamera:PicameraSource",
    "opencv": "edgert.sources.opencv:VideoSource",
    "folder": "edgert.sources.folder:FolderSource",
    "conveyor": "edgert.sources.conveyor:ConveyorSource",
    "street": "edgert.sources.street:StreetSource",
}, what="source")


def make_source(config) -> Source:
    """The source for a validated source config section (its ``kind`` picks the class)."""
    return SOURCES.load(config.kind, "source.kind")(config)
