"""What the data plane hands back to a protocol encoder, whatever protocol asked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(slots=True)
class DecodedRequest:
    """Input rows, column-oriented: one list/array per feature name, all of length `n_rows`.

    Values are kept as they came (None for JSON null); schema validation converts and checks them.
    """

    columns: dict[str, Any]
    n_rows: int
    # Optional per-request parameters (e.g. V2 `parameters`, native `parameters`).
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class PredictionResult:
    """Predictions for one request, from the version that answered.

    `probabilities[i]` lines up with `classes`; `status[i]` is "ok", or "review" when the row was
    deferred to a human (then `predictions[i]` is None).
    """

    predictions: list[Any]
    ids: list[str]
    model: str
    version: int
    probabilities: np.ndarray | None = None
    classes: list[Any] | None = None
    status: list[str] | None = None
    latency_ms: float = 0.0
    # Set when a sticky key split one request over versions: the version of each row.
    versions: list[int] | None = None
