"""A model version by name and number: what endpoints, rollouts, the log and the monitor refer to."""

from __future__ import annotations

from dataclasses import dataclass

# Rollout states in which a rollout still holds its endpoint (one at a time per endpoint).
ACTIVE_ROLLOUT_STATES = ("running", "paused")


@dataclass(frozen=True, slots=True)
class VersionRef:
    model: str
    version: int

    def __str__(self) -> str:
        return f"{self.model}:{self.version}"
