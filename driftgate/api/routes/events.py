"""Outcome events from the application, tied to prediction ids (SPEC 6); counted by the monitor."""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request

from driftgate.api.auth import require
from driftgate.api.routes import request_body
from driftgate.api.services import services
from driftgate.core.events import MAX_EVENTS, MAX_NAME, NAME_RULE, parse_events
from driftgate.errors import BadRequest

router = APIRouter(prefix="/v1/endpoints", tags=["predict"], dependencies=[Depends(require("predict"))])

# `core.events.is_event_name`'s rule, for the document (the schemathesis test holds them together).
NAME_PATTERN = rf"[A-Za-z][A-Za-z0-9_.\-]{{0,{MAX_NAME - 1}}}"
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
                    "additionalProperties": False,
                    "properties": {
                        "id": {
                            "type": "string",
                            "minLength": 1,
                            "description": "The prediction id the predict answer gave.",
                        },
                        "name": {"type": "string", "description": NAME_RULE, "pattern": f"^{NAME_PATTERN}$"},
                        "ts": {
                            "type": "number",
                            "minimum": 0,
                            "description": "When it happened, epoch seconds; default now.",
                        },
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
    return (await svc.outcomes.record_events(endpoint, parse_events(doc, now=time.time()))).to_dict()
