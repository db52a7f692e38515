"""Gate values and the decisions they lead to."""

from __future__ import annotations

import numpy as np
import pytest

from driftgate.rollout.analysis import VersionSample, agreement, evaluate_gates, output_distance
from driftgate.rollout.decision import decide
from driftgate.rollout.spec import Analysis, RolloutSpec


def sample(rows: int, errors: int = 0, latency: float = 5.0, outputs: list | None = None) -> VersionSample:
    ok = rows - errors
    return VersionSample(
        rows=rows,
        errors=errors,
        latencies_ms=np.full(ok, latency),
        outputs=outputs if outputs is not None else [1] * ok,
        confidences=np.full(ok, 0.9),
    )


def canary(**kw: object) -> RolloutSpec:
    body = {
        "strategy": "canary",
        "version": 2,
        "steps": [10, 50, 100],
        "min_requests_per_step": 100,
        "step_seconds": 60,
    }
    return RolloutSpec.model_validate({**body, **kw})


def test_gates_lack_data_below_min_samples_and_decide_above() -> None:
    analysis = Analysis(max_error_rate=0.05, min_samples=50)
    few = evaluate_gates(analysis, sample(10, errors=5), sample(10), [])
    assert [g.status for g in few] == ["insufficient_data"]
    enough = evaluate_gates(analysis, sample(100, errors=30), sample(100), [])
    assert enough[0].status == "fail" and enough[0].value == pytest.approx(0.3)
    good = evaluate_gates(analysis, sample(100, errors=1), sample(100), [])
    assert good[0].status == "pass"


def test_a_rate_gate_past_its_limit_fails_only_on_evidence() -> None:
    analysis = Analysis(max_error_rate=0.05, min_samples=50)
    # 10 errors in 100 against 5 %: checked every second, this happens to good candidates.
    unsure = evaluate_gates(analysis, sample(100, errors=10), sample(100), [])[0]
    assert unsure.status == "inconclusive" and unsure.value == pytest.approx(0.1)
    assert unsure.evidence is not None and 1 < unsure.evidence < unsure.evidence_needed == pytest.approx(20)
    # The same rate over ten times the rows is conclusive.
    sure = evaluate_gates(analysis, sample(1000, errors=100), sample(1000), [])[0]
    assert sure.status == "fail" and sure.evidence >= sure.evidence_needed


def test_confidence_is_split_over_the_rate_gates() -> None:
    one = evaluate_gates(Analysis(max_error_rate=0.01, confidence=0.9), sample(100), sample(100), [])
    assert one[0].evidence_needed == pytest.approx(10)
    two = Analysis(max_error_rate=0.01, min_agreement=0.9, max_prediction_drift=0.5, confidence=0.9)
    gates = evaluate_gates(two, sample(100), sample(100), [(1, 1)] * 100)
    needed = {g.name: g.evidence_needed for g in gates}
    assert needed == {"error_rate": pytest.approx(20), "agreement": pytest.approx(20), "prediction_drift": None}


def test_latency_gate_tests_the_share_of_requests_over_the_limit() -> None:
    analysis = Analysis(max_error_rate=None, max_latency_p99_ms=50, min_samples=50)
    cand = sample(400)
    cand.latencies_ms[:8] = 80  # 2 % over the limit: p99 breaks it, but not conclusively yet
    gate = evaluate_gates(analysis, cand, sample(400), [])[0]
    assert gate.status == "inconclusive" and gate.value == pytest.approx(80)
    cand.latencies_ms[:40] = 80  # 10 %
    assert evaluate_gates(analysis, cand, sample(400), [])[0].status == "fail"


def test_agreement_counts_equal_labels_and_close_numbers() -> None:
    assert agreement([(1, 1), (0, 1), ("a", "a"), (1, "1")], 0.05) == 0.75
    assert agreement([(1.0, 1.04), (1.0, 2.0)], 0.05, classification=False) == 0.5
    assert agreement([], 0.05) is None


def test_output_distance_is_zero_for_the_same_outputs_and_one_for_disjoint() -> None:
    assert output_distance([0, 1] * 50, [1, 0] * 50, True) == pytest.approx(0.0)
    assert output_distance([0] * 100, [1] * 100, True) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    same = output_distance(list(rng.normal(0, 1, 2000)), list(rng.normal(0, 1, 2000)), False)
    shifted = output_distance(list(rng.normal(3, 1, 2000)), list(rng.normal(0, 1, 2000)), False)
    assert same < 0.1 < shifted


def test_every_configured_gate_is_reported() -> None:
    analysis = Analysis(
        max_error_rate=0.01,
        max_latency_p99_ms=50,
        min_agreement=0.9,
        min_accuracy=0.8,
        min_estimated_accuracy=0.7,
        max_prediction_drift=0.2,
        min_samples=10,
        min_labels=5,
    )
    cand = sample(100, latency=80)
    cand.label_scores = np.ones(20)
    gates = {g.name: g for g in evaluate_gates(analysis, cand, sample(100), [(1, 1)] * 50)}
    assert set(gates) == {
        "error_rate",
        "latency_p99_ms",
        "agreement",
        "accuracy",
        "estimated_accuracy",
        "prediction_drift",
    }
    assert gates["latency_p99_ms"].status == "fail"
    assert gates["accuracy"].status == "pass" and gates["accuracy"].value == 1.0
    assert gates["estimated_accuracy"].value == pytest.approx(0.9)


def test_a_step_waits_for_both_its_request_count_and_its_duration() -> None:
    spec = canary(analysis={"max_error_rate": 0.01, "min_samples": 10})
    gates = evaluate_gates(spec.analysis, sample(200), sample(200), [])
    assert decide(spec, 0, 50, 120, gates).action == "hold"
    assert decide(spec, 0, 150, 30, gates).action == "hold"
    d = decide(spec, 0, 150, 61, gates)
    assert d.action == "advance" and "step 1" in d.reason
    assert decide(spec, 2, 150, 61, gates).action == "promote"


def test_a_failing_gate_rolls_back_at_once_with_the_reason() -> None:
    spec = canary(analysis={"min_agreement": 0.9, "min_samples": 20})
    gates = evaluate_gates(spec.analysis, sample(50), sample(50), [(0, 1)] * 30 + [(1, 1)] * 10)
    d = decide(spec, 0, 5, 1, gates)  # long before the step's count or duration
    assert d.action == "rollback" and "agreement fails" in d.reason and "0.25" in d.reason


def test_insufficient_data_holds_then_pauses_after_max_step_seconds() -> None:
    spec = canary(analysis={"max_error_rate": None, "min_accuracy": 0.8}, max_step_seconds=300)
    gates = evaluate_gates(spec.analysis, sample(500), sample(500), [])
    hold = decide(spec, 0, 500, 100, gates)
    assert hold.action == "hold" and hold.verdict == "insufficient_data" and "insufficient data" in hold.reason
    pause = decide(spec, 0, 500, 301, gates)
    assert pause.action == "pause" and "accuracy" in pause.reason


def test_an_inconclusive_gate_holds_the_step_then_pauses_it() -> None:
    spec = canary(analysis={"max_error_rate": 0.05, "min_samples": 50}, max_step_seconds=300)
    gates = evaluate_gates(spec.analysis, sample(200, errors=14), sample(200), [])
    early = decide(spec, 0, 50, 10, gates)
    assert early.action == "hold" and early.verdict == "inconclusive"
    assert "waiting for 50/100 requests" in early.reason and "error_rate inconclusive: 0.07" in early.reason
    hold = decide(spec, 0, 200, 100, gates)
    assert hold.action == "hold" and "evidence" in hold.reason and "to fail" in hold.reason
    pause = decide(spec, 0, 200, 301, gates)
    assert pause.action == "pause" and pause.verdict == "inconclusive"


def test_manual_canary_never_acts_by_itself() -> None:
    spec = canary(auto=False, analysis={"max_error_rate": 0.01, "min_samples": 10})
    bad = evaluate_gates(spec.analysis, sample(100, errors=50), sample(100), [])
    assert decide(spec, 0, 500, 500, bad).action == "hold"
    good = evaluate_gates(spec.analysis, sample(100), sample(100), [])
    assert decide(spec, 2, 500, 500, good).action == "hold"


def test_shadow_and_ab_wait_for_a_person() -> None:
    for strategy in ("shadow", "ab", "blue_green"):
        spec = RolloutSpec.model_validate({"strategy": strategy, "version": 2})
        gates = evaluate_gates(spec.analysis, sample(100, errors=90), sample(100), [])
        assert decide(spec, 0, 100, 1000, gates).action == "hold"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"strategy": "canary", "version": 2, "steps": [50, 10]}, "steps"),
        ({"strategy": "canary", "version": 2, "steps": [0, 10]}, "steps"),
        ({"strategy": "rainbow", "version": 2}, "strategy"),
        ({"strategy": "ab", "version": 2, "weight": 100}, "weight"),
        ({"strategy": "canary", "version": 2, "analysis": {"min_agreement": 2}}, "min_agreement"),
        ({"strategy": "canary", "version": 2, "surprise": 1}, "surprise"),
    ],
)
def test_bad_specs_are_refused(body: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RolloutSpec.model_validate(body)
