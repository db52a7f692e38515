"""The OpenAPI document says what the server does (statuses, error shape, bearer scopes, limits), a
405 lists the path's real methods, and `/docs` works with no network: its scripts, styles and icon
come from this server (checked by fetching them, and by rendering the page in headless Chromium)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from driftgate.server.app import create_app
from driftgate.settings import Settings
from tests.conftest import LiveServer, make_server

SETTINGS = Settings(max_body_bytes=1234567, max_rows_per_request=4321, max_label_bytes=999)


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return create_app(SETTINGS).openapi()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv = make_server(Path(tmp_path_factory.mktemp("openapi")))
    yield srv
    srv.stop()


def op(doc: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    return doc["paths"][path][method.lower()]


def statuses(doc: dict[str, Any], method: str, path: str) -> set[int]:
    return {int(s) for s in op(doc, method, path)["responses"]}


def test_errors_are_documented_as_the_server_sends_them(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert schemas["Error"]["required"] == ["error"]
    assert "HTTPValidationError" not in schemas  # FastAPI's {detail}: never sent
    invalid = op(doc, "PUT", "/v1/models/{name}/aliases/{alias}")["responses"]["422"]
    assert invalid["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    mlflow = op(doc, "POST", "/invocations")["responses"]["400"]["content"]["application/json"]["schema"]
    assert mlflow == {"$ref": "#/components/schemas/MlflowError"}


def test_statuses_come_from_what_each_route_does(doc: dict[str, Any]) -> None:
    predict = statuses(doc, "POST", "/v1/endpoints/{endpoint}/predict")
    assert {200, 400, 401, 403, 404, 413, 415, 422, 500, 503, 504} <= predict and 409 not in predict
    assert op(doc, "POST", "/v1/endpoints/{endpoint}/predict")["responses"]["503"]["headers"]["Retry-After"]
    assert {409, 413, 401, 403} <= statuses(doc, "PUT", "/v1/endpoints/{endpoint}")
    assert 409 in statuses(doc, "POST", "/v1/endpoints/{endpoint}/rollouts/current/promote")
    assert statuses(doc, "GET", "/v1/endpoints") == {200, 401, 403, 503}  # no parameter: no 400/404/422
    assert statuses(doc, "GET", "/v2/health/live") == {200}  # open, no parameters
    assert {404, 503} <= statuses(doc, "GET", "/ping")


def test_bearer_scopes_come_from_the_routes_dependencies(doc: dict[str, Any]) -> None:
    assert doc["components"]["securitySchemes"]["bearer"] == {
        **doc["components"]["securitySchemes"]["bearer"],
        "type": "http",
        "scheme": "bearer",
    }
    assert op(doc, "POST", "/v1/endpoints/{endpoint}/predict")["security"] == [{"bearer": ["predict"]}]
    assert op(doc, "PUT", "/v1/endpoints/{endpoint}")["security"] == [{"bearer": ["admin"]}]
    # The monitoring router asks for predict and the route for admin: only an admin token passes both.
    assert op(doc, "POST", "/v1/endpoints/{endpoint}/monitor")["security"] == [{"bearer": ["admin"]}]
    assert op(doc, "GET", "/v2/health/ready")["security"] == []
    assert op(doc, "GET", "/metrics")["security"] == []
    with_auth = create_app(Settings(metrics_auth=True)).openapi()
    assert op(with_auth, "GET", "/metrics")["security"] == [{"bearer": ["metrics"]}]
    assert {401, 403} <= statuses(with_auth, "GET", "/metrics")


def test_limits_are_this_servers(doc: dict[str, Any]) -> None:
    predict = op(doc, "POST", "/v1/endpoints/{endpoint}/predict")
    assert "1234567" in predict["description"] and "4321" in predict["description"]
    assert "4321" in predict["responses"]["413"]["description"]
    assert "999" in op(doc, "POST", "/v1/endpoints/{endpoint}/feedback")["responses"]["413"]["description"]
    assert "max_upload_bytes" in op(doc, "POST", "/v1/models/{name}/versions")["description"]
    assert "4321" in doc["info"]["description"]


def test_405_allows_every_method_of_the_path(live: LiveServer) -> None:
    answer = httpx.delete(f"{live.url}/v1/endpoints/anything")  # GET and PUT routes share this path
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, HEAD, PUT"
    assert answer.json() == {"error": "Method Not Allowed"}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/models/m/aliases/prod", {"version": True}),
        ("/v1/models/m/aliases/prod", {"version": "1"}),
        ("/v1/endpoints/e/monitor", {"since": False}),
        ("/v1/endpoints/e/monitor", {"last": "5"}),
    ],
)
def test_bodies_take_json_numbers_only(live: LiveServer, path: str, body: dict[str, Any]) -> None:
    """What the document calls a number: pydantic's lax mode read `true` as 1 and "5" as 5."""
    method = "PUT" if "aliases" in path else "POST"
    answer = httpx.request(method, live.url + path, json=body)
    assert answer.status_code == 422, answer.text
    assert "must be" in answer.json()["error"]


def assets_of(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', page)


def test_docs_pages_load_everything_from_this_server(live: LiveServer) -> None:
    for page_path in ("/docs", "/redoc"):
        page = httpx.get(live.url + page_path)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        urls = assets_of(page.text)
        assert len(urls) >= 2, urls
        for url in urls:
            assert url.startswith("/"), f"{page_path} loads {url} from elsewhere"
            asset = httpx.get(live.url + url)
            assert asset.status_code == 200 and len(asset.content) > 1000, url
        assert "https://" not in page.text.replace("https://github.com", "")


@pytest.mark.browser
def test_swagger_ui_renders_offline(live: LiveServer) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: run scripts/browser (scripts/test does)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            outside: list[str] = []

            def offline(route: Any) -> None:
                """No network: anything not from this server is refused, and recorded."""
                if route.request.url.startswith(live.url):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", offline)
            page.goto(live.url + "/docs")
            page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
            assert page.locator(".swagger-ui .opblock").count() >= 40
            assert "driftgate" in page.locator(".swagger-ui .info .title").inner_text()
            assert page.locator(".swagger-ui .btn.authorize").count() == 1  # the bearer scheme
            assert outside == []
        finally:
            browser.close()
