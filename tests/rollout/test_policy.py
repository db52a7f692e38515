from __future__ import annotations

import math
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from driftgate.rollout.policy import BlueGreen, Route, Shadowed, SingleVersion, VersionRef, WeightedSplit, policy_for

V1, V2 = VersionRef("m", 1), VersionRef("m", 2)


def test_single_version_routes_everything_to_its_target() -> None:
    policy = SingleVersion(VersionRef("m", 3))
    assert {policy.route(key) for key in (None, "a", "b")} == {Route(VersionRef("m", 3))}
    assert policy.versions == (VersionRef("m", 3),)


def test_shadow_answers_from_the_champion_and_copies_to_the_candidate() -> None:
    policy = Shadowed(V1, V2)
    assert {policy.route(k) for k in (None, "a")} == {Route(V1, (V2,))}
    assert policy.baseline == V1


def test_blue_green_answers_from_the_new_version_and_keeps_the_old_one_loaded() -> None:
    policy = BlueGreen(V2, V1)
    assert policy.route(None) == Route(V2)
    assert set(policy.versions) == {V1, V2}


def test_policy_for_picks_the_strategy() -> None:
    assert policy_for(V1) == SingleVersion(V1)
    assert policy_for(V1, "shadow", V2) == Shadowed(V1, V2)
    assert policy_for(V1, "blue_green", V2) == BlueGreen(V2, V1)
    assert policy_for(V1, "canary", V2, 10) == WeightedSplit(V1, V2, 10, mirror=True)
    assert policy_for(V1, "ab", V2, 30) == WeightedSplit(V1, V2, 30, mirror=False)


@settings(max_examples=25, deadline=None)
@given(weight=st.floats(min_value=1, max_value=99))
def test_observed_canary_share_matches_the_weight_within_binomial_noise(weight: float) -> None:
    n = 4000
    policy = WeightedSplit(V1, V2, weight)
    hits = sum(policy.route(None).primary == V2 for _ in range(n))
    p = weight / 100
    # Five standard deviations: a false failure about once in 3.5 million runs.
    assert abs(hits - n * p) <= 5 * math.sqrt(n * p * (1 - p)) + 1


@settings(max_examples=50, deadline=None)
@given(key=st.text(max_size=40), weight=st.floats(min_value=0, max_value=100))
def test_the_same_sticky_key_always_routes_to_the_same_version(key: str, weight: float) -> None:
    policy = WeightedSplit(V1, V2, weight)
    assert len({policy.route(key).primary for _ in range(20)}) == 1
    # And in a fresh policy object (another replica), the same answer.
    assert WeightedSplit(V1, V2, weight).route(key) == policy.route(key)


@settings(max_examples=50, deadline=None)
@given(key=st.text(max_size=40), low=st.floats(min_value=0, max_value=100), extra=st.floats(min_value=0, max_value=100))
def test_a_sticky_caller_on_the_candidate_stays_there_as_the_weight_grows(key: str, low: float, extra: float) -> None:
    high = min(100.0, low + extra)
    if WeightedSplit(V1, V2, low).route(key).primary == V2:
        assert WeightedSplit(V1, V2, high).route(key).primary == V2


def test_sticky_keys_spread_over_versions_by_weight() -> None:
    policy = WeightedSplit(V1, V2, 25)
    share = sum(policy.route(f"customer-{i}").primary == V2 for i in range(8000)) / 8000
    assert abs(share - 0.25) < 0.03


def test_canary_mirrors_candidate_traffic_to_the_champion() -> None:
    policy = WeightedSplit(V1, V2, 100, mirror=True)
    assert policy.route(None) == Route(V2, (V1,))
    assert WeightedSplit(V1, V2, 0, mirror=True).route(None) == Route(V1)


def test_rollout_decisions_import_no_web_or_database_code() -> None:
    code = (
        "import sys, driftgate.rollout.policy, driftgate.rollout.analysis, driftgate.rollout.decision\n"
        "bad = [m for m in ('fastapi', 'starlette', 'sqlalchemy', 'httpx', 'uvicorn') if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
