"""Metric points: what the monitor produces and alert rules consume. Pure data, no I/O.

Metric names are the ones SPEC section 7 lets a rule name (`data_drift_share`, `prediction_drift`,
`error_rate`, `latency_p99_ms`, `request_rate`, `missing_rate`, `accuracy`,
`estimated_accuracy`, `concept_drift`, ...). `version` is None for endpoint-wide values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class MetricPoint:
    endpoint: str
    metric: str
    value: float | None
    ts: float
    version: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
