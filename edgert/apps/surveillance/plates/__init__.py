"""Plate reading: country formats with confusable-character correction, the reader (quad -> text), and
per-track voting with a known-plates list (events ``plate_read`` and ``watched_plate_seen``)."""
from edgert.apps.surveillance.plates.formats import FORMATS, PlateFormat, PlateText, best_fit, fit, formats_for
from edgert.apps.surveillance.plates.reader import PlateRead, PlateReader
from edgert.apps.surveillance.plates.voting import KnownPlate, PlatesConfig, PlateTracks, VotedPlate, plate_key

__all__ = ["FORMATS", "KnownPlate", "PlateFormat", "PlateRead", "PlateReader", "PlateText", "PlateTracks",
           "PlatesConfig", "VotedPlate", "best_fit", "fit", "formats_for", "plate_key"]
