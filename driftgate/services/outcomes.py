"""What happened after a prediction: labels (`POST .../feedback`) and outcome events (`POST .../events`)
for logged prediction ids. Both answer which ids were taken and which are unknown; an id whose log row
may still be on its way is never called unknown."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from driftgate.core.events import OutcomeEvent
from driftgate.records.recorder import PredictionLog
from driftgate.store import Store
from driftgate.store.health import StoreUnavailable

Found = TypeVar("Found", bound=Collection[str])


@dataclass(frozen=True)
class Taken:
    accepted: int
    unknown_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "unknown_ids": self.unknown_ids}


class OutcomeService:
    def __init__(self, store: Store, log: PredictionLog) -> None:
        self.store = store
        self.log = log

    async def label(self, endpoint: str, labels: Sequence[tuple[str, Any]], source: str = "feedback") -> Taken:
        """Store labels of logged predictions; the last of an id's labels wins, within a call too."""
        latest = dict(labels)
        ids = list(latest)
        if not ids:
            return Taken(0)
        known = await self._confirm(self.store.predictions.known_ids, endpoint, ids)
        accepted = [(pid, latest[pid]) for pid in ids if pid in known]
        await asyncio.to_thread(self.store.predictions.add_labels, endpoint, accepted, source)
        return Taken(len(accepted), [pid for pid in ids if pid not in known])

    async def record_events(self, endpoint: str, events: Sequence[OutcomeEvent]) -> Taken:
        """Store outcome events; one per (prediction, name), the first of a call's repeats, as the store
        keeps them (a retried call is accepted again and changes nothing)."""
        first: dict[tuple[str, str], OutcomeEvent] = {}
        for event in events:
            first.setdefault((event.prediction_id, event.name), event)
        unique = list(first.values())
        ids = list(dict.fromkeys(e.prediction_id for e in unique))
        if not ids:
            return Taken(0)
        targets = await self._confirm(self.store.events.targets, endpoint, ids)
        await asyncio.to_thread(self.store.events.add, endpoint, unique, targets)
        return Taken(sum(1 for e in unique if e.prediction_id in targets), [pid for pid in ids if pid not in targets])

    async def _confirm(self, lookup: Callable[[str, list[str]], Found], endpoint: str, ids: list[str]) -> Found:
        """`lookup(endpoint, ids)`, after writing this process's queued log rows if some ids are missing.
        Raises `StoreUnavailable` (503, retry) while rows the store refused wait in the spool: they may
        hold these ids, and "unknown" would make a client drop labels of acknowledged predictions."""
        found = await asyncio.to_thread(lookup, endpoint, ids)
        if len(found) < len(ids):
            await asyncio.to_thread(self.log.flush)
            found = await asyncio.to_thread(lookup, endpoint, ids)
            if len(found) < len(ids) and (not self.log.store_available or self.log.backlog_files):
                raise StoreUnavailable(
                    "the prediction log cannot confirm these ids until the store takes its rows; retry"
                )
        return found
