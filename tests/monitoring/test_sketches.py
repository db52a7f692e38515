"""Sketch laws: merge equals the sketch of the union; JSON round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from driftgate.errors import InvalidInput
from driftgate.monitoring.drift import ReferenceProfile, WindowSketch, merge_all

rng = np.random.default_rng(0)
PROFILE = ReferenceProfile.fit(
    {"x": rng.normal(size=2000), "city": rng.choice(["a", "b", "c"], 2000).astype(object)}, n_bins=20
)

numbers = hs.one_of(hs.floats(-1e6, 1e6, allow_nan=False), hs.just(float("nan")))
cities = hs.one_of(hs.sampled_from(["a", "b", "c", "new", "zz"]), hs.none())
rows = hs.lists(hs.tuples(numbers, cities), min_size=0, max_size=60)


def window(part: list[tuple[float, str | None]]) -> WindowSketch:
    return PROFILE.sketch(
        {
            "x": np.array([x for x, _ in part], dtype=np.float64),
            "city": np.array([c for _, c in part], dtype=object),
        }
    )


def assert_equal(left: WindowSketch, right: WindowSketch) -> None:
    a, b = left.to_dict(), right.to_dict()
    assert a["rows"] == b["rows"]
    for name in a["features"]:
        fa, fb = a["features"][name], b["features"][name]
        for key in fa:
            if key in ("mean", "m2"):
                assert fa[key] == pytest.approx(fb[key], rel=1e-9, abs=1e-6)
            else:
                assert fa[key] == fb[key], (name, key)


@settings(max_examples=60, deadline=None)
@given(rows, rows)
def test_merge_equals_sketch_of_union(first: list, second: list) -> None:
    assert_equal(window(first).merge(window(second)), window(first + second))


@settings(max_examples=30, deadline=None)
@given(rows, rows, rows)
def test_merge_is_associative_and_commutative(a: list, b: list, c: list) -> None:
    assert_equal(window(a).merge(window(b)).merge(window(c)), window(c).merge(window(a).merge(window(b))))


def test_json_round_trip() -> None:
    sketch = window([(1.0, "a"), (float("nan"), None), (3.0, "new")])
    restored = WindowSketch.from_dict(json.loads(json.dumps(sketch.to_dict())))
    assert_equal(restored, sketch)
    assert restored.features["city"].unseen_examples == ("new",)


def test_profile_round_trip_keeps_id_and_reference() -> None:
    restored = ReferenceProfile.from_dict(json.loads(json.dumps(PROFILE.to_dict())))
    assert restored.profile_id == PROFILE.profile_id
    assert_equal(restored.reference, PROFILE.reference)


def test_merging_sketches_of_different_profiles_is_refused() -> None:
    other = ReferenceProfile.fit({"x": np.arange(10.0)})
    with pytest.raises(InvalidInput, match="same reference profile"):
        window([]).merge(other.sketch({"x": np.arange(3.0)}))


def test_merge_all_of_replicas() -> None:
    parts = [window([(float(i), "a")]) for i in range(5)]
    assert merge_all(parts).rows == 5
