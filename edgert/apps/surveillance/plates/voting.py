"""Per-track plate voting over the track's best reads, a known-plates list, and the plate events.

How the best frames are chosen: every read of a track is scored when it is made,
``score = weakest character confidence x size factor``, the size factor being the plate row's height in
source pixels over `PlatesConfig.full_height` (capped at 1: rows under ~20 px lose strokes in the
recogniser's 48 px input). The voter keeps only the `PlatesConfig.max_reads` best-scored reads of the
track; a later, larger or sharper read displaces the worst kept one, so early reads of a small, distant,
blurred plate stop counting once the vehicle comes closer. (A last-frame or first-frame read, or a
majority over every frame, lets many poor frames outvote the few good ones.)

The vote: kept reads are grouped by format and length; the group with the largest summed score wins;
within it each character position takes the character with the largest summed confidence. The voted
plate's confidence is the weakest position's winning confidence sum over the group's read count: it grows
with agreement across frames and with each read's own confidence.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from pydantic import Field

from edgert.apps.surveillance.plates.formats import PlateText
from edgert.core.settings import Section
from edgert.pipeline.app import Event


class KnownPlate(Section):
    """A plate to name (and watch for)."""

    plate: str = Field(min_length=1, description="The plate as written (separators ignored: 51F-123.45 = 51F12345).")
    name: str = Field(min_length=1, description="Who or what it is.")


class PlatesConfig(Section):
    """Plate reading settings of the surveillance app."""

    countries: tuple[str, ...] = Field(("VN",), min_length=1, description="Regions whose formats a read may fit.")
    min_confidence: float = Field(0.6, ge=0.0, le=1.0, description="Voted confidence from which a plate is read.")
    min_reads: int = Field(2, ge=1, description="Reads of a track before its plate is reported.")
    max_reads: int = Field(5, ge=1, description="Best-scored reads a track keeps for its vote.")
    full_height: float = Field(20.0, gt=0, description="Plate row height (source px) from which size stops "
                                                       "lowering a read's score.")
    known: tuple[KnownPlate, ...] = Field((), description="Plates to name; a sighting is a watched_plate_seen event.")


def plate_key(text: str) -> str:
    """A plate's letters and digits, upper case: what plates are compared on."""
    return "".join(c for c in text.upper() if c.isascii() and c.isalnum())


@dataclass(frozen=True)
class VotedPlate:
    """A track's plate after voting.

    Attributes:
        text: The plate as its format writes it.
        confidence: See the module docstring (0..1).
        reads: How many kept reads agreed on its format and length.
    """

    text: str
    confidence: float
    reads: int


@dataclass
class _Read:
    plate: PlateText
    score: float


@dataclass
class TrackPlate:
    """The reads of one track and what was reported for it."""

    reads: list = field(default_factory=list)
    reported: str | None = None
    watched: bool = False


def read_score(plate: PlateText, row_height: float, full_height: float) -> float:
    """How much a read counts: its weakest character's confidence times its size factor."""
    weakest = min(plate.confidences) if plate.confidences else 0.0
    return float(weakest) * min(1.0, max(float(row_height), 0.0) / full_height)


def vote(reads: list) -> VotedPlate | None:
    """The voted plate of kept reads (`_Read`s), or None when there are none."""
    if not reads:
        return None
    groups = defaultdict(list)
    for r in reads:
        groups[(r.plate.format, len(r.plate.chars))].append(r)
    members = max(groups.values(), key=lambda g: sum(r.score for r in g))
    n = len(members[0].plate.chars)
    chars, weakest = [], 1.0
    for i in range(n):
        tally = defaultdict(float)
        for r in members:
            tally[r.plate.chars[i]] += r.plate.confidences[i]
        best = max(tally, key=tally.get)
        chars.append(best)
        weakest = min(weakest, tally[best] / len(members))
    return VotedPlate(_write(members[0].plate, "".join(chars)), float(weakest), len(members))


def _write(template: PlateText, chars: str) -> str:
    """`chars` written with the separators of a read of the same format and length."""
    it = iter(chars)
    return "".join(next(it) if c.isalnum() else c for c in template.text)


class PlateTracks:
    """Plate votes of every live track of one camera, and the events they give.

    Args:
        config: The plate settings.
        camera: Camera name put in the events.
    """

    def __init__(self, config: PlatesConfig, camera: str):
        self.config, self.camera = config, camera
        self._known = {plate_key(k.plate): k.name for k in config.known}
        self._tracks: dict[int, TrackPlate] = {}

    def add(self, track_id: int, plate: PlateText, row_height: float) -> list:
        """Count one read of a track's plate; returns the events it gives (``plate_read``, ``watched_plate_seen``).

        ``plate_read`` comes once the vote is confident (and again if the voted plate later changes,
        with ``revised: true``); ``watched_plate_seen`` once per track whose voted plate is known.
        """
        state = self._tracks.setdefault(int(track_id), TrackPlate())
        state.reads.append(_Read(plate, read_score(plate, row_height, self.config.full_height)))
        state.reads.sort(key=lambda r: -r.score)
        del state.reads[self.config.max_reads:]
        voted = vote(state.reads)
        if voted is None or voted.reads < self.config.min_reads or voted.confidence < self.config.min_confidence:
            return []
        events = []
        name = self._known.get(plate_key(voted.text))
        details = {"camera": self.camera, "track_id": int(track_id), "plate": voted.text,
                   "confidence": round(voted.confidence, 4), "name": name}
        if voted.text != state.reported:
            revised = state.reported is not None
            events.append(Event("plate_read", f"{self.camera}: track {track_id} plate {voted.text}"
                                + (f" (was {state.reported})" if revised else ""), {**details, "revised": revised}))
            state.reported = voted.text
        if name is not None and not state.watched:
            state.watched = True
            events.append(Event("watched_plate_seen", f"{self.camera}: watched plate {voted.text} ({name}) "
                                f"on track {track_id}", details))
        return events

    def voted(self, track_id: int) -> VotedPlate | None:
        """The current vote of a track (None before any read)."""
        state = self._tracks.get(int(track_id))
        return vote(state.reads) if state else None

    def end(self, track_id: int) -> None:
        """Forget a track that ended."""
        self._tracks.pop(int(track_id), None)
