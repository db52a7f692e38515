"""Native protocol: `{"instances": ...}` / `{"dataframe_split": ...}` in, predictions out."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from driftgate.errors import BadRequest, InvalidInput
from driftgate.serving.protocols.native import decode_native, encode_native
from driftgate.serving.result import PredictionResult

FEATURES = ["age", "color", "score"]


def _body(obj: object) -> bytes:
    return orjson.dumps(obj)


def test_records_decode_to_columns_keeping_values_and_extra_keys() -> None:
    body = _body(
        {
            "instances": [
                {"age": 30, "color": "red", "score": 1.5, "extra": True},
                {"age": None, "color": "blue", "score": 2.0, "extra": False},
            ]
        }
    )
    req = decode_native(body, FEATURES)
    assert req.n_rows == 2
    assert req.columns == {
        "age": [30, None],
        "color": ["red", "blue"],
        "score": [1.5, 2.0],
        "extra": [True, False],
    }
    assert req.parameters == {}


def test_records_with_different_keys_fill_missing_with_none() -> None:
    req = decode_native(_body({"instances": [{"age": 1}, {"color": "x"}]}), FEATURES)
    assert req.columns == {"age": [1, None], "color": [None, "x"]}


def test_records_of_one_size_but_other_keys_are_not_taken_for_the_first_rows_keys() -> None:
    rows = [{"age": 1, "color": "a"}, {"age": 2, "score": 0.5}, {"color": "c", "age": 3}]
    req = decode_native(_body({"instances": rows}), FEATURES)
    assert req.columns == {"age": [1, 2, 3], "color": ["a", None, "c"], "score": [None, 0.5, None]}


def test_records_with_keys_in_any_order_decode_by_name() -> None:
    req = decode_native(_body({"instances": [{"age": 1, "color": "a"}, {"color": "b", "age": 2}]}), FEATURES)
    assert req.columns == {"age": [1, 2], "color": ["a", "b"]}


def test_rows_follow_feature_order() -> None:
    req = decode_native(_body({"instances": [[1, "a", 0.5], [2, "b", 0.25]]}), FEATURES)
    assert req.columns == {"age": [1, 2], "color": ["a", "b"], "score": [0.5, 0.25]}
    assert req.n_rows == 2


def test_single_feature_accepts_scalars() -> None:
    req = decode_native(_body({"instances": [1.0, 2.0, 3.0]}), ["x"])
    assert req.columns == {"x": [1.0, 2.0, 3.0]}
    assert req.n_rows == 3


def test_dataframe_split_with_index_and_parameters() -> None:
    body = _body(
        {
            "dataframe_split": {"columns": ["score", "age"], "data": [[0.1, 5], [0.2, 6]], "index": [10, 11]},
            "parameters": {"explain": True},
        }
    )
    req = decode_native(body, FEATURES)
    assert req.columns == {"score": [0.1, 0.2], "age": [5, 6]}
    assert req.parameters == {"explain": True}


def test_dataframe_split_without_columns_is_positional() -> None:
    req = decode_native(_body({"dataframe_split": {"data": [[1, "a", 0.5]]}}), FEATURES)
    assert req.columns == {"age": [1], "color": ["a"], "score": [0.5]}


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ({"instances": []}, "'instances': expected at least one row, got an empty array"),
        ({"instances": {"age": 1}}, "'instances': expected an array of rows, got object"),
        ({"instances": [[1, "a"]]}, r"'instances\[0\]': expected 3 values .*\['age', 'color', 'score'\].*got 2"),
        ({"instances": [[1, "a", 2], 5]}, r"'instances\[1\]': expected an array of 3 values .*got number"),
        ({"instances": [{"age": 1}, [1, 2, 3]]}, r"'instances\[1\]': expected an object .*got array"),
        ({"instances": [{}, {}]}, "expected rows with feature values"),
        ({"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}, r"'dataframe_split.data\[0\]': expected 2"),
        ({"dataframe_split": {"columns": ["a", "a"], "data": [[1, 2]]}}, r"expected unique names.*\['a'\]"),
        ({"dataframe_split": {"columns": "a", "data": [[1]]}}, "'dataframe_split.columns': expected an array"),
        ({"dataframe_split": {"columns": ["a"]}}, "'dataframe_split.data': expected an array of rows"),
        ({"dataframe_split": {"columns": ["a"], "data": []}}, "'dataframe_split.data': expected at least one row"),
        ({"dataframe_split": {"columns": ["a"], "data": [[1]], "index": [1, 2]}}, "expected 1 entries"),
        ({"dataframe_split": [[1]]}, "'dataframe_split': expected an object"),
    ],
)
def test_invalid_input_names_field_and_expectation(obj: object, match: str) -> None:
    with pytest.raises(InvalidInput, match=match) as err:
        decode_native(_body(obj), FEATURES)
    assert err.value.status_code == 422


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"", "expected a JSON object, got an empty body"),
        (b"{not json", "expected valid JSON, got a parse error"),
        (b"[1, 2]", "expected a JSON object, got array"),
        (b'"x"', "expected a JSON object, got string"),
        (b'{"rows": []}', r"expected exactly one of 'instances' or 'dataframe_split', got keys \['rows'\]"),
        (b'{"instances": [[1]], "dataframe_split": {}}', "got both"),
        (b'{"instances": [1], "parameters": 3}', "'parameters': expected an object, got number"),
    ],
)
def test_bad_request(body: bytes, match: str) -> None:
    with pytest.raises(BadRequest, match=match) as err:
        decode_native(body, ["x"])
    assert err.value.status_code == 400


def test_encode_classifier_with_numpy_values() -> None:
    result = PredictionResult(
        predictions=[np.int64(1), np.int64(0)],
        ids=["p1", "p2"],
        model="churn",
        version=3,
        probabilities=np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32),
        classes=[np.int64(0), np.int64(1)],
    )
    out = orjson.loads(encode_native(result))
    assert out == {
        "predictions": [1, 0],
        "probabilities": [[0.25, 0.75], [0.5, 0.5]],
        "classes": [0, 1],
        "ids": ["p1", "p2"],
        "model": "churn",
        "version": 3,
    }
    assert list(out) == ["predictions", "probabilities", "classes", "ids", "model", "version"]


def test_encode_regression_omits_probabilities_classes_and_status() -> None:
    result = PredictionResult(predictions=np.array([1.5, 2.5]), ids=["a", "b"], model="m", version=1)
    assert orjson.loads(encode_native(result)) == {
        "predictions": [1.5, 2.5],
        "ids": ["a", "b"],
        "model": "m",
        "version": 1,
    }


def test_encode_status_and_deferred_rows() -> None:
    result = PredictionResult(
        predictions=np.array(["yes", None], dtype=object),
        ids=["a", "b"],
        model="m",
        version=2,
        classes=["no", "yes"],
        status=["ok", "review"],
    )
    out = orjson.loads(encode_native(result))
    assert out["predictions"] == ["yes", None]
    assert out["status"] == ["ok", "review"]
    assert out["classes"] == ["no", "yes"]


def test_round_trip_rows_to_columns_and_back() -> None:
    rows = [[float(i), f"c{i}", i * 0.5] for i in range(50)]
    req = decode_native(_body({"instances": rows}), FEATURES)
    rebuilt = [list(r) for r in zip(*(req.columns[f] for f in FEATURES), strict=True)]
    assert rebuilt == rows
