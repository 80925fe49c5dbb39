"""Face recognition on tracks: the gallery (SQLite), aligned embeddings, per-track voting and its events."""
from edgert.apps.surveillance.faces.gallery import Gallery, Match
from edgert.apps.surveillance.faces.identity import (KINDS, FaceEvent, RecognitionRules, TrackIdentity,
                                                     estimate_yaw, face_quality)

__all__ = ["KINDS", "FaceEvent", "Gallery", "Match", "RecognitionRules", "TrackIdentity", "estimate_yaw",
           "face_quality"]
