"""Lines: tracks crossing a segment, and in which direction."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from edgert.apps.surveillance.analytics.geometry import distances_to_polyline


class LineCrossing(NamedTuple):
    """A track crossing a line segment.

    Attributes:
        track_id: The track.
        timestamp_ns: Capture time of the frame where it was first seen across.
        direction: +1 when it crossed from the right of the segment's a -> b direction to its left
            (counter-clockwise in image coordinates, y down: from below a left-to-right line to above
            it), -1 the other way.
    """

    track_id: int
    timestamp_ns: int
    direction: int


def _cross(ox, oy, ax, ay, bx, by):
    return (ax - ox) * (by - oy) - (ay - oy) * (bx - ox)


def crossing_directions(start: np.ndarray, end: np.ndarray, a, b) -> np.ndarray:
    """Which moves ``start[i] -> end[i]`` cross the segment a -> b, and which way.

    The move crosses when its ends lie strictly on opposite sides of the line through a and b, and
    a and b do not both lie strictly on one side of the move (the segment-intersection test). A move
    that starts or ends exactly on the line does not cross; `step_line` keeps each track's last
    position off the line, so touching it and going back is no crossing and going through it is one.

    Args:
        start: ``(N, 2)`` previous positions.
        end: ``(N, 2)`` current positions.
        a, b: The segment's ends (x, y).

    Returns:
        int8 ``(N,)``: +1 (right to left of a -> b in image coordinates), -1 (left to right) or 0.
    """
    p = np.asarray(start, np.float64).reshape(-1, 2)
    q = np.asarray(end, np.float64).reshape(-1, 2)
    (ax, ay), (bx, by) = (float(a[0]), float(a[1])), (float(b[0]), float(b[1]))
    # In image coordinates (y down) a positive cross product is a clockwise turn; left of a -> b means < 0.
    side_p = _cross(ax, ay, bx, by, p[:, 0], p[:, 1])
    side_q = _cross(ax, ay, bx, by, q[:, 0], q[:, 1])
    left_q = side_q < 0
    side_a = _cross(p[:, 0], p[:, 1], q[:, 0], q[:, 1], ax, ay)
    side_b = _cross(p[:, 0], p[:, 1], q[:, 0], q[:, 1], bx, by)
    through = (side_a * side_b) <= 0  # a and b not strictly on one side of the move
    crossed = (side_p * side_q < 0) & through
    return np.where(crossed, np.where(left_q, 1, -1), 0).astype(np.int8)


def step_line(last: dict[int, tuple[float, float]], ids, points, a, b,
              timestamp_ns: int) -> tuple[dict[int, tuple[float, float]], list[LineCrossing]]:
    """One frame of a line segment a -> b: `step_polyline` of ``[a, b]`` with no dead band.

    A track seen for the first time cannot cross yet; a position exactly on the segment is not kept
    (the track is still on the side it came from), so touching it and going back is no crossing.
    """
    return step_polyline(last, ids, points, [a, b], 0.0, timestamp_ns)


def polyline_crossings(start: np.ndarray, end: np.ndarray, vertices) -> np.ndarray:
    """Net crossing of a polyline by each move ``start[i] -> end[i]``.

    Each segment is tested with `crossing_directions`; a move through several segments counts their sum,
    so going over a bend and back is no crossing, and a move through the vertex between two segments
    is one crossing.

    Args:
        start: ``(N, 2)``.
        end: ``(N, 2)``.
        vertices: ``(V, 2)`` the polyline, V >= 2.

    Returns:
        int8 ``(N,)``: +1 (to the left of the polyline walked first point -> last, in image
        coordinates: up across a line drawn left to right), -1 the other way, 0.
    """
    v = np.asarray(vertices, np.float64).reshape(-1, 2)
    total = np.zeros(np.asarray(start).reshape(-1, 2).shape[0], np.int64)
    for a, b in zip(v[:-1], v[1:]):
        total += crossing_directions(start, end, a, b)
    return np.sign(total).astype(np.int8)


def step_polyline(last: dict[int, tuple[float, float]], ids, points, vertices, band: float,
                  timestamp_ns: int) -> tuple[dict[int, tuple[float, float]], list[LineCrossing]]:
    """One frame of a counting polyline, with a dead band against jitter.

    A track's position is remembered only while it is more than `band` from the polyline; a crossing
    is the move from the remembered position to the first one past the band on the other side. A
    track wobbling on the line (within the band) is not counted at all, one that crosses is counted
    once, and it must cross back before it can be counted the same way again.

    Args:
        last: ``{track_id: (x, y)}`` each track's last position outside the band (not changed).
        ids: ``(N,)`` ids of the tracks seen in this frame.
        points: ``(N, 2)`` their positions.
        vertices: ``(V, 2)`` the polyline.
        band: Half-width of the dead band (pixels); 0 keeps every position off the polyline itself.
        timestamp_ns: This frame's capture time.

    Returns:
        ``(last positions after this frame, crossings in id order)``; prune ended tracks from the mapping.
    """
    ids = np.asarray(ids, np.int64).reshape(-1).tolist()
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    off = distances_to_polyline(pts, vertices) > band if pts.size else np.zeros(0, bool)
    after = dict(last)
    known = [k for k, track_id in enumerate(ids) if track_id in last and off[k]]
    crossings = []
    if known:
        start = np.array([last[ids[k]] for k in known])
        direction = polyline_crossings(start, pts[known], vertices)
        crossings = [LineCrossing(ids[k], timestamp_ns, int(d)) for k, d in zip(known, direction.tolist()) if d]
    after.update((track_id, tuple(pt)) for track_id, pt, is_off in zip(ids, pts.tolist(), off.tolist()) if is_off)
    crossings.sort(key=lambda c: c.track_id)
    return after, crossings
