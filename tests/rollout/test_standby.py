"""Blue-green after promotion, decided from the last rollout, the served version and the clock."""

from __future__ import annotations

from typing import Any

import pytest

from driftgate.core.refs import VersionRef
from driftgate.rollout.policy import KeptWarm, SingleVersion, answering, policy_for
from driftgate.rollout.standby import Standby, late_rollback, standby

V1, V2 = VersionRef("m", 1), VersionRef("m", 2)


def promoted(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": 7,
        "strategy": "blue_green",
        "state": "promoted",
        "baseline": {"model": "m", "version": 1},
        "candidate": {"model": "m", "version": 2},
        "finished_at": 1000.0,
        "spec": {"keep_previous_s": 60.0},
    }
    return {**row, **changes}


def test_the_previous_version_is_kept_for_its_window_only() -> None:
    assert standby(promoted(), V2, 1059.0) == Standby(V1, 1060.0)
    assert standby(promoted(), V2, 1060.0) is None
    assert standby(promoted(spec={}), V2, 1500.0) == Standby(V1, 1600.0)  # rows older than the field: 600 s
    assert standby(promoted(), V1, 1001.0) is None  # the endpoint moved on since
    assert standby(promoted(strategy="canary"), V2, 1001.0) is None
    assert standby(promoted(state="rolled_back"), V2, 1001.0) is None
    assert standby(promoted(spec={"keep_previous_s": 0.0}), V2, 1000.0) is None
    assert standby(None, V2, 0.0) is None


def test_a_kept_version_is_loaded_but_answers_nobody() -> None:
    policy = policy_for(V2, standby=Standby(V1, 1060.0))
    assert isinstance(policy, KeptWarm) and policy.until == 1060.0
    assert policy.versions == (V2, V1) and answering(policy) == (V2,)
    assert {policy.route(str(k)).primary for k in range(50)} == {V2}
    assert policy.baseline == V2 and policy.shadowed == ()
    assert policy_for(V2) == SingleVersion(V2)


@pytest.mark.parametrize(
    ("row", "serving", "now", "how", "refusal"),
    [
        (promoted(), V2, 1059.0, "instant", ""),
        (promoted(), V2, 1060.0, "new_rollout", ""),
        (None, V2, 0.0, None, "no rollout running"),
        (promoted(state="rolled_back"), V2, 0.0, None, "no rollout running"),
        (promoted(strategy="canary"), V2, 1001.0, None, "only a promoted blue-green"),
        (promoted(spec={"rollback_of": 3, "keep_previous_s": 0.0}), V2, 1001.0, None, "itself the rollback"),
        (promoted(), V1, 1001.0, None, "serves m:1 now"),
    ],
    ids=["within", "after", "never", "rolled-back", "canary", "a-rollback", "moved-on"],
)
def test_a_rollback_without_a_running_rollout(
    row: dict[str, Any] | None, serving: VersionRef, now: float, how: str | None, refusal: str
) -> None:
    plan = late_rollback("e", row, serving, now)
    assert plan.how == how
    assert refusal in plan.refusal and bool(plan.refusal) == (how is None)
