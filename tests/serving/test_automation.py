"""Which rows are answered, deferred or audited: automation levels with output guards (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from driftgate.serving.automation import decide

PROBA = np.array([[0.95, 0.05], [0.6, 0.4], [0.2, 0.8], [0.51, 0.49]])
GUARD = np.array([False, False, True, True])


def test_full_answers_everything_unless_a_guard_defers() -> None:
    d = decide("full", PROBA, review_threshold=0.7)
    assert (d.logged, d.answered, d.queued) == (None, None, 0)
    counted = decide("full", PROBA, violating=GUARD, guard_action="count")
    assert (counted.logged, counted.answered, counted.queued) == (None, None, 0)
    deferred = decide("full", PROBA, violating=GUARD, guard_action="review")
    assert deferred.answered == deferred.logged == ["ok", "ok", "review", "review"]
    assert deferred.queued == 2


def test_partial_defers_unsure_rows_and_guard_violations() -> None:
    d = decide("partial", PROBA, review_threshold=0.7)
    assert d.answered == ["ok", "review", "ok", "review"] and d.queued == 2
    with_guard = decide("partial", PROBA, review_threshold=0.7, violating=GUARD, guard_action="review")
    assert with_guard.answered == ["ok", "review", "review", "review"] and with_guard.queued == 3
    # Action "count": violations are answered like any other row.
    assert decide("partial", PROBA, review_threshold=0.7, violating=GUARD).answered == d.answered


@pytest.mark.parametrize("level", ["human_only", "assist"])
def test_human_levels_defer_everything(level: str) -> None:
    d = decide(level, None, n=3, violating=np.array([True, False, False]), guard_action="review")
    assert d.answered == d.logged == ["review"] * 3 and d.queued == 3


def test_governed_audits_violations_and_defers_them_with_action_review() -> None:
    rng = np.random.default_rng(0)
    d = decide("governed", PROBA, review_threshold=0.7, violating=GUARD, rng=rng)
    assert d.answered == ["ok"] * 4
    assert d.logged == ["ok", "audit", "audit", "audit"] and d.queued == 3
    r = decide("governed", PROBA, review_threshold=0.7, violating=GUARD, guard_action="review", rng=rng)
    assert r.answered == ["ok", "ok", "review", "review"]
    assert r.logged == ["ok", "audit", "review", "review"] and r.queued == 3
    everyone = decide("governed", PROBA, review_sample_rate=1.0, rng=rng)
    assert everyone.logged == ["audit"] * 4 and everyone.answered == ["ok"] * 4


def test_regression_without_probabilities() -> None:
    d = decide("full", None, n=4, violating=GUARD, guard_action="review")
    assert d.answered == ["ok", "ok", "review", "review"]
    with pytest.raises(ValueError):
        decide("full", None)
