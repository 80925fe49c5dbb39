"""`Section`: the base of every config model (unknown keys refused, values frozen)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Base of config sections: unknown keys are refused; fields carry descriptions."""

    model_config = ConfigDict(extra="forbid", frozen=True)
