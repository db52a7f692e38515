"""Outcome events (SPEC 6): what the application saw happen after a prediction, tied to its id.

Pure: the request document in, validated `OutcomeEvent`s out (standard library only). The store keeps
one event per prediction and name, so a retried request changes nothing and `event_rate` (events of
a name over the rows of a monitor window) stays a share between 0 and 1.

>>> parse_events({"events": [{"id": "0190a", "name": "user_retried", "ts": 12.5}]}, now=20.0)
[OutcomeEvent(prediction_id='0190a', name='user_retried', ts=12.5)]
>>> is_event_name("user_retried"), is_event_name("retried!"), is_event_name("1st")
(True, False, False)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, TypeGuard

from driftgate.errors import BadRequest, PayloadTooLarge

MAX_EVENTS = 10_000  # per request: one request is one transaction and a few id look-ups
MAX_NAME = 64
NAME_RULE = f"1-{MAX_NAME} letters, digits, '_', '-' or '.', starting with a letter"
_NAME = re.compile(rf"[A-Za-z][A-Za-z0-9_.\-]{{0,{MAX_NAME - 1}}}")
SHAPE = '{"events": [{"id": "<prediction id>", "name": "user_retried", "ts": <epoch seconds, optional>}, ...]}'


@dataclass(frozen=True, slots=True)
class OutcomeEvent:
    prediction_id: str
    name: str
    ts: float
    """When it happened (epoch seconds); the request's arrival time unless the application sent one."""


def is_event_name(value: Any) -> TypeGuard[str]:
    """Short identifier-like names only: they become metric details, alert selectors and label values."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def parse_events(doc: Any, now: float) -> list[OutcomeEvent]:
    """The events of a request document, in order (repeats included); `BadRequest` names the bad field."""
    events = doc.get("events") if isinstance(doc, dict) else None
    if not isinstance(events, list):
        raise BadRequest(f"expected {SHAPE}", field="events")
    if len(events) > MAX_EVENTS:
        raise PayloadTooLarge(
            f"{len(events)} events in one request; send at most {MAX_EVENTS} per request", field="events"
        )
    return [_event(item, i, now) for i, item in enumerate(events)]


def _event(item: Any, i: int, now: float) -> OutcomeEvent:
    where = f"events[{i}]"
    if not isinstance(item, dict):
        raise BadRequest(f"{where} must be an object with a string 'id' and a 'name'", field=where)
    unknown = sorted(set(item) - {"id", "name", "ts"})
    if unknown:
        raise BadRequest(f"{where} has unknown field {unknown[0]!r}; an event has id, name and ts", field=where)
    pid, name, ts = item.get("id"), item.get("name"), item.get("ts", now)
    if not isinstance(pid, str) or not pid:
        raise BadRequest(f"{where}.id must be a prediction id (a non-empty string), got {pid!r}", field=f"{where}.id")
    if not is_event_name(name):
        raise BadRequest(f"{where}.name must be {NAME_RULE}; got {name!r}", field=f"{where}.name")
    # JSON true is no time stamp, though Python would read it as 1.
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts) or ts < 0:
        raise BadRequest(f"{where}.ts must be epoch seconds (a finite number >= 0), got {ts!r}", field=f"{where}.ts")
    return OutcomeEvent(pid, name, float(ts))
