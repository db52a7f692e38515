"""Alert rules (SPEC 7): the validated shape of `POST /v1/alert-rules`, and the comparison they make.

Pure: no HTTP, no database. Whether a webhook may be called is `ssrf`'s question (it needs DNS).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from driftgate.core.events import NAME_RULE, is_event_name
from driftgate.errors import BadRequest

METRICS = (
    "data_drift_share",
    "prediction_drift",
    "error_rate",
    "latency_p99_ms",
    "request_rate",
    "missing_rate",
    "accuracy",
    "estimated_accuracy",
    "estimated_roc_auc",
    "estimated_f1",
    "estimated_precision",
    "estimated_recall",
    "estimated_mae",
    "estimated_rmse",
    "performance_drift",
    "concept_drift",
    "out_of_range_rate",
    "unseen_category_rate",
    "null_output_rate",
    "empty_answer_rate",
    "feature_drift",
    "mean_confidence",
    "request_count",
    "output_guard_violation_rate",
    "event_rate",
)
# Metrics with one point per detail value, and the detail key a rule's `detail` selector may name.
DETAIL_KEYS = {"event_rate": "event", "feature_drift": "feature"}
OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
# "rollback": end the endpoint's running rollout on the champion; "retrain": a retraining run on the
# endpoint's `retraining` config (SPEC 8).
ACTIONS = ("rollback", "retrain")
Severity = Literal["info", "warning", "critical"]


def _check_name(value: str, what: str) -> str:
    # The same rule as endpoint and model names (driftgate.registry.registry.validate_name),
    # repeated here so that this module stays importable without the registry's dependencies.
    if not value or len(value) > 200 or not all(c.isalnum() or c in "-_." for c in value):
        raise ValueError(f"{what} must be 1-200 letters, digits, '-', '_' or '.', got {value!r}")
    return value


class Notifier(BaseModel):
    """One notification target: `{"webhook": "https://..."}` or `{"log": true}`."""

    model_config = ConfigDict(extra="forbid")

    webhook: str | None = Field(None, description="http(s) URL that receives a JSON POST (Slack-compatible).")
    log: Literal[True] | None = Field(None, description="Write one WARNING line on the `driftgate.alerts` logger.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Notifier:
        if (self.webhook is None) == (self.log is None):
            raise ValueError('each notifier is either {"webhook": "https://..."} or {"log": true}')
        return self

    @field_validator("webhook")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
                raise ValueError(f"webhook must be an http(s) URL with a host, got a {parts.scheme or 'bare'!r} URL")
        return url


class AlertRule(BaseModel):
    """`POST /v1/alert-rules` body."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Unique rule name: letters, digits, '-', '_' or '.'.")
    endpoint: str | None = Field(None, description="Endpoint the rule watches; null watches every endpoint.")
    metric: str = Field(description=f"One of {', '.join(METRICS)}.")
    detail: dict[str, str] | None = Field(
        None,
        description='Selects one point of a per-detail metric, e.g. {"event": "user_retried"} for event_rate; '
        "without it, any point of the metric can fire the rule.",
    )
    op: str = Field(description="Comparison: " + " ".join(OPS) + ".")
    threshold: float = Field(allow_inf_nan=False, description="The alert fires when `value op threshold` holds.")
    severity: Severity = "warning"
    cooldown_seconds: float = Field(
        600.0, ge=0, allow_inf_nan=False, description="No second alert for the same rule and endpoint within this."
    )
    notify: list[Notifier] = Field(default_factory=lambda: [Notifier(webhook=None, log=True)], max_length=20)
    actions: list[str] = Field(default_factory=list, max_length=len(ACTIONS))
    enabled: bool = True

    @field_validator("threshold", "cooldown_seconds", mode="before")
    @classmethod
    def _not_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):  # JSON true is no number, though Python would read it as 1
            raise ValueError(f"must be a number, got {str(value).lower()}")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value, "rule name")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return None if value is None else _check_name(value, "endpoint name")

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"unknown metric {value!r}; allowed: {', '.join(METRICS)}")
        return value

    @field_validator("detail")
    @classmethod
    def _detail(cls, value: dict[str, str] | None, info: ValidationInfo) -> dict[str, str] | None:
        metric = info.data.get("metric")  # absent when the metric itself was refused
        if value is None or metric is None:
            return value
        key = DETAIL_KEYS.get(metric)
        if key is None:
            raise ValueError(
                f"metric {metric!r} has one value per run, so there is no detail to select; "
                f"detail selects among the points of {', '.join(DETAIL_KEYS)}"
            )
        if set(value) != {key} or not is_event_name(value[key]):
            raise ValueError(f'detail for {metric} is {{"{key}": NAME}} with NAME {NAME_RULE}; got {value!r}')
        return value

    @field_validator("op")
    @classmethod
    def _op(cls, value: str) -> str:
        if value not in OPS:
            raise ValueError(f"op must be one of {' '.join(OPS)}, got {value!r}")
        return value

    @field_validator("actions")
    @classmethod
    def _actions(cls, values: list[str]) -> list[str]:
        for name in values:
            if name not in ACTIONS:
                raise ValueError(f"unknown action {name!r}; allowed: {', '.join(ACTIONS)}")
        return list(dict.fromkeys(values))

    def stored(self) -> dict[str, Any]:
        """The rule as the store keeps it: notifiers without their unset key."""
        data = self.model_dump()
        data["notify"] = [n.model_dump(exclude_none=True) for n in self.notify]
        return data

    def webhooks(self) -> list[str]:
        return [n.webhook for n in self.notify if n.webhook is not None]


def parse_rule(body: Any) -> AlertRule:
    """A validated rule, or `BadRequest` naming the first field that is wrong."""
    if not isinstance(body, dict):
        raise BadRequest("an alert rule is a JSON object", field="body")
    try:
        return AlertRule.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        message = str(first["ctx"]["error"]) if first["type"] == "value_error" else first["msg"]
        if first["type"] == "extra_forbidden":
            known = (
                'a notifier is {"webhook": url} or {"log": true}'
                if where.startswith("notify.")
                else (f"a rule has {', '.join(AlertRule.model_fields)}")
            )
            message = f"unknown field; {known}"
        raise BadRequest(f"alert rule field {where!r}: {message}", field=where) from None


def selects(selector: dict[str, Any] | None, detail: dict[str, Any]) -> bool:
    """Does a point with `detail` match a rule's `detail` selector (None selects every point)?"""
    return not selector or all(detail.get(key) == want for key, want in selector.items())


def compare(op: str, value: float, threshold: float) -> bool:
    """Does `value op threshold` hold? NaN never fires a rule."""
    if math.isnan(value):
        return False
    return OPS[op](value, threshold)
