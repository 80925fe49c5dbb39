"""Zones: which tracks stand inside a polygon, when they enter and leave, how long they stay."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from edgert.apps.surveillance.analytics.geometry import distances_to_polyline


class ZoneEvent(NamedTuple):
    """A track entering or leaving a zone.

    Attributes:
        kind: ``"enter"`` or ``"exit"``.
        track_id: The track.
        timestamp_ns: Capture time of the frame it happened in.
        dwell_ns: For an exit, the time since it entered; 0 for an enter.
    """

    kind: str
    track_id: int
    timestamp_ns: int
    dwell_ns: int


def bottom_centres(boxes: np.ndarray) -> np.ndarray:
    """``(N, 2)`` bottom centre (x, y_max) of ``(N, 4)`` xyxy boxes: where each object stands."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.stack([(b[:, 0] + b[:, 2]) * 0.5, b[:, 3]], 1)


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Whether each point lies inside a simple polygon (even-odd ray casting).

    A point exactly on an edge may land on either side; zones are meant to be crossed, not walked along.

    Args:
        points: ``(N, 2)`` x, y.
        polygon: ``(V, 2)`` vertices in order (V >= 3), not closed.

    Returns:
        bool ``(N,)``.
    """
    p = np.asarray(points, np.float64).reshape(-1, 2)
    v = np.asarray(polygon, np.float64).reshape(-1, 2)
    x, y = p[:, :1], p[:, 1:]
    x0, y0 = v[:, 0], v[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    straddles = (y0 > y) != (y1 > y)  # the edge crosses the horizontal line through the point
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return np.count_nonzero(straddles & (x < x_at), axis=1) % 2 == 1


def step_zone(inside: dict[int, int], ids, points, polygon, timestamp_ns: int,
              ended=(), band: float = 0.0) -> tuple[dict[int, int], list[ZoneEvent]]:
    """One frame of a zone.

    Args:
        inside: ``{track_id: entered_ns}`` of the tracks inside after the previous frame (not changed).
        ids: ``(N,)`` ids of the tracks seen in this frame.
        points: ``(N, 2)`` their positions (see `bottom_centres`).
        polygon: The zone, ``(V, 2)``.
        timestamp_ns: This frame's capture time.
        ended: Ids of tracks that ended in this frame: they leave the zone now. A track merely not
            seen in this frame stays where it was.
        band: Dead band against jitter (pixels): a position closer than this to the zone's edge changes
            nothing (a track enters once more than `band` inside, leaves once more than `band` outside).

    Returns:
        ``(inside after this frame, events)``: enters and exits, in id order.
    """
    ids = np.asarray(ids, np.int64).reshape(-1)
    now = points_in_polygon(points, polygon) if ids.size else np.zeros(0, bool)
    clear = distances_to_polyline(points, polygon, closed=True) >= band if band > 0 and ids.size else \
        np.ones(ids.size, bool)
    after = dict(inside)
    events = []
    for track_id, is_in, is_clear in zip(ids.tolist(), now.tolist(), clear.tolist()):
        if not is_clear:
            continue
        if is_in and track_id not in after:
            after[track_id] = timestamp_ns
            events.append(ZoneEvent("enter", track_id, timestamp_ns, 0))
        elif not is_in and track_id in after:
            events.append(ZoneEvent("exit", track_id, timestamp_ns, timestamp_ns - after.pop(track_id)))
    for track_id in ended:
        if track_id in after:
            events.append(ZoneEvent("exit", track_id, timestamp_ns, timestamp_ns - after.pop(track_id)))
    events.sort(key=lambda e: e.track_id)
    return after, events


def dwell_ns(inside: dict[int, int], timestamp_ns: int) -> dict[int, int]:
    """``{track_id: time inside so far}`` at `timestamp_ns` (for loitering: compare with a limit)."""
    return {track_id: timestamp_ns - entered for track_id, entered in inside.items()}
