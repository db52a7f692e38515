"""The MMD embedding-drift test against a direct O(n^2) computation, its calibration, and its reservoirs."""

from __future__ import annotations

import doctest
import itertools
import json
import math

import numpy as np
import pytest
from scipy import stats

from driftgate.monitoring.drift import mmd
from driftgate.monitoring.drift.mmd import MMDReference, Projection, Reservoir, mmd_test


def _direct_mmd2(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    """Unbiased MMD^2 by its definition, pair by pair."""

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return math.exp(-float(np.sum((a - b) ** 2)) / (2 * sigma * sigma))

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(a, b) for a in x for b in y) / (m * n)
    return xx + yy - 2 * xy


def _direct_bandwidth(x: np.ndarray) -> float:
    squared = sorted(float(np.sum((a - b) ** 2)) for a, b in itertools.combinations(x, 2))
    return math.sqrt(squared[(len(squared) - 1) // 2] / 2)  # the lower median


@pytest.mark.parametrize("m,n,shift", [(30, 40, 0.0), (25, 25, 0.8), (12, 50, 0.3)])
def test_mmd2_and_bandwidth_equal_the_direct_computation(m: int, n: int, shift: float) -> None:
    rng = np.random.default_rng(m + n)
    x, y = rng.normal(size=(m, 5)), rng.normal(shift, 1.0, size=(n, 5))
    reference = MMDReference.fit(x, projection="none")
    result = mmd_test(reference, y, n_permutations=20)
    sigma = _direct_bandwidth(x)
    assert reference.bandwidth == pytest.approx(sigma, rel=1e-12)
    assert result.mmd2 == pytest.approx(_direct_mmd2(x, y, sigma), rel=1e-9, abs=1e-12)
    assert result.effect_size == pytest.approx(math.sqrt(max(result.mmd2, 0.0)))
    assert (result.n_reference, result.n_current) == (m, n)


def test_every_permutation_statistic_equals_the_direct_computation_on_its_split() -> None:
    # The permutation null comes from one matrix product for many splits: each must be the split's MMD^2.
    rng = np.random.default_rng(5)
    pooled = rng.normal(size=(20, 3))
    sigma, m = 1.3, 8
    kernel = mmd.rbf_kernel(pooled, sigma)
    np.fill_diagonal(kernel, 0.0)
    splits = np.zeros((6, 20))
    for row in splits:
        row[rng.choice(20, m, replace=False)] = 1.0
    fast = mmd._mmd2_of_splits(kernel, float(kernel.sum()), kernel.sum(axis=1), splits, m)
    for split, value in zip(splits, fast, strict=True):
        direct = _direct_mmd2(pooled[split == 1], pooled[split == 0], sigma)
        assert value == pytest.approx(direct, rel=1e-9, abs=1e-12)


def test_p_value_is_the_permutation_share_at_or_above_and_seeded() -> None:
    rng = np.random.default_rng(1)
    reference = MMDReference.fit(rng.normal(size=(60, 4)))
    current = rng.normal(size=(60, 4))
    a, b = mmd_test(reference, current, n_permutations=99, seed=3), mmd_test(reference, current, 99, seed=3)
    assert a == b
    assert a.p_value * 100 == pytest.approx(round(a.p_value * 100))  # (1 + count) / (1 + 99)
    assert 0.01 <= a.p_value <= 1.0
    moved = mmd_test(reference, current + 1.0, n_permutations=99)
    assert moved.p_value == pytest.approx(0.01) and moved.z_score > 3


def test_false_alarm_rate_on_calm_data_is_at_most_alpha() -> None:
    # Under the null the permutation p-value is uniform (super-uniform): at alpha = 0.05 the count of
    # rejections over 100 seeded repeats stays under the binomial(100, 0.05) 99.9 % quantile.
    repeats, rejections = 100, 0
    for seed in range(repeats):
        rng = np.random.default_rng(seed)
        reference = MMDReference.fit(rng.normal(size=(80, 16)), projection="none")
        rejections += mmd_test(reference, rng.normal(size=(80, 16)), n_permutations=99, seed=seed).p_value <= 0.05
    assert rejections <= stats.binom.ppf(0.999, repeats, 0.05)


def test_high_dimensional_rows_are_projected_and_both_sides_bounded() -> None:
    rng = np.random.default_rng(2)
    images = rng.random((600, 20, 20))
    projections: tuple[Projection, ...] = ("random", "pca")
    for projection in projections:
        reference = MMDReference.fit(images, max_rows=300, projection=projection, dim=16)
        assert reference.rows.shape == (300, 16)
        assert reference.projection is not None and reference.projection.shape == (400, 16)
        result = mmd_test(reference, rng.random((1200, 20, 20)), n_permutations=50, max_rows=200)
        assert (result.n_reference, result.n_current) == (300, 200)
        assert result.p_value > 0.01
        moved = mmd_test(reference, np.clip(rng.random((400, 20, 20)) + 0.1, 0, 1), n_permutations=50)
        assert moved.p_value < 0.05, projection
    # The projection is fixed by the seed: refitting gives the same map.
    again = MMDReference.fit(images, max_rows=300, dim=16)
    assert np.array_equal(again.projection, MMDReference.fit(images, max_rows=300, dim=16).projection)  # type: ignore[arg-type]


def test_pca_maps_the_reference_sample_to_its_principal_components() -> None:
    rng = np.random.default_rng(4)
    # Data on a 3-D subspace of 40 columns: PCA with dim 3 keeps every distance.
    rows = rng.normal(size=(200, 3)) @ rng.normal(size=(3, 40))
    reference = MMDReference.fit(rows, projection="pca", dim=3)
    assert mmd.median_bandwidth(reference.rows) == pytest.approx(mmd.median_bandwidth(rows), rel=1e-9)
    # the sample is the whole reference here (200 <= max_rows), in the reservoir's order
    assert reference.rows.shape == (200, 3)
    assert np.allclose(np.sort(reference.transform(rows), axis=0), np.sort(reference.rows, axis=0))


def test_standardise_weighs_columns_by_their_reference_spread() -> None:
    rng = np.random.default_rng(6)
    scales = np.array([1.0, 1000.0])
    reference_rows = rng.normal(size=(200, 2)) * scales
    current = reference_rows.copy()[:150] + np.array([1.0, 0.0])  # a 1-sd shift in the small column
    raw = mmd_test(MMDReference.fit(reference_rows, projection="none"), current, n_permutations=99)
    scaled = mmd_test(MMDReference.fit(reference_rows, projection="none", standardise=True), current, 99)
    assert scaled.p_value < 0.05 < raw.p_value


def test_reservoir_merge_equals_the_reservoir_of_the_union() -> None:
    rng = np.random.default_rng(7)
    parts = [rng.normal(size=(n, 3)) for n in (40, 700, 5)]
    seeds = (11, 12, 13)
    single = Reservoir.empty(3, 100)
    for rows, seed in zip(parts, seeds, strict=True):
        single = single.add(rows, np.random.default_rng(seed))
    replicas = [
        Reservoir.empty(3, 100).add(rows, np.random.default_rng(s)) for rows, s in zip(parts, seeds, strict=True)
    ]
    for order in ((0, 1, 2), (2, 0, 1), (1, 2, 0)):
        merged = replicas[order[0]].merge(replicas[order[1]]).merge(replicas[order[2]])
        assert np.array_equal(merged.rows, single.rows) and np.array_equal(merged.keys, single.keys)
        assert merged.seen == 745 and merged.rows.shape == (100, 3)
    back = Reservoir.from_dict(single.to_dict())
    assert np.array_equal(back.rows, single.rows) and back.seen == single.seen and back.capacity == 100


def test_a_merged_reservoir_is_a_uniform_sample_of_the_union() -> None:
    # One replica saw 900 rows, the other 100: the merged sample of 50 must hold ~10 % from the second.
    from_small = 0
    for seed in range(200):
        big = Reservoir.empty(1, 50).add(np.zeros(900), np.random.default_rng(2 * seed))
        small = Reservoir.empty(1, 50).add(np.ones(100), np.random.default_rng(2 * seed + 1))
        from_small += int(big.merge(small).rows.sum())
    # 200 x 50 draws, expected 1000 from the small side; hypergeometric sd per merge ~2.1, total ~30
    assert 850 < from_small < 1150


def test_replicas_sketch_with_a_stored_reference_and_the_merged_test_equals_the_single_one() -> None:
    rng = np.random.default_rng(8)
    reference = MMDReference.fit(rng.normal(size=(400, 50)), standardise=True, max_rows=200)
    stored = MMDReference.from_dict(json.loads(json.dumps(reference.to_dict())))
    window = rng.normal(0.2, 1.0, size=(900, 50))
    single = reference.sketch(window[:300], np.random.default_rng(1)).merge(
        reference.sketch(window[300:], np.random.default_rng(2))
    )
    replicas = [
        stored.sketch(window[:300], np.random.default_rng(1)),
        stored.sketch(window[300:], np.random.default_rng(2)),
    ]
    merged = Reservoir.from_dict(json.loads(json.dumps(replicas[1].to_dict()))).merge(replicas[0])
    assert mmd_test(stored, merged, n_permutations=99) == mmd_test(reference, single, n_permutations=99)
    assert merged.seen == 900 and mmd_test(stored, merged, n_permutations=99).p_value == pytest.approx(0.01)


def test_bad_inputs_are_refused() -> None:
    reference = MMDReference.fit(np.random.default_rng(0).normal(size=(10, 3)))
    with pytest.raises(ValueError, match="columns"):
        mmd_test(reference, np.zeros((10, 4)))
    with pytest.raises(ValueError, match="finite"):
        mmd_test(reference, np.full((10, 3), np.nan))
    with pytest.raises(ValueError, match="at least 2"):
        mmd_test(reference, np.zeros((1, 3)))


def test_docstring_example() -> None:
    assert doctest.testmod(mmd).failed == 0
