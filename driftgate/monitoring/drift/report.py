"""Typed drift results; `DriftReport.to_dict()` gives the JSON shape of SPEC section 6."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


def _finite(value: float | None) -> float | None:
    """JSON has no NaN/inf: report them as null."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


@dataclass
class Subtest:
    """One aspect of one feature: a significance test plus an effect size with its threshold.

    Decision rule: drifted = p_value_adjusted < alpha and effect_size >= threshold.
    """

    aspect: str  # "distribution", "missing_rate", "unseen_categories", "domain_classifier", ...
    test: str  # the significance test behind p_value: "ks", "chi2", "two_proportion_z", ...
    p_value: float
    effect: str  # the effect-size measure: "wasserstein", "jensen_shannon", "cohens_h", ...
    effect_size: float
    threshold: float
    p_value_adjusted: float = math.nan
    drifted: bool = False
    details: dict[str, float] = field(default_factory=dict)  # extra numbers of this test, reported as they are

    def decide(self, adjusted_p_value: float, alpha: float) -> None:
        self.p_value_adjusted = adjusted_p_value
        self.drifted = bool(adjusted_p_value < alpha and self.effect_size >= self.threshold)

    def to_dict(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "p_value": _finite(self.p_value),
            "p_value_adjusted": _finite(self.p_value_adjusted),
            "effect": self.effect,
            "effect_size": _finite(self.effect_size),
            "threshold": self.threshold,
            "drifted": self.drifted,
            **{key: _finite(value) for key, value in self.details.items()},
        }


@dataclass
class FeatureDrift:
    """Verdict for one feature. `test`/`statistic`/`threshold` name the effect size of the distribution."""

    name: str
    kind: str
    distribution: Subtest
    missing_rate: Subtest | None = None
    unseen_categories: Subtest | None = None
    statistics: dict[str, float] = field(default_factory=dict)
    n_reference: int = 0
    n_current: int = 0
    rates: dict[str, float] = field(default_factory=dict)
    unseen_examples: tuple[str, ...] = ()
    histogram: dict[str, Any] = field(default_factory=dict)  # for the HTML report only

    @property
    def subtests(self) -> list[Subtest]:
        return [t for t in (self.distribution, self.missing_rate, self.unseen_categories) if t is not None]

    @property
    def drifted(self) -> bool:
        return any(t.drifted for t in self.subtests)

    @property
    def reasons(self) -> list[str]:
        return [t.aspect for t in self.subtests if t.drifted]

    def to_dict(self, include_histogram: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "type": self.kind,
            "test": self.distribution.effect,
            "statistic": _finite(self.distribution.effect_size),
            "p_value": _finite(self.distribution.p_value),
            "p_value_test": self.distribution.test,
            "p_value_adjusted": _finite(self.distribution.p_value_adjusted),
            "threshold": self.distribution.threshold,
            "drifted": self.drifted,
            "reasons": self.reasons,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "statistics": {key: _finite(value) for key, value in self.statistics.items()},
            **{key: _finite(value) for key, value in self.rates.items()},
        }
        if self.missing_rate is not None:
            body["missing_rate_test"] = self.missing_rate.to_dict()
        if self.unseen_categories is not None:
            body["unseen_categories_test"] = self.unseen_categories.to_dict()
            body["unseen_examples"] = list(self.unseen_examples)
        if include_histogram:  # null, not {}, when there is none (an embedding test has no bins)
            body["histogram"] = self.histogram or None
        return body


@dataclass
class DatasetDrift:
    drifted: bool
    share_drifted: float
    n_drifted: int
    n_features: int
    correction: str
    alpha: float
    rule: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class MultivariateDrift:
    """Domain classifier (cross-fitted logistic regression AUC) and PCA reconstruction error."""

    domain_classifier: Subtest | None = None
    pca_reconstruction: Subtest | None = None
    n_reference: int = 0
    n_current: int = 0
    note: str = ""

    @property
    def subtests(self) -> list[Subtest]:
        return [t for t in (self.domain_classifier, self.pca_reconstruction) if t is not None]

    @property
    def drifted(self) -> bool:
        return any(t.drifted for t in self.subtests)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"drifted": self.drifted, "n_reference": self.n_reference, "n_current": self.n_current}
        if self.domain_classifier is not None:
            body["domain_classifier"] = self.domain_classifier.to_dict()
        if self.pca_reconstruction is not None:
            body["pca_reconstruction"] = self.pca_reconstruction.to_dict()
        if self.note:
            body["note"] = self.note
        return body


@dataclass
class DriftReport:
    """Everything one comparison found. `to_dict()` is the SPEC 6 JSON body."""

    features: list[FeatureDrift]
    dataset: DatasetDrift
    multivariate: MultivariateDrift | None = None
    prediction: FeatureDrift | None = None
    performance: dict[str, Any] = field(default_factory=dict)

    def feature(self, name: str) -> FeatureDrift:
        for item in self.features:
            if item.name == name:
                return item
        raise KeyError(name)

    @property
    def drifted_features(self) -> list[str]:
        return [item.name for item in self.features if item.drifted]

    def to_dict(self, include_histograms: bool = False) -> dict[str, Any]:
        return {
            "features": [item.to_dict(include_histograms) for item in self.features],
            "dataset": self.dataset.to_dict(),
            "multivariate": self.multivariate.to_dict() if self.multivariate else {},
            "prediction": self.prediction.to_dict(include_histograms) if self.prediction else {},
            "performance": self.performance,
        }
