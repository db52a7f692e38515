"""Tensor inputs as the prediction log keeps them: descriptors for every row, the raw payload for some.

A `LogBatch` whose endpoint version has tensor features carries a `MediaLog`. Before the batch is
encoded, each tensor column `x` (an array of shape (n, *shape)) becomes:
- `x`: the row's tensor compressed (`core.payload.encode_tensor`) for the rows that keep their
  payload, null for the others. Rows routed to review always keep it; the others with the
  endpoint's `payload_sample_rate`.
- `x.<descriptor>`: float64 columns, one per descriptor of the feature's media (images: brightness,
  contrast, sharpness, saturated share; audio: duration, RMS dB, silence share, clipping share),
  computed for every row; the encoding packs them with the other numeric inputs.

This runs where batches are encoded, off the request path: in the log writer child (idle CPU
priority) or the in-process writer thread, on merged batches (the descriptors are vectorised over
all of a merge's rows). Tabular batches (no `MediaLog`) pass through untouched, so their stored
bytes are exactly what they were. Text inputs need nothing here: they are stored as the strings
they are (after redaction), and their descriptors are the monitor's to compute.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from driftgate.core.log_batch import LogBatch, MediaLog, TensorLog
from driftgate.core.payload import DTYPES, encode_tensor
from driftgate.core.row_encode import encode
from driftgate.core.row_format import REVIEW_STATUSES, Row
from driftgate.logonce import RepeatedErrors
from driftgate.monitoring.descriptors import describe_tensor, tensor_descriptors

# Once per kind of failure, then counted: every batch of the endpoint would fail alike.
_errors = RepeatedErrors(logging.getLogger("driftgate.recorder"), every=60.0)

_rng = np.random.default_rng()


def descriptor_names(name: str, media: str | None) -> list[str]:
    """The logged descriptor columns of tensor feature `name`.

    >>> descriptor_names("image", "image")
    ['image.brightness', 'image.contrast', 'image.sharpness', 'image.saturated_share']
    """
    return [f"{name}.{d}" for d in tensor_descriptors(media)]


def encode_batch(batch: LogBatch) -> list[Row]:
    """The batch's stored rows (`core.row_encode.encode`), its tensors described and sampled first."""
    return encode(with_media(batch))


def with_media(batch: LogBatch) -> LogBatch:
    """The batch with each tensor column replaced by its payloads and followed by its descriptors."""
    media = batch.media
    if media is None or batch.frame is None or not len(batch.ids):
        return batch
    columns = _columns(batch.frame)
    keep = _kept_rows(batch, media)
    out: dict[str, Any] = {}
    for name, values in columns.items():
        spec = next((t for t in media.tensors if t.name == name), None)
        if spec is None:
            out[name] = values
            continue
        out[name] = _payloads(values, keep)
        out.update(describe(spec, _stacked(values)))
    return dataclasses.replace(batch, frame=out, media=None)


def describe(spec: TensorLog, tensors: np.ndarray | None) -> dict[str, np.ndarray]:
    """The feature's descriptor columns; NaN (missing) where a row's tensor cannot be described."""
    names = tensor_descriptors(spec.media)
    if not names or tensors is None:
        return {}
    try:  # the monitor describes the reference's tensors with the same function
        values = describe_tensor(tensors, spec.media, max_value=spec.max_value, sample_rate=spec.sample_rate or None)
    except ValueError as exc:  # a shape or sample rate the descriptors do not take: payloads are still logged
        _errors.error(
            ("describe", spec.name),
            "tensor feature %s: descriptors not computed: %s",
            spec.name,
            exc,
            level=logging.WARNING,
        )
        values = {d: np.full(len(tensors), np.nan) for d in names}
    return {f"{spec.name}.{d}": np.asarray(values[d], dtype=np.float64) for d in names}


def _columns(frame: Any) -> Mapping[str, Any]:
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(frame, pd.DataFrame):  # a failed request's pre-step frame
        return {str(name): frame[name].to_numpy() for name in frame.columns}
    return frame


def _stacked(values: Any) -> np.ndarray | None:
    """A tensor column as one (n, *shape) array: the validated column as it is, an object column of
    per-row arrays (a frame's) stacked; None when its rows differ in shape (nothing to describe)."""
    if isinstance(values, np.ndarray) and values.dtype != object:
        return values
    try:
        return np.stack([np.asarray(v) for v in values])
    except ValueError:
        return None


def _kept_rows(batch: LogBatch, media: MediaLog) -> np.ndarray:
    """Which rows keep their raw payload: review rows, and a random `payload_rate` share of the rest."""
    n = len(batch.ids)
    status = batch.status
    if isinstance(status, str):
        review = np.full(n, status in REVIEW_STATUSES)
    else:
        review = np.isin(np.asarray(status, dtype=object), REVIEW_STATUSES)
    if media.payload_rate >= 1.0:
        return np.ones(n, dtype=bool)
    if media.payload_rate <= 0.0:
        return review
    keep: np.ndarray = review | (_rng.random(n) < media.payload_rate)
    return keep


def _payloads(values: Any, keep: np.ndarray) -> np.ndarray:
    """One JSON object per row; None where not kept, or where the value is no array of numbers (a
    failed pre step logs the request's raw values)."""
    out = np.full(len(keep), None, dtype=object)
    for i in np.flatnonzero(keep):
        array = _array(values[i])
        if array is not None:
            out[i] = encode_tensor(array)
    return out


def _array(value: Any) -> np.ndarray | None:
    if value is None:
        return None
    try:
        array = np.asarray(value)
    except ValueError:  # ragged nested lists
        return None
    return array if array.dtype.name in DTYPES else None
