"""The synthetic street's world: who is where, when (a function of the seed alone, shared by every camera).

Vehicles drive along two lanes in opposite directions; people walk the sidewalks, some through the shop
zone (stopping there for a while, some going in through the door or coming out of it), some across the
zebra crossing. Every agent moves along a piecewise-linear path in time, so its ground position and
velocity at any scene time are exact. Agents are generated lazily in time order from one random stream,
so the world of a seed is the same whichever camera renders it and however far it is run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edgert.sources.street_view import CROSSING_X, CURB, DOOR_X, FACADE

CLASSES = ("person", "car", "bus", "motorbike")
"""Object classes, in the output order of the shipped street detector."""

ROAD_END = 75.0  # vehicles enter and leave at |X| = ROAD_END; people walk within +-WALK_END
WALK_END = 45.0
LANES = ((-1.75, 1.0), (1.75, -1.0))  # (lane centre Y, direction along X)
ZONE = ((3.5, 4.6), (11.5, 4.6), (11.5, FACADE), (3.5, FACADE))
"""The shop zone on the north sidewalk, ground metres (counter-clockwise seen from above)."""
LINE = ((6.0, -3.5), (6.0, 3.5))
"""A counting line across the road, ground metres; eastbound traffic (+X) crosses it left to right."""
WARM_UP_S = 45.0  # the world is simulated from this many seconds before frame 0, so it starts populated
_PLATE_LETTERS = "ABCDEFGHKLMNPSTUVXYZ"

# length, width, height (metres) and (speed range m/s) per vehicle class
_VEHICLE = {"car": ((3.9, 4.7), (1.7, 1.85), (1.4, 1.6), (9.0, 13.0)),
            "bus": ((10.0, 12.0), (2.4, 2.55), (3.0, 3.3), (7.5, 9.5)),
            "motorbike": ((1.8, 2.0), (0.65, 0.75), (1.05, 1.2), (8.0, 12.0))}


@dataclass(slots=True)
class Agent:
    """One person or vehicle and its path.

    Attributes:
        id: Unique in the world, in order of appearance.
        kind: One of `CLASSES`.
        times: Scene times (s) of the path's waypoints, increasing.
        points: Ground positions (m) ``(K, 2)`` at those times.
        size: (length, width, height) in metres; a person's length and width are body depth and width.
        look: Drawing parameters (colours, font, ...) fixed at birth.
        plate: Plate text rows (one row for cars and buses, two for motorbikes), or ().
        rider: The person riding a motorbike (drawn with it; its own object in the ground truth).
        on: For a rider, the id of the motorbike.
    """

    id: int
    kind: str
    times: np.ndarray
    points: np.ndarray
    size: tuple
    look: dict = field(default_factory=dict)
    plate: tuple = ()
    rider: "Agent | None" = None
    on: int | None = None

    @property
    def start(self) -> float:
        return float(self.times[0])

    @property
    def end(self) -> float:
        return float(self.times[-1])

    def state(self, t: float) -> tuple:
        """``(x, y, vx, vy, heading)`` at scene time `t` (heading in radians, from the current segment)."""
        times, pts = self.times, self.points
        k = int(np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2))
        t0, t1 = times[k], times[k + 1]
        s = 0.0 if t1 <= t0 else (t - t0) / (t1 - t0)
        p0, p1 = pts[k], pts[k + 1]
        x, y = p0[0] + s * (p1[0] - p0[0]), p0[1] + s * (p1[1] - p0[1])
        dt = t1 - t0
        vx, vy = ((p1[0] - p0[0]) / dt, (p1[1] - p0[1]) / dt) if dt > 0 else (0.0, 0.0)
        heading = self.look.get("heading", 0.0)
        if vx or vy:
            heading = math.atan2(vy, vx)
        else:  # standing: keep facing the way the last moving segment went
            for j in range(k, -1, -1):
                d = pts[j + 1] - pts[j]
                if d[0] or d[1]:
                    heading = math.atan2(d[1], d[0])
                    break
        return x, y, vx, vy, heading


def in_zone(x: float, y: float) -> bool:
    """Whether a ground point lies inside `ZONE` (an axis-aligned rectangle)."""
    return ZONE[0][0] <= x <= ZONE[1][0] and ZONE[0][1] <= y <= ZONE[2][1]


def line_crossing(before, after) -> int:
    """+1 if a ground move ``before -> after`` (metres) crosses `LINE` eastbound (+X), -1 westbound, else 0.

    Score a line counter with it: over consecutive frames, each object's ``"world"`` positions.
    """
    (lx, y_lo), (_, y_hi) = LINE
    (x0, y0), (x1, y1) = before, after
    if (x0 < lx) == (x1 < lx):
        return 0
    y = y0 + (lx - x0) / (x1 - x0) * (y1 - y0)
    if not y_lo <= y <= y_hi:
        return 0
    return 1 if x1 > x0 else -1


def plate_rows(kind: str, rng) -> tuple:
    """A Vietnamese-style plate: ``("51F-123.45",)`` for cars and buses, ``("59-X1", "234.56")`` for motorbikes."""
    province = int(rng.integers(11, 100))
    letter = _PLATE_LETTERS[int(rng.integers(len(_PLATE_LETTERS)))]
    digits = rng.integers(0, 10, 5)
    if kind == "motorbike":
        return (f"{province}-{letter}{int(rng.integers(1, 10))}", "{}{}{}.{}{}".format(*digits))
    if rng.random() < 0.2:  # older four-digit series
        return (f"{province}{letter}-{''.join(map(str, digits[:4]))}",)
    return ("{}{}-{}{}{}.{}{}".format(province, letter, *digits),)


def _colour(rng, palette) -> tuple:
    base = np.asarray(palette[int(rng.integers(len(palette)))], np.float64)
    return tuple(np.clip(base * rng.uniform(0.85, 1.15, 3), 0, 255))


_PAINT = [(235, 235, 235), (30, 30, 30), (160, 160, 165), (40, 40, 170), (150, 60, 20), (60, 110, 60),
          (20, 140, 220), (90, 90, 100), (200, 200, 60), (30, 60, 120)]
_SHIRT = [(200, 80, 30), (40, 40, 180), (230, 230, 230), (30, 30, 30), (60, 150, 60), (40, 160, 220),
          (150, 60, 150), (120, 120, 120), (20, 90, 200), (180, 180, 60)]
_TROUSERS = [(60, 40, 20), (30, 30, 30), (110, 100, 90), (140, 90, 40), (70, 70, 120)]
_SKIN = [(140, 170, 215), (110, 145, 190), (80, 110, 150), (60, 80, 110), (160, 190, 230)]


def person_look(rng) -> dict:
    return {"shirt": _colour(rng, _SHIRT), "trousers": _colour(rng, _TROUSERS), "skin": _colour(rng, _SKIN),
            "hair": _colour(rng, [(20, 20, 25), (30, 50, 80), (120, 120, 125), (40, 80, 130)]),
            "bag": rng.random() < 0.3, "stride": float(rng.uniform(0.65, 0.8)), "phase": float(rng.uniform(0, 6.3))}


class World:
    """Agents of one seed, generated in time order as `advance` is asked for later times.

    Args:
        seed: The world seed.
        traffic: Mean vehicles per minute per lane.
        pedestrians: Mean people appearing per minute.
    """

    def __init__(self, seed: int, traffic: float, pedestrians: float):
        self.rng = np.random.default_rng([seed, 7])
        self.traffic, self.pedestrians = traffic, pedestrians
        self.agents: list[Agent] = []
        self._next_id = 0
        self._lane_next = [-WARM_UP_S - float(self.rng.uniform(0, 3)) for _ in LANES]
        self._lane_last: list[Agent | None] = [None, None]
        self._walker_next = -WARM_UP_S
        self._horizon = -WARM_UP_S

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def advance(self, t: float) -> None:
        """Generate every agent that appears up to time `t` and forget those gone before it."""
        while self._horizon < t:
            self._horizon += 1.0
            for lane in range(len(LANES)):
                while self.traffic > 0 and self._lane_next[lane] <= self._horizon:
                    self._spawn_vehicle(lane, self._lane_next[lane])
            while self.pedestrians > 0 and self._walker_next <= self._horizon:
                self._spawn_walker(self._walker_next)
                self._walker_next += float(self.rng.exponential(60.0 / self.pedestrians))
        self.agents = [a for a in self.agents if a.end >= t]

    def active(self, t: float) -> list[Agent]:
        """Agents on the street at time `t` (riders are reached through their motorbike)."""
        return [a for a in self.agents if a.start <= t <= a.end]

    # -- vehicles ---------------------------------------------------------------------------------------
    def _spawn_vehicle(self, lane: int, t0: float) -> None:
        rng = self.rng
        kind = ("car", "bus", "motorbike")[int(rng.choice(3, p=(0.62, 0.1, 0.28)))]
        lengths, widths, heights, speeds = _VEHICLE[kind]
        length, width, height = (float(rng.uniform(*r)) for r in (lengths, widths, heights))
        speed = float(rng.uniform(*speeds))
        lane_y, direction = LANES[lane]
        prev = self._lane_last[lane]
        if prev is not None:  # never catch up with the vehicle ahead before it leaves the road
            v_prev = abs(prev.points[1, 0] - prev.points[0, 0]) / (prev.end - prev.start)
            left = prev.end - t0
            gap = v_prev * (t0 - prev.start) - (prev.size[0] + length) / 2 - 4.0
            if left > 0:
                speed = min(speed, v_prev + max(0.0, gap) / left)
        jitter = 0.6 if kind == "motorbike" else 0.25
        y = lane_y + float(rng.uniform(-jitter, jitter))
        x0, x1 = -direction * ROAD_END, direction * ROAD_END
        duration = 2 * ROAD_END / speed
        look = {"paint": _colour(rng, _PAINT if kind != "bus" else [(40, 160, 230), (60, 60, 200), (200, 200, 200),
                                                                       (60, 140, 60)]),
                "font": int(rng.integers(0, 4)), "plate_thickness": float(rng.uniform(0.8, 1.2)),
                "cabin": float(rng.uniform(0.45, 0.6)), "heading": 0.0 if direction > 0 else math.pi}
        agent = Agent(self._new_id(), kind, np.array([t0, t0 + duration]), np.array([[x0, y], [x1, y]]),
                      (length, width, height), look, plate_rows(kind, rng))
        if kind == "motorbike":
            rider = Agent(self._new_id(), "person", agent.times, agent.points,
                          (0.3, 0.5, float(rng.uniform(1.55, 1.75))), person_look(rng), on=agent.id)
            rider.look["helmet"] = _colour(rng, _PAINT)
            agent.rider = rider
        self.agents.append(agent)
        self._lane_last[lane] = agent
        headway = (length + 5.0) / speed + 0.6
        self._lane_next[lane] = t0 + max(headway, float(rng.exponential(60.0 / self.traffic)))

    # -- people -----------------------------------------------------------------------------------------
    def _spawn_walker(self, t0: float) -> None:
        rng = self.rng
        speed = float(rng.uniform(1.0, 1.6))
        north = rng.random() < 0.6
        side = 1.0 if north else -1.0
        lane_y = side * float(rng.uniform(CURB + 0.5, FACADE - 0.6))
        direction = 1.0 if rng.random() < 0.5 else -1.0
        start_x, end_x = -direction * WALK_END, direction * WALK_END
        route = rng.random()
        door_y = FACADE - 0.15
        door_x = float(rng.uniform(DOOR_X[0] + 0.2, DOOR_X[1] - 0.2))
        if north and route < 0.45:  # through the shop zone: stop, then go in, or walk on
            stop = (float(rng.uniform(4.5, 10.5)), float(rng.uniform(5.2, FACADE - 0.8)))
            pts = [(start_x, lane_y), (stop[0], lane_y), stop, stop]
            waits = [None, None, float(rng.uniform(2.0, 9.0))]
            if rng.random() < 0.5:
                pts.append((door_x, door_y))
                waits.append(None)
            else:
                pts += [(stop[0] + direction * 2.0, lane_y), (end_x, lane_y)]
                waits += [None, None]
        elif north and route < 0.6:  # out of the shop door and away
            pts = [(door_x, door_y), (door_x, lane_y), (end_x, lane_y)]
            waits = [None, None]
        elif route < 0.8:  # across the zebra crossing to the other sidewalk
            cx = float(rng.uniform(CROSSING_X[0] + 0.4, CROSSING_X[1] - 0.4))
            other = -side * float(rng.uniform(CURB + 0.5, FACADE - 0.6))
            pts = [(start_x, lane_y), (cx, lane_y), (cx + rng.uniform(-0.3, 0.3), other), (end_x, other)]
            waits = [None, None, None]
        else:
            pts = [(start_x, lane_y), (end_x, lane_y)]
            waits = [None]
        times = [t0]
        for (a, b), wait in zip(zip(pts[:-1], pts[1:]), waits):
            dist = math.hypot(b[0] - a[0], b[1] - a[1])
            times.append(times[-1] + (wait if wait is not None else dist / speed))
        size = (0.3, float(rng.uniform(0.42, 0.52)), float(rng.uniform(1.5, 1.9)))
        self.agents.append(Agent(self._new_id(), "person", np.array(times), np.array(pts, np.float64), size,
                                 person_look(rng)))
