"""Cameras over the synthetic street: pinhole projection, ground homography and the static background.

World coordinates are metres on a right-handed frame: X along the street, Y across it (north is +Y),
Z up, the ground at Z = 0. The road runs along X between Y = -3.5 and +3.5 (two lanes: eastbound at
Y = -1.75, westbound at +1.75), with a zebra crossing at X in [-2, 2]; sidewalks lie between the curbs
(|Y| = 3.75) and the facades (|Y| = 9). Image pixels follow OpenCV: x right, y down, pixel centres
at integer coordinates.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ROAD_HALF = 3.5  # road edge lines at |Y| = 3.5
CURB = 3.75  # sidewalks from the curb to the facade
FACADE = 9.0
BUILDING_TOP = 13.0
CROSSING_X = (-2.0, 2.0)
SHOP_X = (4.0, 11.0)  # the shop front on the north facade; its door below
DOOR_X = (6.6, 7.8)


@dataclass(frozen=True)
class Viewpoint:
    """Where a camera sits and what it looks at (metres), and its horizontal field of view (degrees)."""

    position: tuple
    target: tuple
    hfov: float


VIEWPOINTS = (
    Viewpoint((-16.0, -7.5, 6.5), (8.0, 3.0, 0.0), 66.0),  # 0: overview from a pole on the south-west sidewalk
    Viewpoint((24.0, 6.0, 5.0), (0.0, -0.5, 0.0), 46.0),  # 1: down the street from the north-east (plates)
    Viewpoint((2.0, -8.5, 11.0), (5.0, 4.0, 0.0), 64.0),  # 2: high on the south facade, looking across
)


class Camera:
    """A pinhole camera: world metres -> frame pixels.

    Attributes:
        size: Frame ``(width, height)``.
        position: Camera centre in world metres.
        K, R, t: Intrinsics and world -> camera rotation and translation (``x_cam = R @ X + t``).
        ground_to_image: 3x3 homography from ground metres ``(X, Y, 1)`` to pixels.
        image_to_ground: Its inverse: pixels -> ground metres (the ground plane only).
    """

    def __init__(self, viewpoint: Viewpoint, size: tuple):
        w, h = size
        self.size = (int(w), int(h))
        f = (w / 2.0) / math.tan(math.radians(viewpoint.hfov) / 2.0)
        self.focal = f
        self.K = np.array([[f, 0.0, (w - 1) / 2.0], [0.0, f, (h - 1) / 2.0], [0.0, 0.0, 1.0]])
        self.position = np.asarray(viewpoint.position, np.float64)
        forward = np.asarray(viewpoint.target, np.float64) - self.position
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, (0.0, 0.0, 1.0))
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        self.R = np.stack([right, down, forward])
        self.t = -self.R @ self.position
        self.P = self.K @ np.hstack([self.R, self.t[:, None]])
        g = self.K @ np.stack([self.R[:, 0], self.R[:, 1], self.t], axis=1)
        self.ground_to_image = g / g[2, 2]
        self.image_to_ground = np.linalg.inv(self.ground_to_image)
        self.image_to_ground /= self.image_to_ground[2, 2]

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels ``(N, 2)`` and depths ``(N,)`` (metres along the view axis) of world points ``(N, 3)``."""
        p = points @ self.P[:, :3].T + self.P[:, 3]
        depth = p[:, 2]
        return p[:, :2] / depth[:, None], depth

    def pixels_per_metre(self, depth: float) -> float:
        """Image size of one metre seen face-on at `depth` metres."""
        return self.focal / depth

    def to_ground(self, pixels) -> np.ndarray:
        """Ground metres ``(N, 2)`` of image points ``(N, 2)`` (through `image_to_ground`)."""
        p = np.asarray(pixels, np.float64).reshape(-1, 2)
        q = np.hstack([p, np.ones((len(p), 1))]) @ self.image_to_ground.T
        return q[:, :2] / q[:, 2:3]

    def to_image(self, ground) -> np.ndarray:
        """Image points ``(N, 2)`` of ground points ``(N, 2)`` in metres."""
        p = np.asarray(ground, np.float64).reshape(-1, 2)
        q = np.hstack([p, np.ones((len(p), 1))]) @ self.ground_to_image.T
        return q[:, :2] / q[:, 2:3]

    def rays(self) -> np.ndarray:
        """World direction of every pixel's ray, ``(h, w, 3)`` (not normalised)."""
        w, h = self.size
        u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        cam = np.stack([(u - self.K[0, 2]) / self.focal, (v - self.K[1, 2]) / self.focal, np.ones_like(u)], -1)
        return cam @ self.R  # R is orthonormal: R^T @ d for each pixel


def clip_polygon(points, size) -> list:
    """A polygon clipped to the frame ``[0, w-1] x [0, h-1]`` (Sutherland-Hodgman); [] if nothing is left."""
    w, h = size
    poly = [tuple(map(float, p)) for p in points]
    for axis, bound, keep_below in ((0, 0.0, False), (0, w - 1.0, True), (1, 0.0, False), (1, h - 1.0, True)):
        out = []
        for i, cur in enumerate(poly):
            prev = poly[i - 1]
            inside_cur = cur[axis] <= bound if keep_below else cur[axis] >= bound
            inside_prev = prev[axis] <= bound if keep_below else prev[axis] >= bound
            if inside_cur != inside_prev:
                s = (bound - prev[axis]) / (cur[axis] - prev[axis])
                out.append(tuple(prev[k] + s * (cur[k] - prev[k]) for k in range(2)))
            if inside_cur:
                out.append(cur)
        poly = out
        if not poly:
            return []
    return poly


def clip_segment(p0, p1, size) -> list:
    """The part of segment p0-p1 inside the frame ``[0, w-1] x [0, h-1]`` (Liang-Barsky): two points or []."""
    (x0, y0), (x1, y1) = (tuple(map(float, p)) for p in (p0, p1))
    dx, dy = x1 - x0, y1 - y0
    lo, hi = 0.0, 1.0
    for p, q in ((-dx, x0), (dx, size[0] - 1.0 - x0), (-dy, y0), (dy, size[1] - 1.0 - y0)):
        if p == 0:
            if q < 0:
                return []
            continue
        r = q / p
        if p < 0:
            lo = max(lo, r)
        else:
            hi = min(hi, r)
    if lo > hi:
        return []
    return [(x0 + lo * dx, y0 + lo * dy), (x0 + hi * dx, y0 + hi * dy)]


# -- the static background --------------------------------------------------------------------------------
def _value_noise(rng, size: int = 256) -> np.ndarray:
    """A tileable smooth noise texture in about -1..1."""
    base = rng.normal(0.0, 1.0, (size // 8, size // 8))
    big = np.kron(base, np.ones((8, 8)))
    fine = rng.normal(0.0, 0.5, (size, size))
    out = np.roll(big, 4, axis=(0, 1)) * 0.5 + big * 0.5 + fine
    return out / (np.abs(out).max() + 1e-9)


def _sample(tex: np.ndarray, x: np.ndarray, y: np.ndarray, per_metre: float) -> np.ndarray:
    n = tex.shape[0]
    return tex[(np.floor(y * per_metre).astype(np.int64) % n), (np.floor(x * per_metre).astype(np.int64) % n)]


def _ground_colour(x, y, noise) -> np.ndarray:
    """BGR float colour of ground points: asphalt, markings, crossing, curbs and paved sidewalks."""
    ay = np.abs(y)
    grain = _sample(noise, x, y, 14.0)
    out = np.empty(x.shape + (3,))
    asphalt = 84.0 + 10.0 * grain + 4.0 * _sample(noise, x, y, 1.5)
    out[...] = asphalt[..., None] * np.array([1.02, 1.0, 0.97])
    paint = np.array([215.0, 218.0, 220.0])
    centre = (ay < 0.08) & (np.mod(x, 9.0) < 3.0)
    edge = (ay > 3.25) & (ay < 3.4)
    zebra = (x > CROSSING_X[0]) & (x < CROSSING_X[1]) & (ay < 3.2) & (np.mod(y + 0.25, 1.0) < 0.5)
    out[centre | edge | zebra] = paint
    curb = (ay >= ROAD_HALF) & (ay < CURB)
    out[curb] = np.array([150.0, 152.0, 155.0])
    walk = ay >= CURB
    seam = (np.mod(x, 0.6) < 0.035) | (np.mod(y, 0.6) < 0.035)
    tiles = np.array([120.0, 140.0, 160.0]) * (1.0 + 0.06 * grain[..., None])
    out[walk] = np.where(seam[walk][:, None], tiles[walk] * 0.72, tiles[walk])
    return out


def _facade_colour(x, z, north, rng_table) -> np.ndarray:
    """BGR float colour of facade points: buildings of varied colours with windows, a shop front and door."""
    colours, edges = rng_table
    idx = np.clip(np.searchsorted(edges, x) - 1, 0, len(colours) - 1)
    out = colours[idx].copy()
    floor = np.mod(z, 3.2)
    bay = np.mod(x, 2.6)
    window = (z > 3.0) & (floor > 0.9) & (floor < 2.4) & (bay > 0.7) & (bay < 1.9)
    out[window] = np.array([92.0, 70.0, 58.0])
    ground = (z < 3.0)
    shopfront = ground & north & (x > SHOP_X[0]) & (x < SHOP_X[1])
    glass = shopfront & (z > 0.4) & (z < 2.6)
    out[glass] = np.array([105.0, 88.0, 70.0])
    door = north & (x > DOOR_X[0]) & (x < DOOR_X[1]) & (z < 2.3)
    out[door] = np.array([40.0, 48.0, 60.0])
    sign = north & (x > SHOP_X[0]) & (x < SHOP_X[1]) & (z >= 2.7) & (z < 3.3)
    out[sign] = np.array([40.0, 140.0, 230.0])
    plinth = z < 0.25
    out[plinth] *= 0.7
    return out


def render_background(camera: Camera, rng, cv2) -> np.ndarray:
    """The empty street as this camera sees it: uint8 BGR ``(h, w, 3)`` (ray cast once per pixel)."""
    d = camera.rays()
    c = camera.position
    noise = _value_noise(rng)
    w, h = camera.size
    sky_t = np.clip((d[..., 2] / np.linalg.norm(d, axis=-1)) * 3.0, 0, 1)
    out = (np.array([235.0, 215.0, 190.0]) * (1 - sky_t[..., None]) + np.array([225.0, 170.0, 120.0])
           * sky_t[..., None])
    best = np.full((h, w), np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        s_ground = np.where(d[..., 2] < 0, -c[2] / d[..., 2], np.inf)
        gx, gy = c[0] + s_ground * d[..., 0], c[1] + s_ground * d[..., 1]
        on_ground = np.isfinite(s_ground) & (np.abs(gy) <= FACADE)
        best = np.where(on_ground, s_ground, best)
        edges = np.cumsum(np.concatenate([[-200.0], rng.uniform(7, 14, 60)]))
        palette = rng.uniform(0.45, 0.9, (60, 3)) * np.array([200.0, 205.0, 215.0])
        for side in (FACADE, -FACADE):
            s = np.where(np.abs(d[..., 1]) > 1e-9, (side - c[1]) / d[..., 1], np.inf)
            fz = c[2] + s * d[..., 2]
            hit = (s > 0) & (fz >= 0) & (fz <= BUILDING_TOP) & (s < best)
            fx = c[0] + s * d[..., 0]
            if hit.any():
                out[hit] = _facade_colour(fx[hit], fz[hit], side > 0, (palette, edges))
                best = np.where(hit, s, best)
    ground = on_ground & (best == s_ground)
    out[ground] = _ground_colour(gx[ground], gy[ground], noise)
    dist = np.where(np.isfinite(best), best * np.linalg.norm(d, axis=-1), 1e9)
    haze = np.clip((dist - 30.0) / 150.0, 0, 0.6)[..., None]
    out = out * (1 - haze) + np.array([215.0, 205.0, 195.0]) * haze
    img = np.clip(out, 0, 255).astype(np.uint8)
    return cv2.GaussianBlur(img, (0, 0), sigmaX=0.6)
