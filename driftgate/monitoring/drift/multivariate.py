"""Multivariate drift on row samples: a domain classifier and PCA reconstruction error (numpy only).

Both catch changes no single feature shows (e.g. a broken correlation). Rows are encoded with the
reference profile: numbers standardised by the reference sample, booleans and categories one-hot on
their most frequent reference levels (values in their canonical form, `drift.kinds`), missing values
at the reference mean. Only features present on both sides are encoded.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np

from driftgate.monitoring.drift.binning import CategoricalBinning
from driftgate.monitoring.drift.kinds import as_float, canonical
from driftgate.monitoring.drift.profile import CURRENT_SAMPLE_SEED, ReferenceProfile, sample_rows_of
from driftgate.monitoring.drift.report import MultivariateDrift, Subtest

ONE_HOT_LEVELS = 10  # enough to see a category mix change without a thousand sparse columns
MIN_ROWS = 50  # below this per side the two tests have no power worth reporting
AUC_THRESHOLD = 0.55
# PCA reconstruction: the components kept, and how many reference chunks calibrate the threshold.
PCA_EXPLAINED = 0.9
PCA_CHUNKS = 400
PCA_QUANTILE = 0.95  # the threshold: this quantile of |ln ratio| over reference chunks of the window's size


def encode(
    profile: ReferenceProfile, columns: Mapping[str, np.ndarray], names: Collection[str] | None = None
) -> np.ndarray:
    """Rows as a float matrix, encoded against the profile's reference sample (`names`: only these)."""
    blocks: list[np.ndarray] = []
    for name, spec in profile.specs.items():
        if name not in columns or name not in profile.sample or (names is not None and name not in names):
            continue
        if isinstance(spec.binning, CategoricalBinning):
            text = canonical(columns[name], spec.kind, name)
            blocks.extend((text == level).astype(np.float64) for level in spec.binning.levels[:ONE_HOT_LEVELS])
        else:
            reference = as_float(name, profile.sample[name])
            finite = reference[np.isfinite(reference)]
            centre = float(finite.mean()) if finite.size else 0.0
            spread = float(finite.std()) if finite.size > 1 and finite.std() > 0 else 1.0
            values = as_float(name, columns[name])
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


@dataclass(frozen=True)
class Reconstruction:
    """PCA reconstruction error of the current rows against held-out reference rows.

    ratio: mean current error / mean held-out reference error (about 1 without drift; above 1 when
    rows leave the reference's principal subspace, e.g. a correlation broke; below 1 when they hug it
    more closely, e.g. a correlation tightened). shift: |ln ratio|, the effect size. threshold: the
    `PCA_QUANTILE` quantile of |ln ratio| over reference chunks of the window's size, so the ratio
    band [exp(-threshold), exp(threshold)] is what a calm window of this many rows gives.
    p_value: two-sided, ln ratio against its reference-chunk spread (normal approximation).
    """

    ratio: float
    shift: float
    threshold: float
    p_value: float
    components: int
    columns: int


def pca_reconstruction(
    reference: np.ndarray, current: np.ndarray, explained: float = PCA_EXPLAINED, seed: int = 0
) -> Reconstruction | None:
    """The calibrated reconstruction test (see `Reconstruction`); None when the kept components
    reproduce the reference exactly (nothing left to measure an error against).

    PCA is fitted (SVD) on half of the reference rows, keeping `explained` of the variance; the
    other half gives the error expected without drift. The threshold is calibrated on
    `PCA_CHUNKS` reference chunks of the current window's size, each set against a resampled
    held-out mean (drawn with replacement from the held-out errors), so the band is as wide as the
    sampling noise of a window of this size and of the reference half it is compared with.
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

    reference_errors, current_errors = errors(held_out), errors(current)
    scale = float(np.sum(singular**2)) / max(1, len(fit_rows))
    if float(reference_errors.mean()) <= 1e-9 * max(scale, 1e-300):
        return None
    ratio = float(current_errors.mean() / reference_errors.mean())
    rng = np.random.default_rng(seed + 1)
    chunks = reference_errors[rng.integers(0, reference_errors.size, (PCA_CHUNKS, current_errors.size))]
    baselines = reference_errors[rng.integers(0, reference_errors.size, (PCA_CHUNKS, reference_errors.size))]
    null = np.log(chunks.mean(axis=1) / baselines.mean(axis=1))
    shift = abs(float(np.log(max(ratio, 1e-300))))
    spread = float(null.std())
    from scipy import stats

    p_value = float(2 * stats.norm.sf(shift / spread)) if spread > 0 else (1.0 if shift == 0 else 0.0)
    threshold = float(np.quantile(np.abs(null), PCA_QUANTILE))
    return Reconstruction(ratio, shift, threshold, min(1.0, p_value), len(basis), reference.shape[1])


def multivariate_drift(
    profile: ReferenceProfile, current_sample: Mapping[str, np.ndarray], max_rows: int = 2_000, seed: int = 0
) -> MultivariateDrift:
    """Both tests on the profile's reference sample versus up to `max_rows` current rows.

    Returned subtests are undecided: `compare` puts their p-values in the correction family.
    """
    shared = [name for name in profile.specs if name in current_sample and name in profile.sample]
    reference = encode(profile, profile.sample, shared)
    rows = len(next(iter(current_sample.values()))) if current_sample else 0
    if rows > max_rows:
        # Pick the rows first, then encode only them: encoding is row by row, so this is the same
        # matrix as encoding everything and picking afterwards, without a (rows x columns) detour.
        picked = sample_rows_of(rows, max_rows, CURRENT_SAMPLE_SEED)
        current_sample = {name: np.asarray(values)[picked] for name, values in current_sample.items()}
    current = encode(profile, current_sample, shared)
    result = MultivariateDrift(n_reference=len(reference), n_current=len(current))
    if min(len(reference), len(current)) < MIN_ROWS or reference.shape[1] == 0:
        result.note = f"skipped: needs at least {MIN_ROWS} rows on each side and one encodable feature"
        return result
    auc, auc_p = domain_classifier(reference, current, seed=seed)
    result.domain_classifier = Subtest("domain_classifier", "mann_whitney_auc", auc_p, "auc", auc, AUC_THRESHOLD)
    found = pca_reconstruction(reference, current, seed=seed)
    if found is None:
        result.note = "pca_reconstruction skipped: the kept components reproduce every reference row exactly"
        return result
    result.pca_reconstruction = Subtest(
        "pca_reconstruction",
        "reference_chunks_z",
        found.p_value,
        "abs_log_error_ratio",
        found.shift,
        found.threshold,
        details={
            "error_ratio": found.ratio,
            "calm_ratio_low": float(np.exp(-found.threshold)),
            "calm_ratio_high": float(np.exp(found.threshold)),
            "components": float(found.components),
            "columns": float(found.columns),
        },
    )
    return result
