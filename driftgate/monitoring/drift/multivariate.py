"""Multivariate drift on row samples: a domain classifier and PCA reconstruction error (numpy only).

Both catch changes no single feature shows (e.g. a broken correlation). Rows are encoded with the
reference profile: numbers standardised by the reference sample, categories one-hot on their most
frequent reference levels, missing values at the reference mean.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from driftgate.monitoring.drift.binning import CategoricalBinning, is_missing
from driftgate.monitoring.drift.profile import ReferenceProfile, _as_float
from driftgate.monitoring.drift.report import MultivariateDrift, Subtest

ONE_HOT_LEVELS = 10  # enough to see a category mix change without a thousand sparse columns
MIN_ROWS = 50  # below this per side the two tests have no power worth reporting
AUC_THRESHOLD = 0.55
RECONSTRUCTION_THRESHOLD = 1.1  # current error at least 10 % above the held-out reference error


def encode(profile: ReferenceProfile, columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Rows as a float matrix, encoded against the profile's reference sample."""
    blocks: list[np.ndarray] = []
    for name, spec in profile.specs.items():
        if name not in columns or name not in profile.sample:
            continue
        if isinstance(spec.binning, CategoricalBinning):
            values = np.asarray(columns[name])
            missing = is_missing(values)
            text = np.where(missing, "", values.astype(str))
            blocks.extend((text == level).astype(np.float64) for level in spec.binning.levels[:ONE_HOT_LEVELS])
        else:
            reference = _as_float(name, profile.sample[name])
            finite = reference[np.isfinite(reference)]
            centre = float(finite.mean()) if finite.size else 0.0
            spread = float(finite.std()) if finite.size > 1 and finite.std() > 0 else 1.0
            values = _as_float(name, np.asarray(columns[name]))
            blocks.append(np.where(np.isfinite(values), (values - centre) / spread, 0.0))
    if not blocks:
        return np.zeros((len(next(iter(columns.values()))) if columns else 0, 0))
    return np.column_stack(blocks)


def auc_score(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the rank formula (Mann-Whitney U / n1 n0), ties counted as one half."""
    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    from scipy import stats  # deferred here and below: importing scipy.stats takes ~0.5 s

    ranks = stats.rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def fit_logistic(features: np.ndarray, labels: np.ndarray, l2: float = 1.0, iterations: int = 25) -> np.ndarray:
    """L2-regularised logistic regression by Newton's method; returns weights with the bias last."""
    design = np.column_stack([features, np.ones(len(features))])
    weights = np.zeros(design.shape[1])
    penalty = np.full(design.shape[1], l2)
    penalty[-1] = 0.0  # the bias is not shrunk
    for _ in range(iterations):
        probability = 1 / (1 + np.exp(-np.clip(design @ weights, -30, 30)))
        gradient = design.T @ (probability - labels) + penalty * weights
        hessian = (design * (probability * (1 - probability))[:, None]).T @ design + np.diag(penalty)
        step = np.linalg.solve(hessian + 1e-9 * np.eye(len(weights)), gradient)
        weights -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return weights


def domain_classifier(reference: np.ndarray, current: np.ndarray, folds: int = 5, seed: int = 0) -> tuple[float, float]:
    """Cross-fitted AUC of a classifier telling current rows from reference rows, and its p-value.

    Under no drift the held-out AUC follows the Mann-Whitney null: mean 1/2, variance
    (n1 + n0 + 1) / (12 n1 n0); the p-value is one-sided (only AUC > 1/2 means drift).
    """
    features = np.vstack([reference, current])
    labels = np.concatenate([np.zeros(len(reference)), np.ones(len(current))])
    fold_of = np.random.default_rng(seed).permutation(len(features)) % folds
    scores = np.empty(len(features))
    for fold in range(folds):
        train, test = fold_of != fold, fold_of == fold
        weights = fit_logistic(features[train], labels[train])
        scores[test] = features[test] @ weights[:-1] + weights[-1]
    from scipy import stats

    auc = auc_score(labels, scores)
    n1, n0 = len(current), len(reference)
    z = (auc - 0.5) / math.sqrt((n1 + n0 + 1) / (12 * n1 * n0))
    return auc, float(stats.norm.sf(z))


def pca_reconstruction(
    reference: np.ndarray, current: np.ndarray, explained: float = 0.9, seed: int = 0
) -> tuple[float, float]:
    """Ratio of current to held-out reference PCA reconstruction error, and a one-sided p-value.

    PCA is fitted (SVD) on half of the reference rows; the other half gives the error expected
    without drift, so the ratio is about 1 when nothing changed. The p-value is Mann-Whitney's.
    """
    order = np.random.default_rng(seed).permutation(len(reference))
    fit_rows, held_out = reference[order[: len(order) // 2]], reference[order[len(order) // 2 :]]
    centre = fit_rows.mean(axis=0)
    _, singular, components = np.linalg.svd(fit_rows - centre, full_matrices=False)
    share = np.cumsum(singular**2) / max(float(np.sum(singular**2)), 1e-300)
    basis = components[: int(np.searchsorted(share, explained) + 1)]

    def errors(rows: np.ndarray) -> np.ndarray:
        centred = rows - centre
        return np.sum((centred - centred @ basis.T @ basis) ** 2, axis=1)

    from scipy import stats

    reference_errors, current_errors = errors(held_out), errors(current)
    ratio = float(current_errors.mean() / max(reference_errors.mean(), 1e-12))
    p_value = float(stats.mannwhitneyu(current_errors, reference_errors, alternative="greater").pvalue)
    return ratio, p_value


def multivariate_drift(
    profile: ReferenceProfile, current_sample: Mapping[str, np.ndarray], max_rows: int = 2_000, seed: int = 0
) -> MultivariateDrift:
    """Both tests on the profile's reference sample versus up to `max_rows` current rows.

    Returned subtests are undecided: `compare` puts their p-values in the correction family.
    """
    reference = encode(profile, profile.sample)
    rows = len(next(iter(current_sample.values()))) if current_sample else 0
    if rows > max_rows:
        # Pick the rows first, then encode only them: encoding is row by row, so this is the same
        # matrix as encoding everything and picking afterwards, without a (rows x columns) detour.
        picked = np.random.default_rng(seed).permutation(rows)[:max_rows]
        current_sample = {name: np.asarray(values)[picked] for name, values in current_sample.items()}
    current = encode(profile, current_sample)
    result = MultivariateDrift(n_reference=len(reference), n_current=len(current))
    if min(len(reference), len(current)) < MIN_ROWS or reference.shape[1] == 0:
        result.note = f"skipped: needs at least {MIN_ROWS} rows on each side and one encodable feature"
        return result
    auc, auc_p = domain_classifier(reference, current, seed=seed)
    result.domain_classifier = Subtest("domain_classifier", "mann_whitney_auc", auc_p, "auc", auc, AUC_THRESHOLD)
    ratio, ratio_p = pca_reconstruction(reference, current, seed=seed)
    result.pca_reconstruction = Subtest(
        "pca_reconstruction", "mann_whitney", ratio_p, "error_ratio", ratio, RECONSTRUCTION_THRESHOLD
    )
    return result
