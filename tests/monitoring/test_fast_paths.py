"""The speed-ups give the answers of the plain code they replaced: each fast path against it."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as hs

from driftgate.monitoring.drift.binning import NumericBinning, category_counts
from driftgate.monitoring.drift.kinds import FeatureKind, canonical, level
from driftgate.monitoring.drift.sketches import NumericSketch
from driftgate.monitoring.drift.statistics import _counts_at_or_below
from driftgate.monitoring.files.sample import RowSample
from driftgate.monitoring.files.spill import SortedSpill

finite_or_not = hs.one_of(
    hs.floats(-1e6, 1e6),
    hs.sampled_from([float("nan"), float("inf"), -float("inf")]),
    hs.sampled_from([0.0, -0.0, 1.0, 2.5, -3.0]),  # lands on edges
)


def plain_count(binning: NumericBinning, values: np.ndarray) -> np.ndarray:
    finite = values[np.isfinite(values)]
    return np.bincount(np.searchsorted(binning.edges, finite, side="left"), minlength=binning.n_bins)


@settings(max_examples=60, deadline=None)
@given(hs.lists(finite_or_not, min_size=0, max_size=700), hs.lists(hs.sampled_from([0.0, 1.0, 2.5, -3.0]), max_size=3))
def test_sorted_bin_counts_equal_one_search_per_value(values: list[float], extra_edges: list[float]) -> None:
    rng = np.random.default_rng(len(values))
    binning = NumericBinning.fit(np.concatenate([rng.normal(size=300), extra_edges]), n_bins=20)
    array = np.asarray(values, dtype=np.float64)
    big = np.tile(array, 300 // max(1, array.size) + 1)  # past SORT_COUNT_MIN_ROWS
    for sample in (array, big):
        assert binning.count(sample).tolist() == plain_count(binning, sample).tolist()
        sketch = NumericSketch.of(binning, sample)
        assert sketch.counts.tolist() == plain_count(binning, sample).tolist()
        finite = sample[np.isfinite(sample)]
        if finite.size:
            assert (sketch.minimum, sketch.maximum, sketch.count) == (finite.min(), finite.max(), finite.size)
            assert sketch.m2 == float(np.sum((finite - finite.mean()) ** 2))


@settings(max_examples=80, deadline=None)
@given(
    hs.lists(hs.sampled_from([-1.0, -0.0, 0.0, 0.5, 2.0]) | hs.floats(-5, 5), min_size=1, max_size=60),
    hs.lists(hs.sampled_from([-1.0, -0.0, 0.0, 0.5, 2.0]) | hs.floats(-5, 5), min_size=1, max_size=60),
)
def test_merged_counts_equal_searchsorted(ref: list[float], cur: list[float]) -> None:
    ref_sorted, cur_sorted = np.sort(np.asarray(ref)), np.sort(np.asarray(cur))
    support = np.concatenate([ref_sorted, cur_sorted])
    support.sort(kind="mergesort")
    ref_at, cur_at, merged = _counts_at_or_below(ref_sorted, cur_sorted)
    assert merged.tobytes() == support.tobytes()
    assert ref_at.tolist() == np.searchsorted(ref_sorted, support, side="right").tolist()
    assert cur_at.tolist() == np.searchsorted(cur_sorted, support, side="right").tolist()


def plain_category_counts(values: np.ndarray) -> tuple[list[str], list[int], int]:
    """Each value spelled out on its own (`kinds.level`), then counted: what counting distinct values
    first must give (True, 1 and 1.0 hash alike but are different levels)."""
    texts = [level(v, FeatureKind.CATEGORICAL) for v in values.tolist()]
    present = sorted(t for t in texts if t is not None)  # no numpy strings: they drop trailing NULs
    distinct = sorted(set(present))
    return distinct, [present.count(t) for t in distinct], sum(t is None for t in texts)


@settings(max_examples=80, deadline=None)
@given(
    hs.lists(
        hs.one_of(
            hs.text(max_size=3),
            hs.none(),
            hs.just(float("nan")),
            hs.integers(-2, 2),
            hs.booleans(),
            hs.just(1.0),
            hs.just(np.str_("a")),
        ),
        max_size=40,
    )
)
def test_object_category_counts_equal_the_string_conversion(values: list[object]) -> None:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    assert category_counts(array) == plain_category_counts(array)
    assert canonical(array, FeatureKind.CATEGORICAL).tolist() == [level(v, FeatureKind.CATEGORICAL) for v in values]


def test_string_arrays_have_no_missing_values() -> None:
    assert category_counts(np.array(["b", "a", "b"])) == (["a", "b"], [1, 2], 0)


def plain_row_sample(batches: list[pa.RecordBatch], size: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    keys = np.concatenate([rng.random(batch.num_rows) for batch in batches])
    table = pa.Table.from_batches(batches)
    keep = np.argsort(keys)[:size]
    return {name: table.column(name).to_numpy()[keep] for name in table.column_names}


@settings(max_examples=30, deadline=None)
@given(hs.lists(hs.integers(0, 70), min_size=1, max_size=8), hs.integers(1, 60))
def test_row_sample_is_the_bottom_k_in_key_order(sizes: list[int], size: int) -> None:
    from driftgate.monitoring.drift.binning import FeatureKind

    start, batches = 0, []
    for rows in sizes:
        index = np.arange(start, start + rows)
        schema = pa.schema({"x": pa.float64(), "c": pa.string()})
        batches.append(pa.record_batch({"x": index.astype(np.float64), "c": [f"r{i}" for i in index]}, schema=schema))
        start += rows
    sample = RowSample(size, seed=3)
    for batch in batches:
        sample.add(batch, {"x": FeatureKind.NUMERIC, "c": FeatureKind.CATEGORICAL})
    expected = plain_row_sample(batches, size, seed=3)
    assert sample.columns["x"].tolist() == expected["x"].tolist()
    assert sample.columns["c"].tolist() == expected["c"].tolist()


def test_spill_round_trip_and_budget() -> None:
    with SortedSpill(limit=8 * 10) as spill:
        first, empty = spill.put(np.arange(6.0)), spill.put(np.zeros(0))
        assert spill.get(first).tolist() == list(range(6)) and spill.get(empty).size == 0
        assert spill.put(np.arange(5.0)) == -1 and not spill.open  # 11 values > 80 bytes: closed for good
        assert spill.put(np.arange(1.0)) == -1
