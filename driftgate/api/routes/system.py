"""Prometheus metrics and the dashboard page."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from driftgate.api.services import services

router = APIRouter(tags=["system"])


@router.get("/metrics", include_in_schema=True)
async def metrics(request: Request) -> Response:
    svc = services(request)
    # With several workers this merges every worker's metric files: file reads, off the event loop.
    body = await run_in_threadpool(svc.metrics.exposition)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@router.get("/", include_in_schema=False)
async def dashboard() -> HTMLResponse:
    page = resources.files("driftgate.dashboard").joinpath("index.html").read_text()
    return HTMLResponse(page)
