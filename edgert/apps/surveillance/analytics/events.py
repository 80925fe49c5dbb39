"""`AnalyticsEvent`: what a rule found, in the shape the app publishes (``kind, message, **details``)."""
from __future__ import annotations

from dataclasses import dataclass, fields

#: Line crossing directions by the sign `edgert.apps.surveillance.analytics.lines` gives: +1 is a move to
#: the left of the line walked first point -> last (its side A), -1 to its right (side B).
DIRECTIONS = {1: "b_to_a", -1: "a_to_b"}
#: The kinds of event the rules raise (track lifecycle events are the tracker's).
KINDS = ("zone_enter", "zone_exit", "loiter", "crowd", "intrusion", "line_cross", "line_count")


@dataclass(frozen=True)
class AnalyticsEvent:
    """One analytics event of one camera.

    Attributes:
        kind: One of `KINDS`.
        message: One line for people.
        camera: The camera id.
        t: Capture time of the frame it was found in (seconds since the epoch).
        track_id: The track (None for crowd and line_count).
        cls: The track's class name.
        zone: The zone id (zone events).
        line: The line id (line events).
        direction: ``"a_to_b"`` or ``"b_to_a"`` (line_cross).
        dwell_s: Seconds inside the zone so far (zone_exit, loiter).
        speed_kmh: Ground speed at the crossing (line_cross, when the camera has a homography and the
            track has been seen long enough).
        count: Zone occupancy after the event (zone events), the crowd's size, or the interval's total
            crossings (line_count).
        t_start: When the visit, the crowd or the counting interval began.
        t_end: When it ended (zone_exit, line_count).
        box: The track's box ``(x1, y1, x2, y2)`` in frame pixels.
        counts: ``{cls: {"a_to_b": n, "b_to_a": m}}`` of a line_count interval.
    """

    kind: str
    message: str
    camera: str
    t: float
    track_id: int | None = None
    cls: str | None = None
    zone: str | None = None
    line: str | None = None
    direction: str | None = None
    dwell_s: float | None = None
    speed_kmh: float | None = None
    count: int | None = None
    t_start: float | None = None
    t_end: float | None = None
    box: tuple[float, float, float, float] | None = None
    counts: dict | None = None

    def details(self) -> dict:
        """The JSON-able details to publish with the kind and message (fields that are set)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("kind", "message") or value is None:
                continue
            out[f.name] = list(value) if f.name == "box" else value
        return out
