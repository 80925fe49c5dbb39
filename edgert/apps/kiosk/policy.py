"""The sorting policy: turns per-frame classifications of one item into one bin decision.

An item is the stretch of frames during which presence is up. Each of its frames casts a vote (the
classifier's top-1); the item is decided after ``votes`` frames or when presence falls, whichever comes
first, and then nothing more is decided until presence falls again.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import Field, field_validator, model_validator

from edgert.core.errors import ConfigError
from edgert.core.settings import Section

#: Why a decision went where it went.
REASONS = ("ok", "low_confidence", "disagree", "unknown_class", "no_votes")


class PolicyConfig(Section):
    """How votes become a bin."""

    bins: dict[str, str] = Field(..., description="Class name -> bin name; classes not listed go to reject_bin.")
    reject_bin: str = Field("reject", min_length=1,
                            description="Bin for items with no valid vote, no agreement or an unmapped class.")
    min_confidence: float = Field(0.5, ge=0.0, le=1.0,
                                  description="A frame whose top-1 score is below this abstains.")
    votes: int = Field(5, ge=1, description="Frames voted per item (K); the item is decided after K frames.")
    min_agreement: float = Field(0.6, gt=0.0, le=1.0,
                                 description="Fraction of the valid votes the winning class needs.")
    cooldown_s: float = Field(0.0, ge=0.0, description="No new item starts for this long after a decision.")
    ignore: list[str] = Field(default_factory=list,
                              description="Background classes (e.g. 'belt') that are never an item; they abstain.")

    @field_validator("bins")
    @classmethod
    def _bins_named(cls, bins: dict[str, str]) -> dict[str, str]:
        if not bins:
            raise ValueError("the bin map is empty; map at least one class to a bin")
        blank = [name for name, bin_ in bins.items() if not name or not bin_]
        if blank:
            raise ValueError(f"empty class or bin name in the bin map: {blank}")
        return bins

    @model_validator(mode="after")
    def _ignore_not_binned(self) -> PolicyConfig:
        both = sorted(set(self.ignore) & set(self.bins))
        if both:
            raise ValueError(f"classes both ignored and mapped to a bin: {', '.join(both)}")
        return self


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one item.

    Attributes:
        item: Item number, counting from 0.
        label: The winning class, or None when no frame gave a valid vote.
        bin: The bin the item goes to (the reject bin unless ``reason == "ok"``).
        score: Mean score of the winner's votes (0.0 without a winner).
        votes: ``(label, score)`` of every frame of the item, abstentions included (label None for a
            frame without classes).
        reason: ``"ok"``; ``"low_confidence"`` (no vote reached min_confidence); ``"disagree"`` (the
            winner has less than min_agreement of the valid votes); ``"unknown_class"`` (the winner is
            not in the bin map); ``"no_votes"`` (every frame was an ignored class or empty).
        first_seq: Sequence number of the item's first frame.
        last_seq: Sequence number of its last voting frame.
        capture_ns: ``timestamp_ns`` of the item's first frame; the firing schedule counts from it.
    """

    item: int
    label: str | None
    bin: str
    score: float
    votes: tuple
    reason: str
    first_seq: int
    last_seq: int
    capture_ns: int


_IDLE, _COLLECTING, _WAIT_FALL = "idle", "collecting", "wait_fall"


class Policy:
    """Votes over the frames of each item and decides its bin. Used from one thread.

    A new policy waits for a frame without presence before it starts an item: an item already in
    view when it starts (at service start, or on a model swap that builds a new policy) has an
    unknown capture time, so firing for it could come too late.

    Args:
        config: The policy settings.
        labels: The model's class names, by class index.
        first_item: Number of the first item (to continue the numbering of a replaced policy).

    Raises:
        ConfigError: The bin map or the ignore list names classes the model does not have.
    """

    def __init__(self, config: PolicyConfig, labels: Sequence[str], first_item: int = 0):
        self.config = config
        self.labels = tuple(str(label) for label in labels)
        known = set(self.labels)
        for key, names in (("bins", config.bins), ("ignore", config.ignore)):
            missing = [name for name in names if name not in known]
            if missing:
                raise ConfigError(f"policy.{key}: classes {', '.join(map(repr, missing))} are not in the model; "
                                  f"it has {', '.join(map(repr, self.labels))}")
        self._ignore = frozenset(config.ignore)
        self._state = _WAIT_FALL
        self._items = int(first_item)
        self._decided_ns: int | None = None
        self._votes: list[tuple[str | None, float]] = []
        self._first_seq = self._last_seq = 0
        self._capture_ns = 0

    @property
    def next_item(self) -> int:
        """Number the next item will get (pass it as ``first_item`` to a replacement policy)."""
        return self._items

    @property
    def collecting(self) -> bool:
        """True while an item is present and not yet decided."""
        return self._state == _COLLECTING

    def observe(self, present: bool, top: Sequence[tuple[int, float]], seq: int,
                timestamp_ns: int) -> Decision | None:
        """Take one frame; return the item's decision on the frame that completes it, else None.

        Args:
            present: Whether the presence trigger sees an item in this frame.
            top: The classifier's top-k as ``(class index, score)``, best first (may be empty).
            seq: The frame's sequence number.
            timestamp_ns: The frame's capture time (``CLOCK_MONOTONIC`` ns).
        """
        if not present:
            decision = self._decide(timestamp_ns) if self._state == _COLLECTING else None
            self._state = _IDLE
            return decision
        if self._state == _IDLE:
            cooling = (self._decided_ns is not None
                       and timestamp_ns - self._decided_ns < self.config.cooldown_s * 1e9)
            if cooling:  # a bounce or the tail of the last item: skip this whole presence period
                self._state = _WAIT_FALL
                return None
            self._start(seq, timestamp_ns)
        if self._state != _COLLECTING:
            return None
        self._votes.append(self._vote(top))
        self._last_seq = seq
        if len(self._votes) >= self.config.votes:
            decision = self._decide(timestamp_ns)
            self._state = _WAIT_FALL
            return decision
        return None

    def reset(self) -> None:
        """Forget a half-seen item (on a model swap); the frames until presence falls are ignored.

        Its remaining frames are not voted as a new item: the item's capture time is already past, so
        a firing scheduled from a later frame would come too late.
        """
        if self._state != _IDLE:
            self._state = _WAIT_FALL
        self._votes = []

    def _start(self, seq: int, timestamp_ns: int) -> None:
        self._state = _COLLECTING
        self._votes = []
        self._first_seq = self._last_seq = seq
        self._capture_ns = timestamp_ns

    def _vote(self, top: Sequence[tuple[int, float]]) -> tuple[str | None, float]:
        if not len(top):
            return None, 0.0
        index, score = top[0]
        index = int(index)
        label = self.labels[index] if 0 <= index < len(self.labels) else f"#{index}"
        return label, float(score)

    def _decide(self, now_ns: int) -> Decision:
        cfg = self.config
        valid = [(label, score) for label, score in self._votes
                 if label is not None and label not in self._ignore and score >= cfg.min_confidence]
        label, score, reason = None, 0.0, "ok"
        if not valid:
            seen = any(name is not None and name not in self._ignore for name, _ in self._votes)
            reason = "low_confidence" if seen else "no_votes"
        else:
            tally: dict[str, list[float]] = {}
            for name, s in valid:
                tally.setdefault(name, []).append(s)
            # Most votes wins; a tie goes to the higher total score.
            label, scores = max(tally.items(), key=lambda kv: (len(kv[1]), sum(kv[1])))
            score = sum(scores) / len(scores)
            if len(scores) < cfg.min_agreement * len(valid) - 1e-9:
                reason = "disagree"
            elif label not in cfg.bins:
                reason = "unknown_class"
        decision = Decision(
            item=self._items, label=label, bin=cfg.bins[label] if reason == "ok" else cfg.reject_bin,
            score=score, votes=tuple(self._votes), reason=reason, first_seq=self._first_seq,
            last_seq=self._last_seq, capture_ns=self._capture_ns)
        self._items += 1
        self._decided_ns = now_ns
        self._votes = []
        return decision
