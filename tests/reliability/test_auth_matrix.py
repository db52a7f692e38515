"""The auth matrix over every operation of the OpenAPI document, with tokens configured: no token ->
401, a predict-scope token on an admin operation -> 403, an admin token is never refused. Operations
are admin-only unless listed here: a new route that should be open or predict-scope must be added
to these lists on purpose."""

from __future__ import annotations

import re
from typing import Any

import httpx

from driftgate.api.auth import REFRESH_SECONDS
from tests.conftest import LiveServer

# Answer without a token (load balancers, Prometheus, version probes).
PUBLIC = {
    ("GET", "/v2"),
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
    ("GET", "/metrics"),
    ("GET", "/version"),
    ("GET", "/health"),
    ("GET", "/ping"),
    ("GET", "/v2/models/{endpoint}/ready"),
    ("GET", "/v2/models/{endpoint}/versions/{version}/ready"),
}
# A predict-scope token may call these (scoring, feedback, reading what serving does).
PREDICT = {
    ("GET", "/v1/endpoints"),
    ("GET", "/v1/endpoints/{endpoint}"),
    ("POST", "/v1/endpoints/{endpoint}/predict"),
    ("POST", "/v1/endpoints/{endpoint}/invocations"),
    ("POST", "/v1/endpoints/{endpoint}/feedback"),
    ("POST", "/v1/endpoints/{endpoint}/events"),
    ("GET", "/v1/endpoints/{endpoint}/rollouts"),
    ("GET", "/v1/endpoints/{endpoint}/rollouts/current"),
    ("GET", "/v1/endpoints/{endpoint}/drift"),
    ("GET", "/v1/endpoints/{endpoint}/monitoring"),
    ("GET", "/v1/endpoints/{endpoint}/monitoring/report"),
    ("GET", "/v1/alert-rules"),
    ("GET", "/v1/alert-rules/{name}"),
    ("GET", "/v1/alerts"),
    ("GET", "/v1/retraining-runs"),
    ("GET", "/v2/models/{endpoint}"),
    ("GET", "/v2/models/{endpoint}/versions/{version}"),
    ("GET", "/v2/models/stats"),
    ("GET", "/v2/models/{endpoint}/stats"),
    ("GET", "/v2/models/{endpoint}/versions/{version}/stats"),
    ("POST", "/v2/models/{endpoint}/infer"),
    ("POST", "/v2/models/{endpoint}/versions/{version}/infer"),
    ("POST", "/invocations"),
    ("POST", "/endpoints/{endpoint}/invocations"),
}
REFUSED = (401, 403)


def _operations(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [(method.upper(), path) for path, item in doc["paths"].items() for method in item]


def _call(http: httpx.Client, method: str, path: str, token: str | None) -> int:
    url = re.sub(r"\{[^}]+\}", lambda m: "clf" if m.group(0) in ("{endpoint}", "{model}", "{name}") else "1", path)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
    return http.request(method, url, headers=headers, **body).status_code


def test_every_operation_checks_its_token(server: LiveServer, figures: dict[str, Any]) -> None:
    svc = server.app.state.services
    predict_token = svc.store.tokens.create("predict", "app")
    admin_token = svc.store.tokens.create("admin", "ops")
    svc.tokens._loaded_at -= 2 * REFRESH_SECONDS  # read the new tokens now, not at the next refresh
    wrong: list[str] = []
    with httpx.Client(base_url=server.url, timeout=30) as http:
        operations = _operations(http.get("/openapi.json").json())
        for method, path in operations:
            op = (method, path)
            anonymous = _call(http, method, path, None)
            predict = _call(http, method, path, predict_token)
            admin = _call(http, method, path, admin_token)
            if op in PUBLIC:
                expected_ok = anonymous not in REFUSED and predict not in REFUSED
            elif op in PREDICT:
                expected_ok = anonymous == 401 and predict not in REFUSED
            else:
                expected_ok = anonymous == 401 and predict == 403
            if not expected_ok or admin in REFUSED:
                wrong.append(f"{method} {path}: no token {anonymous}, predict {predict}, admin {admin}")
    figures.update(
        operations=len(operations),
        public=sum(op in PUBLIC for op in operations),
        predict_scope=sum(op in PREDICT for op in operations),
        admin_only=sum(op not in PUBLIC | PREDICT for op in operations),
        wrong=len(wrong),
    )
    assert len(operations) >= 40, "the OpenAPI document lost its operations"
    assert not wrong, "\n".join(wrong)
