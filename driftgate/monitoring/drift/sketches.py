"""Mergeable per-window summaries, counted against a reference profile's bins.

A sketch of the union of two windows equals the merge of their sketches: counts add exactly, and
moments combine with Chan's parallel formula (equal up to float rounding). Sketches serialise to
JSON-able dicts so that replicas can store them and a monitor can merge any set of them.

>>> import numpy as np
>>> from driftgate.monitoring.drift.binning import NumericBinning
>>> binning = NumericBinning.fit(np.arange(100.0), n_bins=4)
>>> a = NumericSketch.of(binning, np.array([1.0, 50.0]))
>>> b = NumericSketch.of(binning, np.array([np.nan, 99.0]))
>>> merged = a.merge(b)
>>> merged.count, merged.missing, merged.maximum
(3, 1, 99.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from driftgate.errors import InvalidInput
from driftgate.monitoring.drift.binning import SORT_COUNT_MIN_ROWS, CategoricalBinning, NumericBinning

# How many unseen category values a sketch keeps as examples: the smallest ones in string order,
# because "the k smallest of a union" is exactly mergeable, unlike "the k most frequent".
UNSEEN_EXAMPLES = 10


class NumericSummary(NamedTuple):
    """Missing count, mean and M2 of one chunk of numeric values (see `NumericSketch.summarise`)."""

    missing: int
    mean: float
    m2: float


@dataclass(frozen=True)
class NumericSketch:
    """Histogram over reference-quantile bins plus count, mean, M2, min and max of finite values."""

    counts: np.ndarray
    missing: int = 0
    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf

    @classmethod
    def of(cls, binning: NumericBinning, values: np.ndarray) -> NumericSketch:
        values = np.asarray(values, dtype=np.float64)
        if values.size >= SORT_COUNT_MIN_ROWS:
            return cls.from_summary(binning, *cls.summarise(values))
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            return cls(np.zeros(binning.n_bins, np.int64), missing=int(values.size))
        mean = float(finite.mean())
        return cls(
            counts=binning.count(finite),
            missing=int(values.size - finite.size),
            count=int(finite.size),
            mean=mean,
            m2=float(np.sum((finite - mean) ** 2)),
            minimum=float(finite.min()),
            maximum=float(finite.max()),
        )

    @staticmethod
    def summarise(values: np.ndarray) -> tuple[np.ndarray, NumericSummary]:
        """Everything a sketch needs but the bins: the finite values sorted, and (missing, mean, M2).

        Split from `from_summary` so that a reference can be summarised before its bin edges are
        known (the sorted values wait on disk, see `driftgate.monitoring.files.spill`).
        """
        values = np.asarray(values, dtype=np.float64)
        is_finite = np.isfinite(values)
        finite = values if is_finite.all() else values[is_finite]
        if finite.size == 0:
            return finite, NumericSummary(int(values.size), 0.0, 0.0)
        mean = float(finite.mean())
        deviations = finite - mean
        np.square(deviations, out=deviations)  # in place: the same sum as np.sum((finite - mean) ** 2)
        return np.sort(finite), NumericSummary(int(values.size - finite.size), mean, float(np.sum(deviations)))

    @classmethod
    def from_summary(cls, binning: NumericBinning, ordered: np.ndarray, summary: NumericSummary) -> NumericSketch:
        """The sketch of values whose sorted finite part is `ordered` (see `summarise`)."""
        if ordered.size == 0:
            return cls(np.zeros(binning.n_bins, np.int64), missing=summary.missing)
        return cls(
            counts=binning.count_sorted(ordered),
            missing=summary.missing,
            count=int(ordered.size),
            mean=summary.mean,
            m2=summary.m2,
            minimum=float(ordered[0]),
            maximum=float(ordered[-1]),
        )

    @property
    def variance(self) -> float:
        """Sample variance (n - 1 denominator); 0 for fewer than two values."""
        return self.m2 / (self.count - 1) if self.count > 1 else 0.0

    def merge(self, other: NumericSketch) -> NumericSketch:
        if self.counts.shape != other.counts.shape:
            raise InvalidInput(
                f"Cannot merge numeric sketches with {self.counts.size} and {other.counts.size} bins: "
                "build both against the same reference profile."
            )
        n = self.count + other.count
        if n == 0:
            return NumericSketch(self.counts + other.counts, self.missing + other.missing)
        delta = other.mean - self.mean
        return NumericSketch(
            counts=self.counts + other.counts,
            missing=self.missing + other.missing,
            count=n,
            mean=self.mean + delta * other.count / n,
            m2=self.m2 + other.m2 + delta**2 * self.count * other.count / n,
            minimum=min(self.minimum, other.minimum),
            maximum=max(self.maximum, other.maximum),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "numeric",
            "counts": self.counts.tolist(),
            "missing": self.missing,
            "count": self.count,
            "mean": self.mean,
            "m2": self.m2,
            "min": self.minimum if self.count else None,
            "max": self.maximum if self.count else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericSketch:
        return cls(
            counts=np.asarray(data["counts"], dtype=np.int64),
            missing=int(data["missing"]),
            count=int(data["count"]),
            mean=float(data["mean"]),
            m2=float(data["m2"]),
            minimum=math.inf if data["min"] is None else float(data["min"]),
            maximum=-math.inf if data["max"] is None else float(data["max"]),
        )


@dataclass(frozen=True)
class CategoricalSketch:
    """Counts per reference level (last slot: outside the vocabulary), missing count, unseen examples."""

    counts: np.ndarray
    missing: int = 0
    unseen_examples: tuple[str, ...] = ()

    @classmethod
    def of_counts(
        cls, binning: CategoricalBinning, values: list[str], counts: list[int], missing: int = 0
    ) -> CategoricalSketch:
        """From distinct values and their counts (how `value_counts` of a chunk arrives)."""
        binned, outside = binning.count(values, counts)
        return cls(binned, int(missing), tuple(sorted(outside)[:UNSEEN_EXAMPLES]))

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def merge(self, other: CategoricalSketch) -> CategoricalSketch:
        if self.counts.shape != other.counts.shape:
            raise InvalidInput(
                f"Cannot merge categorical sketches with {self.counts.size} and {other.counts.size} slots: "
                "build both against the same reference profile."
            )
        examples = tuple(sorted(set(self.unseen_examples) | set(other.unseen_examples))[:UNSEEN_EXAMPLES])
        return CategoricalSketch(self.counts + other.counts, self.missing + other.missing, examples)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "categorical",
            "counts": self.counts.tolist(),
            "missing": self.missing,
            "unseen_examples": list(self.unseen_examples),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalSketch:
        return cls(np.asarray(data["counts"], dtype=np.int64), int(data["missing"]), tuple(data["unseen_examples"]))


FeatureSketch = NumericSketch | CategoricalSketch


@dataclass(frozen=True)
class WindowSketch:
    """Per-feature sketches of one window, tied to the profile they were counted against.

    Public entry point for the live monitor: build with `ReferenceProfile.sketch(columns)`, combine
    windows or replicas with `merge`, store with `to_dict`, compare with `compare(profile, sketch)`.
    """

    profile_id: str
    rows: int
    features: dict[str, FeatureSketch] = field(default_factory=dict)

    def merge(self, other: WindowSketch) -> WindowSketch:
        if self.profile_id != other.profile_id:
            raise InvalidInput(
                f"Cannot merge sketches of profile {self.profile_id!r} and {other.profile_id!r}: "
                "merge only windows counted against the same reference profile."
            )
        names = self.features.keys() | other.features.keys()
        merged: dict[str, FeatureSketch] = {}
        for name in sorted(names):
            mine, theirs = self.features.get(name), other.features.get(name)
            if mine is None or theirs is None:
                merged[name] = mine if theirs is None else theirs  # type: ignore[assignment]
            else:
                merged[name] = mine.merge(theirs)  # type: ignore[arg-type]
        return WindowSketch(self.profile_id, self.rows + other.rows, merged)

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile_id": self.profile_id,
            "rows": self.rows,
            "features": {name: sketch.to_dict() for name, sketch in self.features.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowSketch:
        features: dict[str, FeatureSketch] = {}
        for name, item in data["features"].items():
            kind = item.get("kind")
            if kind == "numeric":
                features[name] = NumericSketch.from_dict(item)
            elif kind == "categorical":
                features[name] = CategoricalSketch.from_dict(item)
            else:
                raise InvalidInput(
                    f"Sketch of feature {name!r} must have kind 'numeric' or 'categorical'. Got {kind!r} instead."
                )
        return cls(str(data["profile_id"]), int(data["rows"]), features)


def merge_all(sketches: list[WindowSketch]) -> WindowSketch:
    """Merge any number of window sketches (e.g. one per replica)."""
    if not sketches:
        raise InvalidInput("merge_all needs at least one sketch. Got an empty list.")
    merged = sketches[0]
    for sketch in sketches[1:]:
        merged = merged.merge(sketch)
    return merged
