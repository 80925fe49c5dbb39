"""`StreetSource`: a rendered street seen by one of several cameras, with per-object ground truth.

The world (`edgert.sources.street_world`) is a function of ``seed`` alone: people walk the sidewalks,
through the shop zone (`ZONE`, where some stop and some go in at the door) and across the zebra
crossing; cars, buses and motorbikes with Vietnamese-style plates drive two lanes in opposite
directions (eastbound +X at Y = -1.75 m, westbound at +1.75 m) and cross the counting line `LINE`.
``camera`` picks one of `VIEWPOINTS`: every camera of one seed sees the same world at the same scene
time, so object ids agree across cameras. Frames are drawn from a background ray-cast once per camera,
shaded 3-D boxes for vehicles (plates warped from text drawn with OpenCV's Hershey fonts) and
billboard figures for people, painted far to near, plus camera noise.

Every frame's ``meta`` holds the ground truth:

* ``"camera"``, ``"seed"``, ``"frame"`` (index from 0), ``"time_s"`` (scene seconds, ``frame / rate``).
* ``"homography"``: 3x3 (tuple of rows) mapping image pixels ``(u, v, 1)`` to ground metres ``(X, Y, 1)``
  (divide by the third value); `StreetSource.camera` also has the inverse and the full projection.
* ``"objects"``: one dict per object drawn inside the frame (hidden behind nearer ones or not), far to near:

  - ``"id"`` (int, shared by every camera of the seed), ``"class"`` (one of `CLASSES`),
  - ``"box"``: ``(x0, y0, x1, y1)`` frame pixels, pixel edges (a box over pixel columns 0..9 spans
    x 0 to 10), the extent of everything drawn for the object inside the frame, parts hidden by nearer
    objects included,
  - ``"visible"``: fraction of the object's in-frame pixels not hidden by nearer objects (0 when wholly
    hidden: it is still listed, so a tracker's ground truth keeps it through the occlusion),
  - ``"world"``: ``(X, Y)`` ground metres of its centre (a person's feet), ``"velocity"``: ``(vX, vY)``
    m/s, ``"depth"``: metres from the camera, ``"in_zone"``: whether ``world`` is inside `ZONE`,
  - vehicles: ``"plate"`` (rows joined by a space: ``"51F-123.45"``, ``"59-X1 234.56"``),
    ``"plate_rows"``, and where the camera sees the plate ``"plate_quad"`` (four image points, top-left
    first, clockwise, pixel centres at integers), ``"plate_box"`` (its xyxy, clipped to the frame) and ``"plate_visible"`` (fraction of that box not
    hidden); otherwise those three are None,
  - people: ``"on"``: the id of the motorbike a rider sits on, else None.

Scoring helpers: `in_zone` (a ground point in `ZONE`), `line_crossing` (a ground move across `LINE`,
with its direction), `detectable` (see below); `StreetSource.zone_polygon` and ``line_points`` give the
zone and the line in the camera's pixels for an analytics config.

An object counts for detection when its box is at least `MIN_BOX_HEIGHT` pixels tall (at 720 rows; it
scales with the frame) and ``visible >= MIN_VISIBLE``: `detectable` says so. Plates are drawn at
``plate_scale`` times their real size (1.5 by default, so a 720p camera reads them at street distances).
"""
from __future__ import annotations

import math
import time
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from edgert.core.errors import ConfigError
from edgert.core.frame import Frame
from edgert.core.settings import Section
from edgert.sources.base import Source
from edgert.sources.street_draw import Painter, draw_person, draw_vehicle
from edgert.sources.street_view import VIEWPOINTS, Camera, clip_polygon, clip_segment, render_background
from edgert.sources.street_world import CLASSES, LINE, ZONE, World, in_zone, line_crossing

__all__ = ["CLASSES", "LINE", "MIN_BOX_HEIGHT", "MIN_VISIBLE", "VIEWPOINTS", "ZONE", "StreetConfig", "StreetScene",
           "StreetSource", "detectable", "in_zone", "line_crossing"]

MIN_BOX_HEIGHT = 24.0
MIN_VISIBLE = 0.5
_SCENE_RATE = 30.0  # frames per scene-second when fps is 0 (unpaced)


class StreetConfig(Section):
    """Settings of the synthetic street camera."""

    kind: Literal["street"] = Field("street", description="Source kind.")
    size: tuple[int, int] = Field((1280, 720), description="Frame (width, height) in pixels; the field of view "
                                                           "is fixed, so the scene scales with the width.")
    fps: float = Field(30.0, ge=0, le=1000, description="Frames per second to pace at; 0 renders as fast as "
                                                         "possible (the scene still advances 1/30 s a frame).")
    seed: int = Field(0, ge=0, description="World seed: the same seed gives the same world on every camera. The "
                                           "shipped detector was trained on seeds >= 1000 only (street.json).")
    camera: int = Field(0, ge=0, description=f"Viewpoint, 0..{len(VIEWPOINTS) - 1}: 0 an overview from the "
                                             "south-west, 1 down the street from the north-east (plates), "
                                             "2 high over the south sidewalk.")
    frames: int | None = Field(None, ge=1, description="Frames to send before the stream ends; None: forever.")
    traffic: float = Field(12.0, ge=0, le=60, description="Mean vehicles per minute in each lane.")
    pedestrians: float = Field(24.0, ge=0, le=240, description="Mean people appearing per minute.")
    plate_scale: float = Field(1.5, ge=0.5, le=4.0, description="Plate size over the real one (520x110 mm "
                                                                "car plates, 190x140 mm motorbike plates).")
    noise: float = Field(2.0, ge=0, le=40, description="Camera noise, standard deviation in grey levels.")

    @field_validator("size")
    @classmethod
    def _size(cls, v):
        w, h = v
        if w < 160 or h < 90 or w > 4096 or h > 4096:
            raise ValueError(f"frame size {w}x{h} outside 160x90 .. 4096x4096")
        return v

    @field_validator("camera")
    @classmethod
    def _camera(cls, v):
        if v >= len(VIEWPOINTS):
            raise ValueError(f"camera {v} does not exist; there are {len(VIEWPOINTS)} (0..{len(VIEWPOINTS) - 1})")
        return v


def detectable(obj: dict, frame_height: int) -> bool:
    """Whether a ground-truth object should be found by a detector (big and visible enough)."""
    x0, y0, x1, y1 = obj["box"]
    return (y1 - y0) >= MIN_BOX_HEIGHT * frame_height / 720.0 and obj["visible"] >= MIN_VISIBLE


def _cv2():
    try:
        import cv2
    except ImportError:
        raise ConfigError("street source needs OpenCV: pip install opencv-python-headless") from None
    return cv2


class StreetSource(Source):
    """Renders the street as BGR frames with per-object ground truth (see the module docstring).

    Attributes:
        camera: The `edgert.sources.street_view.Camera` (projection and ground homographies).
        zone_polygon: `ZONE` in this camera's pixels, clipped to the frame ([] when out of view).
        line_points: `LINE` in this camera's pixels, clipped to the frame ([] when out of view); its
            direction is kept (eastbound traffic crosses from its left to its right as seen from above).

    Args:
        config: The scene settings (defaults when None).
        **source_options: `Source` options (``backoff``, ``max_failures``).
    """

    Config = StreetConfig

    def __init__(self, config: StreetConfig | None = None, **source_options):
        super().__init__(**source_options)
        self.config = config if config is not None else StreetConfig()
        self.name = f"street (seed {self.config.seed}, camera {self.config.camera})"
        self.live = self.config.fps > 0
        self._scene = StreetScene(self.config, _cv2())
        self.camera = self._scene.camera
        self.zone_polygon = clip_polygon(self.camera.to_image(ZONE), self.config.size)
        self.line_points = clip_segment(*self.camera.to_image(LINE), self.config.size)

    def _open(self) -> None:
        self._t0 = time.monotonic()
        self._paced = 0

    def _read(self, timeout: float) -> Frame | None:
        fps = self.config.fps
        if fps > 0:
            due = self._t0 + self._paced / fps
            wait = due - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return None
            if wait < -1.0:  # far behind (a stalled consumer): restart the pacing clock, no burst
                self._t0, self._paced = time.monotonic(), 0
            self._paced += 1
        rendered = self._scene.next_frame()
        if rendered is None:
            return None
        pixels, meta = rendered
        h, w = pixels.shape[:2]
        seq, generation = self._next_stamps("BGR", (w, h))
        return Frame(pixels, "BGR", (w, h), pixels.strides[0], time.monotonic_ns(), seq, generation, meta)

    def _close(self) -> None:
        pass


class StreetScene:
    """One camera's view of one world; `next_frame` renders the next frame and its ground truth."""

    def __init__(self, config: StreetConfig, cv2):
        self.cv2, self.config = cv2, config
        self.w, self.h = config.size
        self.camera = Camera(VIEWPOINTS[config.camera], config.size)
        view_rng = np.random.default_rng([config.seed, 11, config.camera])
        self.background = render_background(self.camera, np.random.default_rng([config.seed, 3]), cv2)
        self.world = World(config.seed, config.traffic, config.pedestrians)
        self.painter = Painter(self.camera, cv2)
        self.mask = np.zeros((self.h, self.w), np.uint8)
        self.plates: dict = {}
        self.homography = tuple(tuple(float(v) for v in row) for row in self.camera.image_to_ground)
        self.dt = 1.0 / (config.fps if config.fps > 0 else _SCENE_RATE)
        self.index = 0
        self.rng = view_rng
        pad = 16
        self.pad = pad
        noise = view_rng.normal(0.0, config.noise, (self.h + pad, self.w + pad, 3)) if config.noise > 0 else None
        self.noise_pos = None if noise is None else np.clip(noise, 0, 255).astype(np.uint8)
        self.noise_neg = None if noise is None else np.clip(-noise, 0, 255).astype(np.uint8)

    def next_frame(self):
        """``(pixels, meta)`` of the next frame, or None after ``config.frames`` frames."""
        if self.config.frames is not None and self.index >= self.config.frames:
            return None
        return self.render(self.index)

    def render(self, index: int):
        """``(pixels, meta)`` of frame `index`, which may skip ahead but not go back (the world forgets
        the past); the next `next_frame` is ``index + 1``. Skipping gives the same frame as stepping
        there, camera noise aside."""
        if index < self.index:
            raise ValueError(f"frame {index} is before the next frame, {self.index}: the scene only moves forward")
        self.index = index
        t = self.index * self.dt
        self.world.advance(t)
        frame = self.background.copy()
        self.mask.fill(0)
        drawn = self._draw_all(frame, t)
        objects = [self._truth(rec) for rec in drawn]
        self._add_noise(frame)
        meta = {"camera": self.config.camera, "seed": self.config.seed, "frame": self.index,
                "time_s": round(t, 6), "homography": self.homography,
                "objects": [o for o in objects if o is not None]}
        self.index += 1
        live = {a.id for a in self.world.agents}
        for gone in [k for k in self.plates if k not in live]:
            del self.plates[gone]
        return frame, meta

    def _draw_all(self, frame, t: float) -> list:
        """Paint every active agent far to near; records of (agent, state, mark, box, area, plate quad)."""
        cam_xy = self.camera.position[:2]
        order = []
        for agent in self.world.active(t):
            state = agent.state(t)
            dist = math.hypot(state[0] - cam_xy[0], state[1] - cam_xy[1])
            order.append((dist, agent, state))
        order.sort(key=lambda item: -item[0])
        records = []
        for _, agent, state in order:
            if len(records) >= 250:  # the mask holds 255 ids; the scene never has this many in view
                break
            x, y, vx, vy, heading = state
            if self._behind(agent, x, y, heading):
                continue
            mark = len(records) + 1
            painter = self.painter
            painter.begin(frame, self.mask, mark)
            quad, rider = None, []
            if agent.kind == "person":
                draw_person(painter, agent, state, t)
            else:
                def draw_rider(agent=agent):
                    saved = (painter.mark, painter.covered)
                    painter.begin(frame, self.mask, mark + 1)
                    seat = (x - 0.15 * math.cos(heading), y - 0.15 * math.sin(heading), vx, vy, heading)
                    draw_person(painter, agent.rider, seat, t, seated=True)
                    rider.append(self._record(agent.rider, seat, mark + 1, None))
                    painter.mark, painter.covered = saved

                quad = draw_vehicle(painter, agent, (x, y, heading), self.plates, self.config.plate_scale,
                                    draw_rider if agent.rider is not None else None)
            records.append(self._record(agent, state, mark, quad))
            records += rider
        return [r for r in records if r is not None]

    def _behind(self, agent, x: float, y: float, heading: float) -> bool:
        """Whether any corner of the agent's footprint is too close to (or behind) the camera to draw."""
        hl, hw = agent.size[0] / 2 + 0.3, agent.size[1] / 2 + 0.3
        c, s = math.cos(heading), math.sin(heading)
        corners = np.array([(x + c * u - s * v, y + s * u + c * v, 0.0) for u in (-hl, hl) for v in (-hw, hw)])
        _, depth = self.camera.project(corners)
        return bool(depth.min() < 1.5)

    def _record(self, agent, state, mark: int, quad):
        """The agent's record, its box the drawn pixels' extent (before nearer agents cover any)."""
        pts = self.painter.covered
        if not pts:
            return None
        allp = np.concatenate(pts)
        x0, y0 = np.floor(allp.min(0)).astype(int)
        x1, y1 = np.ceil(allp.max(0)).astype(int) + 1
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(self.w, x1), min(self.h, y1)
        if x1 <= x0 or y1 <= y0:
            return None
        mine = self.mask[y0:y1, x0:x1] == mark
        cols, rows = np.flatnonzero(mine.any(0)), np.flatnonzero(mine.any(1))
        if cols.size == 0:
            return None
        box = (x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1)
        return (agent, state, mark, box, int(np.count_nonzero(mine)), quad)

    def _count(self, box, mark: int) -> int:
        x0, y0, x1, y1 = (int(math.floor(box[0])), int(math.floor(box[1])), int(math.ceil(box[2])),
                          int(math.ceil(box[3])))
        return int(np.count_nonzero(self.mask[y0:y1, x0:x1] == mark))

    def _truth(self, rec) -> dict:
        """The ground-truth dict of one drawn agent (see the module docstring)."""
        agent, state, mark, box, area, quad = rec
        x, y, vx, vy, _ = state
        obj = {"id": agent.id, "class": agent.kind, "box": tuple(float(v) for v in box),
               "visible": round(min(1.0, self._count(box, mark) / area), 4),
               "world": (round(float(x), 4), round(float(y), 4)), "velocity": (round(float(vx), 4), round(float(vy), 4)),
               "depth": round(float(self.camera.project(np.array([(x, y, 0.0)]))[1][0]), 3),
               "in_zone": bool(in_zone(x, y))}
        if agent.kind == "person":
            obj["on"] = agent.on
            return obj
        obj.update(plate=" ".join(agent.plate), plate_rows=agent.plate, plate_quad=None, plate_box=None,
                   plate_visible=None)
        if quad is not None:
            px0, py0 = quad.min(0)
            px1, py1 = quad.max(0)
            pbox = (max(0.0, float(px0)), max(0.0, float(py0)), min(float(self.w), float(px1) + 0.5),
                    min(float(self.h), float(py1) + 0.5))
            if pbox[2] > pbox[0] and pbox[3] > pbox[1]:
                obj["plate_quad"] = tuple((round(float(u), 2), round(float(v), 2)) for u, v in quad)
                obj["plate_box"] = tuple(round(v, 2) for v in pbox)
                obj["plate_visible"] = self._quad_visible(quad, pbox, mark)
        return obj

    def _quad_visible(self, quad, box, mark: int) -> float:
        """Fraction of the pixels inside an image quad that still belong to agent `mark`."""
        x0, y0 = int(math.floor(box[0])), int(math.floor(box[1]))
        x1, y1 = int(math.ceil(box[2])), int(math.ceil(box[3]))
        inside = np.zeros((y1 - y0, x1 - x0), np.uint8)
        pts = np.round((quad - (x0, y0)) * 16).astype(np.int32).reshape(-1, 1, 2)
        self.cv2.fillConvexPoly(inside, pts, 1, self.cv2.LINE_8, 4)
        total = int(np.count_nonzero(inside))
        if total == 0:
            return 0.0
        mine = np.count_nonzero((self.mask[y0:y1, x0:x1] == mark) & inside.astype(bool))
        return round(mine / total, 4)

    def _add_noise(self, frame) -> None:
        if self.noise_pos is None:
            return
        cv2, h, w = self.cv2, self.h, self.w
        dy, dx = (int(v) for v in self.rng.integers(0, self.pad, 2))
        cv2.add(frame, self.noise_pos[dy:dy + h, dx:dx + w], dst=frame)
        dy, dx = (int(v) for v in self.rng.integers(0, self.pad, 2))
        cv2.subtract(frame, self.noise_neg[dy:dy + h, dx:dx + w], dst=frame)
