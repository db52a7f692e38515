"""Alert rules and alert history (SPEC 7)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from driftgate.alerts.notify import target_of
from driftgate.alerts.rules import parse_rule
from driftgate.alerts.ssrf import check_url
from driftgate.api.auth import require
from driftgate.api.services import services
from driftgate.errors import BadRequest

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


def _shown(rule: dict[str, Any]) -> dict[str, Any]:
    """A stored rule for read routes: webhook paths often hold secrets (Slack's do), so only scheme://host."""
    notify = [{"webhook": target_of(n["webhook"]) + "/..."} if "webhook" in n else n for n in rule["notify"]]
    return {**rule, "notify": notify}


@router.post("/alert-rules", status_code=201, dependencies=[Depends(require("admin"))])
async def create_rule(request: Request, body: Any = Body(..., examples=[RULE_EXAMPLE])) -> dict[str, Any]:
    """Create a rule. Webhook targets must pass the SSRF policy now (and again at every delivery)."""
    svc = services(request)
    rule = parse_rule(body)
    for url in rule.webhooks():
        await run_in_threadpool(check_url, url, svc.settings.webhook_allow)
    actor = request.headers.get("x-driftgate-actor", "api")
    return await run_in_threadpool(svc.store.alerts.create_rule, rule.stored(), actor=actor)


@router.get("/alert-rules", dependencies=[Depends(require("predict"))])
async def list_rules(request: Request, endpoint: str | None = None) -> dict[str, Any]:
    rules = await run_in_threadpool(services(request).store.alerts.rules, endpoint=endpoint)
    return {"rules": [_shown(r) for r in rules]}


@router.get("/alert-rules/{name}", dependencies=[Depends(require("predict"))])
async def get_rule(request: Request, name: str) -> dict[str, Any]:
    return _shown(await run_in_threadpool(services(request).store.alerts.get_rule, name))


@router.delete("/alert-rules/{name}", status_code=204, dependencies=[Depends(require("admin"))])
async def delete_rule(request: Request, name: str) -> Response:
    await run_in_threadpool(services(request).store.alerts.delete_rule, name)
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
    if not 1 <= limit <= 10_000:
        raise BadRequest(f"limit must be between 1 and 10000, got {limit}", field="limit")
    history = await run_in_threadpool(
        services(request).store.alerts.history, endpoint=endpoint, rule=rule, since=since, until=until, limit=limit
    )
    return {"alerts": history}
