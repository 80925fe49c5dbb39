"""Plane geometry the rules and their config checks share: segments, polygons, homographies.

Image coordinates are pixels with x right and y down; ground coordinates are metres on the road plane.
"""
from __future__ import annotations

import numpy as np


def _orient(ax, ay, bx, by, cx, cy):
    """Twice the signed area of triangle a, b, c (> 0: a -> b -> c turns one way, < 0 the other, 0: collinear)."""
    return (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)


def segments_intersect(p, q, a, b) -> bool:
    """Whether closed segments p-q and a-b share a point (touching and collinear overlap count)."""
    d1 = _orient(*a, *b, *p)
    d2 = _orient(*a, *b, *q)
    d3 = _orient(*p, *q, *a)
    d4 = _orient(*p, *q, *b)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True

    def on(u, v, w):  # w on segment u-v, given collinear
        return min(u[0], v[0]) <= w[0] <= max(u[0], v[0]) and min(u[1], v[1]) <= w[1] <= max(u[1], v[1])

    return ((d1 == 0 and on(a, b, p)) or (d2 == 0 and on(a, b, q)) or (d3 == 0 and on(p, q, a))
            or (d4 == 0 and on(p, q, b)))


def polygon_self_intersection(polygon) -> tuple[int, int] | None:
    """The first pair of edges ``(i, j)`` of a closed polygon that meet other than at their shared vertex.

    Edge ``i`` runs from vertex ``i`` to vertex ``i + 1`` (the last one back to vertex 0). A repeated
    vertex makes a zero-length edge, which meets its neighbours everywhere: it is reported too.

    Returns:
        None for a simple polygon.
    """
    v = [tuple(map(float, p)) for p in polygon]
    n = len(v)
    edges = [(v[i], v[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        if edges[i][0] == edges[i][1]:
            return (i, i)
    for i in range(n):
        for j in range(i + 1, n):
            adjacent = j == i + 1 or (i == 0 and j == n - 1)
            if adjacent:
                # Neighbours share one vertex; they may not fold back over each other.
                shared, (p, q) = (edges[i][1], edges[j]) if j == i + 1 else (edges[i][0], edges[j])
                other = q if p == shared else p
                first_other = edges[i][0] if shared == edges[i][1] else edges[i][1]
                if _orient(*first_other, *shared, *other) == 0 and \
                        np.dot(np.subtract(first_other, shared), np.subtract(other, shared)) > 0:
                    return (i, j)
                continue
            if segments_intersect(*edges[i], *edges[j]):
                return (i, j)
    return None


def point_segment_distances(points, a, b) -> np.ndarray:
    """``(N,)`` Euclidean distance of each point to the closed segment a-b."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ab = b - a
    length2 = float(ab @ ab)
    t = np.clip(((p - a) @ ab) / length2, 0.0, 1.0) if length2 > 0 else np.zeros(len(p))
    return np.hypot(*(p - (a + t[:, None] * ab)).T)


def distances_to_polyline(points, vertices, closed: bool = False) -> np.ndarray:
    """``(N,)`` distance of each point to the nearest edge of a polyline (or of a polygon when `closed`)."""
    v = np.asarray(vertices, np.float64).reshape(-1, 2)
    p = np.asarray(points, np.float64).reshape(-1, 2)
    ends = np.r_[v[1:], v[:1]] if closed else v[1:]
    starts = v if closed else v[:-1]
    a, ab = starts[None], (ends - starts)[None]  # (1, E, 2)
    length2 = np.maximum((ab * ab).sum(-1), 1e-300)
    t = np.clip(((p[:, None] - a) * ab).sum(-1) / length2, 0.0, 1.0)
    nearest = a + t[..., None] * ab
    d = np.hypot(p[:, None, 0] - nearest[..., 0], p[:, None, 1] - nearest[..., 1])
    return d.min(1) if d.shape[1] else np.full(len(p), np.inf)


def collinear_triple(points, tolerance: float = 1e-9) -> tuple[int, int, int] | None:
    """Three of the points on one line (relative to the points' spread), or None."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    scale = max(float(np.ptp(p, axis=0).max()), 1e-300) ** 2
    n = len(p)
    for i in range(n):
        for j in range(i + 1, n):
            for k in range(j + 1, n):
                if abs(_orient(*p[i], *p[j], *p[k])) <= tolerance * scale:
                    return (i, j, k)
    return None


def homography_from_points(source, target) -> np.ndarray:
    """The 3x3 projective map taking four source points to four target points (DLT, h33 = 1).

    Raises:
        ValueError: the points are not four, or three of either set lie on one line.
    """
    src = np.asarray(source, np.float64).reshape(-1, 2)
    dst = np.asarray(target, np.float64).reshape(-1, 2)
    if len(src) != 4 or len(dst) != 4:
        raise ValueError(f"a homography needs 4 point pairs, got {len(src)} and {len(dst)}")
    for name, pts in (("source", src), ("target", dst)):
        if collinear_triple(pts) is not None:
            raise ValueError(f"three of the {name} points lie on one line")
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    h = np.linalg.solve(np.array(rows), np.array(rhs))
    return np.append(h, 1.0).reshape(3, 3)


def apply_homography(matrix, points) -> np.ndarray:
    """``(N, 2)`` points mapped through a 3x3 homography (points on its horizon map to inf)."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    h = np.asarray(matrix, np.float64)
    xyw = p @ h[:, :2].T + h[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return xyw[:, :2] / xyw[:, 2:]
