"""Prometheus metrics and the dashboard page."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from driftgate.api.services import services

router = APIRouter(tags=["system"])


@router.get("/metrics", include_in_schema=True)
async def metrics(request: Request) -> Response:
    svc = services(request)
    svc.metrics.log_queue.set(svc.recorder.queued_rows)
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/", include_in_schema=False)
async def dashboard() -> HTMLResponse:
    page = resources.files("driftgate.dashboard").joinpath("index.html").read_text()
    return HTMLResponse(page)
