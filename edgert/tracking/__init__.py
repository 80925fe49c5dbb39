"""Multi-object tracking of detections across frames (ByteTrack-style, one `Tracker` per stream).

    from edgert.tracking import Tracker, TrackerConfig
    tracker = Tracker(TrackerConfig(min_hits=2, max_missed=30))
    update = tracker.update(detections, frame.timestamp_ns)   # -> TrackUpdate
    update.tracks.ids, update.tracks.boxes                     # confirmed tracks in this frame
"""
from edgert.tracking.config import TrackerConfig
from edgert.tracking.results import BestFrame, TrackRecord, Tracks, TrackUpdate
from edgert.tracking.tracker import Tracker

__all__ = ["BestFrame", "TrackRecord", "TrackUpdate", "Tracker", "TrackerConfig", "Tracks"]
