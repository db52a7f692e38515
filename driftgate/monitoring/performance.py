"""Performance on labelled windows and label-free estimation (CBPE, DLE); numpy and scipy only.

Labels are compared by their text key (`estimation.labels.label_key`: 1, 1.0, "1" and True are one
class); rows without a label are left out of realised metrics and kept in estimated ones. A binary
model's decision is its own (`decisions`: its `predict`), or its scores cut at `threshold`; never a
fixed 0.5 unless that is the model's cut.

>>> import numpy as np
>>> classification_metrics(np.array([0, 1, 1, 0]), scores=np.array([0.1, 0.8, 0.4, 0.3]))["roc_auc"]
1.0
>>> regression_metrics(np.array([1.0, 2.0]), np.array([1.5, 2.0]))["mae"]
0.25
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftgate.monitoring.estimation.classification import (
    METRICS as CLASSIFICATION_METRICS,
)
from driftgate.monitoring.estimation.classification import (
    ClassificationEstimator,
    confusion_metrics,
    weighted_auc,
)
from driftgate.monitoring.estimation.labels import label_keys, sort_classes
from driftgate.monitoring.estimation.regression import METRICS as REGRESSION_METRICS
from driftgate.monitoring.estimation.regression import RegressionEstimator
from driftgate.monitoring.estimation.sections import estimated_section, labelled_check, performance_drift

Estimator = ClassificationEstimator | RegressionEstimator

# ---- realised metrics -----------------------------------------------------------------------------


def _label_metrics(y_true: Any, y_pred: Any, which: Sequence[str]) -> dict[str, float]:
    truth, predicted = label_keys(y_true), label_keys(y_pred)
    known = np.asarray([t is not None and p is not None for t, p in zip(truth, predicted, strict=True)], dtype=bool)
    truth, predicted = truth[known], predicted[known]
    if not len(truth):
        return {name: math.nan for name in which}
    classes = sort_classes([str(k) for k in (*truth, *predicted)])
    if len(classes) == 1:
        classes = sort_classes([classes[0], "1" if classes[0] != "1" else "0"])
    index = {c: i for i, c in enumerate(classes)}
    onehot = np.zeros((len(truth), len(classes)))
    onehot[np.arange(len(truth)), [index[k] for k in truth]] = 1.0
    decided = np.asarray([index[k] for k in predicted], dtype=np.int64)
    return confusion_metrics(onehot, decided, onehot, which)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return _label_metrics(y_true, y_pred, ("accuracy",))["accuracy"] if len(y_true) else math.nan


def f1_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Binary F1 when there are two classes (the larger label is positive), macro F1 otherwise."""
    return _label_metrics(y_true, y_pred, ("f1",))["f1"]


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Binary ROC AUC by the rank formula; `scores` rank the larger label as positive."""
    keys = label_keys(y_true)
    known = np.asarray([k is not None for k in keys], dtype=bool)
    classes = sort_classes(str(k) for k in keys[known])
    if len(classes) != 2:
        return math.nan
    return weighted_auc(np.asarray(scores, dtype=np.float64)[known], (keys[known] == classes[-1]).astype(np.float64))


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(y_true, float) - np.asarray(y_pred, float))))


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(y_true, float) - np.asarray(y_pred, float)) ** 2)))


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray | None = None, scores: np.ndarray | None = None, threshold: float = 0.5
) -> dict[str, float]:
    """Accuracy, F1, precision, recall from labels (or from binary `scores` cut at `threshold`: the
    larger label is the positive one), ROC AUC from scores. Rows without a label are left out."""
    keys = label_keys(y_true)
    known = np.asarray([k is not None for k in keys], dtype=bool)
    if y_pred is None and scores is not None:
        classes = sort_classes(str(k) for k in keys[known])
        positive, negative = classes[-1], (classes[0] if len(classes) > 1 else ("0" if classes[-1] != "0" else "1"))
        cut = np.asarray(scores, dtype=np.float64) >= threshold
        y_pred = np.where(cut, positive, negative).astype(object)
    metrics: dict[str, float] = {"n": float(known.sum())}
    if y_pred is not None:
        predicted = np.asarray(y_pred, dtype=object)
        metrics.update(_label_metrics(keys[known], predicted[known], ("accuracy", "f1", "precision", "recall")))
    if scores is not None:
        metrics["roc_auc"] = roc_auc(keys, scores)
    return metrics


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return RegressionEstimator.realised(y_true, y_pred)


def compare_metrics(reference: Mapping[str, float], current: Mapping[str, float]) -> dict[str, Any]:
    """Side by side with the change of every metric both windows have."""
    change = {key: current[key] - reference[key] for key in current if key in reference and key != "n"}
    return {"reference": dict(reference), "current": dict(current), "change": change}


# ---- the accuracy-only estimate of earlier releases (public API) ------------------------------------


@dataclass(frozen=True)
class AccuracyEstimate:
    accuracy: float
    standard_error: float
    n: int

    def to_dict(self) -> dict[str, float]:
        return {"estimated_accuracy": self.accuracy, "standard_error": self.standard_error, "n": float(self.n)}


def confidence_of(probabilities: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Confidence in the predicted class: max(p, 1 - p) for a binary P(y=1) vector cut at
    `threshold`, the largest class probability for an (n, k) matrix."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim == 1:
        return np.where(probabilities >= threshold, probabilities, 1 - probabilities)
    return probabilities.max(axis=1)


def estimate_accuracy_cbpe(
    current_probabilities: np.ndarray,
    reference_probabilities: np.ndarray | None = None,
    reference_labels: np.ndarray | None = None,
    threshold: float = 0.5,
    current_decisions: np.ndarray | None = None,
    reference_decisions: np.ndarray | None = None,
) -> AccuracyEstimate:
    """Expected accuracy of a classifier on unlabelled rows, over every row given.

    With labelled reference rows the scores are calibrated first (isotonic, see
    `ClassificationEstimator`); each row is right with its calibrated chance, the estimate is their
    mean. `reference_labels` are 0/1 for a binary P(y=1) vector, or column indices for an (n, k)
    matrix. The decision is `current_decisions` / `reference_decisions` (the model's own, as class
    labels) where given, else a binary vector cut at `threshold`, else argmax.
    """
    current = np.asarray(current_probabilities, dtype=np.float64)
    n = len(current)
    if n == 0:
        return AccuracyEstimate(math.nan, math.nan, 0)
    if reference_probabilities is not None and reference_labels is not None:
        reference = np.asarray(reference_probabilities, dtype=np.float64)
        classes = [0, 1] if reference.ndim == 1 else list(range(reference.shape[1]))
        estimator = ClassificationEstimator.fit(
            reference, reference_labels, decisions=reference_decisions, classes=classes, threshold=threshold
        )
        correct = estimator.expected_correct(current, current_decisions)
    else:
        correct = confidence_of(current, threshold)
    return AccuracyEstimate(float(correct.mean()), float(np.sqrt(np.sum(correct * (1 - correct))) / n), n)


# ---- the report's performance section ---------------------------------------------------------------


def _is_probability(values: np.ndarray) -> bool:
    return values.dtype.kind == "f" and values.size > 0 and bool(np.all((values >= 0) & (values <= 1)))


def _present(values: Any) -> np.ndarray:
    return np.asarray([k is not None for k in label_keys(values)], dtype=bool)


def task_of(target: np.ndarray, prediction: np.ndarray, scores: np.ndarray | None = None) -> str:
    """ "probability" (a binary classifier's P(positive) as prediction), "classification" (labels,
    with or without an (n, k) `scores` matrix) or "regression" (a float target of many values)."""
    known = target[_present(target)]
    distinct = len({str(k) for k in label_keys(known)})
    if scores is not None:
        return "classification"
    if _is_probability(prediction) and distinct <= 2:
        return "probability"
    if known.dtype.kind == "f" and distinct > 10:
        return "regression"
    return "classification"


def fit_estimator(
    task: str,
    reference_target: np.ndarray,
    reference_prediction: np.ndarray,
    *,
    reference_scores: np.ndarray | None = None,
    classes: Sequence[Any] | None = None,
    threshold: float | None = None,
    reference_features: Mapping[str, np.ndarray] | None = None,
) -> Estimator | None:
    """The label-free estimator of a model, fitted on its labelled reference (None where it cannot
    be: no scores for a classifier, a reference with a single class, too few rows)."""
    known = _present(reference_target)
    if known.sum() < 20:
        return None
    try:
        if task == "regression":
            return RegressionEstimator.fit(reference_features or {}, reference_prediction, reference_target)
        if task == "probability":
            return ClassificationEstimator.fit(
                reference_prediction, reference_target, classes=classes, threshold=threshold
            )
        if reference_scores is not None:
            return ClassificationEstimator.fit(
                reference_scores, reference_target, decisions=reference_prediction, classes=classes, threshold=threshold
            )
    except ValueError:
        return None
    return None


def performance_report(
    reference_target: np.ndarray | None,
    reference_prediction: np.ndarray | None,
    current_target: np.ndarray | None,
    current_prediction: np.ndarray | None,
    *,
    threshold: float | None = None,
    reference_scores: np.ndarray | None = None,
    current_scores: np.ndarray | None = None,
    classes: Sequence[Any] | None = None,
    reference_features: Mapping[str, np.ndarray] | None = None,
    current_features: Mapping[str, np.ndarray] | None = None,
    estimator: Estimator | None = None,
    task: str | None = None,
) -> dict[str, Any]:
    """The report's `performance` section: realised metrics on the labelled rows, estimates
    (`estimated`, with bands) on every row of the current window.

    `*_prediction`: the model's output per row: its label (its own decision), a binary classifier's
    P(positive) (then cut at `threshold`, 0.5 if not given) or a regressor's value. `*_scores`: an
    (n, k) probability matrix in `classes` order, for classifiers whose prediction is a label.
    `current_target` is aligned with `current_prediction`, None/NaN where a row has no label yet.
    `*_features` (name -> values) feed the regressor's loss model. `estimator`: one fitted before
    (`fit_estimator`), reused across windows; `task` the one it was fitted for (else read from
    the values, see `task_of`).
    """
    reference = _labelled_reference(reference_target, reference_prediction, reference_scores, reference_features)
    if reference is None:
        return {}
    ref_target, ref_pred, ref_scores, ref_features = reference
    task = task or task_of(ref_target, ref_pred, ref_scores)
    cut = 0.5 if threshold is None else float(threshold)
    report: dict[str, Any] = {"task": task}
    if task != "regression":
        report["decision"] = {"threshold": cut} if task == "probability" else {"source": "model prediction"}
    if estimator is None:
        estimator = fit_estimator(
            task,
            ref_target,
            ref_pred,
            reference_scores=ref_scores,
            classes=classes,
            threshold=cut,
            reference_features=ref_features,
        )
    report["reference"] = _realised(task, estimator, ref_target, ref_pred, ref_scores, cut)
    if current_prediction is not None:
        report.update(
            _current(
                task,
                estimator,
                report["reference"],
                current_target,
                current_prediction,
                current_scores,
                cut,
                current_features or {},
            )
        )
    return report


def _labelled_reference(
    target: np.ndarray | None,
    prediction: np.ndarray | None,
    scores: np.ndarray | None,
    features: Mapping[str, np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, np.ndarray] | None] | None:
    """The reference's labelled rows (target, prediction, scores, features); None without any."""
    if prediction is None or target is None:
        return None
    known = _present(np.asarray(target))
    labelled = (
        np.asarray(np.asarray(target)[known].tolist()),  # without None: its own dtype again
        np.asarray(prediction)[known],
        None if scores is None else np.asarray(scores, dtype=np.float64)[known],
        None if features is None else {k: np.asarray(v)[known] for k, v in features.items()},
    )
    return labelled if len(labelled[0]) else None


def _current(
    task: str,
    estimator: Estimator | None,
    reference: dict[str, float],
    target: np.ndarray | None,
    prediction: np.ndarray,
    scores: np.ndarray | None,
    cut: float,
    features: Mapping[str, np.ndarray],
) -> dict[str, Any]:
    """The current window's part: realised metrics on its labelled rows, estimates on all of them."""
    section: dict[str, Any] = {}
    pred = np.asarray(prediction)
    cur_scores = None if scores is None else np.asarray(scores, dtype=np.float64)
    labelled = np.zeros(len(pred), dtype=bool)
    if target is not None and len(target) == len(pred):
        labelled = _present(target)
    if labelled.any():
        assert target is not None
        part = None if cur_scores is None else cur_scores[labelled]
        current = _realised(
            task, estimator, np.asarray(np.asarray(target)[labelled].tolist()), pred[labelled], part, cut
        )
        section.update(compare_metrics(reference, current))
        section["performance_drift"] = performance_drift(estimator, reference, current)
    estimates = _estimates(task, estimator, pred, cur_scores, features)
    if estimator is None or estimates is None:
        return section
    section["estimated"] = estimated_section(estimates, len(pred))
    if labelled.any():
        section["labelled_check"] = labelled_check(task, estimator, target, pred, cur_scores, labelled, features)
    return section


def _estimates(
    task: str,
    estimator: Estimator | None,
    prediction: np.ndarray,
    scores: np.ndarray | None,
    features: Mapping[str, np.ndarray],
) -> dict[str, Any] | None:
    """The estimator's metrics on every current row (None: no estimator, no rows, or no scores)."""
    if estimator is None or not len(prediction):
        return None
    if isinstance(estimator, RegressionEstimator):
        return estimator.estimate(features, prediction)
    if task == "probability":
        return estimator.estimate(prediction)
    if scores is not None:
        return estimator.estimate(scores, prediction)
    return None


def _realised(
    task: str,
    estimator: Estimator | None,
    target: np.ndarray,
    prediction: np.ndarray,
    scores: np.ndarray | None,
    cut: float,
) -> dict[str, float]:
    if task == "regression":
        return RegressionEstimator.realised(target, prediction)
    if isinstance(estimator, ClassificationEstimator):
        if task == "probability":
            return estimator.realised(target, prediction)
        if scores is not None:
            return estimator.realised(target, scores, prediction)
    if task == "probability":
        return classification_metrics(target, scores=prediction.astype(np.float64), threshold=cut)
    return classification_metrics(target, prediction)


ESTIMATED_METRICS = tuple(f"estimated_{m}" for m in (*CLASSIFICATION_METRICS, *REGRESSION_METRICS))
