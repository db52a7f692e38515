"""Calibration of one class's scores against the rest (CBPE's first step): the scores as they are,
Platt scaling on the logit, or isotonic regression, chosen on held-out folds of the labelled
reference (`fit_calibrator`). numpy only."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Isotonic:
    """A non-decreasing map from score to probability, fitted by pool-adjacent-violators
    (scipy.optimize.isotonic_regression) on the reference's distinct scores; linear between them,
    clipped outside. (Centring the pooled blocks, as Oron and Flournoy propose, was tried: on the
    benchmark it was worse than the plain fit more often than better.)"""

    x: np.ndarray
    y: np.ndarray

    @classmethod
    def fit(cls, scores: np.ndarray, outcomes: np.ndarray) -> Isotonic:
        from scipy.optimize import isotonic_regression

        scores = np.asarray(scores, dtype=np.float64)
        outcomes = np.asarray(outcomes, dtype=np.float64)
        unique, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
        means = np.bincount(inverse, weights=outcomes) / counts
        fitted = isotonic_regression(means, weights=counts.astype(np.float64), increasing=True).x
        return cls(unique, np.asarray(fitted, dtype=np.float64))

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        if len(self.x) == 1:
            return np.full(len(scores), self.y[0])
        return np.interp(np.asarray(scores, dtype=np.float64), self.x, self.y)


@dataclass(frozen=True)
class Identity:
    """Scores that are already calibrated stay as they are (refitting them only adds noise)."""

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)


@dataclass(frozen=True)
class LogitLinear:
    """p = sigmoid(a * logit(score) + b): Platt scaling on the score's logit, two parameters. Right
    for a model that is over- or underconfident by a constant factor, with far less variance than
    an isotonic fit."""

    a: float
    b: float

    @classmethod
    def fit(cls, scores: np.ndarray, outcomes: np.ndarray) -> LogitLinear:
        from scipy.optimize import minimize

        z = _logit(scores)
        o = np.asarray(outcomes, dtype=np.float64)

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:  # log loss and its gradient
            t = w[0] * z + w[1]
            p = 1 / (1 + np.exp(-np.clip(t, -35, 35)))
            value = float(np.sum(np.logaddexp(0, t) - o * t))
            return value, np.array([np.sum((p - o) * z), np.sum(p - o)])

        result = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
        return cls(float(result.x[0]), float(result.x[1]))

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-np.clip(self.a * _logit(scores) + self.b, -35, 35)))


def _logit(scores: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(scores, dtype=np.float64), 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


Calibrator = Identity | LogitLinear | Isotonic
CALIBRATION_FOLDS = 10


def fit_calibrator(scores: np.ndarray, outcomes: np.ndarray, seed: int = 0) -> Calibrator:
    """The calibrator of a score (one class against the rest), chosen on held-out folds of the
    reference by each row's squared error (Brier): the scores as they are when calibrating does not
    help significantly (as NannyML does), else Platt scaling on the logit when it beats isotonic
    regression significantly (a paired t of 2 over the rows), else isotonic regression.

    Isotonic is the default because it is consistent whatever the shape of the miscalibration: a
    parametric map that almost fits wins on the Brier score yet biases the estimate where it does
    not (on a gradient-boosting model Platt scaling had the better Brier score and twice the
    accuracy error). When the miscalibration is a constant factor on the logit, Platt scaling has
    a fraction of isotonic's variance, and the folds show it.
    """
    scores = np.asarray(scores, dtype=np.float64)
    outcomes = np.asarray(outcomes, dtype=np.float64)
    n = len(scores)
    if n < 50 * CALIBRATION_FOLDS or outcomes.min() == outcomes.max():
        return Isotonic.fit(scores, outcomes)
    if not np.all((scores >= 0) & (scores <= 1)):  # not probabilities: only a fitted map makes them so
        return Isotonic.fit(scores, outcomes)
    folds = np.random.default_rng(seed).permutation(n) % CALIBRATION_FOLDS
    isotonic, logit = np.empty(n), np.empty(n)
    for k in range(CALIBRATION_FOLDS):
        train, test = folds != k, folds == k
        isotonic[test] = Isotonic.fit(scores[train], outcomes[train])(scores[test])
        logit[test] = LogitLinear.fit(scores[train], outcomes[train])(scores[test])
    squared_isotonic = (isotonic - outcomes) ** 2

    def t_better(candidate: np.ndarray) -> float:
        gain = squared_isotonic - (candidate - outcomes) ** 2
        spread = float(gain.std(ddof=1))
        return float(gain.mean()) / (spread / math.sqrt(n)) if spread > 0 else 0.0

    if t_better(np.clip(scores, 0.0, 1.0)) >= -1.0:
        return Identity()
    if t_better(logit) >= 2.0:
        return LogitLinear.fit(scores, outcomes)
    return Isotonic.fit(scores, outcomes)
