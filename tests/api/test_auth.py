"""Bearer tokens with scopes: open with no token configured; predict vs admin; stored hashed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from driftgate.api.auth import REFRESH_SECONDS
from driftgate.client import Client, ServerError
from driftgate.store import Store
from tests.conftest import Artifacts, LiveServer

ROW = {"x1": 0.5, "x2": 3.0, "colour": "red"}
CONFIG = {"model": "clf", "version": 1}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_without_tokens_the_api_is_open(deployed: Client, server: LiveServer) -> None:
    with httpx.Client(base_url=server.url) as http:
        assert http.post("/v1/endpoints/clf/predict", json={"instances": [ROW]}).status_code == 200
        assert http.put("/v1/endpoints/clf2", json=CONFIG).status_code == 200
        assert http.get("/v1/review").status_code == 200
        # A token that means nothing is simply not looked at while the API is open.
        assert http.get("/v1/models", headers=bearer("whatever")).status_code == 200


@pytest.fixture
def tokens(deployed: Client, server: LiveServer) -> Iterator[tuple[str, str]]:
    """(predict token, admin token), created on the server's own store after the model was deployed."""
    store: Store = server.app.state.services.store
    predict_token = store.tokens.create("predict", "app")
    admin_token = store.tokens.create("admin", "ops")
    # The server caches the token table; make it re-read now instead of waiting for the refresh.
    server.app.state.services.tokens._loaded_at -= 2 * REFRESH_SECONDS
    yield predict_token, admin_token


def test_missing_or_wrong_token_is_401(tokens: tuple[str, str], server: LiveServer) -> None:
    predict_token, _ = tokens
    with httpx.Client(base_url=server.url) as http:
        for headers in (
            {},
            bearer("dg_admin_guessed"),
            {"Authorization": predict_token},
            {"Authorization": "Basic dXNlcjpwdw=="},
        ):
            r = http.post("/v1/endpoints/clf/predict", json={"instances": [ROW]}, headers=headers)
            assert r.status_code == 401, (headers, r.text)
            assert "token" in r.json()["error"]
            assert http.put("/v1/endpoints/clf", json=CONFIG, headers=headers).status_code == 401
            assert http.get("/v1/models", headers=headers).status_code == 401
            assert http.post("/v2/models/clf/infer", json={"inputs": []}, headers=headers).status_code == 401
            assert http.post("/v1/endpoints/clf/events", json={"events": []}, headers=headers).status_code == 401
        # Liveness and readiness stay open for load balancers.
        assert http.get("/v2/health/live").status_code == 200
        assert http.get("/v2/health/ready").status_code == 200


def test_predict_token_predicts_but_cannot_administer(tokens: tuple[str, str], server: LiveServer) -> None:
    predict_token, _ = tokens
    with Client(server.url, token=predict_token) as client:
        answer = client.predict("clf", [ROW])
        assert answer["version"] == 1
        assert client.feedback("clf", {answer["ids"][0]: 1}) == {"accepted": 1, "unknown_ids": []}
        assert client.events("clf", [(answer["ids"][0], "user_retried")]) == {"accepted": 1, "unknown_ids": []}
        assert client.endpoint("clf")["config"]["model"] == "clf"
        with pytest.raises(ServerError) as denied:
            client.deploy("clf", "clf", 1, timeout_ms=5)
        assert denied.value.status_code == 403
        assert "admin" in denied.value.message
        for call in (client.models, client.review_queue):
            with pytest.raises(ServerError) as denied:
                call()
            assert denied.value.status_code == 403
    with httpx.Client(base_url=server.url, headers=bearer(predict_token)) as http:
        v2 = {
            "inputs": [
                {"name": n, "shape": [1], "datatype": "FP64" if n != "colour" else "BYTES", "data": [v]}
                for n, v in ROW.items()
            ]
        }
        assert http.post("/v2/models/clf/infer", json=v2).status_code == 200
        assert http.post("/v1/endpoints/clf/invocations", json={"dataframe_records": [ROW]}).status_code == 200
    with Client(server.url, token=tokens[1]) as admin:
        assert admin.endpoint("clf")["config"]["timeout_ms"] == 10_000  # the refused PUT changed nothing


def test_admin_token_does_everything(tokens: tuple[str, str], server: LiveServer, artifacts: Artifacts) -> None:
    _, admin_token = tokens
    with Client(server.url, token=admin_token) as client:
        assert client.predict("clf", [ROW])["model"] == "clf"
        assert client.deploy("clf", "clf", 1, timeout_ms=5000)["config"]["timeout_ms"] == 5000
        assert (
            client.register_model("clf", artifacts.regression_skops, "sklearn", artifacts.reference_csv, "y")["version"]
            == 2
        )
        assert [m["name"] for m in client.models()["models"]] == ["clf"]
        assert client.review_queue() == []


def test_revoked_token_stops_working(tokens: tuple[str, str], server: LiveServer) -> None:
    predict_token, _ = tokens
    services = server.app.state.services
    app_token = next(t for t in services.store.tokens.list() if t["name"] == "app")
    assert services.store.tokens.revoke(app_token["id"])
    services.tokens._loaded_at -= 2 * REFRESH_SECONDS
    with httpx.Client(base_url=server.url, headers=bearer(predict_token)) as http:
        assert http.post("/v1/endpoints/clf/predict", json={"instances": [ROW]}).status_code == 401


def test_tokens_are_stored_hashed(tokens: tuple[str, str], server: LiveServer, tmp_path: Path) -> None:
    store: Store = server.app.state.services.store
    assert store.dialect == "sqlite"
    files = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert files, "the SQLite store should live under the data dir"
    for token in tokens:
        secret = token.encode()
        for path in files:  # the database and its WAL
            assert secret not in path.read_bytes(), path
    listed = store.tokens.list()
    assert {t["scope"] for t in listed} == {"predict", "admin"}
    assert all(token not in str(listed) for token in tokens)
