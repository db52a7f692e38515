"""Drift and monitoring routes (SPEC 6)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, ConfigDict, field_validator
from starlette.concurrency import run_in_threadpool

from driftgate.api.auth import require
from driftgate.api.services import services
from driftgate.core.points import MetricPoint
from driftgate.core.redaction import hidden_fields
from driftgate.errors import BadRequest, NotFound
from driftgate.monitoring.monitor import EVENT_METRIC, RUN_METRIC, check_window
from driftgate.registry.registry import check_version

router = APIRouter(prefix="/v1/endpoints", tags=["monitoring"], dependencies=[Depends(require("predict"))])

# What `GET .../monitoring?metric=` accepts: every name the monitor writes (SPEC 7 names first).
METRICS = frozenset(
    {
        "data_drift_share", "prediction_drift", "error_rate", "latency_p99_ms", "request_rate", "missing_rate",
        "accuracy", "estimated_accuracy", "concept_drift", "out_of_range_rate", "unseen_category_rate",
        "null_output_rate", "empty_answer_rate", "mean_confidence", "request_count", "latency_p50_ms", "latency_p95_ms",
        "schema_violation_rate", "class_share", "feature_drift", "multivariate_drift", "f1", "roc_auc", "mae",
        "rmse", "prediction_mean", "prediction_std", "output_guard_violation_rate", EVENT_METRIC, RUN_METRIC,
        "precision", "recall", "performance_drift", "estimated_roc_auc", "estimated_f1", "estimated_precision",
        "estimated_recall", "estimated_mae", "estimated_rmse",
    }
)  # fmt: skip


class MonitorRequest(BaseModel):
    """The window to monitor (`last` N predictions, or `since`/`until` epoch seconds; default: the
    last 5000) and what to compare it with: the version's reference data or a past window."""

    model_config = ConfigDict(extra="forbid")
    last: int | None = None
    since: float | None = None
    until: float | None = None
    baseline: Literal["reference", "window"] = "reference"
    baseline_since: float | None = None
    baseline_until: float | None = None

    @field_validator("last", "since", "until", "baseline_since", "baseline_until", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> Any:
        if isinstance(value, bool | str):  # lax mode read `false` as 0 and "5" as 5
            raise ValueError("must be a number")
        return value


@router.get("/{endpoint}/drift")
async def drift(
    request: Request, endpoint: str, last: int | None = None, since: float | None = None, until: float | None = None
) -> dict[str, Any]:
    """Drift of a window of logged predictions (`last` N, or `since`/`until` epoch seconds) against the
    serving version's reference data: per-feature tests, dataset verdict, multivariate, prediction
    drift and performance (realised on labelled rows, estimated where labels are missing)."""
    svc = services(request)
    version = svc.dataplane.state(endpoint).stable
    check_window(last, since, until)
    await run_in_threadpool(svc.recorder.flush)
    # Big windows run in a child process so that they do not slow serving (monitoring/worker.py).
    report = svc.drift_worker.report if svc.drift_worker is not None else svc.drift.report
    return await run_in_threadpool(report, endpoint, version, last=last, since=since, until=until)


@router.post("/{endpoint}/monitor", dependencies=[Depends(require("admin"))])
async def monitor(request: Request, endpoint: str, body: MonitorRequest | None = Body(None)) -> dict[str, Any]:
    """Run the monitor now: the drift report plus `metrics` ({name: value}), `breakdown` (per class,
    per feature) and `concept_drift`; the points are stored and handed to the alert rules."""
    svc = services(request)
    state = svc.dataplane.state(endpoint)
    body = body or MonitorRequest()
    check_window(body.last, body.since, body.until)
    await run_in_threadpool(svc.recorder.flush)
    return await svc.monitor.run(
        endpoint,
        state.stable,
        **body.model_dump(),
        redacted=hidden_fields(state.config.redact),
        guard=state.guard,
    )


@router.get("/{endpoint}/monitoring/report")
async def latest_report(request: Request, endpoint: str) -> dict[str, Any]:
    """The newest stored monitor report: the drift report with each feature's `histogram` (reference
    and current counts over the same bins), plus the run's metrics. The dashboard draws it."""
    svc = services(request)
    svc.dataplane.state(endpoint)  # 404 for an unknown endpoint
    report = await run_in_threadpool(svc.store.monitoring.latest_report, endpoint)
    if report is None:
        raise NotFound(
            f"endpoint {endpoint!r} has no monitor report yet; run one with POST /v1/endpoints/{endpoint}/monitor",
            endpoint=endpoint,
        )
    return report


def _point(p: MetricPoint) -> dict[str, Any]:
    return {"ts": p.ts, "value": p.value, "version": p.version, "detail": p.detail}


@router.get("/{endpoint}/monitoring")
async def monitoring(
    request: Request,
    endpoint: str,
    metric: str | None = None,
    since: float | None = None,
    until: float | None = None,
    version: int | None = None,
    limit: int = 10_000,
) -> dict[str, Any]:
    """Metric time series, oldest first (`since` <= ts < `until`). Without `metric`: the metrics
    available for the endpoint with the latest value of each."""
    svc = services(request)
    svc.dataplane.state(endpoint)  # 404 for an unknown endpoint
    if since is not None and until is not None and since > until:
        raise BadRequest(f"since ({since}) is after until ({until})", field="since")
    if not 1 <= limit <= 100_000:
        raise BadRequest(f"limit must be between 1 and 100000, got {limit}", field="limit")
    if version is not None:
        check_version(version, "version")  # a huge number overflowed the database's integer: a 500
    repo = svc.store.monitoring
    if metric is None:
        names = await run_in_threadpool(repo.metrics_available, endpoint)
        latest = {}
        for name in names:
            points = await run_in_threadpool(repo.latest, endpoint, name)
            latest[name] = [_point(p) for p in points]
        return {"endpoint": endpoint, "metrics": names, "latest": latest}
    if metric not in METRICS:
        raise BadRequest(f"unknown metric {metric!r}; known: {sorted(METRICS)}", field="metric")
    points = await run_in_threadpool(
        lambda: repo.series(endpoint, metric, since=since, until=until, version=version, limit=limit)
    )
    return {"endpoint": endpoint, "metric": metric, "points": [_point(p) for p in points]}
