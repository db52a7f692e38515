"""Performance on labelled windows and label-free estimation (CBPE style); numpy and scipy only.

>>> import numpy as np
>>> classification_metrics(np.array([0, 1, 1, 0]), scores=np.array([0.1, 0.8, 0.4, 0.3]))["roc_auc"]
1.0
>>> regression_metrics(np.array([1.0, 2.0]), np.array([1.5, 2.0]))["mae"]
0.25
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftgate.monitoring.drift.multivariate import auc_score


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred))) if len(y_true) else math.nan


def f1_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Binary F1 when there are two classes (the larger label is positive), macro F1 otherwise."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes = np.unique(np.concatenate([y_true, y_pred]))
    positives = classes[-1:] if len(classes) <= 2 else classes
    scores = []
    for label in positives:
        true_pos = np.sum((y_pred == label) & (y_true == label))
        predicted, actual = np.sum(y_pred == label), np.sum(y_true == label)
        scores.append(2 * true_pos / (predicted + actual) if predicted + actual else 0.0)
    return float(np.mean(scores)) if scores else math.nan


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Binary ROC AUC by the rank formula; `scores` rank the larger label as positive."""
    y_true = np.asarray(y_true)
    classes = np.unique(y_true)
    if len(classes) != 2:
        return math.nan
    return auc_score(y_true == classes[-1], np.asarray(scores, dtype=np.float64))


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(y_true, float) - np.asarray(y_pred, float))))


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(y_true, float) - np.asarray(y_pred, float)) ** 2)))


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray | None = None, scores: np.ndarray | None = None, threshold: float = 0.5
) -> dict[str, float]:
    """Accuracy and F1 from labels (or from binary `scores` cut at `threshold`), ROC AUC from scores."""
    y_true = np.asarray(y_true)
    if y_pred is None and scores is not None:
        y_pred = (np.asarray(scores, dtype=np.float64) >= threshold).astype(y_true.dtype)
    metrics: dict[str, float] = {"n": float(len(y_true))}
    if y_pred is not None:
        metrics.update(accuracy=accuracy(y_true, y_pred), f1=f1_score(y_true, y_pred))
    if scores is not None:
        metrics["roc_auc"] = roc_auc(y_true, scores)
    return metrics


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {"n": float(len(y_true)), "mae": mae(y_true, y_pred), "rmse": rmse(y_true, y_pred)}


def compare_metrics(reference: Mapping[str, float], current: Mapping[str, float]) -> dict[str, Any]:
    """Side by side with the change of every metric both windows have."""
    change = {key: current[key] - reference[key] for key in current if key in reference and key != "n"}
    return {"reference": dict(reference), "current": dict(current), "change": change}


@dataclass(frozen=True)
class ConfidenceCalibrator:
    """Maps a prediction's confidence to the chance it is right, learnt on labelled reference rows.

    Equal-frequency bins of confidence; each bin's observed accuracy, made non-decreasing
    (pool-adjacent-violators), is the calibrated value.
    """

    upper_edges: np.ndarray
    accuracy_by_bin: np.ndarray

    @classmethod
    def fit(cls, confidence: np.ndarray, correct: np.ndarray, bins: int = 20) -> ConfidenceCalibrator:
        order = np.argsort(confidence, kind="stable")
        chunks = np.array_split(order, min(bins, max(1, len(order))))
        upper = np.array([confidence[c].max() for c in chunks if len(c)])
        rates = np.array([correct[c].mean() for c in chunks if len(c)])
        weights = np.array([len(c) for c in chunks if len(c)], dtype=np.float64)
        return cls(upper, _pool_adjacent_violators(rates, weights))

    def __call__(self, confidence: np.ndarray) -> np.ndarray:
        slots = np.minimum(np.searchsorted(self.upper_edges, confidence, side="left"), len(self.upper_edges) - 1)
        return self.accuracy_by_bin[slots]


def _pool_adjacent_violators(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    blocks: list[list[float]] = []  # [value, weight, length]
    for value, weight in zip(values, weights, strict=True):
        blocks.append([float(value), float(weight), 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, n2 = blocks.pop()
            v1, w1, n1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    return np.concatenate([np.full(int(n), v) for v, _, n in blocks])


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
) -> AccuracyEstimate:
    """Expected accuracy of a classifier on unlabelled rows from its (calibrated) confidence.

    Each row is right with probability equal to its calibrated confidence, so the expected accuracy
    is their mean. Give labelled reference rows to calibrate first (recommended: raw model
    probabilities are rarely calibrated). Valid under covariate shift, not under concept drift.
    `reference_labels` are 0/1 for a binary P(y=1) vector, or column indices for an (n, k) matrix.
    """
    confidence = confidence_of(current_probabilities, threshold)
    if reference_probabilities is not None and reference_labels is not None:
        reference_probabilities = np.asarray(reference_probabilities, dtype=np.float64)
        labels = np.asarray(reference_labels)
        if reference_probabilities.ndim == 1:
            predicted = (reference_probabilities >= threshold).astype(int)
        else:
            predicted = reference_probabilities.argmax(axis=1)
        correct = (predicted == labels).astype(np.float64)
        confidence = ConfidenceCalibrator.fit(confidence_of(reference_probabilities, threshold), correct)(confidence)
    n = len(confidence)
    if n == 0:
        return AccuracyEstimate(math.nan, math.nan, 0)
    return AccuracyEstimate(float(confidence.mean()), float(np.sqrt(np.sum(confidence * (1 - confidence))) / n), n)


def _is_probability(values: np.ndarray) -> bool:
    return values.dtype.kind == "f" and values.size > 0 and bool(np.all((values >= 0) & (values <= 1)))


def _metrics(target: np.ndarray, prediction: np.ndarray, task: str) -> dict[str, float]:
    if task == "regression":
        return regression_metrics(target.astype(float), prediction.astype(float))
    if task == "probability":
        return classification_metrics(target, scores=prediction)
    return classification_metrics(target.astype(str), prediction.astype(str))


def performance_report(
    reference_target: np.ndarray | None,
    reference_prediction: np.ndarray | None,
    current_target: np.ndarray | None,
    current_prediction: np.ndarray | None,
) -> dict[str, Any]:
    """The report's `performance` section: realised metrics where labels exist, CBPE where they do not.

    The task is read from the values: a float prediction in [0, 1] with a two-class target is a
    probability of the larger class; other float targets are regression; anything else is labels.
    """
    if reference_prediction is None or reference_target is None:
        return {}
    ref_target, ref_pred = np.asarray(reference_target), np.asarray(reference_prediction)
    if _is_probability(ref_pred) and len(np.unique(ref_target)) <= 2:
        task = "probability"
    elif ref_target.dtype.kind == "f" and len(np.unique(ref_target)) > 10:
        task = "regression"
    else:
        task = "classification"
    report: dict[str, Any] = {"task": task, "reference": _metrics(ref_target, ref_pred, task)}
    if current_prediction is None:
        return report
    cur_pred = np.asarray(current_prediction)
    if current_target is not None and len(current_target):
        report.update(compare_metrics(report["reference"], _metrics(np.asarray(current_target), cur_pred, task)))
        report["task"] = task
    if task == "probability":
        positive = np.unique(ref_target)[-1]
        estimate = estimate_accuracy_cbpe(cur_pred, ref_pred, (ref_target == positive).astype(int))
        report["estimated"] = estimate.to_dict()
    return report
