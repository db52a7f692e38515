"""What the label-free estimators say about a window, beside its labels: the `estimated`,
`performance_drift` and `labelled_check` parts of a report's performance section."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from driftgate.monitoring.estimation.classification import ClassificationEstimator
from driftgate.monitoring.estimation.labels import label_keys
from driftgate.monitoring.estimation.regression import RegressionEstimator


def performance_drift(
    estimator: ClassificationEstimator | RegressionEstimator | None,
    reference: Mapping[str, float],
    current: Mapping[str, float],
) -> dict[str, Any]:
    """Whether the realised metric on the labelled rows fell past the alert threshold (the reference
    value minus 3 standard errors at this many rows, from the spread over reference chunks)."""
    if estimator is None or estimator.spread is None:
        return {}
    loss = isinstance(estimator, RegressionEstimator)
    name = "mae" if loss else "accuracy"
    n, value, ref = int(current.get("n", 0)), current.get(name, math.nan), reference.get(name, math.nan)
    se = estimator.spread.at(name, n)
    if se is None or not (math.isfinite(value) and math.isfinite(ref)):
        return {}
    threshold = ref + 3 * se if loss else ref - 3 * se
    fired = value > threshold if loss else value < threshold
    return {"metric": name, "realised": value, "reference": ref, "threshold": threshold, "n": n, "fired": bool(fired)}


def estimated_section(estimates: Mapping[str, Any], n: int) -> dict[str, Any]:
    """`estimated_<metric>` values, each with its band under `bands`; `standard_error` and `n` as before."""
    section: dict[str, Any] = {"n": float(n)}
    for name, estimate in estimates.items():
        section[f"estimated_{name}"] = estimate.to_dict()["value"]
    first = "accuracy" if "accuracy" in estimates else "mae"
    section["standard_error"] = estimates[first].to_dict()["sampling_error"]
    section["bands"] = {f"estimated_{name}": estimate.to_dict() for name, estimate in estimates.items()}
    section["alerts"] = sorted(f"estimated_{name}" for name, estimate in estimates.items() if estimate.alert)
    return section


def labelled_check(
    task: str,
    estimator: ClassificationEstimator | RegressionEstimator,
    target: Any,
    prediction: np.ndarray,
    scores: np.ndarray | None,
    labelled: np.ndarray,
    features: Mapping[str, np.ndarray],
) -> dict[str, Any]:
    """What the estimator expects on exactly the labelled rows, beside what they show: the evidence
    of `concept.estimate_gap` (labelled rows are rarely a random sample: a labelling queue picks
    the doubtful ones, so they are compared with their own expectation, not the window's)."""
    from driftgate.monitoring.concept import estimate_gap

    rows = np.flatnonzero(labelled)
    truth = np.asarray(target, dtype=object)[rows]
    if isinstance(estimator, RegressionEstimator):
        part = {name: np.asarray(values)[rows] for name, values in features.items()}
        expected = estimator.expected_absolute_errors(part, prediction[rows])
        observed = np.abs(np.asarray([float(v) for v in truth]) - prediction[rows].astype(np.float64))
        return estimate_gap("regression", observed, expected).to_dict()
    row_scores = (
        prediction[rows].astype(np.float64) if task == "probability" else (scores[rows] if scores is not None else None)
    )
    if row_scores is None:
        return {}
    decisions = None if task == "probability" else prediction[rows]
    expected = estimator.expected_correct(row_scores, decisions)
    decided = np.asarray(estimator.classes, dtype=object)[estimator.decided(row_scores, decisions)]
    observed = (label_keys(truth) == decided).astype(np.float64)
    return estimate_gap("classification", observed, expected).to_dict()
