"""Blue-green after promotion: the previous version stays loaded for `keep_previous_s`. Pure code.

Within that window a rollback returns traffic to it at once (the data plane still holds it warm);
after it, a rollback is a new rollout to it (loaded and warmed first, like any candidate). Which of
the two applies, or why neither does, depends only on the endpoint's last rollout, the version the
endpoint serves now and the clock, so every replica and the CLI reach the same answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from driftgate.core.refs import VersionRef
from driftgate.rollout.spec import KEEP_PREVIOUS_S

How = Literal["instant", "new_rollout"]


@dataclass(frozen=True, slots=True)
class Standby:
    """The version a promoted blue-green rollout replaced, kept loaded until `until` (epoch seconds)."""

    previous: VersionRef
    until: float


@dataclass(frozen=True, slots=True)
class LateRollback:
    """How a rollback of an endpoint without a running rollout goes: `how`, or refused with `refusal`."""

    how: How | None
    refusal: str = ""


def _ref(doc: Mapping[str, Any]) -> VersionRef:
    return VersionRef(str(doc["model"]), int(doc["version"]))


def kept_until(row: Mapping[str, Any]) -> float | None:
    """When the window of a promoted blue-green rollout ends; None for any other rollout."""
    if row["strategy"] != "blue_green" or row["state"] != "promoted" or row.get("finished_at") is None:
        return None
    spec = row["spec"]
    if spec.get("rollback_of") is not None:  # a rollback is not rolled back in turn
        return None
    return float(row["finished_at"]) + float(spec.get("keep_previous_s", KEEP_PREVIOUS_S))


def standby(row: Mapping[str, Any] | None, serving: VersionRef, now: float) -> Standby | None:
    """The version to keep loaded next to `serving`, from the endpoint's last rollout, if any."""
    if row is None:
        return None
    until = kept_until(row)
    if until is None or now >= until or _ref(row["candidate"]) != serving:
        return None
    return Standby(_ref(row["baseline"]), until)


def late_rollback(endpoint: str, row: Mapping[str, Any] | None, serving: VersionRef, now: float) -> LateRollback:
    """A rollback asked while no rollout runs: instant within the window, else a new rollout, or refused."""
    running = f"endpoint {endpoint!r} has no rollout running"
    if row is None or row["state"] != "promoted":
        return LateRollback(None, running)
    rid = row["id"]
    if row["strategy"] != "blue_green":
        return LateRollback(
            None,
            f"{running}; rollout {rid} ({row['strategy']}) was promoted, and only a promoted blue-green "
            "rollout can be rolled back: start a rollout of the previous version",
        )
    if row["spec"].get("rollback_of") is not None:
        return LateRollback(
            None,
            f"{running}; rollout {rid} was itself the rollback of rollout {row['spec']['rollback_of']}: "
            "start a rollout to go forward again",
        )
    if _ref(row["candidate"]) != serving:
        return LateRollback(
            None, f"{running}; it serves {serving} now, not {_ref(row['candidate'])} that rollout {rid} promoted"
        )
    until = kept_until(row)
    return LateRollback("instant" if until is not None and now < until else "new_rollout")
