"""Alert rules and alert history (SPEC 7)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from driftgate.alerts import service
from driftgate.api.auth import require
from driftgate.api.services import services

router = APIRouter(prefix="/v1", tags=["alerts"])

RULE_EXAMPLE = {
    "name": "drift",
    "endpoint": "fraud",
    "metric": "data_drift_share",
    "op": ">",
    "threshold": 0.3,
    "severity": "warning",
    "cooldown_seconds": 600,
    "notify": [{"webhook": "https://hooks.example.com/services/T000/B000/XXXX"}, {"log": True}],
    "actions": ["rollback"],
}


@router.post("/alert-rules", status_code=201, dependencies=[Depends(require("admin"))])
async def create_rule(request: Request, body: Any = Body(..., examples=[RULE_EXAMPLE])) -> dict[str, Any]:
    """Create a rule. Webhook targets must pass the SSRF policy now (and again at every delivery)."""
    svc = services(request)
    actor = request.headers.get("x-driftgate-actor", "api")
    return await run_in_threadpool(
        service.create_rule, svc.store, body, webhook_allow=svc.settings.webhook_allow, actor=actor
    )


@router.get("/alert-rules", dependencies=[Depends(require("predict"))])
async def list_rules(request: Request, endpoint: str | None = None) -> dict[str, Any]:
    return {"rules": await run_in_threadpool(service.list_rules, services(request).store, endpoint)}


@router.get("/alert-rules/{name}", dependencies=[Depends(require("predict"))])
async def get_rule(request: Request, name: str) -> dict[str, Any]:
    return await run_in_threadpool(service.get_rule, services(request).store, name)


@router.delete("/alert-rules/{name}", status_code=204, dependencies=[Depends(require("admin"))])
async def delete_rule(request: Request, name: str) -> Response:
    await run_in_threadpool(service.delete_rule, services(request).store, name)
    return Response(status_code=204)


@router.get("/alerts", dependencies=[Depends(require("predict"))])
async def alerts(
    request: Request,
    endpoint: str | None = None,
    rule: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """Alert history, newest first; `since`/`until` are epoch seconds, `rule` a rule name."""
    history = await run_in_threadpool(
        service.history, services(request).store, endpoint=endpoint, rule=rule, since=since, until=until, limit=limit
    )
    return {"alerts": history}
