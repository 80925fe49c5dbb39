"""Ground speed of tracks from a homography (image pixels -> metres on the ground plane).

A track's anchor (its box's bottom centre) is mapped to the ground each frame; its speed is the norm
of the velocity fitted by least squares to the positions of the last `window_s` seconds.

Accuracy on the synthetic road of ``tests/test_surveillance_rules.py`` (camera 6 m up, tilted 20 degrees
down, f = 1000 px, 1920x1080; the homography from four road marks 8-40 m away; cars at 30-90 km/h on
two lanes, 30 fps, 1 s window; 150 cars, 5266 estimates), relative error of the speed:
1 px of anchor noise: median 0.35 %, 95th percentile 1.45 %, worst 3.3 %;
2 px: median 0.70 %, 95th percentile 2.9 %, worst 6.6 %.
The error grows with distance (a pixel covers more road far away) and shrinks with a longer window.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from edgert.apps.surveillance.analytics.geometry import apply_homography

#: Metres per second -> kilometres per hour.
KMH_PER_MS = 3.6


class GroundSpeed:
    """Ground positions and speeds of the tracks of one camera.

    Args:
        image_to_ground: 3x3 homography from frame pixels to ground metres.
        window_s: Seconds of history a speed is fitted over.
        min_span: Fraction of `window_s` the samples must cover before a speed is given.
    """

    def __init__(self, image_to_ground: np.ndarray, window_s: float = 1.0, min_span: float = 0.5):
        self.matrix = np.asarray(image_to_ground, np.float64)
        self.window_s = float(window_s)
        self.min_span = float(min_span)
        self._history: dict[int, deque] = {}

    def to_ground(self, points) -> np.ndarray:
        """``(N, 2)`` ground metres of ``(N, 2)`` frame pixels."""
        return apply_homography(self.matrix, points)

    def add(self, ids, points, timestamp_s: float) -> None:
        """Record where tracks stand in this frame (frame pixels)."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        if not ids.size:
            return
        ground = self.to_ground(points)
        oldest = timestamp_s - self.window_s
        for track_id, (x, y) in zip(ids.tolist(), ground.tolist()):
            if not (np.isfinite(x) and np.isfinite(y)):
                continue  # on or above the horizon: no ground position
            samples = self._history.setdefault(track_id, deque())
            if samples and timestamp_s <= samples[-1][0]:
                continue  # a second report in the same frame
            samples.append((timestamp_s, x, y))
            while samples and samples[0][0] < oldest:
                samples.popleft()

    def speed_kmh(self, track_id: int) -> float | None:
        """The track's ground speed (km/h) over the window, or None while its history is too short."""
        samples = self._history.get(track_id)
        if not samples or len(samples) < 3:
            return None
        s = np.asarray(samples, np.float64)
        t = s[:, 0] - s[:, 0].mean()
        span = t[-1] - t[0]
        if span < self.min_span * self.window_s:
            return None
        denominator = float(t @ t)
        velocity = (t @ (s[:, 1:] - s[:, 1:].mean(0))) / denominator
        return float(np.hypot(*velocity) * KMH_PER_MS)

    def forget(self, track_id: int) -> None:
        """Drop an ended track's history."""
        self._history.pop(track_id, None)
