"""What the tracker reports: the tracks of a frame, and the record of one track."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from edgert.core.named_rows import named_rows


@named_rows
class Tracks(NamedTuple):
    """Confirmed tracks seen in one frame, ids ascending.

    Attributes:
        ids: int64 ``(K,)`` track ids (1, 2, ... per tracker; never reused).
        boxes: float32 ``(K, 4)`` xyxy: the detection each track matched.
        scores: float32 ``(K,)`` that detection's score.
        classes: int32 ``(K,)`` each track's class (its first detection's; tracks never switch).
        det_index: intp ``(K,)`` the matched detection's index in the frame's `Detections`.
    """

    ids: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    det_index: np.ndarray

    def __len__(self) -> int:  # the number of tracks, not of fields
        return int(self.ids.shape[0])


class BestFrame(NamedTuple):
    """The best view of a track so far (largest box, or highest caller-given quality).

    Attributes:
        timestamp_ns: Capture time of that frame.
        box: float32 ``(4,)`` xyxy box in that frame.
        score: Detection score there.
        quality: The value that made it best (box area in pixels by default).
    """

    timestamp_ns: int
    box: np.ndarray
    score: float
    quality: float


@dataclass(frozen=True)
class TrackRecord:
    """One track's life so far (or its whole life, once ended).

    Attributes:
        track_id: Its id (0 while still tentative).
        class_id: Its class.
        first_ns: Capture time of its first detection.
        last_ns: Capture time of its latest detection.
        hits: Frames it was matched in.
        timestamps: int64 ``(n,)`` capture times of the newest `history` matches, oldest first.
        boxes: float32 ``(n, 4)`` xyxy boxes of those matches.
        best: Its `BestFrame`.
    """

    track_id: int
    class_id: int
    first_ns: int
    last_ns: int
    hits: int
    timestamps: np.ndarray
    boxes: np.ndarray
    best: BestFrame


class TrackUpdate(NamedTuple):
    """What one call of `Tracker.update` found.

    Attributes:
        tracks: The confirmed `Tracks` matched in this frame.
        started: Ids of the tracks confirmed in this frame (they are in `tracks` too).
        ended: `TrackRecord` of each confirmed track that ended in this frame (unseen too long).
    """

    tracks: Tracks
    started: tuple[int, ...]
    ended: tuple[TrackRecord, ...]
