"""Drift and monitoring routes (SPEC 6)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from driftgate.api.auth import require
from driftgate.api.services import services

router = APIRouter(prefix="/v1/endpoints", tags=["monitoring"], dependencies=[Depends(require("predict"))])


@router.get("/{endpoint}/drift")
async def drift(
    request: Request, endpoint: str, last: int | None = None, since: float | None = None, until: float | None = None
) -> dict[str, Any]:
    """Drift of a window of logged predictions (`last` N, or `since`/`until` epoch seconds) against the
    serving version's reference data: per-feature tests, dataset verdict, multivariate, prediction
    drift and performance (realised on labelled rows, estimated where labels are missing)."""
    svc = services(request)
    version = svc.dataplane.state(endpoint).stable
    await run_in_threadpool(svc.recorder.flush)
    # Big windows run in a child process so that they do not slow serving (monitoring/worker.py).
    report = svc.drift_worker.report if svc.drift_worker is not None else svc.drift.report
    return await run_in_threadpool(report, endpoint, version, last=last, since=since, until=until)


@router.post("/{endpoint}/monitor", dependencies=[Depends(require("admin"))])
async def monitor(request: Request, endpoint: str) -> dict[str, Any]:
    """Run the monitor now over the default window and return its report."""
    svc = services(request)
    version = svc.dataplane.state(endpoint).stable
    await run_in_threadpool(svc.recorder.flush)
    return await run_in_threadpool(svc.drift.report, endpoint, version)
