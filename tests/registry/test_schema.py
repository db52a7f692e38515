from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftgate.errors import InvalidInput
from driftgate.registry.schema import MAX_ENUMERATED_CATEGORIES, InputSchema


@pytest.fixture
def schema() -> InputSchema:
    frame = pd.DataFrame(
        {"x": [1.0, 2.5, np.nan], "n": [1, 2, 3], "c": ["a", "b", "a"], "flag": [True, False, True]}
    )
    return InputSchema.infer(frame)


def test_inference(schema: InputSchema) -> None:
    kinds = {f.name: (f.kind, f.nullable) for f in schema.features}
    assert kinds == {
        "x": ("numeric", True),
        "n": ("integer", False),
        "c": ("categorical", False),
        "flag": ("boolean", False),
    }
    assert schema.feature("x").min == 1.0 and schema.feature("x").max == 2.5
    assert schema.feature("c").categories == ("a", "b")


def test_round_trip_through_dict(schema: InputSchema) -> None:
    assert InputSchema.from_dict(schema.to_dict()) == schema


def test_to_frame_orders_columns_and_ignores_extras(schema: InputSchema) -> None:
    frame = schema.to_frame({"flag": [1], "c": ["z"], "n": [4], "x": [None], "extra": ["q"]}, 1)
    assert list(frame.columns) == ["x", "n", "c", "flag"]
    assert np.isnan(frame["x"].iloc[0])


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"x": [1.0], "c": ["a"], "flag": [True]}, "missing feature(s) 'n'"),
        ({"x": [1.0], "n": ["seven"], "c": ["a"], "flag": [True]}, "feature 'n' expects a number, got str 'seven'"),
        ({"x": [1.0], "n": [None], "c": ["a"], "flag": [True]}, "feature 'n' is null at row 0"),
        ({"x": [1.0], "n": [1], "c": [None], "flag": [True]}, "feature 'c' is null at row 0"),
        ({"x": [1.0], "n": [1], "c": [{"a": 1}], "flag": [True]}, "feature 'c' expects a category"),
        ({"x": [1.0, 2.0], "n": [1], "c": ["a"], "flag": [True]}, "feature 'x': expected 1 values, got 2"),
        ({"x": [[1.0, 2.0]], "n": [1], "c": ["a"], "flag": [True]}, "feature 'x'"),
    ],
)
def test_bad_input_names_the_feature(schema: InputSchema, columns: dict, message: str) -> None:
    with pytest.raises(InvalidInput) as err:
        schema.to_frame(columns, 1)
    assert message in err.value.message
    assert err.value.status_code == 422


def test_numeric_features_converted_at_once_match_one_by_one(schema: InputSchema) -> None:
    """Numeric features go through numpy in one call when they can; values and types must be what
    the per-column path gives (nulls as NaN where allowed, booleans and numeric text as numbers)."""
    columns = {"x": [None, 2, "3.5"], "n": [1, 2.5, True], "c": ["a", "b", "a"], "flag": [True, 0, 1.0]}
    at_once = schema.to_columns(columns, 3)
    for name in ("x", "n", "flag"):
        one = schema._convert(schema.feature(name), columns[name], 3)
        assert at_once[name].dtype == one.dtype == np.float64
        np.testing.assert_array_equal(at_once[name], one)
    assert at_once["c"].tolist() == ["a", "b", "a"]


def test_unknown_category_policy(schema: InputSchema) -> None:
    row = {"x": [1.0], "n": [1], "c": ["zebra"], "flag": [True]}
    assert schema.to_frame(row, 1)["c"].iloc[0] == "zebra"
    with pytest.raises(InvalidInput, match="unknown category 'zebra'"):
        schema.with_unknown_categories("reject").to_frame(row, 1)


def test_high_cardinality_is_not_enumerated() -> None:
    frame = pd.DataFrame({"id": [f"u{i}" for i in range(MAX_ENUMERATED_CATEGORIES + 1)]})
    assert InputSchema.infer(frame).feature("id").categories is None


def test_frame_of_matches_the_public_constructor_and_keeps_categoricals_as_objects() -> None:
    from driftgate.registry.schema import frame_of, merge_columns

    frame = pd.DataFrame({"x": [1.5, None, 3.0], "n": [1, 2, 3], "c": ["a", None, "b"]})
    schema = InputSchema.infer(frame)
    request = {"c": ["b", "a", None], "n": [4, 5, 6], "x": [0.5, 1.0, None], "extra": [1, 2, 3]}
    columns = schema.to_columns(request, 3)
    assert list(columns) == ["x", "n", "c"]  # the model's order, extras dropped
    fast = frame_of(columns)
    slow = pd.DataFrame({k: pd.Series(v, dtype=object) if v.dtype == object else v for k, v in columns.items()})
    pd.testing.assert_frame_equal(fast, slow, check_column_type=False)
    assert fast["c"].dtype == object and fast["x"].dtype == np.float64
    assert schema.to_frame(request, 3).equals(fast)

    merged = frame_of(merge_columns([columns, schema.to_columns({"c": ["a"], "n": [7], "x": [2.0]}, 1)]))
    assert merged.shape == (4, 3) and merged["n"].tolist() == [4.0, 5.0, 6.0, 7.0]
    assert merged["c"].tolist()[:2] == ["b", "a"] and merged.index.tolist() == [0, 1, 2, 3]
