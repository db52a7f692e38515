"""One deployed model, three protocols: native, MLflow scoring and Open Inference (V2), via a real server.

Every protocol must give the same predictions, and the probabilities must equal what the
scikit-learn model itself computes on the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton

from tests.conftest import Artifacts, LiveServer, classification_data

FEATURES = ["x1", "x2", "colour"]


def oracle(artifacts: Artifacts) -> Any:
    """The fitted scikit-learn pipeline itself, to compare the server against."""
    return artifacts.model


@pytest.fixture
def rows() -> pd.DataFrame:
    return classification_data(25, seed=7)[FEATURES]


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def register(http: httpx.Client, name: str, artifact: bytes, reference: bytes, fmt: str = "sklearn") -> dict[str, Any]:
    """A plain multipart upload, as curl or any HTTP client would send it."""
    r = http.post(
        f"/v1/models/{name}/versions",
        data={"format": fmt, "target": "y"},
        files={"file": ("model.bin", artifact), "reference": ("reference.csv", reference)},
    )
    assert r.status_code == 201, r.text
    return r.json()


def deploy(http: httpx.Client, endpoint: str, model: str, version: int) -> dict[str, Any]:
    r = http.put(f"/v1/endpoints/{endpoint}", json={"model": model, "version": version})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def clf(http: httpx.Client, artifacts: Artifacts) -> httpx.Client:
    """Model 'clf' v1 (skops pipeline) registered over multipart and deployed at endpoint 'clf'."""
    record = register(http, "clf", artifacts.skops, artifacts.reference_csv)
    assert (record["name"], record["version"]) == ("clf", 1)
    deployed = deploy(http, "clf", "clf", 1)
    assert deployed["traffic"] == [{"model": "clf", "version": 1, "weight": 100.0, "role": "champion"}]
    return http


def post_json(http: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = http.post(path, json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


def v2_per_feature(rows: pd.DataFrame) -> dict[str, Any]:
    n = len(rows)
    return {
        "inputs": [
            {"name": "x1", "shape": [n], "datatype": "FP64", "data": rows["x1"].tolist()},
            {"name": "x2", "shape": [n], "datatype": "FP64", "data": rows["x2"].tolist()},
            {"name": "colour", "shape": [n], "datatype": "BYTES", "data": rows["colour"].tolist()},
        ]
    }


def v2_outputs(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["name"]: o for o in answer["outputs"]}


def test_all_protocols_agree_with_the_model(clf: httpx.Client, rows: pd.DataFrame, artifacts: Artifacts) -> None:
    expected = oracle(artifacts).predict(rows).tolist()
    expected_proba = oracle(artifacts).predict_proba(rows)
    records = rows.to_dict(orient="records")
    split = {"columns": FEATURES, "data": rows.to_numpy().tolist()}

    native = post_json(clf, "/v1/endpoints/clf/predict", {"instances": records})
    native_split = post_json(clf, "/v1/endpoints/clf/predict", {"dataframe_split": split})
    mlflow_split = post_json(clf, "/v1/endpoints/clf/invocations", {"dataframe_split": split})
    mlflow_records = post_json(clf, "/v1/endpoints/clf/invocations", {"dataframe_records": records})
    csv = clf.post(
        "/v1/endpoints/clf/invocations", content=rows.to_csv(index=False), headers={"content-type": "text/csv"}
    )
    assert csv.status_code == 200, csv.text
    v2 = post_json(clf, "/v2/models/clf/infer", v2_per_feature(rows))

    for answer in (native, native_split, mlflow_split, mlflow_records, csv.json()):
        assert answer["predictions"] == expected
    outputs = v2_outputs(v2)
    assert outputs["predict"]["data"] == expected
    assert outputs["predict"]["shape"] == [len(rows)]
    assert outputs["predict_proba"]["shape"] == [len(rows), 2]

    for answer in (native, native_split):
        np.testing.assert_allclose(answer["probabilities"], expected_proba, rtol=1e-12)
        assert answer["classes"] == [0, 1]
        assert (answer["model"], answer["version"]) == ("clf", 1)
        assert len(answer["ids"]) == len(set(answer["ids"])) == len(rows)
        assert "status" not in answer  # full automation: no review column
    np.testing.assert_allclose(np.reshape(outputs["predict_proba"]["data"], (len(rows), 2)), expected_proba, rtol=1e-12)
    assert (v2["model_name"], v2["model_version"]) == ("clf", "1")


def test_native_instances_as_arrays_in_feature_order(
    clf: httpx.Client, rows: pd.DataFrame, artifacts: Artifacts
) -> None:
    answer = post_json(clf, "/v1/endpoints/clf/predict", {"instances": rows.to_numpy().tolist()})
    assert answer["predictions"] == oracle(artifacts).predict(rows).tolist()


def test_v2_metadata_and_health(clf: httpx.Client) -> None:
    assert clf.get("/v2/health/live").json() == {"live": True}
    # V2's {"ready": true}, extended with what is degraded, if anything (docs/api.md, Store outages).
    assert clf.get("/v2/health/ready").json() == {"ready": True, "status": "ok", "store": "ok", "prediction_log": "ok"}
    assert clf.get("/v2").json()["name"] == "driftgate"
    assert clf.get("/v2/models/clf/ready").json() == {"name": "clf", "ready": True}
    meta = clf.get("/v2/models/clf").json()
    assert meta["name"] == "clf"
    assert meta["versions"] == ["1"]
    assert meta["inputs"] == [
        {"name": "x1", "datatype": "FP64", "shape": [-1]},
        {"name": "x2", "datatype": "FP64", "shape": [-1]},
        {"name": "colour", "datatype": "BYTES", "shape": [-1]},
    ]
    assert meta["outputs"] == [
        {"name": "predict", "datatype": "INT64", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]},
    ]
    assert clf.get("/v2/models/clf/versions/1").json() == meta


def _triton_inputs(rows: pd.DataFrame, binary: bool) -> list[triton.InferInput]:
    tensors = []
    for name, values, datatype in (
        ("x1", rows["x1"].to_numpy(np.float64), "FP64"),
        ("x2", rows["x2"].to_numpy(np.float32), "FP32"),
        ("colour", rows["colour"].to_numpy(object), "BYTES"),
    ):
        tensor = triton.InferInput(name, [len(rows)], datatype)
        tensor.set_data_from_numpy(values, binary_data=binary)
        tensors.append(tensor)
    return tensors


def test_tritonclient_works_unchanged(
    clf: httpx.Client, server: LiveServer, rows: pd.DataFrame, artifacts: Artifacts
) -> None:
    expected = oracle(artifacts).predict(rows)
    # x2 goes over the wire as FP32 below, so the oracle sees the same rounding.
    as_sent = rows.assign(x2=rows["x2"].to_numpy(np.float32).astype(np.float64))
    expected_proba = oracle(artifacts).predict_proba(as_sent)
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("clf")
        meta = client.get_model_metadata("clf")
        assert [i["name"] for i in meta["inputs"]] == FEATURES
        assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]

        # JSON inputs, JSON outputs: what the spec requires of any standard V2 client.
        json_outputs = [
            triton.InferRequestedOutput("predict", binary_data=False),
            triton.InferRequestedOutput("predict_proba", binary_data=False),
        ]
        result = client.infer("clf", _triton_inputs(rows, binary=False), outputs=json_outputs)
        np.testing.assert_array_equal(result.as_numpy("predict"), expected)
        np.testing.assert_allclose(result.as_numpy("predict_proba"), expected_proba, rtol=1e-6)

        # Binary inputs and tritonclient's default (binary) outputs: Triton's binary extension.
        binary = client.infer("clf", _triton_inputs(rows, binary=True))
        np.testing.assert_array_equal(binary.as_numpy("predict"), expected)
        assert binary.as_numpy("predict").dtype == np.int64
        np.testing.assert_allclose(binary.as_numpy("predict_proba"), expected_proba, rtol=1e-6)
        assert binary.get_response()["model_version"] == "1"
    finally:
        client.close()


def test_onnx_model_serves_through_every_protocol(http: httpx.Client, server: LiveServer, artifacts: Artifacts) -> None:
    reference = artifacts.reference[["x1", "x2", "y"]].to_csv(index=False).encode()
    register(http, "onnx", artifacts.onnx, reference, fmt="onnx")
    deploy(http, "num", "onnx", 1)
    rows = classification_data(10, seed=3)[["x1", "x2"]]

    import onnxruntime as ort

    session = ort.InferenceSession(artifacts.onnx, providers=["CPUExecutionProvider"])
    labels, proba = session.run(None, {session.get_inputs()[0].name: rows.to_numpy(np.float32)})

    native = post_json(http, "/v1/endpoints/num/predict", {"instances": rows.to_dict(orient="records")})
    assert native["predictions"] == labels.tolist()
    np.testing.assert_allclose(native["probabilities"], proba, rtol=1e-6)
    mlflow = post_json(http, "/v1/endpoints/num/invocations", {"dataframe_split": rows.to_dict(orient="split")})
    assert mlflow["predictions"] == labels.tolist()

    # One [n, 2] FP32 tensor, as a client built for the ONNX graph would send it.
    matrix = {
        "inputs": [{"name": "input", "shape": [10, 2], "datatype": "FP32", "data": rows.to_numpy().ravel().tolist()}]
    }
    v2 = v2_outputs(post_json(http, "/v2/models/num/infer", matrix))
    assert v2["predict"]["data"] == labels.tolist()
    meta = http.get("/v2/models/num").json()
    assert [i["name"] for i in meta["inputs"]] == ["x1", "x2"]
    assert meta["platform"] == "driftgate_onnx"

    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    try:
        tensor = triton.InferInput("input", [10, 2], "FP32")
        tensor.set_data_from_numpy(rows.to_numpy(np.float32), binary_data=True)
        result = client.infer("num", [tensor])
        np.testing.assert_array_equal(result.as_numpy("predict"), labels)
        np.testing.assert_allclose(result.as_numpy("predict_proba"), proba, rtol=1e-6)
    finally:
        client.close()


def test_regression_model_has_predictions_without_probabilities(
    http: httpx.Client, artifacts: Artifacts, rows: pd.DataFrame
) -> None:
    register(http, "reg", artifacts.regression_skops, artifacts.reference_csv)
    deploy(http, "reg", "reg", 1)
    import skops.io as sio

    model = sio.loads(artifacts.regression_skops, trusted=sio.get_untrusted_types(data=artifacts.regression_skops))
    expected = model.predict(rows)

    native = post_json(http, "/v1/endpoints/reg/predict", {"instances": rows.to_dict(orient="records")})
    np.testing.assert_allclose(native["predictions"], expected, rtol=1e-12)
    assert "probabilities" not in native and "classes" not in native
    mlflow = post_json(http, "/v1/endpoints/reg/invocations", {"dataframe_records": rows.to_dict(orient="records")})
    np.testing.assert_allclose(mlflow["predictions"], expected, rtol=1e-12)
    v2 = v2_outputs(post_json(http, "/v2/models/reg/infer", v2_per_feature(rows)))
    assert list(v2) == ["predict"]
    assert v2["predict"]["datatype"] == "FP64"
    np.testing.assert_allclose(v2["predict"]["data"], expected, rtol=1e-12)
    meta = http.get("/v2/models/reg").json()
    assert meta["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
    # Asking a regression model for probabilities is the client's mistake, not a server error.
    asked = http.post("/v2/models/reg/infer", json={**v2_per_feature(rows), "outputs": [{"name": "predict_proba"}]})
    assert asked.status_code == 422, asked.text
    assert "predict_proba" in asked.json()["error"]


def test_registry_listing_shows_schema(clf: httpx.Client) -> None:
    listing = clf.get("/v1/models").json()
    assert listing == {"models": [{"name": "clf", "latest": 1, "versions": [1]}]}
    model = clf.get("/v1/models/clf").json()
    version = model["versions"][0]
    assert [f["name"] for f in version["schema"]["features"]] == FEATURES
    assert version["output"] == {"kind": "classification", "classes": [0, 1]}
    colour = version["schema"]["features"][2]
    assert colour["kind"] == "categorical" and colour["categories"] == ["blue", "green", "red"]
    endpoint = clf.get("/v1/endpoints/clf").json()
    assert endpoint["config"]["model"] == "clf" and endpoint["config"]["version"] == 1
