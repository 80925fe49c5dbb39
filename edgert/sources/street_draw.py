"""Drawing the synthetic street's agents: vehicles as shaded 3-D boxes with plates, people as figures.

Each draw function projects an agent through a `Camera`, paints it into the frame with OpenCV
polygon fills (faces turned away from the camera are skipped, so a convex body needs no sorting),
writes the same pixels into an id mask, and returns the image points it covered (for the ground-truth
box) and, for vehicles, the plate quadrilateral it drew.
"""
from __future__ import annotations

import math

import numpy as np

from edgert.sources.street_view import Camera

_LIGHT = np.array([0.35, -0.45, 0.82])  # towards the sun
_LIGHT /= np.linalg.norm(_LIGHT)
_FONTS = (0, 2, 3, 4)  # cv2 Hershey SIMPLEX, DUPLEX, COMPLEX, TRIPLEX
PLATE_SIZE = {1: (0.52, 0.11), 2: (0.19, 0.14)}  # real plate (width, height) in metres by rows
_BOX_FACES = ((0, 1, 2, 3), (7, 6, 5, 4), (0, 4, 5, 1), (1, 5, 6, 2), (2, 6, 7, 3), (3, 7, 4, 0))
_BOX_NORMALS = np.array([(0, 0, -1), (0, 0, 1), (0, -1, 0), (1, 0, 0), (0, 1, 0), (-1, 0, 0)], np.float64)


def box_corners(x0, x1, y0, y1, z0, z1, top_inset=(0.0, 0.0, 0.0, 0.0)) -> np.ndarray:
    """Eight local corners of a box (bottom four then top four), the top optionally inset per side
    (front, back, left, right), ordered so `_BOX_FACES` are counter-clockwise from outside."""
    f, b, l, r = top_inset
    return np.array([(x0, y0, z0), (x1, y0, z0), (x1, y1, z0), (x0, y1, z0),
                     (x0 + b, y0 + r, z1), (x1 - f, y0 + r, z1), (x1 - f, y1 - l, z1), (x0 + b, y1 - l, z1)])


class Painter:
    """Draws into one frame and its id mask for one camera.

    Attributes:
        frame: uint8 BGR frame being drawn.
        mask: uint8 ids (0 background; the caller's id per agent).
        covered: Image points drawn for the current agent (for its box).
    """

    def __init__(self, camera: Camera, cv2):
        self.camera, self.cv2 = camera, cv2
        self.frame = self.mask = None
        self.mark = 0
        self.covered: list = []

    def begin(self, frame, mask, mark: int) -> None:
        self.frame, self.mask, self.mark, self.covered = frame, mask, mark, []

    def poly(self, pts: np.ndarray, colour) -> None:
        """Fill a convex image polygon ``(N, 2)`` in the frame and the mask."""
        ipts = np.round(pts * 16).astype(np.int32).reshape(-1, 1, 2)
        self.cv2.fillConvexPoly(self.frame, ipts, colour, self.cv2.LINE_8, 4)
        self.cv2.fillConvexPoly(self.mask, ipts, self.mark, self.cv2.LINE_8, 4)
        self.covered.append(pts)

    def ellipse(self, centre, axes, angle, colour) -> None:
        c = (round(centre[0] * 16), round(centre[1] * 16))
        a = (max(1, round(axes[0] * 16)), max(1, round(axes[1] * 16)))
        self.cv2.ellipse(self.frame, c, a, angle, 0, 360, colour, -1, self.cv2.LINE_8, 4)
        self.cv2.ellipse(self.mask, c, a, angle, 0, 360, self.mark, -1, self.cv2.LINE_8, 4)
        r = max(axes)
        self.covered.append(np.array([(centre[0] - r, centre[1] - r), (centre[0] + r, centre[1] + r)]))


def _shade(colour, normal) -> tuple:
    k = 0.55 + 0.45 * max(0.0, float(normal @ _LIGHT))
    return tuple(float(min(255.0, c * k)) for c in colour)


def _world(points: np.ndarray, x: float, y: float, heading: float) -> np.ndarray:
    c, s = math.cos(heading), math.sin(heading)
    out = points.copy()
    out[:, 0] = x + c * points[:, 0] - s * points[:, 1]
    out[:, 1] = y + s * points[:, 0] + c * points[:, 1]
    return out


def _rotate(normals: np.ndarray, heading: float) -> np.ndarray:
    c, s = math.cos(heading), math.sin(heading)
    out = normals.copy()
    out[:, 0] = c * normals[:, 0] - s * normals[:, 1]
    out[:, 1] = s * normals[:, 0] + c * normals[:, 1]
    return out


def _inset(quad: np.ndarray, u0, u1, v0, v1) -> np.ndarray:
    """A sub-quad of an image quad in `_BOX_FACES` order: fractions u up a side face (first edge), v across it."""
    a, b, c, d = quad
    def at(u, v):
        top, bottom = a + (b - a) * u, d + (c - d) * u
        return top + (bottom - top) * v
    return np.array([at(u0, v0), at(u1, v0), at(u1, v1), at(u0, v1)])


class Solid:
    """A box of a vehicle placed in the world: its projected corners and which faces the camera sees."""

    def __init__(self, painter: Painter, local: np.ndarray, pose: tuple):
        x, y, heading = pose
        self.world = _world(local, x, y, heading)
        self.img, self.depth = painter.camera.project(self.world)
        self.normals = _rotate(_BOX_NORMALS, heading)
        centres = np.array([self.world[list(f)].mean(0) for f in _BOX_FACES])
        self.facing = np.einsum("ij,ij->i", self.normals, painter.camera.position - centres) > 0

    def face(self, k: int) -> np.ndarray:
        return self.img[list(_BOX_FACES[k])]


def draw_vehicle(painter: Painter, agent, pose: tuple, plates: dict, plate_scale: float, before_plate=None):
    """Draw a car, bus or motorbike at ``pose = (x, y, heading)``; return its plate quad (or None).

    ``before_plate()`` is called before a motorbike's plate is drawn (its rider goes there, so the rear
    plate stays in front of the rider's legs); it must leave the painter as it found it.
    """
    length, width, height = agent.size
    hl, hw = length / 2, width / 2
    paint = agent.look["paint"]
    x, y, heading = pose
    shadow = _world(np.array([(-hl - 0.2, -hw - 0.15, 0), (hl + 0.2, -hw - 0.15, 0), (hl + 0.2, hw + 0.15, 0),
                              (-hl - 0.2, hw + 0.15, 0)], np.float64), x, y, heading)
    painter.poly(painter.camera.project(shadow)[0], (38, 38, 40))
    painter.covered.pop()  # the shadow is not part of the object's box
    if agent.kind == "motorbike":
        return _draw_motorbike(painter, agent, pose, plates, plate_scale, before_plate)
    clearance = 0.3 if agent.kind == "car" else 0.38
    belt = height * (0.5 if agent.kind == "car" else 0.98)
    body = Solid(painter, box_corners(-hl, hl, -hw, hw, clearance, belt), pose)
    _draw_wheels(painter, body, agent, pose, clearance)
    _draw_solid(painter, body, paint)
    front, back = 3, 5  # +x face and -x face indices in _BOX_FACES
    if agent.kind == "car":
        cab = agent.look["cabin"]
        cabin = Solid(painter, box_corners(-hl + 0.15 * length, -hl + (0.15 + cab) * length, -hw + 0.05, hw - 0.05,
                                           belt, height, (0.45, 0.25, 0.12, 0.12)), pose)
        _draw_solid(painter, cabin, paint, glass=True)
    else:
        _draw_bus_windows(painter, body)
    for k, lamp in ((front, (200, 240, 250)), (back, (30, 30, 200))):
        if body.facing[k]:
            q = body.face(k)
            painter.poly(_inset(q, 0.6, 0.85, 0.05, 0.2), lamp)  # u: up the face, v: across it
            painter.poly(_inset(q, 0.6, 0.85, 0.8, 0.95), lamp)
    return _draw_plate(painter, agent, pose, plates, plate_scale, body, (hl, 0.0, clearance + 0.22), (front, back))


def _draw_solid(painter: Painter, solid: Solid, colour, glass: bool = False) -> None:
    for k in range(6):
        if solid.facing[k]:
            q = solid.face(k)
            painter.poly(q, _shade(colour, solid.normals[k]))
            if glass and k not in (0, 1):  # windows on the four sides of a cabin
                painter.poly(_inset(q, 0.08, 0.92, 0.12, 0.9), _shade((95, 70, 55), solid.normals[k]))


def _draw_bus_windows(painter: Painter, body: Solid) -> None:
    for k in (2, 3, 4, 5):
        if not body.facing[k]:
            continue
        q = body.face(k)
        if k in (2, 4):  # long sides: a band of windows
            for i in range(6):
                u0 = 0.04 + i * 0.16
                painter.poly(_inset(q, 0.45, 0.8, u0, u0 + 0.13), _shade((95, 75, 60), body.normals[k]))
        else:
            painter.poly(_inset(q, 0.45, 0.9, 0.06, 0.94), _shade((95, 75, 60), body.normals[k]))


def _draw_wheels(painter: Painter, body: Solid, agent, pose: tuple, clearance: float) -> None:
    length, width, _ = agent.size
    r = 0.33 if agent.kind != "bus" else 0.5
    for side, k in ((-width / 2 - 0.01, 2), (width / 2 + 0.01, 4)):
        if not body.facing[k]:
            continue
        for cx in (-length / 2 + 0.22 * length, length / 2 - 0.2 * length):
            local = np.array([(cx - r, side, 0.0), (cx + r, side, 0.0), (cx + r, side, 2 * r),
                              (cx - r, side, 2 * r)], np.float64)
            painter.poly(painter.camera.project(_world(local, *pose))[0], (25, 25, 28))


def _draw_motorbike(painter: Painter, agent, pose: tuple, plates: dict, plate_scale: float, before_plate):
    length, width, height = agent.size
    hl, hw = length / 2, width / 2
    for cx in (-hl + 0.3, hl - 0.3):  # wheels: thin boxes
        wheel = Solid(painter, box_corners(cx - 0.3, cx + 0.3, -0.06, 0.06, 0.0, 0.6), pose)
        _draw_solid(painter, wheel, (25, 25, 28))
    body = Solid(painter, box_corners(-hl + 0.2, hl - 0.15, -hw / 2, hw / 2, 0.35, 0.85), pose)
    _draw_solid(painter, body, agent.look["paint"])
    bar = Solid(painter, box_corners(hl - 0.45, hl - 0.3, -hw, hw, 0.85, height), pose)
    _draw_solid(painter, bar, (40, 40, 45))
    if before_plate is not None:
        before_plate()
    quad = _draw_plate(painter, agent, pose, plates, plate_scale, body, (hl - 0.15, 0.0, 0.62), (None, 5))
    return quad


def _draw_plate(painter: Painter, agent, pose: tuple, plates: dict, plate_scale: float, body: Solid,
                anchor: tuple, faces: tuple):
    """Draw the plate on whichever of the (front, back) faces the camera sees; its image quad or None."""
    ax, _ay, az = anchor
    rows = len(agent.plate)
    pw, ph = (v * plate_scale for v in PLATE_SIZE[rows])
    back_x = -agent.size[0] / 2 + (0.15 if agent.kind == "motorbike" else 0.0)
    for k, px in ((faces[0], ax + 0.02), (faces[1], back_x - 0.02)):
        if k is None or not body.facing[k]:
            continue
        sgn = 1.0 if px > 0 else -1.0  # plate corners left-to-right as seen from outside that face
        local = np.array([(px, -sgn * pw / 2, az + ph / 2), (px, sgn * pw / 2, az + ph / 2),
                          (px, sgn * pw / 2, az - ph / 2), (px, -sgn * pw / 2, az - ph / 2)], np.float64)
        quad, depth = painter.camera.project(_world(local, *pose))
        if np.any(depth < 0.5):
            return None
        paste_plate(painter, quad, plate_texture(plates, agent, painter.cv2))
        return quad
    return None


def plate_texture(cache: dict, agent, cv2) -> list:
    """The agent's plate as an image pyramid (largest first), drawn once and cached by agent id."""
    tex = cache.get(agent.id)
    if tex is not None:
        return tex
    rows = agent.plate
    w, h = (416, 88) if len(rows) == 1 else (228, 168)
    img = np.full((h, w, 3), 238, np.uint8)
    cv2.rectangle(img, (3, 3), (w - 4, h - 4), (20, 20, 20), 4)
    font = _FONTS[agent.look["font"] % len(_FONTS)]
    thick = max(2, round(5 * agent.look["plate_thickness"]))
    line_h = (h - 16) / len(rows)
    for i, text in enumerate(rows):
        (tw, th), _ = cv2.getTextSize(text, font, 1.0, thick)
        scale = min((w - 28) / tw, (line_h * 0.72) / th)
        (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
        org = (round((w - tw) / 2), round(8 + line_h * i + (line_h + th) / 2))
        cv2.putText(img, text, org, font, scale, (15, 15, 15), thick, cv2.LINE_AA)
    pyramid = [img]
    while pyramid[-1].shape[1] > 24:
        pyramid.append(cv2.pyrDown(pyramid[-1]))
    cache[agent.id] = pyramid
    return pyramid


def paste_plate(painter: Painter, quad: np.ndarray, pyramid: list) -> None:
    """Warp the plate texture (the pyramid level nearest the drawn size) onto an image quad."""
    cv2, frame = painter.cv2, painter.frame
    fh, fw = frame.shape[:2]
    x0, y0 = np.floor(quad.min(0)).astype(int)
    x1, y1 = np.ceil(quad.max(0)).astype(int) + 1
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, fw), min(y1, fh)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    width = float(np.linalg.norm(quad[1] - quad[0]))
    tex = pyramid[0]
    for level in pyramid:
        if level.shape[1] >= width:
            tex = level
    th, tw = tex.shape[:2]
    src = np.array([(0, 0), (tw - 1, 0), (tw - 1, th - 1), (0, th - 1)], np.float32)
    dst = (quad - (cx0, cy0)).astype(np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    roi = frame[cy0:cy1, cx0:cx1]
    warped = cv2.warpPerspective(tex, m, (cx1 - cx0, cy1 - cy0), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    inside = np.zeros(roi.shape[:2], np.uint8)
    cv2.fillConvexPoly(inside, np.round(dst * 16).astype(np.int32).reshape(-1, 1, 2), 1, cv2.LINE_8, 4)
    np.copyto(roi, warped, where=inside[..., None].astype(bool))
    painter.mask[cy0:cy1, cx0:cx1][inside.astype(bool)] = painter.mark
    painter.covered.append(quad)


def draw_person(painter: Painter, agent, state: tuple, t: float, seated: bool = False) -> None:
    """A walking (or riding) figure on its ground point, drawn as a billboard facing the camera."""
    x, y, vx, vy, _ = state
    height, hw = agent.size[2], agent.size[1] / 2
    look = agent.look
    if seated:
        base_z, hip = 0.6, 0.1
        shoulder = hip + 0.3 * height
    else:
        base_z, hip, shoulder = 0.0, 0.52 * height, 0.82 * height
    top = shoulder + 0.25
    cam = painter.camera
    (foot, head), depth = cam.project(np.array([(x, y, base_z), (x, y, base_z + top)], np.float64))
    if np.any(depth < 0.5):
        return
    up = head - foot
    ppm = cam.pixels_per_metre(float(depth[0]))
    n = np.array([-up[1], up[0]])
    n = n / (np.linalg.norm(n) + 1e-9) * ppm  # one metre across the figure, in pixels
    if n[0] < 0:
        n = -n

    def at(u, v):  # u metres across (image right), v metres up from the base
        return foot + up * (v / top) + n * u

    speed = math.hypot(vx, vy)
    swing = 0.0 if speed < 0.05 or seated else math.sin(t * speed / look["stride"] * math.pi + look["phase"])
    legs_to = -0.5 if seated else 0.0
    for side in (-1.0, 1.0):
        step = 0.12 * swing * side
        painter.poly(np.array([at(side * 0.02, hip), at(side * 0.15, hip), at(side * 0.15 + step, legs_to),
                               at(side * 0.02 + step, legs_to)]), look["trousers"])
    painter.poly(np.array([at(-hw * 0.8, hip + 0.08), at(hw * 0.8, hip + 0.08), at(hw * 0.8, hip - 0.05),
                           at(-hw * 0.8, hip - 0.05)]), look["trousers"])
    painter.poly(np.array([at(-hw, shoulder), at(hw, shoulder), at(hw * 0.8, hip), at(-hw * 0.8, hip)]),
                 look["shirt"])
    for side in (-1.0, 1.0):
        arm = 0.08 * swing * -side
        painter.poly(np.array([at(side * hw, shoulder), at(side * (hw + 0.08), shoulder - 0.02),
                               at(side * (hw + 0.07) + arm, hip + 0.02), at(side * (hw - 0.02) + arm, hip + 0.02)]),
                     look["shirt"])
    head_r = 0.11 * ppm
    colour = look.get("helmet", look["skin"])
    painter.ellipse(at(0.0, shoulder + 0.14), (head_r * 0.85, head_r), 0.0, colour)
    if "helmet" not in look:
        painter.ellipse(at(0.0, shoulder + 0.2), (head_r * 0.85, head_r * 0.55), 0.0, look["hair"])
    if look["bag"] and not seated:
        painter.poly(np.array([at(hw, hip + 0.2), at(hw + 0.14, hip + 0.2), at(hw + 0.14, hip - 0.05),
                               at(hw, hip - 0.05)]), (40, 60, 90))
