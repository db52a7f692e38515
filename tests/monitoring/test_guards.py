"""Output guards: per-row violation flags (pure; compared with a plain-Python oracle)."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from driftgate.monitoring.guards import GUARD_KINDS, OutputLimits, check_outputs, violation_rate


def test_range_flags_out_of_bounds_and_non_numbers() -> None:
    limits = OutputLimits(min=0.0, max=10.0)
    result = check_outputs(limits, [0.0, 10.0, 10.5, -0.1, None, float("nan"), float("inf"), "7", 5])
    assert result.flags["range"].tolist() == [False, False, True, True, True, True, True, True, False]
    assert set(result.flags) == {"range"}
    # One-sided limits.
    assert check_outputs(OutputLimits(min=1.0), np.array([0.0, 1e9])).violating.tolist() == [True, False]
    assert check_outputs(OutputLimits(max=1.0), np.array([-1e9, 2.0])).violating.tolist() == [False, True]


def test_classes_numeric_and_text() -> None:
    assert check_outputs(OutputLimits(classes=(0, 1)), np.array([0, 1, 2])).violating.tolist() == [False, False, True]
    text = check_outputs(OutputLimits(classes=("a", "b")), np.array(["a", "c", "b"]))
    assert text.violating.tolist() == [False, True, False]
    # Logged outputs come back as Python values, nulls and all; a nested value is never a class.
    mixed = check_outputs(OutputLimits(classes=("a", 1)), ["a", 1, None, 2, [1]])
    assert mixed.violating.tolist() == [False, False, True, True, True]


def test_min_confidence_from_arrays_and_logged_rows() -> None:
    proba = np.array([[0.9, 0.1], [0.55, 0.45], [0.3, 0.7]])
    limits = OutputLimits(min_confidence=0.6)
    assert check_outputs(limits, np.array([0, 0, 1]), proba).violating.tolist() == [False, True, False]
    # Rows without probabilities are not judged.
    logged = [[0.9, 0.1], None, [0.5, 0.5], [None, None]]
    assert check_outputs(limits, [0, 1, 0, 1], logged).violating.tolist() == [False, False, True, False]
    assert not check_outputs(limits, [0, 1]).violating.any()


def test_counts_per_kind_and_any() -> None:
    limits = OutputLimits(classes=(0, 1), min_confidence=0.8)
    result = check_outputs(limits, np.array([0, 2, 1]), np.array([[0.9, 0.1], [0.1, 0.9], [0.6, 0.4]]))
    assert result.counts() == {"classes": 1, "min_confidence": 1}
    assert result.violating.tolist() == [False, True, True]
    assert violation_rate(limits, [0, 2, 1], [[0.9, 0.1], [0.1, 0.9], [0.6, 0.4]]) == pytest.approx(2 / 3)
    assert violation_rate(limits, []) is None


def test_limits_validate_themselves() -> None:
    assert OutputLimits(min=1, max=2, classes=(1,), min_confidence=0.5).kinds == GUARD_KINDS
    assert OutputLimits(min_confidence=0.5).kinds == ("min_confidence",)
    for bad in ({"min": 2.0, "max": 1.0}, {"min_confidence": 1.5}, {"classes": ()}):
        with pytest.raises(ValueError):
            OutputLimits(**bad)  # type: ignore[arg-type]


def _oracle(limits: OutputLimits, value: Any, row: list[float] | None) -> bool:
    bad = False
    if limits.min is not None or limits.max is not None:
        number = value if isinstance(value, int | float) else math.nan
        bad |= not math.isfinite(number)
        bad |= limits.min is not None and number < limits.min
        bad |= limits.max is not None and number > limits.max
    if limits.classes is not None:
        bad |= value not in limits.classes
    if limits.min_confidence is not None and row:
        bad |= max(row) < limits.min_confidence
    return bool(bad)


@given(
    values=st.lists(st.one_of(st.floats(allow_nan=True), st.integers(-5, 5), st.none()), max_size=30),
    lo=st.floats(-3, 3),
    width=st.floats(0, 4),
    confidence=st.floats(0, 1),
)
def test_matches_a_row_by_row_oracle(values: list[Any], lo: float, width: float, confidence: float) -> None:
    rng = np.random.default_rng(len(values))
    proba = rng.dirichlet([1.0, 1.0], size=len(values)).tolist()
    limits = OutputLimits(min=lo, max=lo + width, classes=(0, 1, 2), min_confidence=confidence)
    got = check_outputs(limits, values, proba).violating.tolist()
    assert got == [_oracle(limits, v, p) for v, p in zip(values, proba, strict=True)]


def test_is_pure() -> None:
    code = (
        "import sys, driftgate.monitoring.guards\n"
        "print(','.join(m for m in ('fastapi', 'starlette', 'sqlalchemy', 'httpx', 'pandas') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
