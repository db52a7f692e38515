"""Property-based API tests from the app's own OpenAPI schema, with all of schemathesis' checks: no
5xx, and every answer's status, content type, headers and body as the document says; schema-valid
requests accepted, schema-invalid ones refused; bearer auth enforced where the document asks for it;
405 with a true `Allow` for undocumented methods.

The schema is built at collection time from `create_app(...).openapi()` so that pytest gets one
test per operation (schemathesis' lazy fixture loader does not work with this pytest); a test
checks that it is exactly what the live server publishes at `/openapi.json`.

Two passes over every operation: one with the path parameters as schemathesis generates them
(mostly unknown names, so mostly 404s), one with them pinned to the deployed model and endpoint,
so that generated bodies reach the decoders, the schema checks and the model.

The server has an admin token, sent with every request, so that the documented security is real:
`ignored_auth` sends each secured request again without it and with a wrong one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CheckFunction
from schemathesis.specs.openapi.checks import positive_data_acceptance

from driftgate.api.auth import REFRESH_SECONDS
from driftgate.client import Client
from driftgate.server.app import create_app
from driftgate.settings import Settings
from tests.conftest import Artifacts, make_server

EXAMPLES = settings(
    max_examples=15, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
OPENAPI = create_app(Settings()).openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)
# The second pass: path parameters set by the configuration, so that schemathesis knows they are not
# the (possibly schema-violating) values it generated.
pinned = schemathesis.openapi.from_dict(OPENAPI)
pinned.config.update(parameters={"path.endpoint": "clf", "path.name": "clf"})
for each in (schema, pinned):
    # The token is sent by the test (below), not generated: a generated or removed Authorization
    # header would be replaced by it, and schemathesis would take the request for one without auth.
    each.config.generation.update(with_security_parameters=False)
    # 413 is a refusal too: more than MAX_EVENTS events, a body or label over its limit.
    refusals = each.config.checks.negative_data_rejection
    refusals.expected_statuses = [*refusals.expected_statuses, "413"]  # a copy: the default list is shared

# Schema-valid requests the server refuses for reasons no static document can state. Each is
# excluded from `positive_data_acceptance` only, and only in the pass where it applies.
SCORING = (
    "POST /v1/endpoints/{endpoint}/predict",
    "POST /v1/endpoints/{endpoint}/invocations",
    "POST /endpoints/{endpoint}/invocations",
    "POST /v2/models/{endpoint}/infer",
    "POST /v2/models/{endpoint}/versions/{version}/infer",
)
STATEFUL_REFUSALS = {
    # Model files: random bytes are no skops, ONNX or MLflow artifact (400 says why).
    "POST /v1/models/{name}/versions": "any",
    # Configs and plans are checked against the registry, the server's module allowlists and each
    # other's fields (a canary needs steps, a version must exist): free-form JSON in the document.
    "PUT /v1/endpoints/{endpoint}": "any",
    "POST /v1/endpoints/{endpoint}/rollouts": "any",
    "POST /v1/endpoints/{endpoint}/retrain": "any",
    # Webhook targets are resolved and checked against the SSRF policy (no DNS here: 400).
    "POST /v1/alert-rules": "any",
    # Windows: `since` <= `until`, at most one of `last`/`since`, baseline windows need bounds, and
    # drift needs at least 10 logged rows in the window: rules across fields and over the data.
    "GET /v1/endpoints/{endpoint}/drift": "deployed",
    "POST /v1/endpoints/{endpoint}/monitor": "deployed",
    "GET /v1/endpoints/{endpoint}/monitoring": "deployed",
    **{label: "deployed" for label in SCORING},  # rows must fit the deployed model's input schema (422)
}


@dataclass
class Api:
    url: str
    headers: dict[str, str]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, artifacts: Artifacts) -> Iterator[Api]:
    """A server with model 'clf' v1 deployed at endpoint 'clf', and an admin token."""
    srv = make_server(Path(tmp_path_factory.mktemp("schemathesis")))
    try:
        with Client(srv.url) as client:
            client.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
            client.deploy("clf", "clf", 1)
        services = srv.app.state.services
        token = services.store.tokens.create("admin", "schemathesis")
        services.tokens._loaded_at -= 2 * REFRESH_SECONDS  # read the token table now, not in 2 s
        yield Api(srv.url, {"Authorization": f"Bearer {token}"})
    finally:
        srv.stop()


def excluded(case: schemathesis.Case, deployed: bool) -> list[CheckFunction]:
    where = STATEFUL_REFUSALS.get(case.operation.label)
    return [positive_data_acceptance] if where == "any" or (where == "deployed" and deployed) else []


def test_the_schema_is_what_the_server_publishes(live: Api) -> None:
    published = httpx.get(f"{live.url}/openapi.json").json()  # public, like /docs
    assert published == OPENAPI
    assert len(list(schema.get_all_operations())) >= 20


@schema.parametrize()
@EXAMPLES
def test_api_conforms(case: schemathesis.Case, live: Api) -> None:
    case.call_and_validate(base_url=live.url, headers=live.headers, excluded_checks=excluded(case, False))


@pinned.parametrize()
@EXAMPLES
def test_api_conforms_on_the_deployed_endpoint(case: schemathesis.Case, live: Api) -> None:
    case.call_and_validate(base_url=live.url, headers=live.headers, excluded_checks=excluded(case, True))


def test_the_deployed_model_still_answers(live: Api) -> None:
    """Runs after the generated requests (pytest keeps file order): none of them broke the endpoint."""
    ok = httpx.post(
        f"{live.url}/v1/endpoints/clf/predict",
        json={"instances": [{"x1": 0.5, "x2": 3.0, "colour": "red"}]},
        headers=live.headers,
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["model"] == "clf"
