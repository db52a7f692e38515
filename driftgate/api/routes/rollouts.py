"""Rollout routes (SPEC 4): start one, read it, and promote, roll back, pause or resume it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from driftgate.api.auth import require
from driftgate.api.services import services
from driftgate.rollout.controller import describe
from driftgate.services.rollouts import Steer

router = APIRouter(prefix="/v1/endpoints", tags=["rollouts"])

CANARY_EXAMPLE = {
    "strategy": "canary",
    "version": 2,
    "steps": [10, 50, 100],
    "min_requests_per_step": 200,
    "step_seconds": 60,
    "analysis": {"max_error_rate": 0.01, "max_latency_p99_ms": 100, "min_agreement": 0.9},
    "auto": True,
    "reason": "retrained on October data",
}


class Note(BaseModel):
    reason: str = Field("", max_length=2000, description="Why, kept in the audit trail.")


def _actor(request: Request) -> str:
    return request.headers.get("x-driftgate-actor", "api")


@router.post("/{endpoint}/rollouts", status_code=201, dependencies=[Depends(require("admin"))])
async def start_rollout(
    request: Request, endpoint: str, body: dict[str, Any] = Body(..., examples=[CANARY_EXAMPLE])
) -> dict[str, Any]:
    """Start a shadow, canary, blue-green or A/B rollout of another version on this endpoint. The
    candidate is loaded and warmed on reference rows first: one that cannot serve never gets traffic."""
    svc = services(request)
    return describe(await svc.rollouts.start(endpoint, body, _actor(request)))


@router.get("/{endpoint}/rollouts", dependencies=[Depends(require("predict"))])
async def rollout_history(request: Request, endpoint: str, limit: int = 50) -> dict[str, Any]:
    svc = services(request)
    svc.dataplane.state(endpoint)
    rows = await run_in_threadpool(svc.store.rollouts.history, endpoint, max(1, min(limit, 1000)))
    return {"rollouts": [describe(r) for r in rows]}


@router.get("/{endpoint}/rollouts/current", dependencies=[Depends(require("predict"))])
async def current_rollout(request: Request, endpoint: str) -> dict[str, Any]:
    """The running (or paused) rollout, else the last one: strategy, state, step, weight, per-version
    figures, gate values and the reason for the last decision."""
    return describe(await run_in_threadpool(services(request).rollouts.current, endpoint))


def _command(name: Steer) -> Any:
    async def command(request: Request, endpoint: str, note: Note | None = None) -> dict[str, Any]:
        row = await services(request).rollouts.steer(name, endpoint, _actor(request), note.reason if note else "")
        return describe(row)

    command.__name__ = f"{name}_rollout"
    command.__doc__ = {
        "promote": "Make the candidate the endpoint's version now and end the rollout.",
        "pause": "Freeze the rollout where it is: traffic split kept, no automatic decisions.",
        "resume": "Let a paused rollout go on; the current step's clock restarts.",
    }[name]
    return command


async def rollback_rollout(request: Request, endpoint: str, note: Note | None = None) -> dict[str, Any]:
    """Send all traffic back to the champion now and end the rollout. After a blue-green promotion:
    back to the previous version at once while it is still loaded (`keep_previous_s`), else through a
    new rollout to it (warmed first). `rolled_back` says which: `instant` or `new_rollout`."""
    done = await services(request).rollouts.rollback(endpoint, _actor(request), note.reason if note else "")
    return {**describe(done.row), "rolled_back": done.how}


_ACTIONS: dict[str, Any] = {
    "promote": _command("promote"),
    "rollback": rollback_rollout,
    "pause": _command("pause"),
    "resume": _command("resume"),
}
for _name, _route in _ACTIONS.items():
    router.add_api_route(
        f"/{{endpoint}}/rollouts/current/{_name}", _route, methods=["POST"], dependencies=[Depends(require("admin"))]
    )
