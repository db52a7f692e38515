"""Open Inference Protocol decoding of text and tensor features (issue 22), REST and gRPC, with the
requests tritonclient itself builds: a tensor feature's input [n, *shape] or [n, prod(shape)] becomes one
array (n, *shape); an image's BYTES stay the files' bytes (raw in binary data and gRPC, base64 in JSON);
wrong shapes and datatypes are 422s naming the input; malformed data never escapes as another error."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from hypothesis import given, settings
from hypothesis import strategies as st
from tritonclient.grpc import service_pb2 as tpb

from driftgate.errors import DriftgateError, InvalidInput
from driftgate.registry.schema import FeatureSpec, InputSchema
from driftgate.serving.protocols import v2
from driftgate.serving.protocols.grpc import codec
from driftgate.serving.protocols.grpc import grpc_predict_v2_pb2 as pb
from driftgate.serving.protocols.v2 import TensorInput, decode_infer, model_metadata

FEATURES = ["image", "text"]
NUMERIC = [False, False]
TENSORS = {"image": TensorInput((8, 8), image=True)}
PNG = b"\x89PNG\r\n\x1a\n-not-really-a-png-but-bytes-\xff\x00"


def _request(inputs: list[triton.InferInput]) -> tuple[bytes, int | None]:
    return triton.InferenceServerClient.generate_request_body(inputs)


def _input(name: str, array: np.ndarray, datatype: str, binary: bool) -> triton.InferInput:
    tensor = triton.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize(("datatype", "shape"), [("FP32", (3, 8, 8)), ("FP32", (3, 64)), ("UINT8", (3, 8, 8))])
def test_a_tensor_feature_becomes_one_array(binary: bool, datatype: str, shape: tuple[int, ...]) -> None:
    pixels = np.arange(3 * 64).reshape(shape) % 17
    body, length = _request(
        [
            _input("image", pixels.astype(v2.NUMPY_DTYPES[datatype]), datatype, binary),
            _input("text", np.array(["a", "bé", ""], dtype=object), "BYTES", binary),
        ]
    )
    request, _ = decode_infer(body, length, FEATURES, NUMERIC, TENSORS)
    image = request.columns["image"]
    assert isinstance(image, np.ndarray) and image.shape == (3, 8, 8)
    np.testing.assert_array_equal(image, pixels.reshape(3, 8, 8))
    assert request.columns["text"] == ["a", "bé", ""] and request.n_rows == 3


def test_image_files_as_bytes_binary_json_and_grpc() -> None:
    files = np.array([PNG, PNG[:-3]], dtype=object)
    body, length = _request([_input("image", files, "BYTES", True)])
    assert decode_infer(body, length, ["image"], [False], TENSORS)[0].columns["image"] == list(files)
    encoded = np.array([[base64.b64encode(f).decode()] for f in files], dtype=object)
    body, length = _request([_input("image", encoded, "BYTES", False)])
    assert decode_infer(body, length, ["image"], [False], TENSORS)[0].columns["image"] == list(files)
    typed = pb.ModelInferRequest(model_name="m")
    typed.inputs.add(name="image", datatype="BYTES", shape=[2]).contents.bytes_contents.extend(list(files))
    assert codec.decode_infer(typed, ["image"], [False], TENSORS)[0].columns["image"] == list(files)
    raw = pb.ModelInferRequest(model_name="m")
    raw.inputs.add(name="image", datatype="BYTES", shape=[2])
    raw.raw_input_contents.append(b"".join(len(f).to_bytes(4, "little") + f for f in files))
    assert codec.decode_infer(raw, ["image"], [False], TENSORS)[0].columns["image"] == list(files)
    # Text stays UTF-8 text: the same bytes to a text feature are refused naming the input.
    raw.inputs[0].name = "text"
    with pytest.raises(InvalidInput, match="input 'text': expected UTF-8 text in element 0"):
        codec.decode_infer(raw, ["text"], [False], TENSORS)


def test_grpc_raw_fp32_tensor() -> None:
    pixels = np.random.default_rng(0).random((2, 8, 8)).astype("<f4")
    req = pb.ModelInferRequest(model_name="m")
    req.inputs.add(name="image", datatype="FP32", shape=[2, 8, 8])
    req.raw_input_contents.append(pixels.tobytes())
    columns = codec.decode_infer(req, ["image"], [False], TENSORS)[0].columns
    np.testing.assert_array_equal(columns["image"], pixels)


@pytest.mark.parametrize(
    ("inp", "expected"),
    [
        ({"shape": [2, 7, 7], "datatype": "FP32", "data": [0.0] * 98}, "expected shape [n, 8, 8] or [n, 64], got"),
        ({"shape": [2, 63], "datatype": "FP32", "data": [0.0] * 126}, "got [2, 63]"),
        ({"shape": [1, 2], "datatype": "BYTES", "data": ["AA==", "AA=="]}, "expected BYTES of shape [n] or [n, 1]"),
        ({"shape": [1], "datatype": "BYTES", "data": ["***"]}, "expected element 0 as base64 of a PNG or JPEG"),
        ({"shape": [1], "datatype": "BYTES", "data": [1]}, "expected BYTES data as strings"),
    ],
)
def test_bad_tensor_inputs_name_the_input(inp: dict[str, Any], expected: str) -> None:
    body = orjson.dumps({"inputs": [{"name": "image", **inp}]})
    with pytest.raises(InvalidInput) as err:
        decode_infer(body, None, ["image"], [False], TENSORS)
    assert err.value.message.startswith("input 'image': ") and expected in err.value.message
    assert err.value.details == {"field": "image"}


def test_bytes_to_a_tensor_that_is_no_image_is_refused() -> None:
    body = orjson.dumps({"inputs": [{"name": "e", "shape": [1], "datatype": "BYTES", "data": ["x"]}]})
    with pytest.raises(InvalidInput, match="input 'e': expected a numeric tensor of shape \\[n, 4\\], got BYTES"):
        decode_infer(body, None, ["e"], [False], {"e": TensorInput((4,))})


def test_a_lone_tensor_input_with_other_features_must_name_them() -> None:
    """[n, 64] named after the tensor feature is that feature, not the [n, d] matrix of all features."""
    body = orjson.dumps({"inputs": [{"name": "image", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]})
    request, _ = decode_infer(body, None, FEATURES, NUMERIC, TENSORS)
    assert set(request.columns) == {"image"}  # the schema then names the missing 'text'


def test_metadata_lists_tensor_shapes() -> None:
    meta = model_metadata("m", ["1"], [("image", "FP32", [-1, 8, 8]), ("text", "BYTES")], [], "driftgate_onnx")
    assert meta["inputs"] == [
        {"name": "image", "datatype": "FP32", "shape": [-1, 8, 8]},
        {"name": "text", "datatype": "BYTES", "shape": [-1]},
    ]


values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**65), 2**65) | st.floats() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=5),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(
    shape=st.lists(st.integers(0, 9), min_size=0, max_size=4),
    datatype=st.sampled_from(list(v2.DATATYPES)),
    data=values,
    name=st.sampled_from(["image", "e", "text"]),
)
def test_any_json_input_decodes_and_converts_or_is_a_4xx(shape: list[int], datatype: str, data: Any, name: str) -> None:
    """Whatever a client sends for a tensor, text or image input, REST decoding and then the schema
    either give the declared array or refuse with a 4xx; nothing else escapes."""
    schema = InputSchema(
        (
            FeatureSpec("image", "tensor", shape=(2, 2), dtype="uint8", media="image"),
            FeatureSpec("e", "tensor", shape=(3,), dtype="float32"),
            FeatureSpec("text", "text", max_chars=5),
        )
    )
    tensors = {"image": TensorInput((2, 2), image=True), "e": TensorInput((3,))}
    # json, not orjson: integers past 64 bits are sent as they are (NaN becomes a 400 parse error)
    body = json.dumps({"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]}).encode()
    try:
        request, _ = decode_infer(body, None, schema.names, [False] * 3, tensors)
        only = InputSchema((schema.feature(name),))
        out = only.to_columns(request.columns, request.n_rows)[name]
    except DriftgateError as exc:
        assert 400 <= exc.status_code < 500
        return
    spec = schema.feature(name)
    if spec.kind == "tensor":
        assert out.shape == (request.n_rows, *(spec.shape or ())) and out.dtype == np.dtype(spec.dtype)
    else:
        assert all(isinstance(v, str) and len(v) <= 5 for v in out)


def test_grpc_typed_contents_for_a_tensor_feature() -> None:
    req = tpb.ModelInferRequest(model_name="m")
    tensor = req.inputs.add(name="image", datatype="UINT8", shape=[1, 8, 8])
    tensor.contents.uint_contents.extend(range(64))
    columns = codec.decode_infer(pb.ModelInferRequest.FromString(req.SerializeToString()), ["image"], [False], TENSORS)[
        0
    ].columns
    assert columns["image"].shape == (1, 8, 8) and columns["image"][0, 7, 7] == 63
