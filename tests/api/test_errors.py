"""Bad requests get a 4xx JSON error that names the field; failing or slow models never take the server down."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from driftgate.registry.formats import python_artifact
from driftgate.registry.registry import Registration, register
from driftgate.store import Store
from tests.conftest import Artifacts, LiveServer, make_server
from tests.helpers import clf_server, deploy_clf

ROW = {"x1": 0.5, "x2": 3.0, "colour": "red"}


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture
def clf(http: httpx.Client, artifacts: Artifacts) -> httpx.Client:
    return deploy_clf(http, artifacts)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, artifacts: Artifacts) -> Iterator[httpx.Client]:
    """One server for the tests whose requests all fail (and so change nothing): model 'clf' at endpoint 'clf'."""
    with (
        clf_server(tmp_path_factory.mktemp("errors"), artifacts) as srv,
        httpx.Client(base_url=srv.url, timeout=30) as http,
    ):
        yield http


def error_of(response: httpx.Response, status: int) -> str:
    """The `error` message of a JSON error answer with `status`; never HTML, never a traceback."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    return body["error"]


def predict(http: httpx.Client, instances: Any, endpoint: str = "clf") -> httpx.Response:
    return http.post(f"/v1/endpoints/{endpoint}/predict", json={"instances": instances})


def assert_serves(http: httpx.Client, endpoint: str = "clf") -> None:
    r = predict(http, [ROW], endpoint)
    assert r.status_code == 200, r.text
    assert len(r.json()["predictions"]) == 1


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("instances", "field", "expectation"),
    [
        ([{"x1": 0.5, "x2": 3.0}], "colour", "missing"),
        ([{"x1": "abc", "x2": 3.0, "colour": "red"}], "x1", "number"),
        ([ROW, {"x1": 0.1, "x2": "lots", "colour": "red"}], "x2", "number"),
        ([{"x1": None, "x2": 3.0, "colour": "red"}], "x1", "null"),
        ([{"x1": 0.5, "x2": 3.0, "colour": None}], "colour", "null"),
        ([{"x1": 0.5, "x2": 3.0, "colour": ["red"]}], "colour", "string"),
        ([{"x1": [1, 2], "x2": 3.0, "colour": "red"}], "x1", ""),
        ([], "instances", "at least one row"),
        ([{}], "instances", ""),
        ([ROW, 7], "instances[1]", "object"),
        ({"x1": 1}, "instances", "array"),
    ],
)
def test_bad_instances_name_the_field(served: httpx.Client, instances: Any, field: str, expectation: str) -> None:
    message = error_of(predict(served, instances), 422)
    assert repr(field) in message or f"'{field}" in message, message
    assert expectation in message


def test_bad_input_through_other_protocols(served: httpx.Client) -> None:
    split = {"dataframe_split": {"columns": ["x1", "x2"], "data": [[1.0, 2.0]]}}
    assert "colour" in error_of(served.post("/v1/endpoints/clf/invocations", json=split), 422)
    records = {"dataframe_records": [{"x1": "one", "x2": 2.0, "colour": "red"}]}
    assert "x1" in error_of(served.post("/v1/endpoints/clf/invocations", json=records), 422)
    csv = served.post("/v1/endpoints/clf/invocations", content="x1,x2\n1,2\n", headers={"content-type": "text/csv"})
    assert "colour" in error_of(csv, 422)
    xml = served.post("/v1/endpoints/clf/invocations", content="<a/>", headers={"content-type": "application/xml"})
    assert "Content-Type" in error_of(xml, 400)
    v2 = {"inputs": [{"name": "x1", "shape": [1], "datatype": "FP64", "data": ["a"]}]}
    assert "x1" in error_of(served.post("/v2/models/clf/infer", json=v2), 422)
    v2_missing = {"inputs": [{"name": "x1", "shape": [1], "datatype": "FP64", "data": [1.0]}]}
    assert "colour" in error_of(served.post("/v2/models/clf/infer", json=v2_missing), 422)
    assert "inputs" in error_of(served.post("/v2/models/clf/infer", json={"inputs": []}), 422)


@pytest.mark.parametrize("path", ["/v1/endpoints/clf/predict", "/v1/endpoints/clf/invocations", "/v2/models/clf/infer"])
@pytest.mark.parametrize("body", [b"{not json", b"", b"[1, 2]", b'"text"'])
def test_invalid_json_is_400(served: httpx.Client, path: str, body: bytes) -> None:
    r = served.post(path, content=body, headers={"content-type": "application/json"})
    error_of(r, 400)


def test_invalid_feedback_json_is_400(served: httpx.Client) -> None:
    r = served.post("/v1/endpoints/clf/feedback", content=b"{", headers={"content-type": "application/json"})
    assert "JSON" in error_of(r, 400)
    assert "labels" in error_of(served.post("/v1/endpoints/clf/feedback", json={"labels": 3}), 400)


def test_unknown_endpoint_and_path_are_404(served: httpx.Client) -> None:
    assert "nope" in error_of(predict(served, [ROW], "nope"), 404)
    assert "nope" in error_of(served.post("/v2/models/nope/infer", json={"inputs": []}), 404)
    assert "nope" in error_of(served.get("/v2/models/nope"), 404)
    assert "nope" in error_of(served.get("/v1/endpoints/nope"), 404)
    error_of(served.get("/v1/no/such/route"), 404)
    error_of(served.get("/v1/models/nope"), 404)
    error_of(served.delete("/v1/endpoints/clf"), 405)


def test_unknown_model_or_version_in_put_is_404(served: httpx.Client) -> None:
    assert "clf" in error_of(served.put("/v1/endpoints/e2", json={"model": "clf", "version": 9}), 404)
    assert "ghost" in error_of(served.put("/v1/endpoints/e2", json={"model": "ghost", "version": 1}), 404)
    assert "champion" in error_of(served.put("/v1/endpoints/e2", json={"model": "clf", "version": "champion"}), 404)
    assert "e2" in error_of(served.get("/v1/endpoints/e2"), 404)  # nothing half-created


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"model": "clf", "version": 1, "timeout_ms": -5}, "timeout_ms"),
        ({"model": "clf", "version": 1, "timeout_ms": "soon"}, "timeout_ms"),
        ({"model": "clf", "version": 1, "automation": "maybe"}, "automation"),
        ({"model": "clf", "version": 1, "review_threshold": 2}, "review_threshold"),
        ({"model": "clf", "version": 1, "redact": {"x1": "shred"}}, "redact"),
        ({"model": "clf", "version": 1, "batching": {"max_batch_size": 0}}, "batching"),
        ({"model": "clf", "version": 1, "colour_policy": "strict"}, "colour_policy"),
        ({"version": 1}, "model"),
    ],
)
def test_bad_endpoint_config_is_400_naming_the_field(served: httpx.Client, config: dict[str, Any], field: str) -> None:
    r = served.put("/v1/endpoints/clf", json=config)
    body_field = r.json().get("field", "")
    assert field in error_of(r, 400)
    assert field in body_field
    assert served.get("/v1/endpoints/clf").json()["config"]["timeout_ms"] == 10_000  # unchanged


def test_bad_endpoint_name_and_non_object_config(served: httpx.Client) -> None:
    assert "name" in error_of(served.put("/v1/endpoints/bad%20name", json={"model": "clf", "version": 1}), 400)
    r = served.put("/v1/endpoints/clf", json=[1, 2])
    assert r.status_code in (400, 422)
    error_of(r, r.status_code)


# ----------------------------------------------------------------------------- registry refusals


def test_pickle_refused_by_default_and_accepted_with_trust(http: httpx.Client, artifacts: Artifacts) -> None:
    files = {"file": ("model.joblib", artifacts.pickle), "reference": ("ref.csv", artifacts.reference_csv)}
    refused = http.post("/v1/models/pk/versions", data={"format": "sklearn", "target": "y"}, files=files)
    message = error_of(refused, 400)
    assert "pickle" in message and "trust" in message
    error_of(http.get("/v1/models/pk"), 404)  # nothing stored

    accepted = http.post(
        "/v1/models/pk/versions", data={"format": "sklearn", "target": "y", "trust": "true"}, files=files
    )
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["lineage"]["trusted"] is True
    assert http.put("/v1/endpoints/pk", json={"model": "pk", "version": 1}).status_code == 200
    assert_serves(http, "pk")


def test_python_format_refused_over_http(http: httpx.Client) -> None:
    r = http.post("/v1/models/py/versions", data={"format": "python"}, files={"file": ("m", b"os:system")})
    message = error_of(r, 400)
    assert "python" in message and r.json()["field"] == "format"
    assert "format" in error_of(
        http.post("/v1/models/py/versions", data={"format": "tensorflow"}, files={"file": ("m", b"x")}), 400
    )


def test_upload_without_file_or_with_bad_name(http: httpx.Client, artifacts: Artifacts) -> None:
    error_of(http.post("/v1/models/m/versions", data={"format": "sklearn"}), 422)
    r = http.post("/v1/models/bad name/versions", data={"format": "sklearn"}, files={"file": ("m", artifacts.skops)})
    assert "name" in error_of(r, 400)
    r = http.post(
        "/v1/models/m/versions",
        data={"format": "sklearn", "target": "nope"},
        files={"file": ("m", artifacts.skops), "reference": ("ref.csv", artifacts.reference_csv)},
    )
    assert "target" in error_of(r, 400)


# ----------------------------------------------------------------------------- size limits


def test_oversized_body_and_upload_are_413(tmp_path: Path, artifacts: Artifacts) -> None:
    srv = make_server(tmp_path, max_body_bytes=2048, max_upload_bytes=4096)
    try:
        store: Store = srv.app.state.services.store
        register(store, Registration("clf", artifacts.skops, "sklearn", artifacts.reference_csv, "ref.csv", "y"))
        with httpx.Client(base_url=srv.url, timeout=30) as http:
            assert http.put("/v1/endpoints/clf", json={"model": "clf", "version": 1}).status_code == 200
            assert_serves(http)
            assert "2048" in error_of(predict(http, [ROW] * 100), 413)

            def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
                yield b'{"instances": ['
                for _ in range(100):
                    yield b'{"x1": 0.5, "x2": 3.0, "colour": "red"},'
                yield b"]}"

            chunked = http.post(
                "/v1/endpoints/clf/predict", content=chunks(), headers={"content-type": "application/json"}
            )
            assert "2048" in error_of(chunked, 413)
            upload = http.post(
                "/v1/models/big/versions", data={"format": "sklearn"}, files={"file": ("m", artifacts.skops)}
            )
            assert "4096" in error_of(upload, 413)
            assert_serves(http)
            assert [m["name"] for m in http.get("/v1/models").json()["models"]] == ["clf"]
    finally:
        srv.stop()


# ----------------------------------------------------------------------------- failing models

MODEL_SOURCE = '''
import time

import numpy as np


class Fragile:
    """x1 == 999 raises, x1 == 777 sleeps; otherwise predicts 2 * x1."""

    def predict(self, frame):
        x1 = frame["x1"].to_numpy()
        if (x1 == 999).any():
            raise ValueError("refusing the trigger value 999")
        if (x1 == 777).any():
            time.sleep(1.5)
        return 2 * x1
'''


@pytest.fixture
def fragile(clf: httpx.Client, server: LiveServer, tmp_path: Path, artifacts: Artifacts) -> httpx.Client:
    """Endpoint 'fragile' serving a Python model class registered through the registry function."""
    source = tmp_path / "fragile_model.py"
    source.write_text(textwrap.dedent(MODEL_SOURCE))
    store: Store = server.app.state.services.store
    record = register(
        store,
        Registration(
            name="fragile",
            artifact=python_artifact(f"{source}:Fragile"),
            format="python",
            reference=artifacts.reference[["x1", "x2"]].to_csv(index=False).encode(),
            reference_filename="ref.csv",
        ),
    )
    assert record.output == {"kind": "regression"}
    r = clf.put("/v1/endpoints/fragile", json={"model": "fragile", "version": 1, "timeout_ms": 300})
    assert r.status_code == 200, r.text
    return clf


def test_model_that_raises_gives_json_500_and_server_goes_on(fragile: httpx.Client) -> None:
    bad = fragile.post("/v1/endpoints/fragile/predict", json={"instances": [{"x1": 999.0, "x2": 1.0}]})
    message = error_of(bad, 500)
    assert "ValueError" in message and "999" in message
    assert "Traceback" not in message
    v2 = {
        "inputs": [
            {"name": "x1", "shape": [1], "datatype": "FP64", "data": [999.0]},
            {"name": "x2", "shape": [1], "datatype": "FP64", "data": [1.0]},
        ]
    }
    error_of(fragile.post("/v2/models/fragile/infer", json=v2), 500)
    good = fragile.post("/v1/endpoints/fragile/predict", json={"instances": [{"x1": 2.0, "x2": 1.0}]})
    assert good.status_code == 200 and good.json()["predictions"] == [4.0]
    assert_serves(fragile)


def test_slow_model_times_out_with_504_and_server_goes_on(fragile: httpx.Client) -> None:
    slow = fragile.post("/v1/endpoints/fragile/predict", json={"instances": [{"x1": 777.0, "x2": 1.0}]})
    assert "timeout_ms=300" in error_of(slow, 504)
    good = fragile.post("/v1/endpoints/fragile/predict", json={"instances": [{"x1": 1.5, "x2": 1.0}]})
    assert good.status_code == 200 and good.json()["predictions"] == [3.0]
    assert_serves(fragile)
    assert fragile.get("/v2/health/ready").status_code == 200


def test_after_all_errors_the_store_is_intact(fragile: httpx.Client, artifacts: Artifacts) -> None:
    before_models = fragile.get("/v1/models").json()
    before_endpoints = fragile.get("/v1/endpoints").json()
    # A burst of every kind of failure...
    predict(fragile, [{"x1": "abc", "x2": 1, "colour": "red"}])
    predict(fragile, [])
    fragile.post("/v1/endpoints/clf/predict", content=b"{", headers={"content-type": "application/json"})
    fragile.put("/v1/endpoints/clf", json={"model": "clf", "version": 42})
    fragile.put("/v1/endpoints/clf", json={"model": "clf", "version": 1, "timeout_ms": 0})
    fragile.post("/v1/models/clf/versions", data={"format": "sklearn"}, files={"file": ("m", artifacts.pickle)})
    fragile.post("/v1/models/clf/versions", data={"format": "python"}, files={"file": ("m", b"os:system")})
    fragile.post("/v1/endpoints/fragile/predict", json={"instances": [{"x1": 999.0, "x2": 1.0}]})
    fragile.post("/v1/endpoints/fragile/predict", json={"instances": [{"x1": 777.0, "x2": 1.0}]})
    # ...changes nothing that was stored.
    assert fragile.get("/v1/models").json() == before_models
    assert fragile.get("/v1/endpoints").json() == before_endpoints
    assert before_models["models"] == [
        {"name": "clf", "latest": 1, "versions": [1]},
        {"name": "fragile", "latest": 1, "versions": [1]},
    ]
    assert_serves(fragile)


def test_a_client_that_hangs_up_mid_body_is_no_server_error(
    clf: httpx.Client, server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Load generators and impatient clients close connections mid-request all the time: that is not an
    error of the server's (it was logged at ERROR with a traceback, once per wrk run and more)."""
    import logging
    import socket

    host, port = server.url.removeprefix("http://").split(":")
    with caplog.at_level(logging.DEBUG, logger="driftgate"):
        for path in ("/v1/endpoints/clf/predict", "/v2/models/clf/infer", "/v1/endpoints/clf/feedback"):
            with socket.create_connection((host, int(port))) as sock:
                sock.sendall(
                    f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    "Content-Length: 100000\r\n\r\n".encode()
                    + b'{"instances": ['
                    + b"1," * 100
                )
            assert_serves(clf)  # the next request is answered, so the cut one was handled
    unhandled = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert unhandled == [], [r.getMessage() for r in unhandled]
