"""The recorder: prediction log rows written in batches by a background thread, off the request path.

A request hands over one `LogBatch` (its frame, outputs and ids) in O(1); the writer thread turns
batches into rows, applies redaction and writes them in one transaction per flush.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from driftgate.records.redaction import redact

log = logging.getLogger("driftgate.recorder")


@dataclass(slots=True)
class LogBatch:
    endpoint: str
    model: str
    version: int
    role: str
    ts: float
    ids: list[str]
    frame: pd.DataFrame | None
    predictions: list[Any] | None
    probabilities: np.ndarray | None
    latency_ms: float
    status: list[str] | str
    error: str | None = None
    redact: Mapping[str, str] | None = None

    def __len__(self) -> int:
        return len(self.ids)


def _clean(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def to_rows(batch: LogBatch) -> list[dict[str, Any]]:
    n = len(batch.ids)
    records = batch.frame.to_dict("records") if batch.frame is not None else [{}] * n
    status = batch.status if isinstance(batch.status, list) else [batch.status] * n
    proba = batch.probabilities.round(6).tolist() if batch.probabilities is not None else None
    rows = []
    for i in range(n):
        inputs = {k: _clean(v) for k, v in records[i].items()}
        if batch.redact:
            inputs = redact(inputs, batch.redact)
        rows.append(
            {
                "id": batch.ids[i],
                "endpoint": batch.endpoint,
                "model": batch.model,
                "version": batch.version,
                "role": batch.role,
                "ts": batch.ts,
                "inputs": inputs,
                "output": _clean(batch.predictions[i]) if batch.predictions is not None else None,
                "probabilities": proba[i] if proba is not None else None,
                "latency_ms": batch.latency_ms,
                "status": status[i],
                "error": batch.error,
            }
        )
    return rows


class Recorder:
    """Bounded queue + writer thread. `record` never blocks; overflow is dropped and counted."""

    def __init__(
        self,
        write: Callable[[list[dict[str, Any]]], None],
        *,
        flush_interval: float = 0.2,
        batch_rows: int = 5000,
        max_rows: int = 200_000,
        on_drop: Callable[[LogBatch], None] | None = None,
    ) -> None:
        self._write = write
        self.flush_interval = flush_interval
        self.batch_rows = batch_rows
        self.max_rows = max_rows
        self._on_drop = on_drop
        self._queue: deque[LogBatch] = deque()
        self._queued_rows = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self.dropped_rows = 0
        self.written_rows = 0
        self._thread = threading.Thread(target=self._run, name="driftgate-recorder", daemon=True)
        self._thread.start()

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    def record(self, batch: LogBatch) -> bool:
        with self._lock:
            if self._queued_rows + len(batch) > self.max_rows:
                self.dropped_rows += len(batch)
                dropped = True
            else:
                self._queue.append(batch)
                self._queued_rows += len(batch)
                dropped = False
        if dropped and self._on_drop:
            self._on_drop(batch)
        if self._queued_rows >= self.batch_rows:
            self._wake.set()
        return not dropped

    def flush(self) -> None:
        """Write everything queued now, in the caller's thread (used at shutdown and by tests)."""
        while self._drain_once():
            pass

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=30)
        self.flush()

    def _take(self) -> list[LogBatch]:
        taken: list[LogBatch] = []
        rows = 0
        with self._lock:
            while self._queue and rows < self.batch_rows:
                batch = self._queue.popleft()
                taken.append(batch)
                rows += len(batch)
            self._queued_rows -= rows
        return taken

    def _drain_once(self) -> bool:
        taken = self._take()
        if not taken:
            return False
        rows = [row for batch in taken for row in to_rows(batch)]
        for attempt in range(5):
            try:
                self._write(rows)
                self.written_rows += len(rows)
                return True
            except Exception:  # the store may be briefly unavailable; retry with backoff
                log.exception("writing %d prediction rows failed (attempt %d)", len(rows), attempt + 1)
                time.sleep(0.2 * 2**attempt)
        self.dropped_rows += len(rows)
        return True

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            while self._drain_once() and not self._stop:
                pass
