"""A V2 request naming an output the endpoint cannot give is refused before anything is scored or
logged, over REST and gRPC, through a real server on loopback (issue 20)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from tests.conftest import Artifacts, LiveServer, classification_data, free_port, make_server

FEATURES = ["x1", "x2", "colour"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, artifacts: Artifacts) -> Iterator[LiveServer]:
    """Classifier 'clf' at endpoint 'clf' and a regressor at endpoint 'reg', gRPC on a port of its own."""
    srv = make_server(tmp_path_factory.mktemp("v2out"), grpc_port=free_port())
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as http:
            for name, artifact in (("clf", artifacts.skops), ("reg", artifacts.regression_skops)):
                r = http.post(
                    f"/v1/models/{name}/versions",
                    data={"format": "sklearn", "target": "y"},
                    files={"file": ("m.skops", artifact), "reference": ("ref.csv", artifacts.reference_csv)},
                )
                assert r.status_code == 201, r.text
                assert http.put(f"/v1/endpoints/{name}", json={"model": name, "version": 1}).status_code == 200
        yield srv
    finally:
        srv.stop()


def rows(n: int = 3) -> pd.DataFrame:
    return classification_data(n, seed=5)[FEATURES]


def v2_body(frame: pd.DataFrame, outputs: list[str] | None = None) -> dict[str, Any]:
    n = len(frame)
    body: dict[str, Any] = {
        "inputs": [
            {"name": "x1", "shape": [n], "datatype": "FP64", "data": frame["x1"].tolist()},
            {"name": "x2", "shape": [n], "datatype": "FP64", "data": frame["x2"].tolist()},
            {"name": "colour", "shape": [n], "datatype": "BYTES", "data": frame["colour"].tolist()},
        ]
    }
    if outputs is not None:
        body["outputs"] = [{"name": o} for o in outputs]
    return body


def grpc_inputs(frame: pd.DataFrame) -> list[triton.InferInput]:
    inputs = []
    for name, datatype in (("x1", "FP64"), ("x2", "FP64"), ("colour", "BYTES")):
        tensor = triton.InferInput(name, [len(frame)], datatype)
        tensor.set_data_from_numpy(frame[name].to_numpy(np.float64 if datatype == "FP64" else object))
        inputs.append(tensor)
    return inputs


def logged_and_scored(served: LiveServer, endpoint: str) -> tuple[int, float]:
    """(prediction rows in the store after a flush, rows the model scored by the serving metrics)."""
    svc = served.app.state.services
    svc.recorder.flush()
    logged = svc.store.predictions.count_range(endpoint, role=None)
    samples = svc.metrics.rows.collect()[0].samples
    scored = sum(s.value for s in samples if s.name.endswith("_total") and s.labels["endpoint"] == endpoint)
    return logged, scored


@pytest.mark.parametrize(
    ("endpoint", "output"),
    [("clf", "nope"), ("reg", "predict_proba"), ("clf", "status")],
    ids=["unknown-name", "proba-of-a-regressor", "status-without-review"],
)
def test_rest_refuses_an_unknown_output_before_scoring(served: LiveServer, endpoint: str, output: str) -> None:
    with httpx.Client(base_url=served.url, timeout=30) as http:
        ok = http.post(f"/v2/models/{endpoint}/infer", json=v2_body(rows(), ["predict"]))
        assert ok.status_code == 200, ok.text
        before = logged_and_scored(served, endpoint)
        assert before[0] >= 3 and before[1] >= 3  # what a scored request leaves behind is visible here
        refused = http.post(f"/v2/models/{endpoint}/infer", json=v2_body(rows(), ["predict", output]))
        assert refused.status_code == 422, refused.text
        assert output in refused.json()["error"]
        assert logged_and_scored(served, endpoint) == before


def test_grpc_refuses_an_unknown_output_before_scoring(served: LiveServer) -> None:
    client = triton.InferenceServerClient(f"127.0.0.1:{served.settings.grpc_port}")
    try:
        client.infer("clf", grpc_inputs(rows()), outputs=[triton.InferRequestedOutput("predict")])
        before = logged_and_scored(served, "clf")
        with pytest.raises(InferenceServerException) as err:
            client.infer("clf", grpc_inputs(rows()), outputs=[triton.InferRequestedOutput("nope")])
        assert err.value.status() == "StatusCode.INVALID_ARGUMENT"
        assert "nope" in str(err.value.message())
        assert logged_and_scored(served, "clf") == before
    finally:
        client.close()
