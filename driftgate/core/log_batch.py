"""What a request hands to the prediction log (`LogBatch`), and `merge`, which joins a run of small
batches into one so that they cross to the writer and are encoded together."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pandas loads only where frames are made: the store and the CLI start without it
    import pandas as pd


@dataclass(slots=True)
class LogBatch:
    """What one request hands to the recorder: O(1) to build, encoded later off the request path."""

    endpoint: str
    model: str
    version: int
    role: str
    ts: float | list[float]  # one time for the request, or one per row (batches merged by `merge`)
    ids: list[str]
    # The inputs: a DataFrame, or columns (name -> values) as the data plane hands them over.
    frame: pd.DataFrame | Mapping[str, Any] | None
    predictions: list[Any] | None
    probabilities: np.ndarray | None
    latency_ms: float | list[float]
    status: list[str] | str
    error: str | None = None
    redact: Mapping[str, str] | None = None
    # Shadow rows: the id of the row that answered the same input, one per row.
    parent_ids: list[str] | None = None
    # Rows per request when `merge` joined several (each is stored as its own row); None: one request.
    sizes: list[int] | None = None

    def __len__(self) -> int:
        return len(self.ids)


def _merge_key(batch: LogBatch) -> tuple[Any, ...] | None:
    """Batches with equal keys can become one; None: keep this one as it is."""
    columns = batch.frame
    if columns is not None and not isinstance(columns, dict):
        return None
    if batch.probabilities is not None and batch.probabilities.ndim != 2:
        return None
    return (
        batch.endpoint,
        batch.model,
        batch.version,
        batch.role,
        batch.error,
        id(batch.redact),  # the endpoint config's own mapping: the same object for every request
        None if columns is None else tuple((k, getattr(v, "dtype", None)) for k, v in columns.items()),
        batch.predictions is None,
        None if batch.probabilities is None else batch.probabilities.shape[1],
        batch.parent_ids is None,
    )


def merge(batches: list[LogBatch]) -> list[LogBatch]:
    """Runs of batches from the same endpoint, version and config as one batch each, with per-row
    times and latencies: a thousand 1-row requests cross to the log writer process as one batch of
    arrays (one pickle of a few arrays, not a thousand small dicts of arrays)."""
    out: list[LogBatch] = []
    run: list[LogBatch] = []
    run_key: tuple[Any, ...] | None = None
    for batch in batches:
        key = _merge_key(batch)
        if key is None or key != run_key:
            if run:
                out.append(_merged(run))
            run, run_key = [], key
            if key is None:
                out.append(batch)
                continue
        run.append(batch)
    if run:
        out.append(_merged(run))
    return out


def _merged(run: list[LogBatch]) -> LogBatch:
    if len(run) == 1:
        return run[0]
    first = run[0]

    def per_row(values: list[Any]) -> list[Any]:
        return [
            v
            for b, value in zip(run, values, strict=True)
            for v in (value if isinstance(value, list) else [value] * len(b))
        ]

    # _merge_key gave every batch of the run the same shape: all or none of them hold each part, so the
    # `is not None` filters below drop nothing; they only tell the type checker.
    columns = None
    if first.frame is not None:
        assert isinstance(first.frame, dict)
        frames = [b.frame for b in run if b.frame is not None]
        columns = {name: np.concatenate([frame[name] for frame in frames]) for name in first.frame}
    return LogBatch(
        first.endpoint,
        first.model,
        first.version,
        first.role,
        per_row([b.ts for b in run]),
        [i for b in run for i in b.ids],
        columns,
        None if first.predictions is None else [p for b in run if b.predictions is not None for p in b.predictions],
        None
        if first.probabilities is None
        else np.concatenate([b.probabilities for b in run if b.probabilities is not None]),
        per_row([b.latency_ms for b in run]),
        per_row([b.status for b in run]),
        error=first.error,
        redact=first.redact,
        parent_ids=None
        if first.parent_ids is None
        else [p for b in run if b.parent_ids is not None for p in b.parent_ids],
        sizes=[size for b in run for size in (b.sizes or [len(b)])],
    )
