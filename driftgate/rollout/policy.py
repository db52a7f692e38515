"""Traffic policies: which version answers a request, and which ones see a copy of it.

Pure code: the data plane asks `route(key)` per request (or per row with a sticky key); every
rollout strategy is a policy with the same members, so serving never changes shape.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Protocol

from driftgate.core.refs import VersionRef
from driftgate.rollout.standby import Standby

BUCKETS = 10_000


@dataclass(frozen=True, slots=True)
class Route:
    """`primary` answers; each of `shadows` gets a copy whose output is logged, never returned."""

    primary: VersionRef
    shadows: tuple[VersionRef, ...] = ()


class TrafficPolicy(Protocol):
    def route(self, key: str | None) -> Route: ...

    @property
    def baseline(self) -> VersionRef:
        """The champion: its schema decodes requests (positional inputs follow its feature order)."""
        ...

    @property
    def versions(self) -> tuple[VersionRef, ...]:
        """Every version this policy may route to or keeps warm; the data plane keeps them loaded."""
        ...

    @property
    def shadowed(self) -> tuple[VersionRef, ...]:
        """The versions some route sends copies to (they get a shadow scorer of their own)."""
        ...


def bucket(key: str) -> int:
    """A stable bucket in [0, BUCKETS) for a sticky key: the same in every process (unlike hash())."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


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
    def baseline(self) -> VersionRef:
        return self.target

    @property
    def versions(self) -> tuple[VersionRef, ...]:
        return (self.target,)

    @property
    def shadowed(self) -> tuple[VersionRef, ...]:
        return ()


@dataclass(frozen=True, slots=True)
class Shadowed:
    """The champion answers everything; the candidate scores a copy of every request.

    >>> r = Shadowed(VersionRef("m", 1), VersionRef("m", 2)).route(None)
    >>> (r.primary.version, [s.version for s in r.shadows])
    (1, [2])
    """

    champion: VersionRef
    candidate: VersionRef

    def route(self, key: str | None) -> Route:
        return Route(self.champion, (self.candidate,))

    @property
    def baseline(self) -> VersionRef:
        return self.champion

    @property
    def versions(self) -> tuple[VersionRef, ...]:
        return (self.champion, self.candidate)

    @property
    def shadowed(self) -> tuple[VersionRef, ...]:
        return (self.candidate,)


@dataclass(frozen=True, slots=True)
class WeightedSplit:
    """`weight` percent of traffic to the candidate (canary, A/B).

    With a key the choice is a stable hash, so one caller always meets the same version, and a
    caller on the candidate stays there as the weight grows. With `mirror`, the champion also
    scores a copy of what the candidate answers, so the two can be compared on the same inputs.
    """

    champion: VersionRef
    candidate: VersionRef
    weight: float
    mirror: bool = False

    def route(self, key: str | None) -> Route:
        draw = bucket(key) if key is not None else random.randrange(BUCKETS)
        if draw < self.weight * (BUCKETS / 100):
            return Route(self.candidate, (self.champion,) if self.mirror else ())
        return Route(self.champion)

    @property
    def baseline(self) -> VersionRef:
        return self.champion

    @property
    def versions(self) -> tuple[VersionRef, ...]:
        return (self.champion, self.candidate)

    @property
    def shadowed(self) -> tuple[VersionRef, ...]:
        return (self.champion,) if self.mirror else ()


@dataclass(frozen=True, slots=True)
class BlueGreen:
    """Everything to the new version; the old one stays loaded so a rollback is instant."""

    active: VersionRef
    standby: VersionRef

    def route(self, key: str | None) -> Route:
        return Route(self.active)

    @property
    def baseline(self) -> VersionRef:
        return self.active

    @property
    def versions(self) -> tuple[VersionRef, ...]:
        return (self.active, self.standby)

    @property
    def shadowed(self) -> tuple[VersionRef, ...]:
        return ()


@dataclass(frozen=True, slots=True)
class KeptWarm:
    """All traffic to one version; the one a blue-green promotion replaced stays loaded for a while, so
    a rollback is instant. The kept version answers nobody.

    >>> p = KeptWarm(VersionRef("m", 2), VersionRef("m", 1))
    >>> (p.route(None).primary.version, [v.version for v in p.versions], [v.version for v in answering(p)])
    (2, [2, 1], [2])
    """

    serving: VersionRef
    previous: VersionRef
    until: float = float("inf")
    """When `previous` is to be unloaded (epoch seconds)."""

    def route(self, key: str | None) -> Route:
        return Route(self.serving)

    @property
    def baseline(self) -> VersionRef:
        return self.serving

    @property
    def versions(self) -> tuple[VersionRef, ...]:
        return (self.serving, self.previous)

    @property
    def shadowed(self) -> tuple[VersionRef, ...]:
        return ()


def answering(policy: TrafficPolicy) -> tuple[VersionRef, ...]:
    """The versions that may answer a caller (a version kept only for a rollback is not one)."""
    return (policy.serving,) if isinstance(policy, KeptWarm) else policy.versions


def policy_for(
    champion: VersionRef,
    strategy: str | None = None,
    candidate: VersionRef | None = None,
    weight: float = 0.0,
    standby: Standby | None = None,
) -> TrafficPolicy:
    """The policy an endpoint serves with: its config's version, and its active rollout if any; without
    one, `standby` is the version a blue-green promotion replaced, kept loaded for a rollback."""
    if strategy is None or candidate is None:
        return SingleVersion(champion) if standby is None else KeptWarm(champion, standby.previous, standby.until)
    if strategy == "shadow":
        return Shadowed(champion, candidate)
    if strategy == "blue_green":
        return BlueGreen(candidate, champion)
    return WeightedSplit(champion, candidate, weight, mirror=strategy == "canary")
