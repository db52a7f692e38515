"""Two-sample statistics on raw values and on binned counts (pure: numpy and scipy only).

Raw functions take 1-D float arrays without NaN. Binned functions take two count vectors over the
same bins (reference bins from `NumericBinning`), which is what sketches hold.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> raw = two_sample_numeric(rng.normal(size=500), rng.normal(0.5, 1, size=500))
>>> round(raw.ks_statistic, 2), raw.ks_p_value < 1e-6
(0.21, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Categorical levels rarer than this in the reference are pooled (see `chi_square`).
RARE_REFERENCE_COUNT = 20
RARE_REFERENCE_SHARE = 0.005
# Added to every bin share before PSI / JS so that an empty bin does not make PSI infinite; small
# enough not to matter once a bin holds a handful of rows.
SHARE_FLOOR = 1e-4


@dataclass(frozen=True)
class NumericComparison:
    """KS and 1-Wasserstein between two numeric samples.

    `*_error_bound` is 0 for raw values; for binned counts it bounds |binned - raw| (see docs/drift.md).
    """

    ks_statistic: float
    ks_p_value: float
    wasserstein: float
    ks_error_bound: float = 0.0
    wasserstein_error_bound: float = 0.0


# Above this effective sample size the KS p-value comes from Kolmogorov's limiting distribution:
# `kstwo.sf` took 0.4-3.7 s per call in the tail from n = 50,000 to 500,000 (a 1M-row window spent
# seconds per numeric feature there), and the limit differs from it by under 1 % relative (measured
# from 12,000 to 500,000), which moves no verdict.
LIMITING_N = 20_000


def ks_p_value(statistic: float, n_reference: int, n_current: int) -> float:
    """Two-sided asymptotic KS p-value, as `scipy.stats.ks_2samp(method="asymp")` computes it (up to
    `LIMITING_N`; beyond, the limiting distribution, within 1 % of it)."""
    if n_reference == 0 or n_current == 0:
        return 1.0
    from scipy import stats  # deferred here and below: importing scipy.stats takes ~0.5 s

    effective_n = n_reference * n_current / (n_reference + n_current)
    if effective_n > LIMITING_N:
        return float(np.clip(stats.kstwobign.sf(statistic * math.sqrt(effective_n)), 0.0, 1.0))
    return float(np.clip(stats.kstwo.sf(statistic, max(1, round(effective_n))), 0.0, 1.0))


def two_sample_numeric(reference: np.ndarray, current: np.ndarray) -> NumericComparison:
    """Exact KS statistic/p-value and 1-Wasserstein distance from one sort of each sample.

    Agrees with `scipy.stats.ks_2samp` and `scipy.stats.wasserstein_distance` (tested).
    """
    ref, cur = _sorted(reference), _sorted(current)
    if ref.size == 0 or cur.size == 0:
        return NumericComparison(0.0, 1.0, 0.0)
    ref_upto, cur_upto, support = _counts_at_or_below(ref, cur)
    ref_cdf = ref_upto / ref.size
    cur_cdf = cur_upto / cur.size
    gaps = np.abs(ref_cdf - cur_cdf)
    ks = float(gaps.max())
    wasserstein = float(np.sum(gaps[:-1] * np.diff(support)))
    if ref.size * cur.size <= 10_000:
        from scipy import stats

        # Small samples: the exact distribution, as scipy's default "auto" method does.
        p_value = float(stats.ks_2samp(ref, cur, method="exact").pvalue)
    else:
        p_value = ks_p_value(ks, ref.size, cur.size)
    return NumericComparison(ks, p_value, wasserstein)


def _sorted(values: np.ndarray) -> np.ndarray:
    """The values ascending; a check (one pass) spares the sort of values that already are, as the
    file report's, read back sorted from its spill."""
    array = np.asarray(values, dtype=np.float64)
    return array if array.size < 2 or bool(np.all(array[1:] >= array[:-1])) else np.sort(array)


def _counts_at_or_below(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How many reference and current values are <= each value of `support`, both sorted samples merged.

    The same numbers as `np.searchsorted(ref, support, side="right")` (and the same for `cur`), from
    one stable merge and a running count instead of a binary search per value (about twice as fast
    on 1M + 1M values).
    """
    both = np.concatenate([ref, cur])
    order = np.argsort(both, kind="stable")  # two sorted runs: a linear merge
    support = both[order]
    ref_upto = np.cumsum(order < ref.size)
    # Ties: every member of a run of equal values takes the count at the run's last member.
    last = np.empty(support.size, dtype=bool)
    last[:-1] = support[1:] != support[:-1]
    last[-1] = True
    run_end = np.flatnonzero(last)[np.cumsum(last) - last]
    ref_at = ref_upto[run_end]
    return ref_at, run_end + 1 - ref_at, support


def two_sample_binned(
    reference_counts: np.ndarray, current_counts: np.ndarray, edges: np.ndarray, low: float, high: float
) -> NumericComparison:
    """KS and Wasserstein from counts over right-closed bins `(edges[i-1], edges[i]]`.

    The first bin starts at `low` and the last ends at `high` (the pooled min and max), and mass is
    taken as spread evenly inside a bin. Bounds: the true KS lies in `[ks, ks + max_b max(r_b, c_b)]`
    and the true Wasserstein within `sum_b width_b * (r_b + c_b)` of the estimate, where r_b, c_b are
    the bin shares. Both bounds are returned.
    """
    ref = np.asarray(reference_counts, dtype=np.float64)
    cur = np.asarray(current_counts, dtype=np.float64)
    n_ref, n_cur = ref.sum(), cur.sum()
    if n_ref == 0 or n_cur == 0:
        return NumericComparison(0.0, 1.0, 0.0)
    ref_share, cur_share = ref / n_ref, cur / n_cur
    cdf_gap = np.cumsum(ref_share - cur_share)[:-1]  # at each inner edge
    ks = float(np.abs(cdf_gap).max()) if cdf_gap.size else 0.0
    bounds = np.concatenate([[min(low, edges[0])], edges, [max(high, edges[-1])]])
    widths = np.diff(bounds)
    # Linear CDFs inside a bin: the gap is linear too, so integrate |linear| exactly per bin.
    gap_start = np.concatenate([[0.0], cdf_gap])
    gap_end = np.concatenate([cdf_gap, [0.0]])
    wasserstein = float(np.sum(widths * _mean_abs_linear(gap_start, gap_end)))
    ks_bound = float(np.max(np.maximum(ref_share, cur_share)))
    wasserstein_bound = float(np.sum(widths * (ref_share + cur_share)))
    return NumericComparison(ks, ks_p_value(ks, int(n_ref), int(n_cur)), wasserstein, ks_bound, wasserstein_bound)


def _mean_abs_linear(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Mean of |f| over [0, 1] for f linear from `start` to `end`."""
    same_sign = start * end >= 0
    total = np.abs(start) + np.abs(end)
    crossing = np.divide(start**2 + end**2, 2 * total, out=np.zeros_like(total), where=total > 0)
    return np.where(same_sign, total / 2, crossing)


def shares(counts: np.ndarray) -> np.ndarray:
    """Counts to shares with `SHARE_FLOOR` added, renormalised."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    share = counts / total if total > 0 else np.full(counts.shape, 1.0 / max(1, counts.size))
    share = share + SHARE_FLOOR
    return share / share.sum()


def population_stability_index(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """PSI = sum (c - r) * ln(c / r) over bins (shares floored at `SHARE_FLOOR`)."""
    ref, cur = shares(reference_counts), shares(current_counts)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def jensen_shannon_distance(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Jensen-Shannon distance (square root of the divergence, base 2, so in [0, 1]).

    Same as `scipy.spatial.distance.jensenshannon(r, c, base=2)` on the raw shares (no floor).
    """
    ref = np.asarray(reference_counts, dtype=np.float64)
    cur = np.asarray(current_counts, dtype=np.float64)
    if ref.sum() == 0 or cur.sum() == 0:
        return 0.0
    from scipy import special

    ref, cur = ref / ref.sum(), cur / cur.sum()
    middle = (ref + cur) / 2
    divergence = (np.sum(special.rel_entr(ref, middle)) + np.sum(special.rel_entr(cur, middle))) / 2
    return float(math.sqrt(max(0.0, divergence / math.log(2))))


@dataclass(frozen=True)
class ChiSquare:
    statistic: float
    p_value: float
    dof: int
    cramers_v: float
    table: np.ndarray  # the 2 x k table after pooling; rows are reference and current


def chi_square(
    reference_counts: np.ndarray, current_counts: np.ndarray, min_expected: float = 5.0, pool_last: bool = False
) -> ChiSquare:
    """Chi-square test of homogeneity on a 2 x k table, rare cells pooled first.

    Cells whose expected count is under `min_expected` are pooled, rarest (by pooled count) first,
    until every pooled cell reaches it; that keeps the chi-square
    approximation honest for hundreds of sparse levels (the source of false alarms in naive tests).
    `pool_last` marks the last cell as values outside a vocabulary chosen by the reference (empty
    there by construction): it is pooled with the reference's rare levels before anything else.
    Without pooling it equals `scipy.stats.chi2_contingency(..., correction=False)`.
    """
    table = _pool_sparse_cells(
        np.asarray(reference_counts, float), np.asarray(current_counts, float), min_expected, pool_last
    )
    total = table.sum()
    if table.shape[1] < 2 or total == 0 or np.any(table.sum(axis=1) == 0):
        return ChiSquare(0.0, 1.0, 0, 0.0, table)
    from scipy import stats

    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / total
    statistic = float(np.sum((table - expected) ** 2 / expected))
    dof = table.shape[1] - 1
    return ChiSquare(statistic, float(stats.chi2.sf(statistic, dof)), dof, math.sqrt(statistic / total), table)


def _pool_sparse_cells(ref: np.ndarray, cur: np.ndarray, min_expected: float, pool_last: bool) -> np.ndarray:
    pooled_ref, pooled_cur = 0.0, 0.0
    if pool_last and ref.size:
        # The vocabulary was chosen by the reference, so rare levels are over-represented there:
        # a level seen once in the reference is in it, a level the reference missed is not. Only
        # levels frequent enough for that selection to be negligible keep a cell of their own;
        # the rest share one cell with the out-of-vocabulary values.
        ref, cur, pooled_ref, pooled_cur = ref[:-1], cur[:-1], float(ref[-1]), float(cur[-1])
        rare = ref < max(RARE_REFERENCE_COUNT, RARE_REFERENCE_SHARE * ref.sum())
        pooled_ref += float(ref[rare].sum())
        pooled_cur += float(cur[rare].sum())
        ref, cur = ref[~rare], cur[~rare]
    keep = (ref + cur) > 0
    ref, cur = ref[keep], cur[keep]
    total = ref.sum() + cur.sum() + pooled_ref + pooled_cur
    if total == 0:
        return np.zeros((2, 0))
    column_total = ref + cur
    smallest_row_share = min(ref.sum() + pooled_ref, cur.sum() + pooled_cur) / total
    order = np.argsort(column_total, kind="stable")  # rarest first
    kept_ref: list[float] = []
    kept_cur: list[float] = []
    for i in order:
        if column_total[i] * smallest_row_share >= min_expected:
            kept_ref.append(ref[i])
            kept_cur.append(cur[i])
            continue
        pooled_ref += ref[i]
        pooled_cur += cur[i]
        if (pooled_ref + pooled_cur) * smallest_row_share >= min_expected:
            kept_ref.append(pooled_ref)
            kept_cur.append(pooled_cur)
            pooled_ref = pooled_cur = 0.0
    if pooled_ref + pooled_cur > 0:
        if kept_ref:  # a remainder too small on its own joins the last pooled cell
            kept_ref[-1] += pooled_ref
            kept_cur[-1] += pooled_cur
        else:
            kept_ref.append(pooled_ref)
            kept_cur.append(pooled_cur)
    return np.array([kept_ref, kept_cur])


@dataclass(frozen=True)
class ProportionShift:
    """Two-proportion z-test plus Cohen's h effect size (|2 asin sqrt p1 - 2 asin sqrt p2|)."""

    reference_rate: float
    current_rate: float
    p_value: float
    cohens_h: float


def proportion_shift(
    reference_hits: int, reference_total: int, current_hits: int, current_total: int
) -> ProportionShift:
    """Did the rate of something (missing values, unseen categories) change between two windows?"""
    if reference_total == 0 or current_total == 0:
        return ProportionShift(0.0, 0.0, 1.0, 0.0)
    from scipy import stats

    p_ref, p_cur = reference_hits / reference_total, current_hits / current_total
    pooled = (reference_hits + current_hits) / (reference_total + current_total)
    variance = pooled * (1 - pooled) * (1 / reference_total + 1 / current_total)
    p_value = 1.0 if variance <= 0 else float(2 * stats.norm.sf(abs(p_ref - p_cur) / math.sqrt(variance)))
    cohens_h = abs(2 * math.asin(math.sqrt(p_ref)) - 2 * math.asin(math.sqrt(p_cur)))
    return ProportionShift(p_ref, p_cur, p_value, cohens_h)
