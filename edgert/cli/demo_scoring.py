"""Scoring `edgert demo surveillance` against the street's ground truth (`edgert.sources.street`).

Four scores, each per camera:

* **Line counts.** A true crossing is an object's ground move across the street's counting line
  (`edgert.sources.street.line_crossing`) between two consecutive processed frames of the camera, at
  the interpolated time the object's centre was on the line, with its direction translated into the
  app's words (`line_directions`) and its true speed. Found crossings are the app's ``line_cross``
  events. True and found are paired one to one within a time tolerance (same line and direction,
  nearest first); counts per class and direction compare the two sides.
* **Zone events.** A true visit of the zone starts when an object of the zone's classes is listed in
  a frame with its ground position in `edgert.sources.street.ZONE` (``zone_enter``) and ends when
  it is listed outside, or at the last frame it was listed in before it left the picture
  (``zone_exit``). They are paired with the app's ``zone_enter`` / ``zone_exit`` events as above.
* **ID switches** (CLEAR-MOT's IDSW, computed here so that motmetrics is not a runtime dependency):
  in every processed frame, the ground-truth objects that count (`edgert.sources.street.detectable`:
  tall and visible enough) are matched to the frame's confirmed tracks of the same class group (the
  tracker's: a car may be tracked as a bus, never as a person) at IoU >= 0.5. A pair of the
  earlier frames is kept while its IoU holds; the rest are paired by an optimal assignment (largest
  total IoU). An object paired with a track other than the one it was last paired with is one ID
  switch. Objects left unpaired are misses; tracks left unpaired are false positives unless they
  cover an object that does not count (too small or hidden), which is neither. MOTA is
  ``1 - (misses + false positives + switches) / objects``.

* **Per-track results** (plates, vehicle types). Each track is given the true object it was paired
  with in most frames (the ID-switch pairing above). A ``plate_read`` is right when its text is that
  vehicle's plate (rows joined by a space); its character accuracy is ``1 - edit distance / length``
  over letters and digits. A vehicle's plate was *readable* when, in a frame where a track was paired
  with it, the plate was at least `READABLE_PLATE_PX` rows tall and `READABLE_VISIBLE` unhidden; the
  read rate is the share of readable vehicles with a right read. A ``vehicle_attributes`` type is
  right when it is the vehicle's class.

A true event is *optional* when the camera could not be expected to report it: the object was not
`detectable` in any processed frame within the tolerance of it (for a zone visit: during the visit),
or it lies within the tolerance of the first or last processed frame. An optional event found is
not counted on either side; one missed is not an error.
"""
from __future__ import annotations

import bisect
import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from edgert.sources.street import LINE, detectable, in_zone, line_crossing
from edgert.tracking.association import assign, iou_matrix

#: Pairing tolerances (scene seconds): a track is confirmed a few frames after it appears, and the app
#: places an object at its box's bottom centre, which crosses a line a little before or after its centre.
LINE_TOLERANCE_S = 1.0
ZONE_TOLERANCE_S = 1.5
MATCH_IOU = 0.5
#: A plate counts as readable when seen this many rows tall (720p frame) and this much unhidden.
READABLE_PLATE_PX = 14
READABLE_VISIBLE = 0.9


@dataclass(frozen=True)
class ScoredEvent:
    """One line crossing or zone event, true or found.

    Attributes:
        kind: ``line_cross``, ``zone_enter`` or ``zone_exit``.
        place: The line's or zone's id.
        t: Scene seconds.
        who: Ground-truth object id (true events) or track id (found ones).
        cls: Class name.
        direction: ``a_to_b`` / ``b_to_a`` for crossings, "" for zone events.
        speed_kmh: Speed at a crossing (true, or the app's estimate), else None.
        optional: A true event the camera could not be expected to report (see the module docstring).
    """

    kind: str
    place: str
    t: float
    who: int
    cls: str
    direction: str = ""
    speed_kmh: float | None = None
    optional: bool = False


def match_events(truth: list, found: list, tolerance: float) -> list[tuple[int, int]]:
    """Pair true and found events one to one: same kind, place and direction, at most `tolerance` apart.

    Pairs are made nearest in time first (ties: earlier true event first).

    Returns:
        ``[(truth index, found index), ...]`` sorted by truth index.
    """
    candidates = []
    for i, a in enumerate(truth):
        for j, b in enumerate(found):
            if (a.kind, a.place, a.direction) == (b.kind, b.place, b.direction):
                gap = abs(a.t - b.t)
                if gap <= tolerance:
                    candidates.append((gap, a.t, i, j))
    candidates.sort()
    used_t, used_f, pairs = set(), set(), []
    for _, _, i, j in candidates:
        if i not in used_t and j not in used_f:
            used_t.add(i)
            used_f.add(j)
            pairs.append((i, j))
    return sorted(pairs)


@dataclass
class EventScore:
    """True against found events of one kind of rule on one camera (see `score_events`).

    Attributes:
        true: Counter of ``(kind, place, cls, direction)`` over the true events that count.
        found: The same over the found events (those paired with an optional true event left out).
        matched: Pairs of a counted true event and a found one.
        missed: Counted true events nobody found.
        false: Found events paired with no true event.
        speed_errors_kmh: ``found - true`` speed of each matched crossing that has both.
    """

    true: Counter = field(default_factory=Counter)
    found: Counter = field(default_factory=Counter)
    matched: int = 0
    missed: int = 0
    false: int = 0
    speed_errors_kmh: list = field(default_factory=list)

    def count_errors(self) -> dict:
        """``{(kind, place, cls, direction): found - true}`` over every key either side has."""
        return {key: self.found[key] - self.true[key] for key in sorted(set(self.true) | set(self.found))}


def score_events(truth: list, found: list, tolerance: float) -> EventScore:
    """Pair `truth` with `found` (`match_events`) and count both sides (optional true events as documented)."""
    pairs = match_events(truth, found, tolerance)
    paired_t = {i: j for i, j in pairs}
    paired_f = {j: i for i, j in pairs}
    score = EventScore()
    for i, event in enumerate(truth):
        if event.optional:
            continue
        score.true[(event.kind, event.place, event.cls, event.direction)] += 1
        if i in paired_t:
            score.matched += 1
            other = found[paired_t[i]]
            if event.speed_kmh is not None and other.speed_kmh is not None:
                score.speed_errors_kmh.append(other.speed_kmh - event.speed_kmh)
        else:
            score.missed += 1
    for j, event in enumerate(found):
        if j in paired_f and truth[paired_f[j]].optional:
            continue
        score.found[(event.kind, event.place, event.cls, event.direction)] += 1
        if j not in paired_f:
            score.false += 1
    return score


class IdSwitches:
    """ID switches, misses and false positives of one camera's tracks against its ground truth (module docstring)."""

    def __init__(self, iou: float = MATCH_IOU, groups=()):
        self.iou = float(iou)
        self.group = {cls: k for k, names in enumerate(groups) for cls in names}
        self.last: dict[int, int] = {}  # ground-truth id -> track id it was last paired with
        self.followed: dict[int, Counter] = {}  # track id -> {ground-truth id: frames paired}
        self.paired_now: set[int] = set()  # ground-truth ids paired in the last frame
        self.objects = self.matches = self.switches = self.misses = self.false_positives = 0

    def update(self, truth_ids, truth_boxes, truth_classes, ignored_boxes, track_ids, track_boxes,
               track_classes) -> int:
        """Score one frame; returns its ID switches.

        Args:
            truth_ids, truth_boxes, truth_classes: The objects that count: ``(N,)``, ``(N, 4)`` xyxy, N names.
            ignored_boxes: ``(K, 4)`` boxes of objects that do not count (a track on one is no error).
            track_ids, track_boxes, track_classes: The frame's confirmed tracks, likewise.
        """
        truth_ids, track_ids = [int(v) for v in truth_ids], [int(v) for v in track_ids]
        gt = np.asarray(truth_boxes, np.float64).reshape(-1, 4)
        tr = np.asarray(track_boxes, np.float64).reshape(-1, 4)
        iou = iou_matrix(gt, tr)
        groups_gt = [self.group.get(c, c) for c in truth_classes]
        groups_tr = [self.group.get(c, c) for c in track_classes]
        iou[np.array([[a != b for b in groups_tr] for a in groups_gt], bool).reshape(iou.shape)] = 0.0
        column = {t: k for k, t in enumerate(track_ids)}
        pairs: dict[int, int] = {}  # truth row -> track column
        for row, g in enumerate(truth_ids):  # keep the pairs that still hold
            col = column.get(self.last.get(g, -1))
            if col is not None and iou[row, col] >= self.iou:
                pairs[row] = col
        rows = [r for r in range(len(truth_ids)) if r not in pairs]
        cols = [c for c in range(len(track_ids)) if c not in pairs.values()]
        if rows and cols:
            sub = iou[np.ix_(rows, cols)]
            cost = np.where(sub >= self.iou, 1.0 - sub, np.nan)
            for r, c in zip(*assign(cost, 1.0 - self.iou + 1e-9)):
                pairs[rows[r]] = cols[c]
        switches = 0
        self.paired_now = {truth_ids[row] for row in pairs}
        for row, col in pairs.items():
            g, t = truth_ids[row], track_ids[col]
            if g in self.last and self.last[g] != t:
                switches += 1
            self.last[g] = t
            self.followed.setdefault(t, Counter())[g] += 1
        unpaired = [c for c in range(len(track_ids)) if c not in set(pairs.values())]
        ignored = np.asarray(ignored_boxes, np.float64).reshape(-1, 4)
        if unpaired and len(ignored):
            cover = iou_matrix(tr[unpaired], ignored).max(axis=1) >= self.iou
            unpaired = [c for c, hidden in zip(unpaired, cover) if not hidden]
        self.objects += len(truth_ids)
        self.matches += len(pairs)
        self.switches += switches
        self.misses += len(truth_ids) - len(pairs)
        self.false_positives += len(unpaired)
        return switches

    def object_of(self, track_id: int) -> int | None:
        """The ground-truth id `track_id` was paired with in most frames (None: never paired)."""
        votes = self.followed.get(int(track_id))
        return votes.most_common(1)[0][0] if votes else None

    @property
    def mota(self) -> float:
        """``1 - (misses + false positives + switches) / objects`` (1.0 with no objects)."""
        if not self.objects:
            return 1.0
        return 1.0 - (self.misses + self.false_positives + self.switches) / self.objects


class CameraTruth:
    """The true line crossings and zone visits one camera's processed frames show.

    Args:
        line: The counting line's id in the camera config (None: no line).
        directions: ``{+1: app direction of an eastbound crossing, -1: of a westbound one}`` (`line_directions`).
        line_classes: Classes the line counts.
        zone: The zone's id (None: no zone).
        zone_classes: Classes the zone follows.
        frame_height: Frame rows (the `detectable` threshold scales with it).
    """

    def __init__(self, line, directions, line_classes, zone, zone_classes, frame_height: int):
        self.line, self.directions, self.line_classes = line, directions, tuple(line_classes)
        self.zone, self.zone_classes = zone, tuple(zone_classes)
        self.frame_height = int(frame_height)
        self.crossings: list[ScoredEvent] = []
        self.visits: list[list] = []  # [id, cls, t_enter, t_exit or None]
        self._last: dict[int, tuple] = {}  # id -> (t, world) where last listed
        self._inside: dict[int, list] = {}  # id -> its open visit
        self._seen: dict[int, list] = {}  # id -> scene times it was detectable (increasing)
        self.first_t: float | None = None
        self.last_t: float | None = None

    def add_frame(self, t: float, objects) -> None:
        """One processed frame: its scene time and its ``meta["objects"]``."""
        self.first_t = t if self.first_t is None else self.first_t
        self.last_t = t
        listed = set()
        for obj in objects:
            oid, cls, world = int(obj["id"]), obj["class"], tuple(obj["world"])
            listed.add(oid)
            if detectable(obj, self.frame_height):
                self._seen.setdefault(oid, []).append(t)
            previous = self._last.get(oid)
            if previous is not None and self.line is not None and cls in self.line_classes:
                self._crossing(oid, cls, previous, (t, world), obj["velocity"])
            self._last[oid] = (t, world)
            if self.zone is not None and cls in self.zone_classes:
                self._zone_step(oid, cls, t, in_zone(*world))
        for oid in [o for o in self._inside if o not in listed]:  # left the picture inside the zone
            self._inside.pop(oid)[3] = self._last[oid][0]
        for oid in [o for o in self._last if o not in listed]:
            del self._last[oid]

    def _crossing(self, oid, cls, previous, current, velocity) -> None:
        (t0, p0), (t1, p1) = previous, current
        sign = line_crossing(p0, p1)
        if sign:
            x = LINE[0][0]
            share = (x - p0[0]) / (p1[0] - p0[0])
            speed = math.hypot(*velocity) * 3.6
            self.crossings.append(ScoredEvent("line_cross", self.line, t0 + share * (t1 - t0), oid, cls,
                                              self.directions[sign], round(speed, 2)))

    def _zone_step(self, oid, cls, t, inside: bool) -> None:
        visit = self._inside.get(oid)
        if inside and visit is None:
            self._inside[oid] = visit = [oid, cls, t, None]
            self.visits.append(visit)
        elif not inside and visit is not None:
            visit[3] = t
            del self._inside[oid]

    def _seen_between(self, oid: int, start: float, end: float) -> bool:
        times = self._seen.get(oid, [])
        k = bisect.bisect_left(times, start)
        return k < len(times) and times[k] <= end

    def _near_edge(self, t: float, tolerance: float) -> bool:
        return self.first_t is None or t < self.first_t + tolerance or t > self.last_t - tolerance

    def line_events(self, tolerance: float = LINE_TOLERANCE_S) -> list[ScoredEvent]:
        """The true crossings, optional ones marked."""
        out = []
        for ev in self.crossings:
            optional = self._near_edge(ev.t, tolerance) or not self._seen_between(ev.who, ev.t - tolerance,
                                                                                    ev.t + tolerance)
            out.append(ScoredEvent(**{**ev.__dict__, "optional": optional}))
        return out

    def zone_events(self, tolerance: float = ZONE_TOLERANCE_S) -> list[ScoredEvent]:
        """The true zone enters and exits (a visit still open at the end has no exit), optional ones marked."""
        out = []
        for oid, cls, t_in, t_out in self.visits:
            unseen = not self._seen_between(oid, t_in, t_out if t_out is not None else math.inf)
            out.append(ScoredEvent("zone_enter", self.zone, t_in, oid, cls,
                                   optional=unseen or self._near_edge(t_in, tolerance)))
            if t_out is not None:
                out.append(ScoredEvent("zone_exit", self.zone, t_out, oid, cls,
                                       optional=unseen or self._near_edge(t_out, tolerance)))
        return out


def line_directions(camera, line_points) -> dict[int, str]:
    """``{+1, -1}`` (`line_crossing`'s eastbound, westbound) -> the app's direction word for this camera.

    An eastbound move across `LINE` is projected into the camera and run through the app's own
    crossing test against the line as the camera config draws it (`line_points`, frame pixels).
    """
    from edgert.apps.surveillance.analytics.events import DIRECTIONS
    from edgert.apps.surveillance.analytics.lines import crossing_directions

    (x, y0), (_, y1) = LINE
    mid = (y0 + y1) / 2
    start, end = camera.to_image(np.array([[x - 1.0, mid], [x + 1.0, mid]]))
    sign = int(crossing_directions(start[None], end[None], line_points[0], line_points[-1])[0])
    if sign == 0:
        raise ValueError("the counting line's middle does not project across the line the config draws")
    return {+1: DIRECTIONS[sign], -1: DIRECTIONS[-sign]}


def char_accuracy(read: str, truth: str) -> float:
    """``1 - edit distance / len(truth)`` over letters and digits only (separators ignored), floored at 0."""
    a = [c for c in read.upper() if c.isalnum()]
    b = [c for c in truth.upper() if c.isalnum()]
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
    return max(0.0, 1.0 - row[-1] / max(len(b), 1))


class TrackResults:
    """The per-track results of one camera (plates read, vehicle types) against the objects its tracks
    followed (module docstring)."""

    def __init__(self, frame_height: int):
        self.scale = frame_height / 720.0
        self.objects: dict[int, tuple] = {}  # ground-truth id -> (class, plate or None)
        self.readable: set[int] = set()
        self.plates: list[tuple] = []  # (track id, text)
        self.types: list[tuple] = []  # (track id, type)

    def add_frame(self, objects, paired_ids) -> None:
        """One processed frame's objects; `paired_ids` those a track was paired with in it."""
        for obj in objects:
            oid = int(obj["id"])
            self.objects.setdefault(oid, (obj["class"], obj.get("plate")))
            box = obj.get("plate_box")
            if oid in paired_ids and box is not None and (obj.get("plate_visible") or 0) >= READABLE_VISIBLE \
                    and box[3] - box[1] >= READABLE_PLATE_PX * self.scale:
                self.readable.add(oid)

    def summary(self, ids: IdSwitches) -> dict:
        """``{"plates": {...}, "vehicle_types": {...}}`` (JSON-able)."""
        def truth(track_id):  # (object id, class, plate) the track followed; Nones if it followed none
            oid = ids.object_of(track_id)
            return (oid, *self.objects.get(oid, (None, None)))

        reads = [(text, *truth(t)) for t, text in self.plates]
        scored = [(text, plate) for text, _, _, plate in reads if plate]
        right_objects = {oid for text, oid, _, plate in reads if plate and text == plate}
        types = [(kind, truth(t)[1]) for t, kind in self.types]
        return {
            "plates": {"reads": len(reads), "right": sum(text == plate for text, plate in scored),
                       "of_untracked_object": len(reads) - len(scored),
                       "char_accuracy": round(float(np.mean([char_accuracy(a, b) for a, b in scored])), 4)
                       if scored else None,
                       "readable_vehicles": len(self.readable),
                       "readable_read_right": len(self.readable & right_objects),
                       "wrong": [f"{text} (true {plate})" for text, plate in scored if text != plate][:8]},
            "vehicle_types": {"classified": len(types), "right": sum(a == b for a, b in types if b)},
        }
