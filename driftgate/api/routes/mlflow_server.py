"""MLflow's own routes, so MLflow's clients talk to driftgate unchanged.

- `mlflow models serve` (and `ScoringServerClient`): `POST /invocations`, `GET /ping`, `/health`,
  `/version`, for the one endpoint chosen with `serve --mlflow-endpoint E`.
- `mlflow.deployments.get_deploy_client("http://host:port")`: `POST /endpoints/{e}/invocations`.

Both go through the same handler as `POST /v1/endpoints/{e}/invocations` (checks, batching, logging,
rollouts); their errors also carry MLflow's `error_code` and `message` (see `api/errors.py`).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from driftgate import __version__
from driftgate.api.auth import require
from driftgate.api.routes import JSON
from driftgate.api.routes.predict import MLFLOW_BODY, invocations
from driftgate.api.services import services
from driftgate.errors import EndpointNotFound, NotReady

router = APIRouter(tags=["mlflow"])


def _mlflow_endpoint(request: Request) -> str:
    endpoint = services(request).settings.mlflow_endpoint
    if not endpoint:
        raise EndpointNotFound(
            "no endpoint answers MLflow's root routes: start the server with --mlflow-endpoint E, "
            "or call POST /v1/endpoints/{endpoint}/invocations"
        )
    return endpoint


@router.post("/invocations", openapi_extra=MLFLOW_BODY, dependencies=[Depends(require("predict"))])
async def root_invocations(request: Request) -> Response:
    """MLflow's scoring protocol for the `--mlflow-endpoint` endpoint."""
    return await invocations(request, _mlflow_endpoint(request))


@router.post(
    "/endpoints/{endpoint}/invocations", openapi_extra=MLFLOW_BODY, dependencies=[Depends(require("predict"))]
)
async def deployments_invocations(request: Request, endpoint: str) -> Response:
    """The route `mlflow.deployments` clients call for `predict(endpoint=...)`."""
    return await invocations(request, endpoint)


@router.get("/ping")
@router.get("/health")
async def ping(request: Request) -> Response:
    """MLflow's health check: 200 once the server is ready and the MLflow endpoint is deployed."""
    svc = services(request)
    if not svc.ready:
        raise NotReady("the server is starting or draining")
    svc.dataplane.state(_mlflow_endpoint(request))
    return Response("\n", media_type=JSON)


@router.get("/version")
async def version() -> Response:
    return Response(__version__, media_type=JSON)
