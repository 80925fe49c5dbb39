"""The ``face_recognition:`` section of a surveillance config: embedding model, gallery, thresholds, rules.

```yaml
face_recognition:
  model: {path: /var/lib/edgert/models/face_embedder.tflite, backend: cpu}
  gallery: faces.sqlite3          # beside the journal (relative to service.state_dir)
  threshold: null                 # null: the gallery's own (set from an EER: edgert faces threshold)
  margin: null
  max_per_track: 5
  min_face_px: 40
  max_yaw_deg: 30
  min_votes: 2
```
"""
from __future__ import annotations

from pathlib import Path

from pydantic import Field

from edgert.apps.surveillance.faces.identity import RecognitionRules
from edgert.core.settings import Section
from edgert.models.config import ModelConfig

DEFAULT_GALLERY = Path("faces.sqlite3")


class FaceRecognitionConfig(Section):
    """Face recognition on the face tracks' best frames."""

    model: ModelConfig = Field(..., description="The embedding model (task embed; its card names its input).")
    detector: str = Field("builtin:face_detection_short_range",
                          description="Face detector for enrolment (BlazeFace: 6 keypoints).")
    gallery: Path = Field(DEFAULT_GALLERY, description="Gallery SQLite file; relative to the state directory.")
    threshold: float | None = Field(None, ge=-1, le=1, description="Similarity a match must reach (None: the "
                                    "gallery's stored threshold).")
    margin: float | None = Field(None, ge=0, le=2, description="Lead over the second-best person (None: the "
                                 "gallery's).")
    max_per_track: int = Field(5, ge=1, le=1000, description="Most recognitions per track.")
    min_face_px: float = Field(40.0, ge=1, description="Shorter side of the face box below which none is tried.")
    max_yaw_deg: float = Field(30.0, gt=0, le=90, description="Faces turned further are skipped.")
    min_gain: float = Field(0.1, ge=0, description="Quality gain over the best face tried that earns a retry.")
    min_votes: int = Field(2, ge=1, description="Agreeing recognitions before a track is named.")
    min_mean_similarity: float | None = Field(None, ge=-1, le=1, description="Their mean similarity must "
                                              "reach this (None: the threshold).")

    def gallery_path(self, state_dir) -> Path:
        """The gallery file: `gallery` below `state_dir` unless absolute."""
        return self.gallery if self.gallery.is_absolute() else Path(state_dir) / self.gallery

    def rules(self, threshold: float) -> RecognitionRules:
        """The `RecognitionRules` with the operating `threshold` (the gallery's or this section's)."""
        mean = threshold if self.min_mean_similarity is None else self.min_mean_similarity
        return RecognitionRules(self.max_per_track, self.min_face_px, self.max_yaw_deg, self.min_gain,
                                self.min_votes, mean)
