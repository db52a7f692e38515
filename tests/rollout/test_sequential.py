"""The sequential test behind the rate gates: evidence grows with a violation and, checked as often
as the rollout controller checks, rarely fails a candidate that is within its limit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from driftgate.rollout.sequential import alternatives, breaks, log_evidence


def ever_breaks(rate: float, limit: float, side: str, alpha: float, seed: int, rows: int = 3000) -> bool:
    """One simulated rollout: the gate checked every 10 rows."""
    hits = np.cumsum(np.random.default_rng(seed).random(rows) < rate)
    return any(breaks(float(hits[n - 1]), n, limit, side, alpha) for n in range(50, rows + 1, 10))


def test_no_data_is_no_evidence_and_a_violation_builds_it() -> None:
    assert log_evidence(0, 0, 0.01, "above") == 0.0
    growing = [log_evidence(n // 10, n, 0.01, "above") for n in (100, 200, 400, 800)]
    assert growing == sorted(growing) and growing[-1] > math.log(1e6)
    assert log_evidence(0, 1000, 0.01, "above") < 0  # no errors at all: evidence for the limit
    assert log_evidence(400, 1000, 0.5, "below") > math.log(1e6)  # 40 % accuracy against 50 %
    assert log_evidence(600, 1000, 0.5, "below") < 0


def test_limits_at_the_edges() -> None:
    assert log_evidence(1, 100, 0.0, "above") == math.inf  # any error breaks a limit of 0
    assert log_evidence(0, 100, 0.0, "above") <= 0
    assert log_evidence(99, 100, 1.0, "below") == math.inf  # a minimum of 100 % agreement
    assert log_evidence(100, 100, 1.0, "above") == -math.inf  # nothing lies above 100 %
    assert log_evidence(0, 100, 0.0, "below") == -math.inf
    # Limits next to the edges are tested against a stricter null, never a looser one.
    assert log_evidence(1, 100, 0.00005, "above") <= log_evidence(1, 100, 0.0001, "above")
    assert log_evidence(0, 100, 0.00005, "below") == -math.inf
    assert log_evidence(100, 100, 0.99995, "above") == -math.inf


def test_alternatives_lie_beyond_the_limit_nearest_first() -> None:
    above = alternatives(0.01, "above")
    assert np.all(above > 0.01) and np.all(np.diff(above) > 0) and above[-1] < 1
    below = alternatives(0.5, "below")
    assert np.all(below < 0.5) and np.all(np.diff(below) < 0) and below[-1] > 0


@pytest.mark.parametrize(("limit", "side"), [(0.01, "above"), (0.9, "below")])
def test_a_candidate_at_its_limit_rarely_fails_however_often_it_is_checked(limit: float, side: str) -> None:
    runs = 200
    failed = sum(ever_breaks(limit, limit, side, 0.05, seed) for seed in range(runs))
    assert failed / runs <= 0.05
    # The point estimate alone, checked as often, fails most such candidates.
    naive = 0
    for seed in range(runs):
        hits = np.cumsum(np.random.default_rng(seed).random(3000) < limit)
        rates = hits[49::10] / np.arange(50, 3001, 10)
        naive += bool(np.any(rates > limit) if side == "above" else np.any(rates < limit))
    assert naive / runs > 0.5


@pytest.mark.parametrize(("rate", "limit", "side"), [(0.05, 0.01, "above"), (0.4, 0.5, "below"), (0.8, 0.9, "below")])
def test_a_candidate_clearly_past_its_limit_fails(rate: float, limit: float, side: str) -> None:
    assert all(ever_breaks(rate, limit, side, 0.05, seed) for seed in range(50))
