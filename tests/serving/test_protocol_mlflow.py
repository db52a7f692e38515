"""MLflow scoring protocol (`mlflow models serve` /invocations) decoding and encoding."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from driftgate.errors import BadRequest, InvalidInput, UnsupportedFormat
from driftgate.serving.protocols.mlflow import decode_mlflow, encode_mlflow
from driftgate.serving.result import PredictionResult

FEATURES = ["a", "b"]
JSON = "application/json"
EXPECTED = {"a": [1, 3], "b": ["x", "y"]}


@pytest.mark.parametrize(
    "obj",
    [
        {"dataframe_split": {"columns": ["a", "b"], "data": [[1, "x"], [3, "y"]]}},
        {"dataframe_split": {"columns": ["a", "b"], "index": [0, 1], "data": [[1, "x"], [3, "y"]]}},
        {"dataframe_records": [{"a": 1, "b": "x"}, {"a": 3, "b": "y"}]},
        {"instances": [{"a": 1, "b": "x"}, {"a": 3, "b": "y"}]},
        {"instances": [[1, "x"], [3, "y"]]},
        {"instances": {"a": [1, 3], "b": ["x", "y"]}},
        {"inputs": {"a": [1, 3], "b": ["x", "y"]}},
        {"inputs": [{"a": 1, "b": "x"}, {"a": 3, "b": "y"}]},
        {"inputs": [[1, "x"], [3, "y"]]},
    ],
)
def test_every_json_format_decodes_to_the_same_columns(obj: dict[str, object]) -> None:
    req = decode_mlflow(orjson.dumps(obj), JSON, FEATURES)
    assert req.columns == EXPECTED
    assert req.n_rows == 2


def test_params_and_content_type_parameters() -> None:
    body = orjson.dumps({"inputs": {"a": [1]}, "params": {"top_k": 2}})
    req = decode_mlflow(body, "application/json; charset=utf-8", ["a"])
    assert req.parameters == {"top_k": 2}
    assert decode_mlflow(body, "", ["a"]).columns == {"a": [1]}


def test_csv_with_header_types_columns_like_pandas() -> None:
    body = b"a,b,c,d,e\n1,x,1.5,True,\n2,y,,False,z\n"
    req = decode_mlflow(body, "text/csv", FEATURES)
    assert req.n_rows == 2
    np.testing.assert_array_equal(req.columns["a"], np.array([1, 2]))
    assert req.columns["a"].dtype == np.int64
    assert req.columns["b"] == ["x", "y"]
    np.testing.assert_array_equal(req.columns["c"], np.array([1.5, np.nan]))
    np.testing.assert_array_equal(req.columns["d"], np.array([True, False]))
    assert req.columns["e"] == [None, "z"]


def test_csv_from_pandas_to_csv_drops_the_index_column() -> None:
    import pandas as pd

    frame = pd.DataFrame({"a": [1.0, 2.5], "b": ["x", "y, z"]})
    req = decode_mlflow(frame.to_csv().encode(), "text/csv; charset=utf-8", FEATURES)
    assert set(req.columns) == {"a", "b"}
    np.testing.assert_array_equal(req.columns["a"], [1.0, 2.5])
    assert req.columns["b"] == ["x", "y, z"]


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b'{"data": [[1, 2]]}', r"expected exactly one of the keys \['dataframe_split', .*'inputs'\], got keys"),
        (b'{"instances": [[1, 2]], "inputs": [[1, 2]]}', "expected exactly one of the keys"),
        (b"[[1, 2]]", "expected a JSON object, got array"),
        (b"{oops", "expected valid JSON"),
        (b'{"inputs": [[1, 2]], "params": []}', "'params': expected an object"),
    ],
)
def test_bad_json_requests(body: bytes, match: str) -> None:
    with pytest.raises(BadRequest, match=match):
        decode_mlflow(body, JSON, FEATURES)


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ({"dataframe_records": [[1, 2]]}, r"'dataframe_records\[0\]': expected an object"),
        ({"dataframe_records": []}, "'dataframe_records': expected at least one row"),
        ({"inputs": {"a": [1, 2], "b": [1]}}, "'inputs.b': expected 2 values to match column 'a', got 1"),
        ({"inputs": {"a": 1}}, "'inputs.a': expected an array of values"),
        ({"inputs": {}}, "'inputs': expected at least one column"),
        ({"inputs": {"a": []}}, "'inputs': expected at least one row"),
        ({"instances": [[1, 2, 3]]}, r"'instances\[0\]': expected 2 values"),
        ({"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}, r"'dataframe_split.data\[0\]': expected 1"),
    ],
)
def test_invalid_json_input(obj: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        decode_mlflow(orjson.dumps(obj), JSON, FEATURES)


@pytest.mark.parametrize(
    ("body", "match", "error"),
    [
        (b"", "got an empty body", BadRequest),
        (b"a,b\n", "expected at least one data row", InvalidInput),
        (b"a,b\n1,2\n3\n", "CSV row 2: expected 2 values", InvalidInput),
        (b"a,b\n\xff\xfe,1\n", "expected UTF-8 text", BadRequest),
    ],
)
def test_bad_csv(body: bytes, match: str, error: type[Exception]) -> None:
    with pytest.raises(error, match=match):
        decode_mlflow(body, "text/csv", FEATURES)


@pytest.mark.parametrize(
    ("content_type", "match"),
    [
        ("application/x-www-form-urlencoded", "expected 'application/json' or 'text/csv'"),
        ("application/json; charset=latin-1", "expected utf-8, got 'latin-1'"),
    ],
)
def test_unsupported_content_types(content_type: str, match: str) -> None:
    with pytest.raises(UnsupportedFormat, match=match):
        decode_mlflow(b'{"inputs": [[1, 2]]}', content_type, FEATURES)


def test_encode_is_predictions_only() -> None:
    result = PredictionResult(
        predictions=[np.int64(1), np.int64(0)],
        ids=["a", "b"],
        model="m",
        version=1,
        probabilities=np.array([[0.1, 0.9], [0.8, 0.2]]),
        classes=[0, 1],
    )
    assert orjson.loads(encode_mlflow(result)) == {"predictions": [1, 0]}
    floats = PredictionResult(predictions=np.array([0.5, 1.5], dtype=np.float32), ids=[], model="m", version=1)
    assert orjson.loads(encode_mlflow(floats)) == {"predictions": [0.5, 1.5]}
