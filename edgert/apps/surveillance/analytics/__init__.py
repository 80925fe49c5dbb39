"""Analytics over tracks: zones (enter, exit, dwell, loitering, occupancy, crowd, intrusion), lines
(crossings per class and direction, interval counts) and ground speed from a homography. A track's
position is the bottom centre of its box (where it stands on the ground).

`CameraAnalytics` runs a camera's rules frame by frame; the functions below are its pure parts.
"""
from edgert.apps.surveillance.analytics.events import DIRECTIONS, KINDS, AnalyticsEvent
from edgert.apps.surveillance.analytics.speed import GroundSpeed
from edgert.apps.surveillance.analytics.lines import (LineCrossing, crossing_directions, polyline_crossings,
                                                      step_line, step_polyline)
from edgert.apps.surveillance.analytics.zones import ZoneEvent, bottom_centres, dwell_ns, points_in_polygon, step_zone

__all__ = ["DIRECTIONS", "KINDS", "AnalyticsEvent", "CameraAnalytics", "GroundSpeed", "LineCrossing", "ZoneEvent",
           "bottom_centres", "crossing_directions", "dwell_ns", "points_in_polygon", "polyline_crossings", "step_line",
           "step_polyline", "step_zone"]


def __getattr__(name):
    # Imported when first asked for: `camera` needs the app's config, which needs `geometry` from here.
    if name == "CameraAnalytics":
        from edgert.apps.surveillance.analytics.camera import CameraAnalytics
        return CameraAnalytics
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
