"""Outcome events from the application, tied to prediction ids (SPEC 6); counted by the monitor."""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from driftgate.api.auth import require
from driftgate.api.routes import request_body
from driftgate.api.services import services
from driftgate.core.events import MAX_EVENTS, NAME_RULE, OutcomeEvent, parse_events
from driftgate.errors import BadRequest
from driftgate.store.health import StoreUnavailable

router = APIRouter(prefix="/v1/endpoints", tags=["predict"], dependencies=[Depends(require("predict"))])

EVENTS_BODY = request_body(
    {
        "type": "object",
        "required": ["events"],
        "properties": {
            "events": {
                "type": "array",
                "maxItems": MAX_EVENTS,
                "items": {
                    "type": "object",
                    "required": ["id", "name"],
                    "properties": {
                        "id": {"type": "string", "description": "The prediction id the predict answer gave."},
                        "name": {"type": "string", "description": NAME_RULE, "maxLength": 64},
                        "ts": {"type": "number", "description": "When it happened, epoch seconds; default now."},
                    },
                },
            }
        },
    },
    {"events": [{"id": "0190f...", "name": "user_retried"}]},
)


@router.post("/{endpoint}/events", openapi_extra=EVENTS_BODY)
async def events(request: Request, endpoint: str) -> dict[str, Any]:
    """Record outcome events; `{"accepted": n, "unknown_ids": [...]}` like feedback. An event is kept once
    per prediction and name: a retried request is accepted again and changes nothing."""
    svc = services(request)
    try:
        doc = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    # One per (prediction, name), the first of a request's repeats, as the store keeps them.
    first: dict[tuple[str, str], OutcomeEvent] = {}
    for event in parse_events(doc, now=time.time()):
        first.setdefault((event.prediction_id, event.name), event)
    unique = list(first.values())
    ids = list(dict.fromkeys(e.prediction_id for e in unique))
    if not ids:
        return {"accepted": 0, "unknown_ids": []}
    targets = await run_in_threadpool(svc.store.events.targets, endpoint, ids)
    if len(targets) < len(ids):
        # Rows may still sit in this process's log queue: write them, then look again.
        await run_in_threadpool(svc.recorder.flush)
        targets = await run_in_threadpool(svc.store.events.targets, endpoint, ids)
        if len(targets) < len(ids) and (not svc.recorder.store_available or svc.recorder.backlog_files):
            # As for feedback: ids whose log rows wait in the spool are unconfirmed, not unknown.
            raise StoreUnavailable("the prediction log cannot confirm these ids until the store takes its rows; retry")
    await run_in_threadpool(svc.store.events.add, endpoint, unique, targets)
    return {
        "accepted": sum(1 for e in unique if e.prediction_id in targets),
        "unknown_ids": [pid for pid in ids if pid not in targets],
    }
