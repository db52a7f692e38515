"""Label-free performance of a classifier (CBPE: confidence-based performance estimation). numpy and scipy.

The model's scores are calibrated on the labelled reference (one-vs-rest per class, rows
renormalised; per class the map with the lowest cross-validated Brier score among the scores as
they are, Platt scaling on the logit or isotonic regression, judged on held-out folds of
the reference: `fit_calibrator`), so a calibrated score is the chance that the row belongs to the class.
Every metric is then the expectation of its confusion matrix: a row the *model decided* is class c
(its own `predict`, or its scores cut at its own threshold; never a fixed 0.5) adds p_c to the
expected true positives of c and 1 - p_c to its false positives. ROC AUC is the expected AUC with
the calibrated probabilities as soft labels. Valid under covariate shift (P(x) moves, P(y|x) stays);
a gap between the estimate and the realised metric on labelled rows is the evidence of concept drift.

Sampling error: each metric is computed on chunks of the reference; its spread, scaled to the
window's size by 1/sqrt(n), gives the band (3 standard errors) and the alert threshold (the
reference value minus 3 standard errors; accuracy, AUC, F1, precision and recall only go down).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> p = rng.random(20_000); y = (rng.random(20_000) < p).astype(int)
>>> est = ClassificationEstimator.fit(p, y, decisions=np.where(p >= 0.7, 1, 0))
>>> e = est.estimate(p, decisions=np.where(p >= 0.7, 1, 0))
>>> round(e["accuracy"].value, 2), round(float(np.mean((p >= 0.7) == y)), 2)
(0.71, 0.71)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftgate.monitoring.estimation.calibration import Calibrator, fit_calibrator
from driftgate.monitoring.estimation.labels import label_keys, sort_classes

METRICS = ("accuracy", "roc_auc", "f1", "precision", "recall")
BAND_SIGMAS = 3.0
MIN_CHUNK = 50  # reference rows per chunk below which the spread says too little


def score_matrix(scores: np.ndarray, n_classes: int) -> np.ndarray:
    """(n, k) scores; a binary model's 1-D scores are P(positive), the last class."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        if n_classes != 2:
            raise ValueError(f"1-D scores need a binary model, this one has {n_classes} classes")
        return np.column_stack([1 - scores, scores])
    if scores.shape[1] != n_classes:
        raise ValueError(f"scores have {scores.shape[1]} columns for {n_classes} classes")
    return scores


# ---- metrics of a (soft) confusion matrix ------------------------------------------------------------


def weighted_auc(scores: np.ndarray, weights: np.ndarray) -> float:
    """ROC AUC of `scores` when row i is positive with probability weights[i] (0/1 weights: the
    ordinary rank AUC, ties counted one half). Pairs of a row with itself are left out."""
    scores = np.asarray(scores, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    v = 1.0 - w
    order = np.argsort(scores, kind="mergesort")
    s, w, v = scores[order], w[order], v[order]
    if len(s) == 0:
        return math.nan
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    w_group, v_group = np.add.reduceat(w, starts), np.add.reduceat(v, starts)
    v_below = np.cumsum(v_group) - v_group
    self_pairs = float(np.sum(w * v))
    numerator = float(np.sum(w_group * (v_below + 0.5 * v_group))) - 0.5 * self_pairs
    denominator = float(w.sum() * v.sum()) - self_pairs
    return numerator / denominator if denominator > 1e-12 else math.nan


def confusion_metrics(
    probability: np.ndarray, decided: np.ndarray, scores: np.ndarray, which: Sequence[str] = METRICS
) -> dict[str, float]:
    """Metrics of the expected confusion matrix. `probability` (n, k): the chance each row is each
    class (one-hot labels give the realised metrics); `decided` (n,): the class index the model chose;
    `scores` (n, k): the raw scores for ROC AUC. Binary (k = 2): F1, precision, recall and AUC of the
    last class; multiclass: their macro averages (AUC one-vs-rest)."""
    n, k = probability.shape
    if n == 0:
        return {name: math.nan for name in which}
    chosen = np.zeros((n, k), dtype=bool)
    chosen[np.arange(n), decided] = True
    true_pos = np.where(chosen, probability, 0.0).sum(axis=0)
    predicted = chosen.sum(axis=0).astype(np.float64)
    actual = probability.sum(axis=0)
    classes = [k - 1] if k == 2 else list(range(k))
    out: dict[str, float] = {}
    if "accuracy" in which:
        out["accuracy"] = float(true_pos.sum() / n)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, true_pos / predicted, 0.0)
        recall = np.where(actual > 1e-12, true_pos / actual, math.nan)
        f1 = np.where(predicted + actual > 1e-12, 2 * true_pos / (predicted + actual), 0.0)
    if "precision" in which:
        out["precision"] = float(np.mean(precision[classes]))
    if "recall" in which:
        out["recall"] = float(np.nanmean(recall[classes])) if np.any(np.isfinite(recall[classes])) else math.nan
    if "f1" in which:
        out["f1"] = float(np.mean(f1[classes]))
    if "roc_auc" in which:
        aucs = [weighted_auc(scores[:, c], probability[:, c]) for c in classes]
        finite = [a for a in aucs if math.isfinite(a)]
        out["roc_auc"] = float(np.mean(finite)) if finite else math.nan
    return out


# ---- the estimator ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricEstimate:
    """An estimate with its sampling-error band and the reference-derived alert threshold."""

    value: float
    sampling_error: float | None = None
    reference: float | None = None  # the realised metric on the whole reference
    alert_below: float | None = None  # alert threshold: reference - 3 standard errors at this n
    alert_above: float | None = None  # for losses (regression)

    @property
    def lower(self) -> float | None:
        return None if self.sampling_error is None else self.value - BAND_SIGMAS * self.sampling_error

    @property
    def upper(self) -> float | None:
        return None if self.sampling_error is None else self.value + BAND_SIGMAS * self.sampling_error

    @property
    def alert(self) -> bool:
        if not math.isfinite(self.value):
            return False
        below = self.alert_below is not None and self.value < self.alert_below
        above = self.alert_above is not None and self.value > self.alert_above
        return bool(below or above)

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": _clean(self.value),
            "lower": _clean(self.lower),
            "upper": _clean(self.upper),
            "sampling_error": _clean(self.sampling_error),
            "reference": _clean(self.reference),
            "alert_below": _clean(self.alert_below),
            "alert_above": _clean(self.alert_above),
            "alert": self.alert,
        }


def _clean(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


@dataclass(frozen=True)
class ChunkSpread:
    """Standard deviation of each metric over reference chunks of `size` rows; `at(n)` scales it."""

    size: int
    std: dict[str, float] = field(default_factory=dict)
    mean: dict[str, float] = field(default_factory=dict)

    def at(self, name: str, n: int) -> float | None:
        std = self.std.get(name)
        if std is None or not math.isfinite(std) or n <= 0:
            return None
        return std * math.sqrt(self.size / n)


def chunk_spread(
    rows: int, metric_of: Any, names: Sequence[str], chunks: int = 10, seed: int = 0
) -> ChunkSpread | None:
    """Metric spread over `chunks` random, disjoint chunks of the reference (None when chunks would be
    under MIN_CHUNK rows). `metric_of(index) -> {name: value}` computes the metrics of some rows."""
    size = rows // chunks
    if size < MIN_CHUNK:
        chunks = rows // MIN_CHUNK
        size = MIN_CHUNK
    if chunks < 3:
        return None
    order = np.random.default_rng(seed).permutation(rows)
    values = [metric_of(order[i * size : (i + 1) * size]) for i in range(chunks)]
    std, mean = {}, {}
    for name in names:
        column = np.asarray([v.get(name, math.nan) for v in values], dtype=np.float64)
        column = column[np.isfinite(column)]
        if len(column) >= 3:
            std[name], mean[name] = float(column.std(ddof=1)), float(column.mean())
    return ChunkSpread(size, std, mean)


@dataclass(frozen=True)
class ClassificationEstimator:
    """Calibrators fitted on a labelled reference; `estimate` gives every metric on unlabelled rows."""

    classes: list[str]  # label keys in the model's class order (a binary model's positive last)
    calibrators: list[Calibrator]
    reference: dict[str, float]
    spread: ChunkSpread | None
    threshold: float | None  # cut of a binary model's scores when no decisions are given

    @classmethod
    def fit(
        cls,
        scores: np.ndarray,
        labels: Sequence[Any] | np.ndarray,
        *,
        decisions: Sequence[Any] | np.ndarray | None = None,
        classes: Sequence[Any] | None = None,
        threshold: float | None = None,
    ) -> ClassificationEstimator:
        """`scores`: P(positive) (binary, 1-D) or (n, k) class probabilities in `classes` order;
        `labels`: the reference target (rows with a missing label are left out); `decisions`: the
        model's own predictions on those rows; without them a binary model's scores are cut at
        `threshold` (0.5 if not given) and a multiclass model's argmax decides."""
        keys = label_keys(labels)
        known = np.asarray([k is not None for k in keys], dtype=bool)
        scores = np.asarray(scores, dtype=np.float64)[known]
        keys = keys[known]
        ordered = [str(k) for k in label_keys(classes)] if classes is not None else sort_classes(str(k) for k in keys)
        if scores.ndim == 1 and len(ordered) == 1:  # a reference with one class seen: add the other side
            ordered = sort_classes([*ordered, "1" if ordered[0] != "1" else "0"])
        if len(ordered) < 2:
            raise ValueError("a classifier's reference needs at least two classes")
        matrix = score_matrix(scores, len(ordered))
        onehot = np.stack([keys == c for c in ordered], axis=1).astype(np.float64)
        decided = _decided(
            ordered, matrix, None if decisions is None else np.asarray(decisions, dtype=object)[known], threshold
        )
        if len(ordered) == 2:
            calibrators: list[Calibrator] = [fit_calibrator(matrix[:, 1], onehot[:, 1])]
        else:
            calibrators = [fit_calibrator(matrix[:, c], onehot[:, c]) for c in range(len(ordered))]
        reference = confusion_metrics(onehot, decided, matrix)

        def metric_of(index: np.ndarray) -> dict[str, float]:
            return confusion_metrics(onehot[index], decided[index], matrix[index])

        spread = chunk_spread(len(keys), metric_of, METRICS)
        return cls(ordered, calibrators, reference, spread, threshold)

    def calibrated(self, scores: np.ndarray) -> np.ndarray:
        matrix = score_matrix(scores, len(self.classes))
        if len(self.classes) == 2:
            positive = np.clip(self.calibrators[0](matrix[:, 1]), 0.0, 1.0)
            return np.column_stack([1 - positive, positive])
        columns = np.column_stack([cal(matrix[:, c]) for c, cal in enumerate(self.calibrators)])
        total = columns.sum(axis=1, keepdims=True)
        # A row every calibrator put at 0 keeps the model's own scores.
        return np.where(total > 1e-12, columns / np.where(total > 1e-12, total, 1.0), matrix)

    def decided(self, scores: np.ndarray, decisions: Sequence[Any] | np.ndarray | None = None) -> np.ndarray:
        matrix = score_matrix(scores, len(self.classes))
        return _decided(
            self.classes, matrix, None if decisions is None else np.asarray(decisions, dtype=object), self.threshold
        )

    def expected_correct(self, scores: np.ndarray, decisions: Sequence[Any] | np.ndarray | None = None) -> np.ndarray:
        """Per row, the calibrated chance that the model's decision is right."""
        probability = self.calibrated(scores)
        return probability[np.arange(len(probability)), self.decided(scores, decisions)]

    def estimate(
        self, scores: np.ndarray, decisions: Sequence[Any] | np.ndarray | None = None
    ) -> dict[str, MetricEstimate]:
        matrix = score_matrix(scores, len(self.classes))
        values = confusion_metrics(self.calibrated(matrix), self.decided(matrix, decisions), matrix)
        n = len(matrix)
        out = {}
        for name in METRICS:
            se = self.spread.at(name, n) if self.spread else None
            reference = self.reference.get(name)
            below = reference - BAND_SIGMAS * se if se is not None and reference is not None else None
            out[name] = MetricEstimate(values[name], se, reference, alert_below=below)
        return out

    def realised(
        self,
        labels: Sequence[Any] | np.ndarray,
        scores: np.ndarray,
        decisions: Sequence[Any] | np.ndarray | None = None,
    ) -> dict[str, float]:
        """The same metrics on labelled rows (rows whose label is missing or unknown to the model
        are left out), so that realised and estimated are computed alike."""
        keys = label_keys(labels)
        index = {c: i for i, c in enumerate(self.classes)}
        known = np.asarray([k in index for k in keys], dtype=bool)
        matrix = score_matrix(scores, len(self.classes))[known]
        onehot = np.zeros((int(known.sum()), len(self.classes)))
        onehot[np.arange(len(onehot)), [index[k] for k in keys[known]]] = 1.0
        chosen = None if decisions is None else np.asarray(decisions, dtype=object)[known]
        return confusion_metrics(onehot, self.decided(matrix, chosen), matrix) | {"n": float(known.sum())}


def _decided(
    classes: list[str], matrix: np.ndarray, decisions: np.ndarray | None, threshold: float | None
) -> np.ndarray:
    """Class index of each row's decision: the model's own where given (a decision the model's
    classes do not hold falls back to its scores), else the scores cut at `threshold` or argmax."""
    if len(classes) == 2:
        fallback = (matrix[:, 1] >= (0.5 if threshold is None else threshold)).astype(np.int64)
    else:
        fallback = matrix.argmax(axis=1)
    if decisions is None:
        return fallback
    index = {c: i for i, c in enumerate(classes)}
    return np.asarray([index.get(k, f) for k, f in zip(label_keys(decisions), fallback, strict=True)], dtype=np.int64)
