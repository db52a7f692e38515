"""Statistics against scipy on the same data, and the sketch error bounds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from driftgate.monitoring.drift import statistics as st
from driftgate.monitoring.drift.binning import NumericBinning
from driftgate.monitoring.drift.corrections import benjamini_hochberg, holm


@pytest.mark.parametrize("n_ref,n_cur,shift", [(40, 60, 0.3), (500, 800, 0.0), (20_000, 15_000, 0.05)])
def test_raw_ks_and_wasserstein_equal_scipy(n_ref: int, n_cur: int, shift: float) -> None:
    rng = np.random.default_rng(n_ref)
    ref, cur = rng.normal(size=n_ref), rng.normal(shift, 1.2, size=n_cur)
    ours = st.two_sample_numeric(ref, cur)
    # Like scipy's "auto", exact p-values for small samples; ours switches on n * m <= 10,000.
    scipy_ks = stats.ks_2samp(ref, cur, method="exact" if n_ref * n_cur <= 10_000 else "asymp")
    assert ours.ks_statistic == pytest.approx(scipy_ks.statistic, abs=1e-12)
    assert ours.ks_p_value == pytest.approx(scipy_ks.pvalue, rel=1e-6, abs=1e-12)
    assert ours.wasserstein == pytest.approx(stats.wasserstein_distance(ref, cur), rel=1e-9)


@pytest.mark.parametrize("n", [30_000, 100_000])
@pytest.mark.parametrize("statistic", [0.002, 0.005, 0.01])
def test_large_sample_ks_p_value_is_the_limit_within_one_percent_of_scipy(n: int, statistic: float) -> None:
    # scipy's kstwo.sf takes seconds per call here; the limiting distribution is immediate.
    effective_n = round(n * n / (2 * n))
    expected = stats.kstwo.sf(statistic, effective_n)
    if expected > 1e-300:
        assert st.ks_p_value(statistic, n, n) == pytest.approx(expected, rel=0.01)


def test_ties_in_discrete_values_match_scipy() -> None:
    rng = np.random.default_rng(3)
    ref, cur = rng.integers(0, 5, 3000).astype(float), rng.integers(0, 6, 4000).astype(float)
    ours = st.two_sample_numeric(ref, cur)
    assert ours.ks_statistic == pytest.approx(stats.ks_2samp(ref, cur).statistic)
    assert ours.wasserstein == pytest.approx(stats.wasserstein_distance(ref, cur))


def test_chi_square_equals_scipy_without_sparse_cells() -> None:
    ref, cur = np.array([500, 300, 200]), np.array([450, 350, 260])
    ours = st.chi_square(ref, cur)
    expected = stats.chi2_contingency(np.array([ref, cur]), correction=False)
    assert ours.statistic == pytest.approx(expected.statistic)
    assert ours.p_value == pytest.approx(expected.pvalue)
    assert ours.dof == expected.dof


def test_chi_square_pools_sparse_cells_until_expected_counts_reach_five() -> None:
    ref = np.array([1000, 3, 2, 1, 0, 4])
    cur = np.array([900, 1, 0, 2, 1, 3])
    result = st.chi_square(ref, cur)
    assert result.dof == 1  # the five rare levels became one cell


def test_jensen_shannon_and_psi() -> None:
    ref, cur = np.array([10.0, 20, 30, 40]), np.array([25.0, 25, 25, 25])
    assert st.jensen_shannon_distance(ref, cur) == pytest.approx(jensenshannon(ref, cur, base=2))
    share_ref, share_cur = st.shares(ref), st.shares(cur)
    assert st.population_stability_index(ref, cur) == pytest.approx(
        np.sum((share_cur - share_ref) * np.log(share_cur / share_ref))
    )


def test_proportion_shift_matches_scipy_chi2_on_two_by_two() -> None:
    shift = st.proportion_shift(30, 1000, 60, 1000)
    table = np.array([[30, 970], [60, 940]])
    assert shift.p_value == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue)


def test_holm_and_bh_match_hand_computation() -> None:
    p = [0.01, 0.04, 0.03, 0.5]
    assert holm(p) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert benjamini_hochberg(p) == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.5])


@pytest.mark.parametrize("shift,scale", [(0.0, 1.0), (0.2, 1.0), (0.0, 1.5), (1.0, 0.7)])
def test_binned_statistics_stay_within_their_error_bounds(shift: float, scale: float) -> None:
    rng = np.random.default_rng(11)
    ref, cur = rng.normal(size=50_000), rng.normal(shift, scale, size=30_000)
    binning = NumericBinning.fit(ref, n_bins=100)
    exact = st.two_sample_numeric(ref, cur)
    low, high = min(ref.min(), cur.min()), max(ref.max(), cur.max())
    binned = st.two_sample_binned(binning.count(ref), binning.count(cur), binning.edges, low, high)
    assert binned.ks_statistic <= exact.ks_statistic + 1e-12
    assert exact.ks_statistic <= binned.ks_statistic + binned.ks_error_bound
    assert abs(binned.wasserstein - exact.wasserstein) <= binned.wasserstein_error_bound
    # In practice the error is far below the proven bound: under 0.01 sd for location shifts; when the
    # current data spreads far beyond the reference range the outer bins cost up to ~10 % of the distance.
    assert abs(binned.wasserstein - exact.wasserstein) < max(0.01, 0.11 * exact.wasserstein)
    assert abs(binned.ks_statistic - exact.ks_statistic) < 0.01
