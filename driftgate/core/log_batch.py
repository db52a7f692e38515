"""What a request hands to the prediction log (`LogBatch`), and `merge`, which joins a run of small
batches into one so that they cross to the writer and are encoded together."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pandas loads only where frames are made: the store and the CLI start without it
    import pandas as pd


@dataclass(frozen=True, slots=True)
class TensorLog:
    """How one tensor feature is logged: its descriptors by `media` ("image", "audio"; None: a generic
    tensor, payload only), with the image's fully bright value or the audio's sample rate."""

    name: str
    media: str | None = None
    max_value: float | None = None
    sample_rate: int | None = None


@dataclass(frozen=True, slots=True)
class MediaLog:
    """An endpoint version's tensor features and the share of rows whose raw payload is kept (rows
    routed to review always keep theirs). Made once per endpoint config, shared by its batches."""

    tensors: tuple[TensorLog, ...]
    payload_rate: float


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
    # Tensor features to describe and sample (`records.media`) before encoding; None: none (tabular).
    media: MediaLog | None = None

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
        id(batch.media),  # likewise
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
    """One batch holding the rows of `run` in order (a run of one is returned as it is)."""
    if len(run) == 1:
        return run[0]
    first = run[0]
    return LogBatch(
        first.endpoint,
        first.model,
        first.version,
        first.role,
        _per_row(run, [b.ts for b in run]),
        _ids(run),
        _joined_columns(run),
        _joined_lists([b.predictions for b in run]),
        _joined_probabilities(run),
        _per_row(run, [b.latency_ms for b in run]),
        _per_row(run, [b.status for b in run]),
        error=first.error,
        redact=first.redact,
        parent_ids=_joined_lists([b.parent_ids for b in run]),
        sizes=_sizes(run),
        media=first.media,
    )


# `_merge_key` gave every batch of a run the same shape: all or none of them hold each part, so the
# `is not None` filters below drop nothing; they only tell the type checker.


def _per_row(run: list[LogBatch], values: list[Any]) -> list[Any]:
    """One value per row: a batch's list as it is, a batch's single value once per row."""
    return [
        v
        for b, value in zip(run, values, strict=True)
        for v in (value if isinstance(value, list) else [value] * len(b))
    ]


def _joined_columns(run: list[LogBatch]) -> dict[str, np.ndarray] | None:
    first = run[0].frame
    if first is None:
        return None
    assert isinstance(first, dict)
    frames = [b.frame for b in run if b.frame is not None]
    return {name: np.concatenate([frame[name] for frame in frames]) for name in first}


def _joined_lists(parts: list[list[Any] | None]) -> list[Any] | None:
    if parts[0] is None:
        return None
    return [item for part in parts if part is not None for item in part]


def _joined_probabilities(run: list[LogBatch]) -> np.ndarray | None:
    if run[0].probabilities is None:
        return None
    return np.concatenate([b.probabilities for b in run if b.probabilities is not None])


def _ids(run: list[LogBatch]) -> list[str]:
    return [i for b in run for i in b.ids]


def _sizes(run: list[LogBatch]) -> list[int]:
    """Rows per request: a merged batch's own sizes, or its length (one request)."""
    return [size for b in run for size in (b.sizes or [len(b)])]
