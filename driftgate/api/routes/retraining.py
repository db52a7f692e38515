"""Retraining routes (SPEC 8): start a run by hand, list runs, read one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from starlette.concurrency import run_in_threadpool

from driftgate.api.auth import require
from driftgate.api.services import services
from driftgate.errors import BadRequest, NotFound
from driftgate.registry.registry import MAX_VERSION

router = APIRouter(prefix="/v1", tags=["retraining"])

RETRAIN_EXAMPLE = {
    "train": "mypackage.training:train",
    "data": "recent",
    "window_seconds": 604800,
    "holdout": 0.2,
    "rollout": {"strategy": "canary", "steps": [10, 50, 100], "analysis": {"min_accuracy": 0.9}},
    "reason": "labels for October arrived",
}


def describe(run: dict[str, Any], with_log: bool = True) -> dict[str, Any]:
    """A run as the API shows it. The job's output (`log`) may quote training rows, which only admins
    read elsewhere (the review queue, exports): lists leave it out; the admin-only read of one run has it."""
    shown = dict(run)
    shown["rollout"] = shown.pop("rollout_id")
    if not with_log:
        shown.pop("log")
    return shown


@router.post("/endpoints/{endpoint}/retrain", status_code=202, dependencies=[Depends(require("admin"))])
async def retrain(
    request: Request, endpoint: str, body: Any = Body(None, examples=[RETRAIN_EXAMPLE])
) -> dict[str, Any]:
    """Start a retraining run now. The body's fields lay over the endpoint config's `retraining`
    (an empty body uses that config as it is). The run goes on in the background: poll
    `GET /v1/retraining-runs/{id}`."""
    actor = request.headers.get("x-driftgate-actor", "api")
    run = await services(request).retraining.start(
        endpoint, {} if body is None else body, trigger="manual", actor=actor
    )
    return describe(run)


@router.get("/retraining-runs", dependencies=[Depends(require("predict"))])
async def list_runs(request: Request, endpoint: str | None = None, limit: int = 50) -> dict[str, Any]:
    """Runs, newest first: state, trigger, the data used, the candidate against the champion, the rollout."""
    if not 1 <= limit <= 1000:
        raise BadRequest(f"limit must be between 1 and 1000, got {limit}", field="limit")
    rows = await run_in_threadpool(services(request).store.retraining.list, endpoint, limit)
    return {"runs": [describe(r, with_log=False) for r in rows]}


@router.get("/retraining-runs/{run_id}", dependencies=[Depends(require("admin"))])
async def get_run(request: Request, run_id: int) -> dict[str, Any]:
    if not 1 <= run_id <= MAX_VERSION:  # ids are 32-bit integers on PostgreSQL
        raise NotFound(f"no retraining run {run_id}", run=run_id)
    return describe(await run_in_threadpool(services(request).store.retraining.get, run_id))
