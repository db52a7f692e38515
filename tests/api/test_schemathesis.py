"""Property-based API tests from the app's own OpenAPI schema: no generated request may get a 5xx.

The schema is built at collection time from `create_app(...).openapi()` so that pytest gets one
test per operation (schemathesis' lazy fixture loader does not work with this pytest); a test
checks that it is exactly what the live server publishes at `/openapi.json`.

Two passes over every operation: one with the path parameters as schemathesis generates them
(mostly unknown names, so mostly 404s), one with them pinned to the deployed model and endpoint,
so that generated bodies reach the decoders, the schema checks and the model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from driftgate.client import Client
from driftgate.server.app import create_app
from driftgate.settings import Settings
from tests.conftest import Artifacts, LiveServer, make_server

EXAMPLES = settings(
    max_examples=15, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
OPENAPI = create_app(Settings()).openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, artifacts: Artifacts) -> Iterator[LiveServer]:
    """A server with model 'clf' v1 deployed at endpoint 'clf'."""
    srv = make_server(Path(tmp_path_factory.mktemp("schemathesis")))
    with Client(srv.url) as client:
        client.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
        client.deploy("clf", "clf", 1)
    yield srv
    srv.stop()


def test_the_schema_is_what_the_server_publishes(live: LiveServer) -> None:
    published = httpx.get(f"{live.url}/openapi.json").json()
    assert published == OPENAPI
    assert len(list(schema.get_all_operations())) >= 20


@schema.parametrize()
@EXAMPLES
def test_no_server_errors(case: schemathesis.Case, live: LiveServer) -> None:
    case.call_and_validate(base_url=live.url, checks=[not_a_server_error])


@schema.parametrize()
@EXAMPLES
def test_no_server_errors_on_the_deployed_endpoint(case: schemathesis.Case, live: LiveServer) -> None:
    for key in ("endpoint", "name"):
        if case.path_parameters and key in case.path_parameters:
            case.path_parameters[key] = "clf"
    case.call_and_validate(base_url=live.url, checks=[not_a_server_error])


def test_the_deployed_model_still_answers(live: LiveServer) -> None:
    """Runs after the generated requests (pytest keeps file order): none of them broke the endpoint."""
    ok = httpx.post(
        f"{live.url}/v1/endpoints/clf/predict", json={"instances": [{"x1": 0.5, "x2": 3.0, "colour": "red"}]}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["model"] == "clf"
