"""Decisions: presence triggers and the voting policy that turns classifications into bins."""
from __future__ import annotations

from edgert.decisions.policy import REASONS, Decision, Policy, PolicyConfig
from edgert.decisions.presence import (
    BeamBreakPresence,
    FrameDiffPresence,
    Presence,
    PresenceConfig,
    make_presence,
)

__all__ = ["REASONS", "BeamBreakPresence", "Decision", "FrameDiffPresence", "Policy", "PolicyConfig", "Presence",
           "PresenceConfig", "make_presence"]
