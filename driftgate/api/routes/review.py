"""The human review queue: deferred predictions, and decisions stored as their labels."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from driftgate.api.auth import require
from driftgate.api.services import Services, services
from driftgate.errors import BadRequest, DriftgateError, NotFound, PayloadTooLarge

router = APIRouter(prefix="/v1/review", tags=["review"], dependencies=[Depends(require("admin"))])


@router.get("")
async def pending(request: Request, endpoint: str | None = None, limit: int = 100) -> dict[str, Any]:
    if not 1 <= limit <= 10_000:
        raise BadRequest(f"limit must be between 1 and 10000, got {limit}", field="limit")
    svc = services(request)
    await run_in_threadpool(svc.recorder.flush)
    rows = await run_in_threadpool(svc.store.predictions.pending_review, endpoint, limit)
    items = []
    for r in rows:
        # `human_only`: the person decides without seeing the model's answer (it ran in shadow).
        blind = _automation(svc, r["endpoint"]) == "human_only"
        items.append(
            {
                "id": r["id"],
                "endpoint": r["endpoint"],
                "model": r["model"],
                "version": r["version"],
                "time": r["ts"],
                "inputs": r["inputs"],
                "model_output": None if blind else r["output"],
                "confidence": None if blind or not r["probabilities"] else max(r["probabilities"]),
                # Answered already (`governed`): the decision confirms or overturns it.
                "answered": r["status"] == "audit",
            }
        )
    return {"items": items}


def _automation(svc: Services, endpoint: str) -> str | None:
    try:
        return svc.dataplane.state(endpoint).config.automation
    except DriftgateError:
        return None


class Decision(BaseModel):
    label: int | float | str | bool = Field(description="The human's answer, stored as the prediction's label.")


@router.post("/{prediction_id}")
async def decide(request: Request, prediction_id: str, decision: Decision) -> dict[str, Any]:
    svc = services(request)
    if isinstance(decision.label, str) and len(decision.label.encode()) > svc.settings.max_label_bytes:
        raise PayloadTooLarge(
            f"label is {len(decision.label.encode())} bytes; a label may be at most "
            f"{svc.settings.max_label_bytes} bytes (the server's max_label_bytes)",
            field="label",
        )
    row = await run_in_threadpool(svc.store.predictions.get, prediction_id)
    if row is None:
        raise NotFound(f"no prediction with id {prediction_id!r}", id=prediction_id)
    await run_in_threadpool(
        svc.store.predictions.add_labels, row["endpoint"], [(prediction_id, decision.label)], "review"
    )
    return {"id": prediction_id, "label": decision.label, "endpoint": row["endpoint"]}
