"""Traffic policies: which version answers a request, and which ones see a copy of it.

Pure code: the data plane asks `route(key)` per request; rollout strategies (shadow, canary,
blue-green) are further policies with the same two members, so serving never changes shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class VersionRef:
    model: str
    version: int

    def __str__(self) -> str:
        return f"{self.model}:{self.version}"


@dataclass(frozen=True, slots=True)
class Route:
    """`primary` answers; each of `shadows` gets a copy whose output is logged, never returned."""

    primary: VersionRef
    shadows: tuple[VersionRef, ...] = ()


class TrafficPolicy(Protocol):
    def route(self, key: str | None) -> Route: ...

    @property
    def versions(self) -> tuple[VersionRef, ...]:
        """Every version this policy may route to; the data plane keeps them loaded."""
        ...


@dataclass(frozen=True, slots=True)
class SingleVersion:
    """All traffic to one version.

    >>> SingleVersion(VersionRef("fraud", 2)).route(None).primary.version
    2
    """

    target: VersionRef

    def route(self, key: str | None) -> Route:
        return Route(self.target)

    @property
    def versions(self) -> tuple[VersionRef, ...]:
        return (self.target,)
