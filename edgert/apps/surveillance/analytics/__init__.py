"""Analytics over tracks, as pure functions of positions and their state: zones (enter, exit, dwell) and
lines (crossings with a direction). A track's position is the bottom centre of its box (where it
stands on the ground)."""
from edgert.apps.surveillance.analytics.lines import LineCrossing, crossing_directions, step_line
from edgert.apps.surveillance.analytics.zones import ZoneEvent, bottom_centres, dwell_ns, points_in_polygon, step_zone

__all__ = ["LineCrossing", "ZoneEvent", "bottom_centres", "crossing_directions", "dwell_ns", "points_in_polygon",
           "step_line", "step_zone"]
