"""Text and tensor inputs end to end (issue 22), through a real server on loopback: an ONNX digits MLP
(skl2onnx, input [None, 64]) registered with a declared 8x8 image schema and served in worker processes
(isolation "auto"), and a skops text pipeline (TfidfVectorizer + LogisticRegression) with a declared text
feature; scored over native JSON (nested lists, flat lists, base64 raw bytes, PNG), V2 REST and gRPC with
tritonclient (FP32 and UINT8 tensors, JSON and binary, BYTES text and PNG files). Bad inputs get a 4xx
naming the input, and the server keeps serving."""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from driftgate.client import Client, ServerError
from tests.conftest import LiveServer, free_port, make_server
from tests.media_fixtures import IMAGE_SCHEMA, TEXT_SCHEMA, Digits, digits_model, png, text_frame, text_model


@pytest.fixture(scope="module")
def models() -> Digits:
    return digits_model()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, models: Digits) -> Iterator[LiveServer]:
    srv = make_server(tmp_path_factory.mktemp("media"), grpc_port=free_port())
    try:
        with Client(srv.url, timeout=180) as client:
            record = client.register_model(
                "digits", models.onnx, "onnx", reference=models.reference(), target="label", schema=IMAGE_SCHEMA
            )
            assert record["schema"]["features"][0]["shape"] == [8, 8]
            client.deploy("digits", "digits", 1)
            client.register_model(
                "spam", text_model(), "sklearn", reference=text_frame(), target="label", schema=TEXT_SCHEMA
            )
            client.deploy("spam", "spam", 1)
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=180) as c:
        yield c


def predict(http: httpx.Client, endpoint: str, body: dict[str, Any]) -> httpx.Response:
    return http.post(f"/v1/endpoints/{endpoint}/predict", json=body)


def test_the_image_model_runs_in_worker_processes_with_its_declared_schema(http: httpx.Client) -> None:
    endpoint = http.get("/v1/endpoints/digits").json()
    assert endpoint["isolation"] == [{"model": "digits", "version": 1, "mode": "process"}]
    schema = http.get("/v1/models/digits/versions/1").json()["schema"]
    assert schema["features"] == [
        {**IMAGE_SCHEMA["features"][0], "nullable": False, "min": None, "categories": None, "max": 16.0}
    ]


def test_native_json_takes_every_tensor_form(http: httpx.Client, models: Digits) -> None:
    images = models.images[:6]
    forms = [
        images[0].tolist(),
        images[1].reshape(-1).tolist(),
        {"b64": b64(images[2].astype(np.uint8).tobytes()), "dtype": "uint8"},
        {"b64": b64(images[3].astype("<f4").tobytes()), "dtype": "float32"},
        {"image": b64(png(images[4]))},
        images[5].astype(int).tolist(),
    ]
    r = predict(http, "digits", {"instances": [{"image": f} for f in forms]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["predictions"] == models.expected(images) and len(body["ids"]) == 6
    assert np.asarray(body["probabilities"]).shape == (6, 10)
    # A one-tensor model also takes each row as the tensor itself (TF-serving style), and split frames.
    tf_style = predict(http, "digits", {"instances": forms})
    assert tf_style.status_code == 200 and tf_style.json()["predictions"] == body["predictions"]
    split = predict(http, "digits", {"dataframe_split": {"columns": ["image"], "data": [[f] for f in forms]}})
    assert split.status_code == 200 and split.json()["predictions"] == body["predictions"]


def test_v2_rest_fp32_uint8_and_png_json_and_binary(server: LiveServer, models: Digits) -> None:
    images = models.images[10:18]
    want = models.expected(images)
    client = triton_http.InferenceServerClient(url=server.url.removeprefix("http://"))
    try:
        meta = client.get_model_metadata("digits")
        assert meta["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 8, 8]}]
        for datatype, array in (
            ("FP32", images.astype(np.float32)),
            ("FP32", images.astype(np.float32).reshape(8, 64)),
            ("UINT8", images.astype(np.uint8)),
        ):
            for binary in (False, True):
                tensor = triton_http.InferInput("image", list(array.shape), datatype)
                tensor.set_data_from_numpy(array, binary_data=binary)
                result = client.infer("digits", [tensor])
                assert result.as_numpy("predict").tolist() == want, (datatype, array.shape, binary)
        files = np.array([png(i) for i in images], dtype=object)
        tensor = triton_http.InferInput("image", [8], "BYTES")
        tensor.set_data_from_numpy(files, binary_data=True)
        assert client.infer("digits", [tensor]).as_numpy("predict").tolist() == want
        # JSON strings cannot hold a PNG's bytes: in JSON `data`, an image's BYTES are base64.
        tensor = triton_http.InferInput("image", [8, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[b64(f)] for f in files], dtype=object), binary_data=False)
        assert client.infer("digits", [tensor]).as_numpy("predict").tolist() == want
    finally:
        client.close()


def test_v2_grpc_fp32_and_png(server: LiveServer, models: Digits) -> None:
    images = models.images[20:25]
    want = models.expected(images)
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{server.settings.grpc_port}")
    try:
        meta = client.get_model_metadata("digits", as_json=True)
        assert meta["inputs"] == [{"name": "image", "datatype": "FP32", "shape": ["-1", "8", "8"]}]
        tensor = triton_grpc.InferInput("image", [5, 8, 8], "FP32")
        tensor.set_data_from_numpy(images.astype(np.float32))
        assert client.infer("digits", [tensor]).as_numpy("predict").tolist() == want
        tensor = triton_grpc.InferInput("image", [5], "BYTES")
        tensor.set_data_from_numpy(np.array([png(i) for i in images], dtype=object))
        assert client.infer("digits", [tensor]).as_numpy("predict").tolist() == want
        text = triton_grpc.InferInput("text", [2], "BYTES")
        text.set_data_from_numpy(np.array([b"free prize money now", b"see you at noon"], dtype=object))
        answer = client.infer("spam", [text]).as_numpy("predict")
        assert [v.decode() for v in answer] == ["spam", "ham"]
    finally:
        client.close()


def test_text_over_native_json_and_v2_bytes(server: LiveServer, http: httpx.Client) -> None:
    r = predict(http, "spam", {"instances": [{"text": "claim a free prize"}, {"text": "lunch at noon"}, {"text": ""}]})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"][:2] == ["spam", "ham"]
    client = triton_http.InferenceServerClient(url=server.url.removeprefix("http://"))
    try:
        assert client.get_model_metadata("spam")["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
        for binary in (False, True):
            tensor = triton_http.InferInput("text", [2, 1], "BYTES")
            tensor.set_data_from_numpy(np.array([["free money offer"], ["the team lunch"]], dtype=object), binary)
            assert client.infer("spam", [tensor]).as_numpy("predict").tolist() == [b"spam", b"ham"]
    finally:
        client.close()


def png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", 0) + b"IDAT" + struct.pack(">I", zlib.crc32(b"IDAT"))


NAN_FLOATS = np.full(64, np.nan, "<f4").tobytes()


@pytest.mark.parametrize(
    ("endpoint", "value", "expected"),
    [
        ("digits", [[1.0] * 8] * 7, "feature 'image' at row 0: expects shape [8, 8] (or 64 values flat), got [7, 8]"),
        ("digits", [["x"] * 8] * 8, "feature 'image' at row 0: expects numbers"),
        ("digits", {"b64": "%%%", "dtype": "float32"}, "feature 'image' at row 0: 'b64': expects base64"),
        ("digits", {"b64": b64(b"\0" * 64), "dtype": "float32"}, "'b64' holds 64 bytes; 64 float32 values"),
        ("digits", {"b64": b64(NAN_FLOATS), "dtype": "float32"}, "feature 'image' at row 0: NaN in the tensor"),
        ("digits", {"image": "@@"}, "feature 'image' at row 0: 'image': expects base64"),
        ("digits", {"image": b64(png(np.full((8, 8), 5))[:-20])}, "feature 'image' at row 0: image data undecodable"),
        ("digits", {"image": b64(png_header(200_000, 200_000))}, "image refused before decoding"),
        ("digits", {"image": b64(png_header(4000, 4000))}, "image is 4000x4000 pixels (width x height)"),
        ("spam", "x" * 2_000_000, "feature 'text' at row 0: 2000000 characters, more than the feature's max_chars"),
        ("spam", 42, "feature 'text' at row 0: expects text (a string), got number 42"),
    ],
)
def test_bad_native_inputs_get_a_422_naming_the_input(
    http: httpx.Client, models: Digits, endpoint: str, value: Any, expected: str
) -> None:
    name = "image" if endpoint == "digits" else "text"
    r = predict(http, endpoint, {"instances": [{name: value}]})
    assert r.status_code == 422, r.text
    assert expected in r.json()["error"], r.json()
    assert r.json()["feature"] == name
    good = models.images[0].tolist() if endpoint == "digits" else "free prize"
    assert predict(http, endpoint, {"instances": [{name: good}]}).status_code == 200  # still serving


def test_bad_v2_inputs_get_a_4xx_naming_the_input(server: LiveServer, http: httpx.Client, models: Digits) -> None:
    def infer(inp: dict[str, Any]) -> httpx.Response:
        return http.post("/v2/models/digits/infer", json={"inputs": [inp]})

    cases = [
        ([1, 7, 7], "FP32", [0.0] * 49, "expected shape [n, 8, 8]"),
        ([1, 8, 8], "BOOL", [True] * 64, "got booleans"),
        ([1, 64], "FP32", [0.5] * 63 + [1e39], "infinity in the tensor"),
        ([1], "BYTES", ["!!"], "expected element 0 as base64"),
        ([1], "BYTES", [b64(b"junk")], "expects a PNG or JPEG"),
        ([1, 2], "BYTES", ["AA==", "AA=="], "expected BYTES of shape [n]"),
    ]
    for shape, datatype, data, expected_text in cases:
        inp = {"name": "image", "shape": shape, "datatype": datatype, "data": data}
        r = infer(inp)
        assert 400 <= r.status_code < 500, (inp, r.text)
        assert "'image'" in r.json()["error"] and expected_text in r.json()["error"], r.json()
    # NaN in Triton binary data (JSON cannot carry it)
    client = triton_http.InferenceServerClient(url=server.url.removeprefix("http://"))
    grpc_client = triton_grpc.InferenceServerClient(f"127.0.0.1:{server.settings.grpc_port}")
    try:
        bad = models.images[:2].astype(np.float32)
        bad[1, 3, 3] = np.nan
        tensor = triton_http.InferInput("image", [2, 8, 8], "FP32")
        tensor.set_data_from_numpy(bad, binary_data=True)
        with pytest.raises(InferenceServerException, match=r"feature 'image' at row 1: NaN in the tensor"):
            client.infer("digits", [tensor])
        tensor = triton_grpc.InferInput("image", [2, 8, 8], "FP32")
        tensor.set_data_from_numpy(bad)
        with pytest.raises(InferenceServerException, match=r"feature 'image' at row 1: NaN") as err:
            grpc_client.infer("digits", [tensor])
        assert err.value.status() == "StatusCode.INVALID_ARGUMENT"
        truncated = triton_grpc.InferInput("image", [1], "BYTES")
        truncated.set_data_from_numpy(np.array([png(models.images[0])[:30]], dtype=object))
        with pytest.raises(InferenceServerException, match=r"feature 'image' at row 0"):
            grpc_client.infer("digits", [truncated])
        text = triton_grpc.InferInput("text", [1], "BYTES")
        text.set_data_from_numpy(np.array([b"y" * 2_000_000], dtype=object))
        with pytest.raises(InferenceServerException, match=r"feature 'text' at row 0: 2000000 characters"):
            grpc_client.infer("spam", [text])
        good = triton_grpc.InferInput("image", [1, 64], "FP32")
        good.set_data_from_numpy(models.images[:1].astype(np.float32).reshape(1, 64))
        assert grpc_client.infer("digits", [good]).as_numpy("predict").tolist() == models.expected(models.images[:1])
    finally:
        client.close()
        grpc_client.close()


def test_a_bad_declared_schema_is_a_400_naming_the_field(http: httpx.Client, models: Digits) -> None:
    for schema, expected_text in (
        ("{not json", "schema: expected a JSON object"),
        ('{"features": [{"name": "image", "kind": "tensor"}]}', "schema.features[0]: a tensor needs 'shape'"),
        ('{"features": [{"name": "image", "kind": "tensor", "shape": [8, -8]}]}', "schema.features[0].shape[1]"),
        ('{"features": [{"name": "t", "kind": "text", "max_chars": 0}]}', "schema.features[0].max_chars"),
    ):
        r = http.post(
            "/v1/models/bad/versions",
            data={"format": "onnx", "schema": schema},
            files={"file": ("m.onnx", models.onnx)},
        )
        assert r.status_code == 400 and expected_text in r.json()["error"], r.text
        assert r.json()["field"] == "schema"


def test_reference_rows_that_do_not_fit_the_declared_schema_are_refused(server: LiveServer, models: Digits) -> None:
    reference = pd.DataFrame({"image": [[1.0] * 10, [2.0] * 10]})
    with Client(server.url, timeout=180) as client, pytest.raises(ServerError) as err:
        client.register_model("misfit", models.onnx, "onnx", reference=reference, schema=IMAGE_SCHEMA)
    assert err.value.status_code == 400
    assert "reference data does not fit the schema: feature 'image' at row 0" in str(err.value)
