"""Prometheus metrics and the dashboard page."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_TYPE
from starlette.concurrency import run_in_threadpool

from driftgate.api.auth import require_metrics
from driftgate.api.services import services

router = APIRouter(tags=["system"])


@router.get("/metrics", include_in_schema=True, dependencies=[Depends(require_metrics)])
async def metrics(request: Request) -> Response:
    """Prometheus text format, or OpenMetrics when the scraper accepts `application/openmetrics-text`
    (Prometheus asks for it first). Open unless the server runs with `--metrics-auth`."""
    svc = services(request)
    openmetrics = wants_openmetrics(request.headers.get("accept", ""))
    # With several workers this merges every worker's metric files: file reads, off the event loop.
    body = await run_in_threadpool(svc.metrics.exposition, openmetrics)
    return Response(body, headers={"Content-Type": OPENMETRICS_TYPE if openmetrics else CONTENT_TYPE_LATEST})


def wants_openmetrics(accept: str) -> bool:
    """Whether an Accept header takes OpenMetrics (q=0 refuses it)."""
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if media.lower() == "application/openmetrics-text":
            return not any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params)
    return False


@router.get("/", include_in_schema=False)
async def dashboard() -> HTMLResponse:
    page = resources.files("driftgate.dashboard").joinpath("index.html").read_text()
    return HTMLResponse(page)
