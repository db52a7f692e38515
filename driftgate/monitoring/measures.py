"""The measures a monitor run takes from its drift report, and its `concept_drift` section."""

from __future__ import annotations

import math
from typing import Any

from driftgate.core.points import MetricPoint
from driftgate.monitoring.concept import ConceptDrift, verdicts
from driftgate.monitoring.performance import ESTIMATED_METRICS
from driftgate.monitoring.window_metrics import Measure

EVENT_METRIC = "event_rate"
# Per-class, per-feature and per-event metrics: several points per run, told apart by `detail`.
BREAKDOWN = {"class_share": "class", "feature_drift": "feature", EVENT_METRIC: "event"}
# Realised performance metrics of the labelled rows, in the order their points are written.
REALISED = ("accuracy", "f1", "roc_auc", "mae", "rmse", "precision", "recall")


def finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def drift_measures(report: dict[str, Any]) -> list[Measure]:
    """data_drift_share, feature_drift per feature, prediction_drift, multivariate_drift (flags: the drift
    engine's verdict, p-value and effect size together), accuracy and the other realised performance
    metrics, the label-free estimates (`estimated_accuracy`, ... `estimated_mae`, with their bands)."""
    if not report:
        return []
    return [*_drift_flags(report), *_performance_measures(report.get("performance") or {})]


def _drift_flags(report: dict[str, Any]) -> list[Measure]:
    dataset = report["dataset"]
    out = [
        Measure(
            "data_drift_share",
            dataset["share_drifted"],
            {"drifted": dataset["drifted"], "n_drifted": dataset["n_drifted"]},
        )
    ]
    for feature in report["features"]:
        out.append(Measure("feature_drift", 1.0 if feature["drifted"] else 0.0, _drift_detail(feature)))
    if report.get("prediction"):
        prediction = report["prediction"]
        out.append(Measure("prediction_drift", 1.0 if prediction["drifted"] else 0.0, _drift_detail(prediction)))
    if report.get("multivariate"):
        out.append(Measure("multivariate_drift", 1.0 if report["multivariate"]["drifted"] else 0.0))
    return out


def _performance_measures(performance: dict[str, Any]) -> list[Measure]:
    current = performance.get("current") or {}
    out = [Measure(name, current[name], {"labelled": current.get("n")}) for name in REALISED if name in current]
    estimated = performance.get("estimated") or {}
    bands = estimated.get("bands") or {}
    for name in ESTIMATED_METRICS:  # SPEC 12: estimated_accuracy, estimated_roc_auc, ... each with its band
        if name in estimated:
            band = bands.get(name) or {}
            out.append(Measure(name, estimated[name], {**band, "standard_error": band.get("sampling_error")}))
    return out


def _drift_detail(feature: dict[str, Any]) -> dict[str, Any]:
    return {
        "feature": feature["name"],
        "test": feature.get("test"),
        "statistic": feature.get("statistic"),
        "threshold": feature.get("threshold"),
        "p_value": feature.get("p_value"),
        "p_value_adjusted": feature.get("p_value_adjusted"),
        "drifted": feature["drifted"],
    }


def concept_section(report: dict[str, Any], stream: ConceptDrift | None) -> dict[str, Any] | None:
    """The `concept_drift` section: the error-stream detectors' result (`fired`, `detector`, ...) with
    `fired` now the concept-drift verdict, its `test` and `evidence`, and the data and performance drift
    verdicts beside it (`concept.verdicts`). None when nothing is labelled."""
    performance = report.get("performance") or {}
    if stream is None and not performance.get("labelled_check"):
        return None
    dataset = report.get("dataset")
    judged = verdicts(data_drift=bool(dataset["drifted"]) if dataset else None, performance=performance, stream=stream)
    base = stream.to_dict() if stream is not None else ConceptDrift(False).to_dict()
    concept = judged["concept_drift"]
    base.update(
        fired=concept["fired"],
        stream_fired=bool(stream and stream.fired),
        test=concept["test"],
        evidence=concept["evidence"],
        ambiguous=concept["ambiguous"],
        data_drift=judged["data_drift"],
        performance_drift=judged["performance_drift"],
    )
    if "explained" in concept:
        base["explained"] = concept["explained"]
    return base


def concept_measures(concept: dict[str, Any] | None) -> list[Measure]:
    """concept_drift, and performance_drift where the labelled rows were judged against a metric."""
    if concept is None:
        return []
    out = [Measure("concept_drift", 1.0 if concept["fired"] else 0.0, concept)]
    performance_drift = concept["performance_drift"]
    if performance_drift.get("metric"):
        out.append(Measure("performance_drift", 1.0 if performance_drift["fired"] else 0.0, performance_drift))
    return out


def summary(points: list[MetricPoint]) -> dict[str, Any]:
    """The report's `metrics` ({name: value}) and `breakdown` (per class, per feature, per event)."""
    return {
        "metrics": {p.metric: p.value for p in points if p.metric not in BREAKDOWN},
        "breakdown": {
            name: {str(p.detail[key]): p.value for p in points if p.metric == name} for name, key in BREAKDOWN.items()
        },
    }
