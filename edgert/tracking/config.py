"""`TrackerConfig`: the settings of the ByteTrack-style tracker."""
from __future__ import annotations

from pydantic import Field, model_validator

from edgert.core.settings import Section


class TrackerConfig(Section):
    """Thresholds and lifetimes of `edgert.tracking.Tracker` (ByteTrack's defaults)."""

    high_score: float = Field(0.5, gt=0, le=1, description="Detections scoring this or more are matched first.")
    low_score: float = Field(0.1, ge=0, lt=1, description="Detections scoring more than this and less than "
                             "high_score only keep tracks alive (second stage); lower ones are ignored.")
    birth_score: float = Field(0.6, gt=0, le=1, description="An unmatched detection scoring this or more "
                               "starts a tentative track.")
    match_iou: float = Field(0.2, ge=0, lt=1, description="First stage: a track and a high-score detection "
                             "match only above this IoU (times the score when fuse_score).")
    low_match_iou: float = Field(0.5, ge=0, lt=1, description="Second stage: IoU a low-score detection needs.")
    tentative_match_iou: float = Field(0.3, ge=0, lt=1, description="IoU a tentative track needs to its next "
                                       "detection (times the score when fuse_score).")
    fuse_score: bool = Field(True, description="Weigh the IoU by the detection score in the high-score stages.")
    min_hits: int = Field(2, ge=1, le=1000, description="A track is confirmed (gets an id, is reported) "
                          "after this many hits in consecutive frames; a tentative track that misses dies.")
    confirm_first_frame: bool = Field(True, description="Tracks born in the first frame (after start or reset) "
                                      "are confirmed at once, as in ByteTrack: what is in view when a stream "
                                      "starts has no earlier frame to be confirmed against.")
    max_missed: int = Field(30, ge=0, le=100000, description="A confirmed track unseen for more than this "
                            "many frames in a row ends.")
    history: int = Field(300, ge=1, le=1000000, description="Boxes kept per track (the newest).")
    class_groups: tuple[tuple[int, ...], ...] = Field((), description="Classes that may match one another's "
                                                      "tracks (e.g. car, bus, truck); every other class is "
                                                      "its own group. A track keeps its first class.")

    @model_validator(mode="after")
    def _consistent(self) -> TrackerConfig:
        if not self.low_score < self.high_score <= self.birth_score:
            raise ValueError(f"expected low_score < high_score <= birth_score, got {self.low_score}, "
                             f"{self.high_score}, {self.birth_score}")
        seen: set[int] = set()
        for group in self.class_groups:
            for c in group:
                if c < 0:
                    raise ValueError(f"class_groups: class {c} is negative")
                if c in seen:
                    raise ValueError(f"class_groups: class {c} is in two groups")
                seen.add(c)
        return self
