"""Alert rule validation (every error names its field) and the comparisons rules make."""

from __future__ import annotations

import math
from typing import Any

import pytest

from driftgate.alerts.rules import METRICS, compare, parse_rule, selects
from driftgate.errors import BadRequest

BASE = {"name": "drift", "endpoint": "fraud", "metric": "data_drift_share", "op": ">", "threshold": 0.3}


def rule(**changes: Any) -> dict[str, Any]:
    body = {**BASE, **changes}
    return {k: v for k, v in body.items() if v is not ...}


def test_defaults_and_stored_shape() -> None:
    parsed = parse_rule(rule())
    assert parsed.stored() == {
        "name": "drift",
        "endpoint": "fraud",
        "metric": "data_drift_share",
        "op": ">",
        "threshold": 0.3,
        "severity": "warning",
        "cooldown_seconds": 600.0,
        "notify": [{"log": True}],
        "actions": [],
        "enabled": True,
        "detail": None,
    }
    every = parse_rule(rule(endpoint=..., notify=[{"webhook": "https://h.example/x"}, {"log": True}]))
    assert every.endpoint is None
    assert every.stored()["notify"] == [{"webhook": "https://h.example/x"}, {"log": True}]
    assert every.webhooks() == ["https://h.example/x"]
    assert parse_rule(rule(actions=["rollback", "rollback"])).actions == ["rollback"]
    assert parse_rule(rule(actions=["retrain", "rollback"])).actions == ["retrain", "rollback"]


@pytest.mark.parametrize("metric", METRICS)
def test_every_spec_metric_is_accepted(metric: str) -> None:
    assert parse_rule(rule(metric=metric)).metric == metric


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"name": "bad name!"}, "name", "letters, digits"),
        ({"name": ""}, "name", "1-200"),
        ({"name": ...}, "name", "Field required"),
        ({"endpoint": "a/b"}, "endpoint", "endpoint name"),
        ({"metric": "drift"}, "metric", "allowed: data_drift_share, prediction_drift"),
        ({"metric": ...}, "metric", "required"),
        ({"op": "=>"}, "op", "> >= < <= == !="),
        ({"threshold": "high"}, "threshold", "number"),
        ({"threshold": float("nan")}, "threshold", "finite"),
        ({"threshold": float("inf")}, "threshold", "finite"),
        ({"threshold": True}, "threshold", "must be a number, got true"),
        ({"severity": "page"}, "severity", "'info', 'warning' or 'critical'"),
        ({"cooldown_seconds": -1}, "cooldown_seconds", "greater than or equal to 0"),
        ({"notify": [{"email": "a@b.c"}]}, "notify.0.email", "unknown field; a notifier is"),
        ({"notify": [{}]}, "notify.0", "either"),
        ({"notify": [{"webhook": "https://h.example", "log": True}]}, "notify.0", "either"),
        ({"notify": [{"log": False}]}, "notify.0.log", "True"),
        ({"notify": [{"webhook": "ftp://h.example/x"}]}, "notify.0.webhook", "http(s) URL"),
        ({"notify": [{"webhook": "not a url"}]}, "notify.0.webhook", "http(s) URL"),
        ({"notify": "log"}, "notify", "list"),
        ({"actions": ["page_oncall"]}, "actions", "unknown action 'page_oncall'"),
        ({"enabled": "maybe"}, "enabled", "boolean"),
        ({"colour": "red"}, "colour", "unknown field; a rule has name, endpoint"),
        ({"detail": {"event": "x"}}, "detail", "metric 'data_drift_share' has one value per run"),
        ({"metric": "event_rate", "detail": {"feature": "x"}}, "detail", 'detail for event_rate is {"event": NAME}'),
        ({"metric": "event_rate", "detail": {"event": "no spaces"}}, "detail", "starting with a letter"),
        ({"metric": "event_rate", "detail": {"event": 3}}, "detail.event", "valid string"),
        ({"metric": "event_rate", "detail": "user_retried"}, "detail", "dictionary"),
    ],
)
def test_errors_name_the_field(changes: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_rule(rule(**changes))
    assert caught.value.details["field"] == field
    assert field in caught.value.message
    assert words in caught.value.message


def test_event_rate_rules_may_select_one_event() -> None:
    one = parse_rule(rule(metric="event_rate", detail={"event": "user_retried"}))
    assert one.stored()["detail"] == {"event": "user_retried"}
    assert parse_rule(rule(metric="event_rate")).detail is None  # any event's rate
    assert selects({"event": "a"}, {"event": "a"}) and selects(None, {"event": "b"})
    assert not selects({"event": "a"}, {"event": "b"}) and not selects({"event": "a"}, {})


def test_a_body_that_is_not_an_object() -> None:
    with pytest.raises(BadRequest, match="JSON object"):
        parse_rule([BASE])


@pytest.mark.parametrize(
    ("op", "value", "threshold", "holds"),
    [
        (">", 0.31, 0.3, True),
        (">", 0.3, 0.3, False),
        (">=", 0.3, 0.3, True),
        (">=", 0.29, 0.3, False),
        ("<", 0.8, 0.9, True),
        ("<", 0.9, 0.9, False),
        ("<=", 0.9, 0.9, True),
        ("<=", 0.91, 0.9, False),
        ("==", 1.0, 1.0, True),
        ("==", 0.0, 1.0, False),
        ("!=", 0.0, 1.0, True),
        ("!=", 1.0, 1.0, False),
        (">", math.inf, 1e9, True),
    ],
)
def test_comparisons(op: str, value: float, threshold: float, holds: bool) -> None:
    assert compare(op, value, threshold) is holds


@pytest.mark.parametrize("op", [">", ">=", "<", "<=", "==", "!="])
def test_nan_never_fires(op: str) -> None:
    assert compare(op, math.nan, 0.5) is False


def test_rules_and_ssrf_import_no_web_or_database_code() -> None:
    import subprocess
    import sys

    code = (
        "import sys, driftgate.alerts, driftgate.alerts.rules, driftgate.alerts.ssrf\n"
        "print(','.join(m for m in ('fastapi', 'starlette', 'sqlalchemy', 'httpx', 'pandas') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
