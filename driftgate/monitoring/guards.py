"""Output guards (SPEC 6): per-endpoint limits on what a model may answer. Pure: numpy only.

A guard is judged on the model's own output (before any post-processing step), so that serving
and the monitor, which only sees the logged output, flag the same rows. Three kinds:

- `range`: a prediction below `min`, above `max`, or not a finite number;
- `classes`: a prediction outside the allowed classes (a null one included);
- `min_confidence`: the largest class probability below the limit (rows without probabilities
  are not judged).

>>> limits = OutputLimits(min=0.0, max=10.0)
>>> result = check_outputs(limits, np.array([1.0, 12.0, -1.0, float("nan")]))
>>> result.violating.tolist(), result.counts()
([False, True, True, True], {'range': 3})
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

GUARD_KINDS = ("range", "classes", "min_confidence")


@dataclass(frozen=True, slots=True)
class OutputLimits:
    """The limits of one endpoint; a limit left None is not checked."""

    min: float | None = None
    max: float | None = None
    classes: tuple[Any, ...] | None = None
    min_confidence: float | None = None

    def __post_init__(self) -> None:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) must not be above max ({self.max})")
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be between 0 and 1, got {self.min_confidence}")
        if self.classes is not None and not self.classes:
            raise ValueError("classes must name at least one class")

    @property
    def kinds(self) -> tuple[str, ...]:
        """The guard kinds these limits check, in `GUARD_KINDS` order."""
        present = {
            "range": self.min is not None or self.max is not None,
            "classes": self.classes is not None,
            "min_confidence": self.min_confidence is not None,
        }
        return tuple(k for k in GUARD_KINDS if present[k])


@dataclass(frozen=True)
class GuardResult:
    """Per-row violation flags, one boolean array per guard kind that was checked."""

    flags: dict[str, np.ndarray]
    n_rows: int

    @property
    def violating(self) -> np.ndarray:
        """Rows that violate at least one guard."""
        out = np.zeros(self.n_rows, dtype=bool)
        for flags in self.flags.values():
            out |= flags
        return out

    def counts(self) -> dict[str, int]:
        """Violating rows per guard kind (a row may count under several kinds)."""
        return {kind: int(flags.sum()) for kind, flags in self.flags.items()}


def check_outputs(
    limits: OutputLimits,
    predictions: np.ndarray | Sequence[Any],
    probabilities: np.ndarray | Sequence[Sequence[float] | None] | None = None,
) -> GuardResult:
    """Judge `predictions` (one per row) and, for `min_confidence`, `probabilities` (one row of
    class probabilities per prediction, or None) against `limits`."""
    values = predictions if isinstance(predictions, np.ndarray) else _object_array(predictions)
    n = len(values)
    flags: dict[str, np.ndarray] = {}
    if "range" in limits.kinds:
        numbers = _numbers(values)
        bad = ~np.isfinite(numbers)
        with np.errstate(invalid="ignore"):
            if limits.min is not None:
                bad |= numbers < limits.min
            if limits.max is not None:
                bad |= numbers > limits.max
        flags["range"] = bad
    if limits.classes is not None:
        flags["classes"] = ~_member(values, limits.classes)
    if limits.min_confidence is not None:
        confidence = _confidence(probabilities, n)
        with np.errstate(invalid="ignore"):
            flags["min_confidence"] = confidence < limits.min_confidence  # NaN (no probabilities): not judged
    return GuardResult(flags, n)


def violation_rate(
    limits: OutputLimits,
    predictions: np.ndarray | Sequence[Any],
    probabilities: np.ndarray | Sequence[Sequence[float] | None] | None = None,
) -> float | None:
    """Share of rows that violate any guard; None for no rows."""
    result = check_outputs(limits, predictions, probabilities)
    return float(result.violating.mean()) if result.n_rows else None


def _object_array(values: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)  # element-wise: a nested list stays one cell instead of a second dimension
    return out


def _numbers(values: np.ndarray) -> np.ndarray:
    """Values as float64; anything that is not a real number becomes NaN."""
    if values.dtype.kind in "fiub":
        return values.astype(np.float64, copy=False)
    return np.fromiter((_as_float(v) for v in values), np.float64, len(values))


def _as_float(value: Any) -> float:
    if isinstance(value, int | float | np.number) and not isinstance(value, np.complexfloating):
        return float(value)
    return math.nan


def _member(values: np.ndarray, classes: tuple[Any, ...]) -> np.ndarray:
    numeric = all(isinstance(c, int | float) for c in classes)
    if numeric and values.dtype.kind in "fiub":
        return np.isin(values, np.asarray(classes, dtype=np.float64))
    allowed = set(classes)
    return np.fromiter((_hashable_in(v, allowed) for v in values), bool, len(values))


def _hashable_in(value: Any, allowed: set[Any]) -> bool:
    try:
        return value in allowed
    except TypeError:  # an unhashable output (a list) is never an allowed class
        return False


def _confidence(probabilities: np.ndarray | Sequence[Sequence[float] | None] | None, n: int) -> np.ndarray:
    if probabilities is None:
        return np.full(n, np.nan)
    if isinstance(probabilities, np.ndarray) and probabilities.ndim == 2 and probabilities.dtype.kind == "f":
        return probabilities.max(axis=1) if probabilities.shape[1] else np.full(n, np.nan)
    return np.fromiter((_row_max(p) for p in probabilities), np.float64, n)


def _row_max(row: Sequence[float] | None) -> float:
    if not row or any(v is None for v in row):
        return math.nan
    return float(max(row))
