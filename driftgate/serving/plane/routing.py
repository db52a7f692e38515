"""Which version scores which rows of a request, and one answer from the answers of several."""

from __future__ import annotations

from typing import Any

import numpy as np

from driftgate.rollout.policy import Route, VersionRef
from driftgate.serving.plane.state import EndpointState
from driftgate.serving.result import DecodedRequest, PredictionResult


def route_groups(st: EndpointState, request: DecodedRequest, version: VersionRef | None) -> dict[Route, list[int]]:
    """Rows per route; an empty list means every row. `version` answers every row itself."""
    if version is not None:
        return {Route(version): []}
    # Sticky keys are read from the request as sent: a pre step may drop the key column.
    keys = _sticky_keys(st, request)
    if keys is None:
        return {st.policy.route(None): []}
    # With a sticky key each row is routed by its own key, so one caller always meets one version.
    groups: dict[Route, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(st.policy.route(key), []).append(i)
    return groups


def _sticky_keys(st: EndpointState, request: DecodedRequest) -> list[str | None] | None:
    key = st.sticky_key
    if key is None or key not in request.columns:
        return None
    return [None if v is None else str(v) for v in list(request.columns[key])]


def subset(request: DecodedRequest, rows: list[int]) -> DecodedRequest:
    columns = {
        name: values[rows] if isinstance(values, np.ndarray) else [values[i] for i in rows]
        for name, values in request.columns.items()
    }
    return DecodedRequest(columns, len(rows), request.parameters)


def merge(n: int, groups: list[list[int]], parts: list[PredictionResult]) -> PredictionResult:
    """One answer from the answers of row groups that different versions scored."""
    predictions: list[Any] = [None] * n
    ids = [""] * n
    status: list[str] = ["ok"] * n
    versions = [0] * n
    same_classes = all(p.classes == parts[0].classes for p in parts)
    proba = _proba_array(n, parts) if same_classes else None
    for rows, part in zip(groups, parts, strict=True):
        for j, i in enumerate(rows):
            predictions[i] = part.predictions[j]
            ids[i] = part.ids[j]
            versions[i] = part.version
            if part.status is not None:
                status[i] = part.status[j]
        if proba is not None:
            proba[rows] = part.probabilities
    first = parts[0]
    return PredictionResult(
        predictions=predictions,
        ids=ids,
        model=first.model,
        version=versions[0],
        probabilities=proba,
        classes=first.classes if same_classes else None,
        status=status if any(p.status is not None for p in parts) else None,
        latency_ms=max(p.latency_ms for p in parts),
        versions=versions,
    )


def _proba_array(n: int, parts: list[PredictionResult]) -> np.ndarray | None:
    """Room for every row's probabilities, when every part has them (over the same classes)."""
    shapes = [p.probabilities.shape for p in parts if p.probabilities is not None]
    if len(shapes) < len(parts):
        return None
    return np.empty((n, shapes[0][1]))
