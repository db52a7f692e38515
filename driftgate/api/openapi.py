"""The OpenAPI document says what the server does, and `/docs` works offline.

FastAPI documents each route's success answer and a 422 in its own `{detail}` shape. Every error
here leaves as `{"error": ...}` (`api/errors.py`), so the generated document is post-processed from
facts about each route rather than from a blanket list:

- a `require(scope)` dependency (`api/auth.py`): bearer security with that scope, 401/403 (once the
  server has tokens) and 503 (the token table could not be read yet);
- path parameters: 404; any parameter or body: 400 and 422; a body: 413 and 415;
- a prediction body (native, MLflow, V2): 413 past `max_rows_per_request`, 503 with `Retry-After`
  when the prediction log cannot take the rows, 504 past the endpoint's `timeout_ms`, 500 when the
  model fails;
- writes that can collide with a running rollout, retraining run or existing name: 409 (`CONFLICTS`).

Swagger UI and ReDoc come from the `fastapi-offline` package's files, served by this app.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import HTMLResponse

from driftgate.alerts.service import MAX_HISTORY
from driftgate.api import auth
from driftgate.api.allow import route_contexts
from driftgate.api.routes import monitoring, predict, v2
from driftgate.registry.registry import MAX_VERSION
from driftgate.serving.protocols.v2 import HEADER_LENGTH
from driftgate.settings import Settings

Doc = dict[str, Any]
ERROR = {"$ref": "#/components/schemas/Error"}
MLFLOW_ERROR = {"$ref": "#/components/schemas/MlflowError"}
SCHEMAS: Doc = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string", "description": "What went wrong: the field, what it expects, what came."}
        },
        "additionalProperties": True,
        "description": "Every error answer. Details may join `error` (`field`, `endpoint`, `rows`, "
        "`retry_after_s`, the limit that was passed...).",
    },
    "MlflowError": {
        "allOf": [
            ERROR,
            {
                "type": "object",
                "required": ["error_code", "message"],
                "properties": {
                    "error_code": {"type": "string", "description": "MLflow's code, e.g. BAD_REQUEST."},
                    "message": {"type": "string", "description": "The same text as `error`."},
                },
            },
        ],
        "description": "Errors of MLflow's scoring routes (`*/invocations`): ours plus MLflow's fields.",
    },
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before sending the request again (sent when retrying can help).",
        "schema": {"type": "integer", "minimum": 0},
    }
}
SCORING_BODIES = (predict.PREDICT_BODY, predict.MLFLOW_BODY, v2.INFER_BODY)
# (method, path) -> why a 409 can come: writes that collide with state, found by reading the services.
CONFLICTS = {
    ("PUT", "/v1/endpoints/{endpoint}"): "A rollout is running on the endpoint: promote or roll it back first.",
    ("POST", "/v1/endpoints/{endpoint}/rollouts"): "A rollout is running already, or the plan cannot start.",
    ("POST", "/v1/endpoints/{endpoint}/retrain"): "A retraining run of the endpoint is open.",
    ("POST", "/v1/alert-rules"): "An alert rule with this name exists.",
    ("POST", "/v1/models/{name}/versions"): "Concurrent registrations took the version number; retry.",
    ("POST", "/v2/models/{endpoint}/versions/{version}/infer"): "Several models behind the endpoint have "
    "that version number.",
    ("GET", "/v2/models/{endpoint}/versions/{version}"): "Several models behind the endpoint have that version.",
    **{
        ("POST", f"/v1/endpoints/{{endpoint}}/rollouts/current/{action}"): "No rollout is running, or it is in a "
        f"state that cannot {action}."
        for action in ("promote", "rollback", "pause", "resume")
    },
}
# Routes that answer 404 or 503 for reasons their parameters do not show.
NOT_FOUND = {
    ("POST", "/invocations"): "No endpoint answers MLflow's root routes (start with --mlflow-endpoint E).",
    ("GET", "/ping"): "No endpoint answers MLflow's root routes, or it is not deployed.",
    ("GET", "/health"): "No endpoint answers MLflow's root routes, or it is not deployed.",
}
# Parameters as the handlers check them (`registry.validate_name`, `check_version`, the `limit` and
# `metric` checks), which FastAPI cannot see: a request the document calls valid is one they take.
# Names are checked where they are created; elsewhere any unknown name is a 404 (or an empty list).
NAME = {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,200}$", "description": "Letters, digits, '-', '_', '.'."}
ALIAS = {
    "type": "string",
    "pattern": "^[0-9]*[A-Za-z._-][A-Za-z0-9._-]*$",
    "maxLength": 200,
    "description": "A name that is not a number (nor 'latest').",
}
MODEL_VERSION = {"anyOf": [{"type": "integer", "minimum": 1, "maximum": MAX_VERSION}, ALIAS]}
PATH_PARAMS: dict[tuple[str, str], dict[str, Doc]] = {
    ("PUT", "/v1/endpoints/{endpoint}"): {"endpoint": NAME},
    ("POST", "/v1/models/{name}/versions"): {"name": NAME},
    ("PUT", "/v1/models/{name}/aliases/{alias}"): {"alias": ALIAS},
    ("GET", "/v1/models/{name}/versions/{version}"): {"version": MODEL_VERSION},
}
QUERY_PARAMS: dict[tuple[str, str], dict[str, Doc]] = {
    ("GET", "/v1/endpoints/{endpoint}/history"): {"limit": {"minimum": 1, "maximum": 10_000}},
    ("GET", "/v1/review"): {"limit": {"minimum": 1, "maximum": 10_000}},
    ("GET", "/v1/retraining-runs"): {"limit": {"minimum": 1, "maximum": 1000}},
    ("GET", "/v1/alerts"): {"limit": {"minimum": 1, "maximum": MAX_HISTORY}},
    ("GET", "/v1/endpoints/{endpoint}/monitoring"): {
        "limit": {"minimum": 1, "maximum": 100_000},
        "metric": {"anyOf": [{"type": "string", "enum": sorted(monitoring.METRICS)}, {"type": "null"}]},
    },
}
UNAVAILABLE = {
    ("GET", "/ping"): "The server is starting or draining.",
    ("GET", "/health"): "The server is starting or draining.",
    ("GET", "/v2/models/{endpoint}/ready"): "The endpoint has no loaded version.",
    ("GET", "/v2/models/{endpoint}/versions/{version}/ready"): "The endpoint has no loaded version.",
}


def install(app: FastAPI, settings: Settings) -> None:
    """Serve the post-processed document at `/openapi.json` and the offline docs pages."""
    generate = app.openapi  # FastAPI's own generator
    built: list[Doc] = []

    def openapi() -> Doc:
        if not built:
            built.append(describe(copy.deepcopy(generate()), app, settings))
            app.openapi_schema = built[0]
        return built[0]

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to replace it
    _serve_docs(app)


def describe(doc: Doc, app: FastAPI, settings: Settings) -> Doc:
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for fastapi_own in ("HTTPValidationError", "ValidationError"):
        schemas.pop(fastapi_own, None)
    schemas.update(copy.deepcopy(SCHEMAS))
    components["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "A token made with `driftgate token create --scope SCOPE`. Scopes: `predict`, "
            "`admin` (covers every call), `metrics`. While the server has no token at all the API is open "
            "(loopback use) and these requirements do not apply.",
        }
    }
    doc["info"]["description"] = _info(settings)
    # Routes of included routers, with their router's dependencies (the token scopes) merged in.
    for route in route_contexts(app.routes):
        if not isinstance(getattr(route, "original_route", route), APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods or ():
            operation = doc["paths"].get(route.path_format, {}).get(method.lower())
            if operation is not None:
                _describe_operation(operation, method, route, settings)
    _special(doc)
    return doc


def _info(settings: Settings) -> str:
    return (
        "Serve, roll out, log and monitor ML models.\n\n"
        'Every error is JSON `{"error": "...", ...details}` (MLflow\'s scoring routes add `error_code` and '
        "`message`). Limits of this server: request bodies up to `max_body_bytes` = "
        f"{settings.max_body_bytes} bytes (model uploads `max_upload_bytes` = {settings.max_upload_bytes}), "
        f"at most `max_rows_per_request` = {settings.max_rows_per_request} rows per prediction request, "
        f"feedback labels up to `max_label_bytes` = {settings.max_label_bytes} bytes; past them: 413 "
        "naming the limit."
    )


def scopes(dependant: Dependant, settings: Settings) -> Iterator[str]:
    """The token scopes the route's `require(...)` dependencies ask for (`api/auth.py`)."""
    for dep in dependant.dependencies:
        call = dep.call
        if call is auth.require_metrics:
            if settings.metrics_auth:
                yield "metrics"
        elif callable(call) and getattr(call, "__qualname__", "") == f"{auth.require.__name__}.<locals>.check":
            scope = inspect.getclosurevars(call).nonlocals.get("scope")
            if isinstance(scope, str):
                yield scope
        yield from scopes(dep, settings)


def _describe_operation(op: Doc, method: str, route: Any, settings: Settings) -> None:
    """`route`: a FastAPI `RouteContext` of an `APIRoute` (its attributes are the route's)."""
    key = (method, route.path_format)
    params = {p.get("in") for p in op.get("parameters", [])}
    has_body = "requestBody" in op
    scoring = route.openapi_extra is not None and any(route.openapi_extra is b for b in SCORING_BODIES)
    error = MLFLOW_ERROR if route.path_format.endswith("/invocations") else ERROR
    answers: dict[int, str] = {}
    notes: list[str] = []

    needed = sorted(set(scopes(route.dependant, settings)))
    if len(needed) > 1:  # every check must pass and a token has one scope: only admin passes several
        needed = ["admin"]
    op["security"] = [{"bearer": needed}] if needed else []
    if needed:
        answers[401] = "No bearer token, or an unknown or revoked one (once the server has API tokens)."
        answers[403] = f"The token's scope is not {' or '.join(needed)} (or admin)."
        answers[503] = "The store is unavailable and the API tokens were not read yet: retry."
    if "path" in params:
        answers[404] = "Nothing by that name (endpoint, model, version, rule, run, prediction)."
    if key in NOT_FOUND:
        answers[404] = NOT_FOUND[key]
    if params or has_body:
        answers[400] = "The request is malformed: not JSON, a value of the wrong shape or out of range."
        answers[422] = "The request does not validate: a parameter of the wrong type, a missing field"
        answers[422] += ", or rows that do not fit the model's input schema." if scoring else "."
    max_body = settings.max_body_bytes
    if has_body:
        upload = route.path_format == "/v1/models/{name}/versions"  # BodyLimit's other limit
        name, limit = ("max_upload_bytes", settings.max_upload_bytes) if upload else ("max_body_bytes", max_body)
        answers[413] = f"The body is larger than {name} = {limit} bytes."
        answers[415] = "A Content-Encoding other than gzip, deflate or identity."
        notes.append(f"Body: at most `{name}` = {limit} bytes (413); gzip or deflate bodies are decoded.")
    if scoring:
        answers[413] = (
            f"The body is larger than max_body_bytes = {settings.max_body_bytes} bytes, or it has more than "
            f"max_rows_per_request = {settings.max_rows_per_request} rows (or than the prediction log holds)."
        )
        answers[503] = "The prediction log cannot take these rows now (nothing was scored), or the store is "
        answers[503] += "unavailable: retry after `Retry-After` seconds."
        answers[504] = "The model took longer than the endpoint's `timeout_ms`."
        answers[500] = "The model or a pipeline step raised on these rows (the message names the exception)."
        notes.append(f"Rows: at most `max_rows_per_request` = {settings.max_rows_per_request} per request (413).")
    if route.path_format.endswith("/feedback") or route.path_format.startswith("/v1/review/"):
        answers[413] = f"A string label is longer than max_label_bytes = {settings.max_label_bytes} bytes."
        notes.append(f"Labels: strings up to `max_label_bytes` = {settings.max_label_bytes} bytes (413).")
    if key in CONFLICTS:
        answers[409] = CONFLICTS[key]
    if key in UNAVAILABLE:
        answers[503] = UNAVAILABLE[key]

    _parameters(op, key)
    responses = op.setdefault("responses", {})
    for status, text in sorted(answers.items()):
        answer: Doc = {"description": text, "content": {"application/json": {"schema": error}}}
        if status == 503:
            answer["headers"] = copy.deepcopy(RETRY_AFTER)
        responses[str(status)] = answer
    op["responses"] = dict(sorted(responses.items()))
    if notes:
        op["description"] = "\n\n".join([op.get("description", ""), "Limits: " + " ".join(notes)]).strip()


def _parameters(op: Doc, key: tuple[str, str]) -> None:
    for param in op.get("parameters", []):
        name, where = param["name"], param["in"]
        if where == "path" and name in PATH_PARAMS.get(key, {}):
            param["schema"] = {**copy.deepcopy(PATH_PARAMS[key][name]), "title": param["schema"].get("title", name)}
        elif where == "query" and name in QUERY_PARAMS.get(key, {}):
            param["schema"].update(copy.deepcopy(QUERY_PARAMS[key][name]))
            if "anyOf" in QUERY_PARAMS[key][name]:
                param["schema"].pop("type", None)


def _special(doc: Doc) -> None:
    """Answers whose shape FastAPI cannot see: they are built by hand in the route."""
    paths = doc["paths"]
    metrics = paths["/metrics"]["get"]["responses"]["200"]
    metrics["content"] = {
        "text/plain": {"schema": {"type": "string"}},
        "application/openmetrics-text": {"schema": {"type": "string"}},
    }
    # MLflow's scoring server answers these with text under application/json (`0.1.0`, a newline);
    # driftgate copies it for MLflow's clients, so no JSON schema is claimed for them.
    for path in ("/version", "/ping", "/health"):
        paths[path]["get"]["responses"]["200"]["content"] = {"application/json": {}}
    ready = paths["/v2/health/ready"]["get"]["responses"]
    ready["503"] = {"description": "Not ready (starting or draining): the same body with `ready: false`."}
    ready["503"]["content"] = copy.deepcopy(ready["200"]["content"])
    upload = doc["components"]["schemas"].get("Body_create_version_v1_models__name__versions_post", {})
    properties = upload.get("properties", {})
    if "format" in properties:
        properties["format"]["enum"] = ["sklearn", "onnx", "mlflow"]
    for field in ("reference", "target", "description"):
        if field in properties:  # optional: left out, never null
            nullable = properties[field].pop("anyOf", None)
            if nullable:
                properties[field].update(next(b for b in nullable if b.get("type") != "null"))
    for path in ("/v2/models/{endpoint}/infer", "/v2/models/{endpoint}/versions/{version}/infer"):
        if path in paths:
            paths[path]["post"].setdefault("parameters", []).append(
                {
                    "name": HEADER_LENGTH,
                    "in": "header",
                    "required": False,
                    "description": "Binary tensor data: the length of the JSON part of the body.",
                    "schema": {"type": "integer", "minimum": 0},
                }
            )


# ---- docs pages ---------------------------------------------------------------------------------

ASSETS = "/docs/assets"


def _serve_docs(app: FastAPI) -> None:
    """Replace FastAPI's `/docs` and `/redoc` (scripts from a CDN: a blank page offline) with pages
    whose scripts, styles and icon this app serves itself."""
    pages = {app.docs_url, app.redoc_url}
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) not in pages]
    static = resources.files("fastapi_offline") / "static"
    app.mount(ASSETS, StaticFiles(directory=str(static)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    def page(render: Callable[[str], HTMLResponse]) -> Callable[[Request], Any]:
        async def serve(request: Request) -> HTMLResponse:
            return render(str(request.scope.get("root_path", "")))

        return serve

    if app.docs_url:
        app.add_route(
            app.docs_url,
            page(
                lambda root: get_swagger_ui_html(
                    openapi_url=root + openapi_url,
                    title=f"{app.title} - Swagger UI",
                    swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
                    swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
                    swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
                    # The default validator badge is an image from swagger.io.
                    swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
                )
            ),
            include_in_schema=False,
        )
    if app.redoc_url:
        app.add_route(
            app.redoc_url,
            page(
                lambda root: get_redoc_html(
                    openapi_url=root + openapi_url,
                    title=f"{app.title} - ReDoc",
                    redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
                    redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
                    with_google_fonts=False,
                )
            ),
            include_in_schema=False,
        )
