"""Endpoint configuration routes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from starlette.concurrency import run_in_threadpool

from driftgate.api.auth import require
from driftgate.api.services import services
from driftgate.errors import BadRequest
from driftgate.rollout import controller as rollouts
from driftgate.serving.dataplane import EndpointState
from driftgate.serving.metrics import ServingMetrics
from driftgate.serving.pipeline import Step

router = APIRouter(prefix="/v1/endpoints", tags=["endpoints"])

CONFIG_EXAMPLE = {"model": "fraud", "version": 1, "automation": "full", "timeout_ms": 2000}


def describe(state: EndpointState, metrics: ServingMetrics | None = None) -> dict[str, Any]:
    rollout = state.rollout
    if rollout is None:
        base = state.policy.baseline
        traffic = [{"model": base.model, "version": base.version, "weight": 100.0, "role": "champion"}]
        summary = None
    else:
        view = rollouts.describe(rollout)
        traffic = view["traffic"]
        summary = {k: view[k] for k in ("id", "strategy", "state", "candidate", "weight", "step")}
    out = {
        "name": state.name,
        "config": state.config.model_dump(),
        "revision": state.revision,
        "traffic": traffic,
        "rollout": summary,
        "schema": state.stable.schema.to_dict(),
        "output": state.stable.output,
        # Where each version's model calls run, `isolation: "auto"` resolved.
        "isolation": [{"model": r.model, "version": r.version, "mode": m} for r, m in state.isolation.items()],
    }
    if state.pipeline.steps and metrics is not None:
        out["pipeline"] = pipeline_view(state, metrics)
    return out


def pipeline_view(state: EndpointState, metrics: ServingMetrics) -> dict[str, list[dict[str, Any]]]:
    """`{"pre": [...], "post": [...]}`: each step with its counts on primary traffic since the server
    started, the same numbers as the `driftgate_step_*` metrics."""
    totals = metrics.step_totals(state.name)

    def view(step: Step) -> dict[str, Any]:
        t = totals.get(step.name, {})
        ok = t.get("calls", 0.0) - t.get("errors", 0.0) - t.get("invalid", 0.0)
        return {
            "name": step.name,
            "function": step.function,
            "calls": int(t.get("calls", 0)),
            "errors": int(t.get("errors", 0)),
            "invalid": int(t.get("invalid", 0)),
            "rows": int(t.get("rows", 0)),
            "mean_latency_ms": round(t["seconds"] / ok * 1000, 3) if ok > 0 else None,
        }

    return {"pre": [view(s) for s in state.pipeline.pre], "post": [view(s) for s in state.pipeline.post]}


@router.put("/{endpoint}", dependencies=[Depends(require("admin"))])
async def put_endpoint(
    request: Request, endpoint: str, body: dict[str, Any] = Body(..., examples=[CONFIG_EXAMPLE])
) -> dict[str, Any]:
    svc = services(request)
    actor = request.headers.get("x-driftgate-actor", "api")
    deployed = await svc.endpoints.deploy(endpoint, body, actor=actor, reason="PUT")
    return describe(deployed.applied, svc.metrics)


@router.get("/{endpoint}", dependencies=[Depends(require("predict"))])
async def get_endpoint(request: Request, endpoint: str) -> dict[str, Any]:
    svc = services(request)
    return describe(svc.dataplane.state(endpoint), svc.metrics)


@router.get("", dependencies=[Depends(require("predict"))])
async def list_endpoints(request: Request) -> dict[str, Any]:
    svc = services(request)
    plane = svc.dataplane
    return {"endpoints": [describe(plane.state(n), svc.metrics) for n in plane.endpoint_names()]}


@router.get("/{endpoint}/history", dependencies=[Depends(require("admin"))])
async def endpoint_history(request: Request, endpoint: str, limit: int = 100) -> dict[str, Any]:
    if not 1 <= limit <= 10_000:
        raise BadRequest(f"limit must be between 1 and 10000, got {limit}", field="limit")
    return {"history": await run_in_threadpool(services(request).store.endpoints.history, endpoint, limit)}
