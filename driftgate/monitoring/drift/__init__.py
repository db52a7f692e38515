"""Data drift: reference profiles, mergeable window sketches, per-feature and dataset verdicts.

Pure: imports only the standard library, numpy and scipy. Typical live use:

    profile = ReferenceProfile.fit(reference_columns)          # once per model version
    window = profile.sketch(rows_a).merge(profile.sketch(rows_b))  # per replica / per batch
    report = compare(profile, window)                          # DriftReport
    report.to_dict()                                           # SPEC 6 JSON
"""

from driftgate.monitoring.drift.binning import CategoricalBinning, FeatureKind, NumericBinning
from driftgate.monitoring.drift.compare import compare, compare_frames
from driftgate.monitoring.drift.corrections import benjamini_hochberg, holm
from driftgate.monitoring.drift.evaluate import DEFAULT_THRESHOLDS, DriftSettings
from driftgate.monitoring.drift.profile import FeatureSpec, ReferenceProfile
from driftgate.monitoring.drift.report import DatasetDrift, DriftReport, FeatureDrift, MultivariateDrift, Subtest
from driftgate.monitoring.drift.sketches import CategoricalSketch, NumericSketch, WindowSketch, merge_all

__all__ = [
    "DEFAULT_THRESHOLDS",
    "CategoricalBinning",
    "CategoricalSketch",
    "DatasetDrift",
    "DriftReport",
    "DriftSettings",
    "FeatureDrift",
    "FeatureKind",
    "FeatureSpec",
    "MultivariateDrift",
    "NumericBinning",
    "NumericSketch",
    "ReferenceProfile",
    "Subtest",
    "WindowSketch",
    "benjamini_hochberg",
    "compare",
    "compare_frames",
    "holm",
    "merge_all",
]
