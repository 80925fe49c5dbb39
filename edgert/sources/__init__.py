"""Frame sources: picamera2, OpenCV (USB, RTSP/HTTP, files), image folders and the synthetic conveyor.

`make_source(config)` builds the source a config section names by its ``kind``; each source module
is imported only when used, so a board without OpenCV or picamera2 runs the others.
"""
from __future__ import annotations

from importlib import import_module

from edgert.core.errors import ConfigError
from edgert.sources.base import Backoff, Source, SourceHealth

__all__ = ["Backoff", "Source", "SourceHealth", "make_source"]

_KINDS = {
    "picamera2": ("edgert.sources.picamera", "PicameraSource"),
    "opencv": ("edgert.sources.opencv", "VideoSource"),
    "folder": ("edgert.sources.folder", "FolderSource"),
    "conveyor": ("edgert.sources.conveyor", "ConveyorSource"),
}


def make_source(config) -> Source:
    """The source for a validated source config section (its ``kind`` picks the class)."""
    try:
        module, cls = _KINDS[config.kind]
    except KeyError:
        raise ConfigError(f"source.kind: unknown {config.kind!r}; expected one of {', '.join(_KINDS)}") from None
    return getattr(import_module(module), cls)(config)
