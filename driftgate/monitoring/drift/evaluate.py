"""Per-feature evidence (tests + effect sizes) and the decision rule with multiple-testing control.

Rule, per aspect of a feature (distribution, missing rate, unseen categories):
drifted = p_adjusted < alpha AND effect_size >= threshold. The p-value guards small samples
(where a distance is large by chance); the effect size guards huge samples (where any p-value is
tiny). All aspects of all features (plus the multivariate tests) form one family for the correction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from driftgate.errors import InvalidInput
from driftgate.monitoring.drift import statistics as st
from driftgate.monitoring.drift.binning import CategoricalBinning, NumericBinning
from driftgate.monitoring.drift.corrections import CORRECTIONS
from driftgate.monitoring.drift.profile import FeatureSpec
from driftgate.monitoring.drift.report import FeatureDrift, Subtest
from driftgate.monitoring.drift.sketches import CategoricalSketch, FeatureSketch, NumericSketch

NUMERIC_METHODS = ("wasserstein", "ks", "psi", "jensen_shannon")
CATEGORICAL_METHODS = ("jensen_shannon", "psi", "cramers_v")

# Effect-size thresholds: the smallest shift worth an alert whatever the sample size.
# Normed Wasserstein 0.1 = the distribution moved by a tenth of a reference standard deviation.
DEFAULT_THRESHOLDS: Mapping[str, float] = {
    "wasserstein": 0.1,
    "ks": 0.05,
    "psi": 0.1,
    "jensen_shannon": 0.1,
    "cramers_v": 0.1,
    "cohens_h": 0.1,  # missing-value and unseen-category rates: 0 % -> 0.25 % already passes
    "mmd": 0.05,  # embedding drift: the distance of the kernel mean embeddings, in [0, sqrt(2)]
}


@dataclass(frozen=True)
class DriftSettings:
    """Knobs of the decision rule; the defaults are documented in docs/drift.md.

    alpha: family-wise error rate (Holm) or false discovery rate (Benjamini-Hochberg).
    correction: "holm" or "benjamini-hochberg".
    numeric_method / categorical_method: which effect size decides the distribution aspect.
    thresholds: effect-size thresholds by measure name.
    """

    alpha: float = 0.05
    correction: str = "holm"
    numeric_method: str = "wasserstein"
    categorical_method: str = "jensen_shannon"
    thresholds: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))

    def __post_init__(self) -> None:
        if self.correction not in CORRECTIONS:
            raise InvalidInput(f"correction must be one of {sorted(CORRECTIONS)}. Got {self.correction!r} instead.")
        if self.numeric_method not in NUMERIC_METHODS:
            raise InvalidInput(f"numeric_method must be one of {NUMERIC_METHODS}. Got {self.numeric_method!r}.")
        if self.categorical_method not in CATEGORICAL_METHODS:
            raise InvalidInput(
                f"categorical_method must be one of {CATEGORICAL_METHODS}. Got {self.categorical_method!r} instead."
            )
        if not 0 < self.alpha < 1:
            raise InvalidInput(f"alpha must be in (0, 1). Got {self.alpha} instead.")

    def threshold(self, measure: str) -> float:
        return float(self.thresholds.get(measure, DEFAULT_THRESHOLDS[measure]))


def evaluate_feature(
    spec: FeatureSpec,
    reference: FeatureSketch,
    current: FeatureSketch,
    settings: DriftSettings,
    raw: tuple[np.ndarray, np.ndarray] | None = None,
) -> FeatureDrift:
    """Evidence for one feature from two sketches; `raw` (finite reference, current values) makes
    KS and Wasserstein exact for numeric features. Decisions are made later by `apply_correction`."""
    if isinstance(spec.binning, NumericBinning):
        assert isinstance(reference, NumericSketch) and isinstance(current, NumericSketch)
        drift = _numeric(spec, spec.binning, reference, current, settings, raw)
    else:
        assert isinstance(reference, CategoricalSketch) and isinstance(current, CategoricalSketch)
        drift = _categorical(spec, spec.binning, reference, current, settings)
    n_ref_all, n_cur_all = reference.count + reference.missing, current.count + current.missing
    drift.rates["reference_missing_rate"] = reference.missing / n_ref_all if n_ref_all else 0.0
    drift.rates["current_missing_rate"] = current.missing / n_cur_all if n_cur_all else 0.0
    if reference.missing or current.missing:
        shift = st.proportion_shift(reference.missing, n_ref_all, current.missing, n_cur_all)
        drift.missing_rate = Subtest(
            "missing_rate",
            "two_proportion_z",
            shift.p_value,
            "cohens_h",
            shift.cohens_h,
            settings.threshold("cohens_h"),
        )
    return drift


def _numeric(
    spec: FeatureSpec,
    binning: NumericBinning,
    reference: NumericSketch,
    current: NumericSketch,
    settings: DriftSettings,
    raw: tuple[np.ndarray, np.ndarray] | None,
) -> FeatureDrift:
    if raw is not None:
        comparison = st.two_sample_numeric(*raw)
    else:
        low, high = min(reference.minimum, current.minimum), max(reference.maximum, current.maximum)
        comparison = st.two_sample_binned(reference.counts, current.counts, binning.edges, low, high)
    reference_std = float(np.sqrt(reference.variance))
    scale = reference_std if reference_std > 0 else 1.0
    measures = {
        "wasserstein": comparison.wasserstein / scale,
        "ks": comparison.ks_statistic,
        "psi": st.population_stability_index(reference.counts, current.counts),
        "jensen_shannon": st.jensen_shannon_distance(reference.counts, current.counts),
    }
    method = settings.numeric_method
    distribution = Subtest(
        "distribution", "ks", comparison.ks_p_value, method, measures[method], settings.threshold(method)
    )
    statistics = dict(measures)
    if raw is None:
        statistics["ks_error_bound"] = comparison.ks_error_bound
        statistics["wasserstein_error_bound"] = comparison.wasserstein_error_bound / scale
    statistics.update(
        reference_mean=reference.mean,
        current_mean=current.mean,
        reference_std=reference_std,
        current_std=float(np.sqrt(current.variance)),
    )
    histogram = {
        "edges": binning.edges.tolist(),
        "reference": reference.counts.tolist(),
        "current": current.counts.tolist(),
    }
    return FeatureDrift(
        spec.name,
        spec.kind.value,
        distribution,
        statistics=statistics,
        n_reference=reference.count,
        n_current=current.count,
        histogram=histogram,
    )


def _categorical(
    spec: FeatureSpec,
    binning: CategoricalBinning,
    reference: CategoricalSketch,
    current: CategoricalSketch,
    settings: DriftSettings,
) -> FeatureDrift:
    # The distances use the pooled table of the chi-square test too: on hundreds of sparse levels
    # raw distances are inflated by sampling noise alone.
    chi = st.chi_square(reference.counts, current.counts, pool_last=binning.complete)
    ref_counts, cur_counts = chi.table if chi.table.size else (reference.counts, current.counts)
    measures = {
        "jensen_shannon": st.jensen_shannon_distance(ref_counts, cur_counts),
        "psi": st.population_stability_index(ref_counts, cur_counts),
        "cramers_v": chi.cramers_v,
    }
    method = settings.categorical_method
    distribution = Subtest("distribution", "chi2", chi.p_value, method, measures[method], settings.threshold(method))
    statistics = {**measures, "chi2": chi.statistic, "chi2_dof": float(chi.dof)}
    drift = FeatureDrift(
        spec.name,
        spec.kind.value,
        distribution,
        statistics=statistics,
        n_reference=reference.count,
        n_current=current.count,
        histogram={
            "levels": [*binning.levels, "(other)"],
            "reference": reference.counts.tolist(),
            "current": current.counts.tolist(),
        },
    )
    unseen_ref, unseen_cur = int(reference.counts[-1]), int(current.counts[-1])
    drift.rates["unseen_rate"] = unseen_cur / current.count if current.count else 0.0
    if binning.complete and unseen_cur > 0:
        # Tests with no discordant observation cannot reject, so they stay out of the family (Tarone).
        # Even without drift a fresh sample holds values the reference never saw; Good-Turing says
        # their share is about the reference's share of levels seen exactly once, so that share is
        # the baseline, not zero. This keeps long-tailed, high-cardinality columns quiet.
        singletons = int(np.sum(reference.counts[:-1] == 1)) + unseen_ref
        shift = st.proportion_shift(singletons, reference.count, unseen_cur, current.count)
        rising = shift.current_rate > shift.reference_rate
        drift.unseen_categories = Subtest(
            "unseen_categories",
            "good_turing_z",
            shift.p_value if rising else 1.0,
            "cohens_h",
            shift.cohens_h if rising else 0.0,
            settings.threshold("cohens_h"),
        )
        drift.unseen_examples = current.unseen_examples
    return drift


def apply_correction(subtests: Sequence[Subtest], settings: DriftSettings) -> None:
    """Adjust the p-values of one family of subtests and set each one's `drifted`."""
    adjusted = CORRECTIONS[settings.correction]([t.p_value for t in subtests])
    for subtest, p_adjusted in zip(subtests, adjusted, strict=True):
        subtest.decide(p_adjusted, settings.alpha)
