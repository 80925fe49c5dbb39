"""Who a track is: when to recognise its face (size, yaw, at most N times) and voting over the answers.

Yaw from BlazeFace's 6 keypoints (0 right eye, 1 left eye, 2 nose tip, 3 mouth centre, 4 right ear
tragion, 5 left ear tragion; right/left are the subject's). The head is modelled as the two tragions at
``(-1, 0, 0)`` and ``(+1, 0, 0)`` and the nose tip ``NOSE_DEPTH`` half-widths in front of their midpoint
(anthropometric tables put the tragion-to-nose-tip depth at about 1.3 half the bitragion width). Turned
by yaw θ and seen orthographically, the tragions land at ``±cos θ`` and the nose tip at ``NOSE_DEPTH·sin θ``
along the ear axis, so::

    r = (nose - midpoint of the ears) · u / (half the ear distance) = NOSE_DEPTH · tan θ
    θ = atan(r / NOSE_DEPTH)

with ``u`` the unit vector from the image-left ear (the subject's right) to the other. Projecting on
``u`` makes the estimate independent of roll, scale and position. θ > 0: the nose moved towards the
subject's left ear (the subject turned to their left, the nose towards the image's right in a
non-mirrored frame). It degrades past ~60° where the far ear is hidden and BlazeFace guesses it.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, fields

import numpy as np

from edgert.core.errors import FrameError

NOSE_DEPTH = 1.3
#: Event kinds of face recognition (``details``: camera, track_id, name, similarity, ...).
KINDS = ("face_recognised", "face_unknown", "face_conflict")


def estimate_yaw(keypoints) -> np.ndarray:
    """Yaw in degrees of faces from BlazeFace's 6 keypoints, ``(6, 2)`` -> scalar or ``(N, 6, 2)`` -> ``(N,)``.

    Raises:
        FrameError: keypoints not of shape (..., 6, 2).
    """
    kp = np.asarray(keypoints, np.float64)
    if kp.shape[-2:] != (6, 2):
        raise FrameError(f"keypoints: expected BlazeFace's (6, 2) per face, got shape {kp.shape}")
    right_ear, left_ear, nose = kp[..., 4, :], kp[..., 5, :], kp[..., 2, :]
    axis = left_ear - right_ear
    half = np.linalg.norm(axis, axis=-1) / 2
    u = axis / np.maximum(2 * half, 1e-9)[..., None]
    r = np.sum((nose - (left_ear + right_ear) / 2) * u, axis=-1) / np.maximum(half, 1e-9)
    yaw = np.degrees(np.arctan(r / NOSE_DEPTH))
    return np.where(half > 0, yaw, 90.0)  # coincident ears: fully turned, never frontal enough


@dataclass(frozen=True)
class RecognitionRules:
    """When a track's face is recognised and when its name counts.

    Attributes:
        max_per_track: At most this many recognitions per track.
        min_face_px: Shorter side of the face box, frame pixels, below which no recognition is tried.
        max_yaw_deg: Faces turned further (`estimate_yaw`) are skipped.
        min_gain: Once the track is named, a further recognition is tried only when the face's quality
            (size x cos yaw) beats the best one tried so far by this fraction (the track's better
            frames, to catch a contradiction); until then every face that passes the size and yaw
            tests is tried (a new, not yet confident track), up to `max_per_track`.
        min_votes: Recognitions that must name the same person before the track takes the name.
        min_mean_similarity: Their mean similarity must reach this too.
    """

    max_per_track: int = 5
    min_face_px: float = 40.0
    max_yaw_deg: float = 30.0
    min_gain: float = 0.1
    min_votes: int = 2
    min_mean_similarity: float = 0.5


def face_quality(box, yaw_deg: float) -> float:
    """Size x frontalness: the face box's shorter side times cos(yaw)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return max(0.0, min(x2 - x1, y2 - y1)) * float(np.cos(np.radians(min(abs(yaw_deg), 90.0))))


@dataclass(frozen=True)
class FaceEvent:
    """A face-recognition event of one track, in the shape the app publishes (``kind, message, **details``).

    Attributes:
        kind: One of `KINDS`.
        message: One line for people.
        camera: The camera id.
        track_id: The track.
        t: Capture time of the frame of the deciding recognition (seconds since the epoch).
        name: The track's name (face_recognised, face_conflict), or None (face_unknown).
        similarity: Mean similarity of the votes for `name` (face_unknown: the best seen).
        votes: Recognitions that named `name`.
        recognitions: Recognitions of the track so far.
        other: face_conflict: the person the later recognitions name.
        other_similarity: Their mean similarity.
    """

    kind: str
    message: str
    camera: str
    track_id: int
    t: float
    name: str | None = None
    similarity: float | None = None
    votes: int | None = None
    recognitions: int | None = None
    other: str | None = None
    other_similarity: float | None = None

    def details(self) -> dict:
        """JSON-able details (camera, track_id, t, name, similarity, ... the fields that are set)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("kind", "message")}
        return {k: v for k, v in out.items() if v is not None or k == "name"}


class TrackIdentity:
    """The recognitions of one track and the name they earn.

    A name is given once `RecognitionRules.min_votes` recognitions name the same person with a mean
    similarity of at least `min_mean_similarity` (and more votes than any other person). A later person
    who earns the same is a contradiction: one ``face_conflict`` event per such person, the track's
    name unchanged. ``face_unknown`` is raised once when the track has had all its recognitions (or
    ends, `finish`) without a name.
    """

    def __init__(self, camera: str, track_id: int, rules: RecognitionRules | None = None):
        self.camera, self.track_id = camera, int(track_id)
        self.rules = rules or RecognitionRules()
        self.name: str | None = None
        self.recognitions = 0
        self.best_quality = 0.0
        self._sims: dict[str, list[float]] = defaultdict(list)
        self._best_seen = -1.0
        self._conflicts: set[str] = set()
        self._unknown_reported = False

    def wants(self, box, yaw_deg: float) -> bool:
        """Whether a face of this box and yaw should be recognised now (count, yaw, size; quality gain once named)."""
        r = self.rules
        if self.recognitions >= r.max_per_track or abs(yaw_deg) > r.max_yaw_deg:
            return False
        x1, y1, x2, y2 = (float(v) for v in box)
        if min(x2 - x1, y2 - y1) < r.min_face_px:
            return False
        return self.name is None or face_quality(box, yaw_deg) > self.best_quality * (1 + r.min_gain)

    def add(self, match, t: float, quality: float = 0.0) -> list[FaceEvent]:
        """Count one recognition (`edgert.apps.surveillance.faces.gallery.Match`); the events it causes."""
        self.recognitions += 1
        self.best_quality = max(self.best_quality, float(quality))
        self._best_seen = max(self._best_seen, float(match.similarity))
        if match.name is not None:
            self._sims[match.name].append(float(match.similarity))
        events = []
        leader = self._leader()
        if leader is not None and self.name is None:
            self.name = leader
            events.append(self._event("face_recognised", t, f"{self.camera}: track {self.track_id} is {leader}"))
        elif leader is not None and leader != self.name and leader not in self._conflicts:
            self._conflicts.add(leader)
            events.append(self._event("face_conflict", t, f"{self.camera}: track {self.track_id}, named "
                                      f"{self.name}, now looks like {leader}", other=leader))
        if self.name is None and self.recognitions >= self.rules.max_per_track:
            events.extend(self.finish(t))
        return events

    def finish(self, t: float) -> list[FaceEvent]:
        """The track ended: ``face_unknown`` if it was recognised at least once and never named."""
        if self.name is not None or self.recognitions == 0 or self._unknown_reported:
            return []
        self._unknown_reported = True
        return [FaceEvent("face_unknown", f"{self.camera}: track {self.track_id}: face not recognised "
                          f"({self.recognitions} tries)", self.camera, self.track_id, float(t), None,
                          round(self._best_seen, 4), 0, self.recognitions)]

    def votes(self) -> dict[str, tuple[int, float]]:
        """``{name: (votes, mean similarity)}`` so far."""
        return {n: (len(s), float(np.mean(s))) for n, s in self._sims.items()}

    def _leader(self) -> str | None:
        """The person who qualifies (votes, mean similarity, most votes; ties: higher mean), or None."""
        r = self.rules
        ranked = sorted(self.votes().items(), key=lambda kv: (-kv[1][0], -kv[1][1]))
        if not ranked:
            return None
        name, (votes, mean) = ranked[0]
        if len(ranked) > 1 and ranked[1][1][0] == votes and self.name not in (None, name):
            return None  # a tie with the current name is no contradiction yet
        return name if votes >= r.min_votes and mean >= r.min_mean_similarity else None

    def _event(self, kind: str, t: float, message: str, other: str | None = None) -> FaceEvent:
        votes = self.votes()
        n, mean = votes[self.name]
        extra = {}
        if other is not None:
            extra = {"other": other, "other_similarity": round(votes[other][1], 4)}
        return FaceEvent(kind, message, self.camera, self.track_id, float(t), self.name, round(mean, 4), n,
                         self.recognitions, **extra)
