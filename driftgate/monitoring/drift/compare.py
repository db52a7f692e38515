"""Compare a window with the reference: per-feature verdicts, dataset verdict, multivariate, prediction.

>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> reference = {"x": rng.normal(size=2000), "c": rng.choice(["a", "b"], 2000)}
>>> current = {"x": rng.normal(0.5, 1, size=2000), "c": rng.choice(["a", "b"], 2000)}
>>> report = compare_frames(reference, current)
>>> report.drifted_features, report.dataset.drifted
(['x'], True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from driftgate.errors import InvalidInput
from driftgate.monitoring.drift.binning import column_arrays
from driftgate.monitoring.drift.evaluate import DriftSettings, apply_correction, evaluate_feature
from driftgate.monitoring.drift.kinds import as_float
from driftgate.monitoring.drift.multivariate import multivariate_drift
from driftgate.monitoring.drift.profile import CURRENT_SAMPLE_SEED, ReferenceProfile, sample_rows_of
from driftgate.monitoring.drift.report import DatasetDrift, DriftReport, FeatureDrift, MultivariateDrift, Subtest
from driftgate.monitoring.drift.sketches import WindowSketch
from driftgate.monitoring.performance import performance_report


def compare(
    profile: ReferenceProfile,
    sketch: WindowSketch,
    settings: DriftSettings | None = None,
    current_sample: Mapping[str, np.ndarray] | None = None,
    prediction: str | None = None,
    target: str | None = None,
    performance: Mapping[str, Any] | None = None,
    raw: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    extra: Sequence[FeatureDrift] = (),
) -> DriftReport:
    """Drift of one window sketch against the profile. Public entry point for the live monitor.

    current_sample: some raw rows of the window (name -> values) for the multivariate tests.
    prediction / target: column names reported apart from the input features (prediction drift;
    the target is left out). performance: a ready `performance` section (see `performance_report`).
    raw: finite (reference, current) values per numeric feature for exact KS/Wasserstein.
    extra: features tested apart and not yet decided (embedding drift, `drift.media`): reported with
    the others, their p-values in the same correction family, counted in the dataset verdict.
    """
    settings = settings or DriftSettings()
    _check_counted_against(profile, sketch)
    raw = raw or {}
    set_aside = {name for name in (prediction, target) if name}
    features = [*_feature_drifts(profile, sketch, settings, raw, set_aside), *extra]
    multivariate = _multivariate(profile, current_sample, set_aside)
    family: list[Subtest] = [t for feature in features for t in feature.subtests]
    family += multivariate.subtests if multivariate else []
    apply_correction(family, settings)
    prediction_drift = _prediction_drift(profile, sketch, settings, prediction, raw)
    dataset = _dataset_drift(features, multivariate, settings)
    return DriftReport(features, dataset, multivariate, prediction_drift, dict(performance or {}))


def _check_counted_against(profile: ReferenceProfile, sketch: WindowSketch) -> None:
    if sketch.profile_id != profile.profile_id:
        raise InvalidInput(
            f"The window sketch was counted against profile {sketch.profile_id!r}, not {profile.profile_id!r}: "
            "build it with this profile's `sketch`."
        )


def _feature_drifts(
    profile: ReferenceProfile,
    sketch: WindowSketch,
    settings: DriftSettings,
    raw: Mapping[str, tuple[np.ndarray, np.ndarray]],
    set_aside: set[str],
) -> list[FeatureDrift]:
    """Each input feature both sides counted, uncorrected (the correction spans all tests at once)."""
    return [
        evaluate_feature(spec, profile.reference.features[name], sketch.features[name], settings, raw.get(name))
        for name, spec in profile.specs.items()
        if name not in set_aside and name in sketch.features and name in profile.reference.features
    ]


def _multivariate(
    profile: ReferenceProfile, current_sample: Mapping[str, np.ndarray] | None, set_aside: set[str]
) -> MultivariateDrift | None:
    """The multivariate tests on the input features, when both sides have sample rows."""
    if current_sample is None or not profile.sample:
        return None
    inputs = {name: values for name, values in current_sample.items() if name not in set_aside}
    return multivariate_drift(_without(profile, set_aside), inputs)


def _prediction_drift(
    profile: ReferenceProfile,
    sketch: WindowSketch,
    settings: DriftSettings,
    prediction: str | None,
    raw: Mapping[str, tuple[np.ndarray, np.ndarray]],
) -> FeatureDrift | None:
    """The prediction column's drift, corrected within its own tests (apart from the inputs')."""
    if not (prediction and prediction in sketch.features and prediction in profile.reference.features):
        return None
    drift = evaluate_feature(
        profile.specs[prediction],
        profile.reference.features[prediction],
        sketch.features[prediction],
        settings,
        raw.get(prediction),
    )
    apply_correction(drift.subtests, settings)
    return drift


def _dataset_drift(
    features: list[FeatureDrift], multivariate: MultivariateDrift | None, settings: DriftSettings
) -> DatasetDrift:
    n_drifted = sum(feature.drifted for feature in features)
    return DatasetDrift(
        drifted=n_drifted > 0 or bool(multivariate and multivariate.drifted),
        share_drifted=n_drifted / len(features) if features else 0.0,
        n_drifted=n_drifted,
        n_features=len(features),
        correction=settings.correction,
        alpha=settings.alpha,
        rule=f"feature drifted if p_adjusted < {settings.alpha} ({settings.correction}, over all features' tests and "
        "the multivariate tests) and effect size >= threshold; dataset drifted if any feature or the "
        "multivariate test drifted",
    )


def compare_frames(
    reference: Any,
    current: Any,
    feature_types: Mapping[str, str] | None = None,
    prediction: str | None = None,
    target: str | None = None,
    settings: DriftSettings | None = None,
    n_bins: int = 100,
    multivariate: bool = True,
    sample_rows: int = 2_000,
    extra: Sequence[FeatureDrift] = (),
) -> DriftReport:
    """Compare two in-memory tables (mappings name -> values, or DataFrame-like objects).

    KS and Wasserstein are computed exactly from the raw values; PSI and Jensen-Shannon use the
    reference-quantile bins. Columns present only on one side are ignored. `feature_types` gives
    columns their kind ("numeric", "integer", "boolean", "categorical"; else inferred from the
    dtype), and both sides are read in that kind's one representation (`drift.kinds`). The
    multivariate tests see `sample_rows` rows per side, drawn as `files.report_files` draws them.
    `extra`: features tested apart, as in `compare`.
    """
    reference_columns, current_columns = column_arrays(reference), column_arrays(current)
    shared = [name for name in reference_columns if name in current_columns]
    if not shared:
        raise InvalidInput("reference and current share no column: compare needs the same feature names on both sides.")
    profile = ReferenceProfile.fit(
        {name: reference_columns[name] for name in shared}, feature_types, n_bins=n_bins, sample_rows=sample_rows
    )
    current_shared = {name: current_columns[name] for name in shared}
    sketch = profile.sketch(current_shared)
    raw = {
        name: (_finite(name, reference_columns[name]), _finite(name, current_columns[name]))
        for name, spec in profile.specs.items()
        if spec.kind.is_numeric
    }
    rows = len(next(iter(current_shared.values())))
    picked = sample_rows_of(rows, sample_rows, CURRENT_SAMPLE_SEED)
    current_sample = {name: np.asarray(values)[picked] for name, values in current_shared.items()}
    performance = performance_report(
        reference_columns.get(target) if target else None,
        reference_columns.get(prediction) if prediction else None,
        current_columns.get(target) if target else None,
        current_columns.get(prediction) if prediction else None,
    )
    return compare(
        profile, sketch, settings, current_sample if multivariate else None, prediction, target, performance, raw, extra
    )


def _finite(name: str, values: np.ndarray) -> np.ndarray:
    numbers = as_float(name, values)
    return numbers[np.isfinite(numbers)]


def _without(profile: ReferenceProfile, names: Sequence[str] | set[str]) -> ReferenceProfile:
    if not names:
        return profile
    specs = {name: spec for name, spec in profile.specs.items() if name not in names}
    sample = {name: values for name, values in profile.sample.items() if name not in names}
    features = {name: sketch for name, sketch in profile.reference.features.items() if name not in names}
    reference = WindowSketch("", profile.reference.rows, features)
    trimmed = ReferenceProfile(specs, None, sample)
    return ReferenceProfile(specs, WindowSketch(trimmed.profile_id, reference.rows, features), sample)


__all__ = ["FeatureDrift", "compare", "compare_frames"]
