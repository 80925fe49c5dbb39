"""The voting policy: one decision per item, votes and abstentions, reject reasons, cooldown, bin-map checks."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from edgert.apps.kiosk.policy import REASONS, Decision, Policy, PolicyConfig
from edgert.core.errors import ConfigError

LABELS = ("belt", "paper", "plastic", "glass", "metal")
IDX = {name: i for i, name in enumerate(LABELS)}
MS = 1_000_000


def config(**overrides) -> PolicyConfig:
    base = {"bins": {"paper": "blue", "plastic": "yellow", "glass": "green"}, "min_confidence": 0.5, "votes": 3,
            "min_agreement": 0.6, "cooldown_s": 0.0, "ignore": ["belt"]}
    return PolicyConfig(**{**base, **overrides})


class Feed:
    """Drives a policy with frames 33 ms apart and collects its decisions."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.seq = 0
        self.decisions: list[Decision] = []
        policy.observe(False, [], -1, 0)  # a policy starts an item only after it has seen the view empty

    def frame(self, present: bool, label: str | None = None, score: float = 0.9):
        top = [] if label is None else [(IDX[label], score), ((IDX[label] + 1) % len(LABELS), (1 - score) / 2)]
        decision = self.policy.observe(present, top, self.seq, 1_000 * MS + self.seq * 33 * MS)
        self.seq += 1
        if decision is not None:
            self.decisions.append(decision)
        return decision

    def item(self, *votes, gap: int = 2):
        """Present frames voting `votes` (label or (label, score)), then `gap` empty frames."""
        for vote in votes:
            label, score = vote if isinstance(vote, tuple) else (vote, 0.9)
            self.frame(True, label, score)
        for _ in range(gap):
            self.frame(False)


def test_k_votes_decide_once_per_item_and_count_items():
    feed = Feed(Policy(config(votes=3), LABELS))
    feed.frame(False)
    feed.frame(True, "paper")
    feed.frame(True, "paper", 0.7)
    assert feed.decisions == []
    third = feed.frame(True, "paper", 0.8)
    assert third is not None
    assert (third.item, third.label, third.bin, third.reason) == (0, "paper", "blue", "ok")
    assert third.score == pytest.approx((0.9 + 0.7 + 0.8) / 3)
    assert (third.first_seq, third.last_seq) == (1, 3)
    assert third.capture_ns == 1_000 * MS + 1 * 33 * MS, "the firing schedule counts from the first frame"
    assert [v[0] for v in third.votes] == ["paper"] * 3
    # The same item stays in view: no second decision until presence falls and rises again.
    for _ in range(10):
        assert feed.frame(True, "glass") is None
    feed.frame(False)
    feed.item("glass", "glass", "glass")
    assert [(d.item, d.bin) for d in feed.decisions] == [(0, "blue"), (1, "green")]


def test_presence_falling_decides_with_the_votes_so_far():
    feed = Feed(Policy(config(votes=5), LABELS))
    feed.frame(True, "plastic")
    feed.frame(True, "plastic", 0.6)
    decision = feed.frame(False)
    assert decision is not None and decision.reason == "ok" and decision.bin == "yellow"
    assert len(decision.votes) == 2 and decision.last_seq == 1
    assert feed.frame(False) is None


def test_majority_wins_and_disagreement_rejects():
    feed = Feed(Policy(config(votes=5, min_agreement=0.6), LABELS))
    feed.item("paper", "glass", "paper", "paper", "glass")
    feed.item("paper", "glass", "plastic", "paper", "glass")
    ok, split = feed.decisions
    assert (ok.label, ok.bin, ok.reason) == ("paper", "blue", "ok")
    assert split.reason == "disagree" and split.bin == "reject"
    assert split.label in ("paper", "glass"), "the plurality class is still reported"


def test_abstentions_use_up_frames_but_not_agreement():
    feed = Feed(Policy(config(votes=4, min_agreement=1.0), LABELS))
    # Two low-confidence frames and one background frame abstain; the one valid vote is unanimous.
    feed.item(("glass", 0.3), "belt", ("paper", 0.2), ("plastic", 0.95))
    (decision,) = feed.decisions
    assert decision.reason == "ok" and decision.bin == "yellow" and decision.score == pytest.approx(0.95)
    assert [label for label, _ in decision.votes] == ["glass", "belt", "paper", "plastic"]


def test_reject_reasons():
    feed = Feed(Policy(config(votes=3, reject_bin="manual"), LABELS))
    feed.item(("paper", 0.4), ("glass", 0.1), ("paper", 0.49))  # all below min_confidence
    feed.item("belt", "belt", None)  # only background and an empty top-k
    feed.item("metal", "metal", "metal")  # a class the bin map does not name
    low, nothing, unknown = feed.decisions
    assert (low.reason, low.label, low.bin, low.score) == ("low_confidence", None, "manual", 0.0)
    assert (nothing.reason, nothing.label, nothing.bin) == ("no_votes", None, "manual")
    assert nothing.votes[-1] == (None, 0.0)
    assert (unknown.reason, unknown.label, unknown.bin) == ("unknown_class", "metal", "manual")


def test_tie_goes_to_the_higher_total_score():
    feed = Feed(Policy(config(votes=4, min_agreement=0.5), LABELS))
    feed.item(("paper", 0.6), ("glass", 0.95), ("paper", 0.6), ("glass", 0.9))
    assert feed.decisions[0].label == "glass"


def test_cooldown_skips_a_whole_presence_period():
    feed = Feed(Policy(config(votes=2, cooldown_s=0.2), LABELS))  # 0.2 s = about 6 frames
    feed.item("paper", "paper", gap=1)      # decided at frame 1
    feed.item("glass", "glass", gap=1)      # rises at frame 3: within the cooldown, skipped entirely
    feed.item(*["glass"] * 5, gap=1)        # rises at frame 6: still within it, and ignored even after it ends
    for _ in range(6):
        feed.frame(False)
    feed.item("plastic", "plastic")
    assert [(d.item, d.bin) for d in feed.decisions] == [(0, "blue"), (1, "yellow")]


def test_reset_forgets_a_half_seen_item():
    policy = Policy(config(votes=3), LABELS)
    feed = Feed(policy)
    feed.frame(True, "paper")
    assert policy.collecting
    policy.reset()
    assert not policy.collecting
    feed.frame(True, "glass")
    feed.frame(True, "glass")
    feed.frame(True, "glass")
    assert feed.decisions == [], "the rest of the forgotten item is not decided as a new one"
    feed.frame(False)
    feed.item("glass", "glass", "glass")
    assert [(d.item, d.label) for d in feed.decisions] == [(0, "glass")]


def test_an_item_already_in_view_at_start_is_not_decided():
    policy = Policy(config(votes=2), LABELS, first_item=41)
    assert policy.observe(True, [(IDX["paper"], 0.9)], 0, 0) is None
    assert policy.observe(True, [(IDX["paper"], 0.9)], 1, 33 * MS) is None, "its capture time is unknown"
    assert policy.observe(False, [], 2, 66 * MS) is None
    policy.observe(True, [(IDX["paper"], 0.9)], 3, 99 * MS)
    decision = policy.observe(True, [(IDX["paper"], 0.9)], 4, 132 * MS)
    assert (decision.item, decision.first_seq, decision.bin) == (41, 3, "blue")
    assert policy.next_item == 42


def test_out_of_range_class_index_is_an_unknown_class():
    policy = Policy(config(votes=1), LABELS)
    policy.observe(False, [], 0, 0)
    decision = policy.observe(True, [(17, 0.99)], 1, 1)
    assert decision.reason == "unknown_class" and decision.label == "#17" and decision.bin == "reject"


def test_bin_map_naming_missing_classes_is_refused():
    with pytest.raises(ConfigError) as info:
        Policy(config(bins={"paper": "blue", "cardboard": "blue", "cans": "grey"}), LABELS)
    message = str(info.value)
    assert "'cardboard'" in message and "'cans'" in message and "'metal'" in message
    assert "\n" not in message
    with pytest.raises(ConfigError, match="ignore.*'floor'"):
        Policy(config(ignore=["floor"]), LABELS)


@pytest.mark.parametrize("overrides, fragment", [
    ({"votes": 0}, "votes"),
    ({"min_confidence": 1.5}, "min_confidence"),
    ({"min_agreement": 0.0}, "min_agreement"),
    ({"cooldown_s": -1}, "cooldown_s"),
    ({"bins": {}}, "bin map is empty"),
    ({"ignore": ["paper"]}, "both ignored and mapped"),
    ({"colour": "red"}, "colour"),
])
def test_config_validation(overrides, fragment):
    with pytest.raises(ValidationError, match=fragment):
        config(**overrides)


frames = st.lists(st.tuples(st.booleans(), st.sampled_from([None, *LABELS]), st.floats(0.0, 1.0)), max_size=80)


@given(frames, st.integers(1, 6))
def test_one_decision_per_presence_period(sequence, k):
    policy = Policy(config(votes=k, cooldown_s=0.0), LABELS)
    feed = Feed(policy)
    previous, periods = False, 0
    for present, label, score in sequence:
        periods += present and not previous
        previous = present
        feed.frame(present, label, score)
    feed.frame(False)
    assert len(feed.decisions) == periods
    assert [d.item for d in feed.decisions] == list(range(periods))
    for d in feed.decisions:
        assert 1 <= len(d.votes) <= k and d.first_seq <= d.last_seq
        assert d.bin == (policy.config.bins[d.label] if d.reason == "ok" else "reject")
        assert d.reason in REASONS
