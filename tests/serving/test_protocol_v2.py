"""Open Inference Protocol (V2) REST: decoding, encoding, and tritonclient wire compatibility.

Requests are built by `tritonclient.http` itself and responses parsed by it, so what passes
here is what a real Triton client sends and reads (no server needed).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from driftgate.errors import BadRequest, InvalidInput
from driftgate.serving.protocols.v2 import (
    HEADER_LENGTH,
    RequestedOutput,
    V2Options,
    decode_infer,
    encode_infer,
    model_metadata,
    server_metadata,
)
from driftgate.serving.result import PredictionResult

FEATURES = ["age", "income", "color"]
NUMERIC = [True, True, False]


def _input(name: str, array: np.ndarray, datatype: str, binary: bool) -> triton.InferInput:
    tensor = triton.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


def _request(inputs: list[triton.InferInput], **kwargs: Any) -> tuple[bytes, int | None]:
    """Exactly the bytes tritonclient would POST, and its Inference-Header-Content-Length."""
    return triton.InferenceServerClient.generate_request_body(inputs, **kwargs)


def _parse(body: bytes, headers: dict[str, str]) -> triton.InferResult:
    length = headers.get(HEADER_LENGTH)
    return triton.InferResult.from_response_body(body, verbose=False, header_length=int(length) if length else None)


def _per_feature_inputs(binary: bool) -> list[triton.InferInput]:
    return [
        _input("age", np.array([31, 45, 27], dtype=np.int64), "INT64", binary),
        _input("income", np.array([[1.5], [2.5], [3.25]], dtype=np.float32), "FP32", binary),
        _input("color", np.array(["red", "grün", ""], dtype=object), "BYTES", binary),
    ]


def _classifier(n: int = 3) -> PredictionResult:
    proba = np.linspace(0.0, 1.0, n)
    return PredictionResult(
        predictions=[int(p > 0.5) for p in proba],
        ids=[f"id{i}" for i in range(n)],
        model="churn",
        version=4,
        probabilities=np.column_stack([1 - proba, proba]),
        classes=[0, 1],
    )


# --------------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("binary", [False, True])
def test_tritonclient_one_tensor_per_feature(binary: bool) -> None:
    body, header_length = _request(_per_feature_inputs(binary), request_id="req-7")
    assert (header_length is not None) == binary
    req, options = decode_infer(body, header_length, FEATURES, NUMERIC)
    assert req.n_rows == 3
    np.testing.assert_array_equal(req.columns["age"], [31, 45, 27])
    assert req.columns["age"].dtype == np.int64
    np.testing.assert_array_equal(req.columns["income"], np.array([1.5, 2.5, 3.25], dtype=np.float32))
    assert req.columns["color"] == ["red", "grün", ""]
    # tritonclient asks for binary outputs whenever it names none.
    assert options == V2Options(id="req-7", outputs=(), binary_data_output=True)


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize(("datatype", "dtype"), [("FP32", np.float32), ("FP64", np.float64), ("INT32", np.int32)])
def test_tritonclient_single_matrix_tensor(binary: bool, datatype: str, dtype: type) -> None:
    matrix = np.arange(12, dtype=dtype).reshape(4, 3)
    body, header_length = _request([_input("input__0", matrix, datatype, binary)])
    req, _ = decode_infer(body, header_length, ["a", "b", "c"], [True, True, True])
    assert req.n_rows == 4
    for j, name in enumerate("abc"):
        np.testing.assert_array_equal(req.columns[name], matrix[:, j])
        assert req.columns[name].flags.c_contiguous


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize(
    ("datatype", "values"),
    [
        ("BOOL", np.array([True, False, True])),
        ("UINT8", np.array([0, 7, 255], dtype=np.uint8)),
        ("UINT16", np.array([0, 7, 65535], dtype=np.uint16)),
        ("UINT32", np.array([0, 7, 2**32 - 1], dtype=np.uint32)),
        ("UINT64", np.array([0, 7, 2**63], dtype=np.uint64)),
        ("INT8", np.array([-128, 0, 127], dtype=np.int8)),
        ("INT16", np.array([-5, 0, 5], dtype=np.int16)),
        ("INT32", np.array([-5, 0, 5], dtype=np.int32)),
        ("INT64", np.array([-(2**62), 0, 2**62], dtype=np.int64)),
        ("FP16", np.array([0.5, -1.0, 2.0], dtype=np.float16)),
        ("FP32", np.array([0.5, -1.0, 2.0], dtype=np.float32)),
        ("FP64", np.array([0.1, -1e300, 2.0])),
    ],
)
def test_every_numeric_datatype(binary: bool, datatype: str, values: np.ndarray) -> None:
    body, header_length = _request([_input("x", values, datatype, binary)])
    req, _ = decode_infer(body, header_length, ["x"], [True])
    np.testing.assert_array_equal(req.columns["x"], values)
    assert req.columns["x"].dtype == values.dtype


def test_json_request_with_nested_data_outputs_and_parameters() -> None:
    request = {
        "id": "abc",
        "parameters": {"binary_data_output": False, "trace": "on"},
        "inputs": [{"name": "m", "shape": [2, 2], "datatype": "FP64", "data": [[1, 2], [3, 4.5]]}],
        "outputs": [{"name": "predict_proba", "parameters": {"binary_data": True}}, {"name": "predict"}],
    }
    req, options = decode_infer(orjson.dumps(request), None, ["a", "b"], [True, True])
    np.testing.assert_array_equal(req.columns["a"], [1.0, 3.0])
    np.testing.assert_array_equal(req.columns["b"], [2.0, 4.5])
    assert req.parameters == {"trace": "on"}
    assert options.id == "abc"
    assert options.outputs == (RequestedOutput("predict_proba", True), RequestedOutput("predict", None))
    assert options.is_binary(options.outputs[0])
    assert not options.is_binary(options.outputs[1])


def test_unknown_input_names_are_kept_for_validation() -> None:
    request = {"inputs": [{"name": "other", "shape": [1], "datatype": "FP64", "data": [1.0]}]}
    req, _ = decode_infer(orjson.dumps(request), None, FEATURES, NUMERIC)
    assert list(req.columns) == ["other"]


def _tensor(name: str = "age", shape: Any = (2,), datatype: str = "FP64", data: Any = (1.0, 2.0)) -> dict[str, Any]:
    return {"name": name, "shape": list(shape), "datatype": datatype, "data": list(data)}


@pytest.mark.parametrize(
    ("inputs", "match"),
    [
        (None, "'inputs': expected a non-empty array of input tensors, got None"),
        ([], "'inputs': expected a non-empty array"),
        ([{"shape": [1]}], r"inputs\[0\]: expected an object with a string 'name'"),
        ([_tensor(datatype="FP128")], r"input 'age': expected 'datatype' one of \['BOOL'.*got 'FP128'"),
        ([_tensor(datatype="BF16")], "input 'age': expected 'datatype' one of"),
        ([_tensor(shape=[3])], r"input 'age': expected 3 values \(the product of shape \[3\]\), got 2"),
        ([_tensor(shape=[2, "x"])], "input 'age': expected 'shape' as an array of non-negative integers"),
        ([_tensor(shape=[-1])], "input 'age': expected 'shape' as an array of non-negative integers"),
        ([{"name": "age", "shape": [1], "datatype": "FP64"}], "input 'age': expected 'data' as an array"),
        ([_tensor(data=["1", "2"])], "input 'age': expected FP64 data, got '1'"),
        ([_tensor(data=[1.0, None])], "input 'age': expected FP64 data, got None"),
        ([_tensor(datatype="INT64", data=[1, 2.5])], "input 'age': expected INT64 data, got 2.5"),
        ([_tensor(datatype="UINT8", data=[1, 300])], r"input 'age': expected UINT8 values in \[0, 255\], got 300"),
        ([_tensor(datatype="INT8", data=[-129, 0])], r"expected INT8 values in \[-128, 127\], got -129"),
        ([_tensor(datatype="BOOL", data=[1, 0])], "input 'age': expected BOOL data, got 1"),
        ([_tensor(datatype="FP64", data=[[1.0], [2.0, 3.0]])], "input 'age': expected FP64 data as a flat"),
        ([_tensor(name="color", datatype="BYTES", data=["a", 2])], "input 'color': expected BYTES data as strings"),
        ([_tensor(datatype="BYTES", data=["a", "b"])], "input 'age': expected a numeric datatype .* got BYTES"),
        (
            [_tensor(name="age"), _tensor(name="income", shape=[3], data=[1, 2, 3])],
            r"input 'income': expected shape \[2\] to match the other inputs, got \[3\]",
        ),
        ([_tensor(), _tensor()], "input 'age': expected each input name once"),
        (
            [_tensor(), _tensor(name="income", shape=[1, 2])],
            r"input 'income': expected shape \[n\] or \[n, 1\] .*got \[1, 2\]",
        ),
        ([_tensor(shape=[0], data=[])], r"input 'age': expected at least one row, got shape \[0\]"),
        (
            [_tensor(name="X", shape=[1, 2], data=[1.0, 2.0])],
            r"input 'X': expected shape \[1, 3\] \(one column per feature: \['age', 'income', 'color'\]\), "
            r"got \[1, 2\]",
        ),
        ([_tensor(name="X", shape=[1, 3], data=[1, 2, 3])], r"needs every feature numeric, but \['color'\]"),
        (
            [{"name": "age", "shape": [1], "datatype": "FP64", "parameters": {"shared_memory_region": "r"}}],
            "input 'age': expected data in the request, got a shared memory region",
        ),
    ],
)
def test_invalid_inputs_name_the_input(inputs: Any, match: str) -> None:
    body = orjson.dumps({} if inputs is None else {"inputs": inputs})
    with pytest.raises(InvalidInput, match=match) as err:
        decode_infer(body, None, FEATURES, NUMERIC)
    assert err.value.status_code == 422


def test_matrix_of_bytes_is_refused() -> None:
    body = orjson.dumps({"inputs": [_tensor(name="X", shape=[1, 2], datatype="BYTES", data=["a", "b"])]})
    with pytest.raises(InvalidInput, match=r"expected a numeric \[n, d\] tensor .* got BYTES"):
        decode_infer(body, None, ["a", "b"], [False, False])


@pytest.mark.parametrize(
    ("request_obj", "match"),
    [
        ({"inputs": [_tensor()], "outputs": {"name": "predict"}}, "'outputs': expected an array"),
        ({"inputs": [_tensor()], "outputs": [{"nom": "x"}]}, r"outputs\[0\]: expected an object with a string"),
        (
            {"inputs": [_tensor()], "outputs": [{"name": "predict", "parameters": {"classification": 2}}]},
            "output 'predict': parameter 'classification' is not supported",
        ),
        ({"inputs": [_tensor()], "id": 5}, "'id': expected a string, got 5"),
        ({"inputs": [_tensor()], "parameters": [1]}, "'parameters': expected an object"),
    ],
)
def test_invalid_request_fields(request_obj: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        decode_infer(orjson.dumps(request_obj), None, FEATURES, NUMERIC)


@pytest.mark.parametrize(
    ("body", "header_length", "match"),
    [
        (b"{nope", None, "expected a JSON object, got a parse error"),
        (b"[1]", None, "expected a JSON object, got list"),
        (b"{}", 10, f"{HEADER_LENGTH}: expected a length between 1 and 2"),
        (b"{}", 0, f"{HEADER_LENGTH}: expected a length between 1 and 2"),
    ],
)
def test_bad_request_bodies(body: bytes, header_length: int | None, match: str) -> None:
    with pytest.raises(BadRequest, match=match):
        decode_infer(body, header_length, FEATURES, NUMERIC)


def test_binary_body_without_header_length_is_a_bad_request() -> None:
    body, _ = _request([_input("age", np.array([1.0]), "FP64", True)])
    with pytest.raises(BadRequest, match=f"parse error: .*binary tensor data needs the {HEADER_LENGTH} header"):
        decode_infer(body, None, FEATURES, NUMERIC)
    header = orjson.dumps(
        {"inputs": [{"name": "age", "shape": [1], "datatype": "FP64", "parameters": {"binary_data_size": 8}}]}
    )
    with pytest.raises(BadRequest, match=f"input 'age': has parameters.binary_data_size but .* no {HEADER_LENGTH}"):
        decode_infer(header, None, FEATURES, NUMERIC)


def test_truncated_and_oversized_binary_tails() -> None:
    body, length = _request([_input("age", np.array([1.0, 2.0]), "FP64", True)])
    with pytest.raises(InvalidInput, match="input 'age': expected 16 bytes of binary data, got 8"):
        decode_infer(body[:-8], length, FEATURES, NUMERIC)
    with pytest.raises(InvalidInput, match=r"binary data: expected 16 bytes after the JSON header .*got 20"):
        decode_infer(body + b"junk", length, FEATURES, NUMERIC)


def test_binary_size_not_matching_shape() -> None:
    header = orjson.dumps(
        {"inputs": [{"name": "age", "shape": [2], "datatype": "FP64", "parameters": {"binary_data_size": 8}}]}
    )
    with pytest.raises(InvalidInput, match=r"input 'age': expected 16 bytes of binary data \(2 x FP64\), got 8"):
        decode_infer(header + np.array([1.0]).tobytes(), len(header), FEATURES, NUMERIC)


@pytest.mark.parametrize(
    ("tail", "match"),
    [
        (b"\x05\x00\x00\x00ab", "expected 5 bytes for element 0, got 2"),
        (b"\x01\x00", "expected a 4-byte length prefix at byte 0"),
        (b"\x02\x00\x00\x00\xff\xfe", "expected UTF-8 text in element 0"),
    ],
)
def test_malformed_binary_bytes_tensor(tail: bytes, match: str) -> None:
    header = orjson.dumps(
        {
            "inputs": [
                {"name": "color", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": len(tail)}}
            ]
        }
    )
    with pytest.raises(InvalidInput, match=f"input 'color': {match}"):
        decode_infer(header + tail, len(header), FEATURES, NUMERIC)


# --------------------------------------------------------------------------------- encoding


@pytest.mark.parametrize("binary", [False, True])
def test_tritonclient_reads_default_outputs(binary: bool) -> None:
    result = _classifier()
    body, headers = encode_infer(result, "churn", V2Options(id="r1", binary_data_output=binary))
    assert (HEADER_LENGTH in headers) == binary
    assert headers["Content-Type"] == ("application/octet-stream" if binary else "application/json")
    parsed = _parse(body, headers)
    predict = parsed.as_numpy("predict")
    assert predict.dtype == np.int64
    np.testing.assert_array_equal(predict, result.predictions)
    np.testing.assert_array_equal(parsed.as_numpy("predict_proba"), result.probabilities)
    response = parsed.get_response()
    assert response["model_name"] == "churn"
    assert response["model_version"] == "4"
    assert response["id"] == "r1"
    assert parsed.get_output("predict")["shape"] == [3]
    assert parsed.get_output("predict_proba")["shape"] == [3, 2]


def test_full_tritonclient_round_trip_with_default_options() -> None:
    """tritonclient names no outputs and asks binary_data_output: the response must be binary."""
    body, length = _request(_per_feature_inputs(binary=True))
    req, options = decode_infer(body, length, FEATURES, NUMERIC)
    result = PredictionResult(
        predictions=["yes" if a > 30 else "no" for a in req.columns["age"]],
        ids=["a", "b", "c"],
        model="m",
        version=1,
        probabilities=np.array([[0.1, 0.9], [0.2, 0.8], [0.7, 0.3]]),
        classes=["no", "yes"],
    )
    out, headers = encode_infer(result, "m", options)
    parsed = _parse(out, headers)
    assert parsed.get_output("predict")["datatype"] == "BYTES"
    assert parsed.get_output("predict")["parameters"]["binary_data_size"] > 0
    assert parsed.as_numpy("predict").tolist() == [b"yes", b"yes", b"no"]
    np.testing.assert_array_equal(parsed.as_numpy("predict_proba"), result.probabilities)


@pytest.mark.parametrize("binary", [False, True])
def test_requested_outputs_only_and_in_request_order(binary: bool) -> None:
    outputs = [triton.InferRequestedOutput("predict_proba", binary_data=binary)]
    body, length = _request([_input("age", np.array([1.0, 2.0, 3.0]), "FP64", False)], outputs=outputs)
    _, options = decode_infer(body, length, FEATURES, NUMERIC)
    out, headers = encode_infer(_classifier(), "churn", options)
    parsed = _parse(out, headers)
    assert parsed.as_numpy("predict") is None
    assert [o["name"] for o in parsed.get_response()["outputs"]] == ["predict_proba"]
    np.testing.assert_array_equal(parsed.as_numpy("predict_proba"), _classifier().probabilities)


def test_mixed_binary_and_json_outputs() -> None:
    options = V2Options(outputs=(RequestedOutput("predict", False), RequestedOutput("predict_proba", True)))
    body, headers = encode_infer(_classifier(), "churn", options)
    header = orjson.loads(body[: int(headers[HEADER_LENGTH])])
    assert header["outputs"][0]["data"] == [0, 0, 1]
    assert header["outputs"][1]["parameters"] == {"binary_data_size": 3 * 2 * 8}
    np.testing.assert_array_equal(_parse(body, headers).as_numpy("predict_proba"), _classifier().probabilities)


def test_per_output_binary_flag_overrides_the_global_one() -> None:
    options = V2Options(outputs=(RequestedOutput("predict", False),), binary_data_output=True)
    body, headers = encode_infer(_classifier(), "churn", options)
    assert HEADER_LENGTH not in headers
    assert orjson.loads(body)["outputs"][0]["data"] == [0, 0, 1]


@pytest.mark.parametrize("name", ["nope", "predict_proba"])
def test_unknown_requested_output(name: str) -> None:
    regression = PredictionResult(predictions=[1.5], ids=["a"], model="m", version=1)
    with pytest.raises(InvalidInput, match=f"requested output '{name}': expected one of \\['predict'\\], got"):
        encode_infer(regression, "m", V2Options(outputs=(RequestedOutput(name),)))


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize(
    ("predictions", "datatype", "expected"),
    [
        ([1.5, -2.0], "FP64", np.array([1.5, -2.0])),
        (np.array([1.5, -2.0], dtype=np.float32), "FP64", np.array([1.5, -2.0])),
        ([True, False], "BOOL", np.array([True, False])),
        ([np.int32(3), np.int32(7)], "INT64", np.array([3, 7])),
        (["a", "b"], "BYTES", np.array([b"a", b"b"], dtype=object)),
        # Deferred rows: INT labels cannot hold a gap, so they become FP64 with NaN.
        ([1, None], "FP64", np.array([1.0, np.nan])),
        (["a", None], "BYTES", np.array([b"a", b""], dtype=object)),
    ],
)
def test_predict_datatypes(binary: bool, predictions: Any, datatype: str, expected: np.ndarray) -> None:
    result = PredictionResult(predictions=predictions, ids=["a", "b"], model="m", version=1)
    body, headers = encode_infer(result, "m", V2Options(binary_data_output=binary))
    parsed = _parse(body, headers)
    assert parsed.get_output("predict")["datatype"] == datatype
    got = parsed.as_numpy("predict")
    if datatype == "BYTES" and not binary:
        # JSON BYTES come back as str from tritonclient, binary ones as bytes.
        expected = np.array([v.decode() for v in expected], dtype=object)
    np.testing.assert_array_equal(got, expected)


def test_status_output_for_review_rows() -> None:
    result = PredictionResult(predictions=[1, None], ids=["a", "b"], model="m", version=1, status=["ok", "review"])
    for binary in (False, True):
        body, headers = encode_infer(result, "m", V2Options(binary_data_output=binary))
        status = _parse(body, headers).as_numpy("status")
        assert [s.decode() if isinstance(s, bytes) else s for s in status] == ["ok", "review"]


def test_no_id_when_the_request_had_none() -> None:
    body, _ = encode_infer(_classifier(), "churn", V2Options())
    assert "id" not in orjson.loads(body)


@settings(max_examples=60, deadline=None)
@given(
    matrix=hnp.arrays(
        dtype=st.sampled_from([np.float32, np.float64]),
        shape=hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=8),
        elements={"allow_nan": True, "allow_infinity": True, "allow_subnormal": True},
    ),
)
def test_binary_float_matrices_round_trip(matrix: np.ndarray) -> None:
    names = [f"f{j}" for j in range(matrix.shape[1])]
    datatype = "FP32" if matrix.dtype == np.float32 else "FP64"
    # Request: tritonclient encodes the matrix, we decode it back to columns.
    body, length = _request([_input("X", matrix, datatype, True)])
    req, options = decode_infer(body, length, names, [True] * len(names))
    decoded = np.column_stack([req.columns[n] for n in names])
    np.testing.assert_array_equal(decoded, matrix)
    assert decoded.dtype == matrix.dtype
    # Response: we encode the matrix as probabilities, tritonclient decodes it back.
    result = PredictionResult(
        predictions=list(range(matrix.shape[0])),
        ids=[str(i) for i in range(matrix.shape[0])],
        model="m",
        version=1,
        probabilities=matrix,
    )
    out, headers = encode_infer(result, "m", options)
    np.testing.assert_array_equal(_parse(out, headers).as_numpy("predict_proba"), matrix.astype(np.float64))


# --------------------------------------------------------------------------------- metadata


def test_model_and_server_metadata_shapes() -> None:
    meta = model_metadata(
        "churn",
        ["1", "2"],
        [("age", "FP64"), ("color", "BYTES")],
        [("predict", "INT64", [-1]), ("predict_proba", "FP64", [-1, 2])],
        "sklearn",
    )
    assert meta == {
        "name": "churn",
        "versions": ["1", "2"],
        "platform": "sklearn",
        "inputs": [
            {"name": "age", "datatype": "FP64", "shape": [-1]},
            {"name": "color", "datatype": "BYTES", "shape": [-1]},
        ],
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [-1]},
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]},
        ],
    }
    assert server_metadata("0.1.0") == {"name": "driftgate", "version": "0.1.0", "extensions": ["binary_tensor_data"]}
