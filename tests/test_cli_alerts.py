"""`driftgate alerts`: rules and history on a real SQLite store, through the calls the HTTP routes make.

Parity with the API is checked against a real server on loopback sharing the same data directory.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from driftgate.alerts.engine import AlertEngine
from driftgate.cli import app
from driftgate.core.points import MetricPoint
from driftgate.store import Store
from tests.conftest import LiveServer, make_server

RULE = ["--metric", "data_drift_share", "--op", ">", "--threshold", "0.3", "--endpoint", "fraud"]


def cli(data: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*args, "--data-dir", str(data)], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def cli_json(data: Path, *args: str) -> Any:
    code, output = cli(data, *args, "--json")
    assert code == 0, output
    return json.loads(output)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    """A server on the same data directory as the CLI (make_server uses tmp_path / "data")."""
    srv = make_server(tmp_path)
    yield srv
    srv.stop()


def fire(data: Path, value: float, endpoint: str = "fraud") -> list[dict[str, Any]]:
    """Judge the rules on one data_drift_share point with the real alert engine on the store."""
    store = Store.open(data)
    try:
        points = [MetricPoint(endpoint, "data_drift_share", value, ts=0.0)]
        return asyncio.run(AlertEngine(store).evaluate(endpoint, points))
    finally:
        store.close()


def test_rules_create_list_delete_as_tables_and_json(data: Path) -> None:
    code, output = cli(data, "alerts", "rules", "create", "drift", *RULE, "--severity", "critical", "--log")
    assert code == 0, output
    assert "created alert rule drift" in output and "data_drift_share > 0.3" in output and "critical" in output

    created = cli_json(
        data, "alerts", "rules", "create", "slow", "--metric", "latency_p99_ms", "--op", ">=", "--threshold", "250",
        "--action", "rollback", "--cooldown-seconds", "60", "--disabled",
    )  # fmt: skip
    assert created["name"] == "slow" and created["endpoint"] is None and created["created_by"] == "cli"
    assert created["actions"] == ["rollback"] and created["enabled"] is False and created["cooldown_seconds"] == 60
    assert created["notify"] == [{"log": True}]  # the default notifier, as over HTTP

    code, output = cli(data, "alerts", "rules", "list")
    assert code == 0, output
    lines = {line.split()[1]: line for line in output.splitlines() if line.startswith("│ ")}
    assert "fraud" in lines["drift"] and "critical" in lines["drift"] and "yes" in lines["drift"]
    assert "(every)" in lines["slow"] and "rollback" in lines["slow"] and "latency_p99_ms >= 250" in lines["slow"]

    rules = cli_json(data, "alerts", "rules", "list")["rules"]
    assert [r["name"] for r in rules] == ["drift", "slow"]
    # --endpoint: the endpoint's own rules and the every-endpoint ones, as GET /v1/alert-rules?endpoint=
    assert [r["name"] for r in cli_json(data, "alerts", "rules", "list", "--endpoint", "other")["rules"]] == ["slow"]

    assert cli_json(data, "alerts", "rules", "delete", "slow") == {"deleted": "slow"}
    code, output = cli(data, "alerts", "rules", "delete", "slow")
    assert code == 2 and "no alert rule named 'slow'" in output
    assert [r["name"] for r in cli_json(data, "alerts", "rules", "list")["rules"]] == ["drift"]


def test_the_cli_and_the_api_share_rules_validation_and_redaction(data: Path, server: LiveServer) -> None:
    # The SSRF check needs DNS for a name; an address literal keeps the test offline.
    code, output = cli(data, "alerts", "rules", "create", "drift", *RULE, "--webhook", "https://93.184.216.34/x/SECRET")
    assert code == 0, output
    assert "SECRET" not in output  # tables show scheme://host/... only
    with httpx.Client(base_url=server.url) as http:
        api = http.get("/v1/alert-rules").json()
        assert cli_json(data, "alerts", "rules", "list") == api
        assert api["rules"][0]["notify"] == [{"webhook": "https://93.184.216.34/..."}]
        assert api["rules"][0]["created_by"] == "cli"

        # Each refusal reads the same from both, and names the field.
        for extra, field in [
            (["--metric", "drift"], "metric"),
            (["--action", "reboot"], "actions"),
            (["--op", "~"], "op"),
            (["--webhook", "http://169.254.169.254/latest/meta-data/"], "notify"),
            (["--webhook", "http://127.0.0.1:9/"], "notify"),
            (["--detail", "event=user_retried"], "detail"),
        ]:
            args = [*RULE, *extra]
            answer = cli_json_error(data, "alerts", "rules", "create", "other", *args)
            body = _http_body("other", args)
            r = http.post("/v1/alert-rules", json=body)
            assert r.status_code == 400, (extra, r.text)
            assert answer == r.json() and answer["field"] == field, (extra, answer)
        assert "SECRET" not in str(cli_json(data, "alerts", "rules", "list"))

        # A taken name is a conflict either way.
        taken = cli_json_error(data, "alerts", "rules", "create", "drift", *RULE)
        assert taken == http.post("/v1/alert-rules", json=_http_body("drift", RULE)).json()
        assert "exists" in taken["error"]

        # A rule the API created is deleted by the CLI, and the server's GET sees it gone.
        assert http.post("/v1/alert-rules", json=_http_body("api-made", RULE)).status_code == 201
        assert cli_json(data, "alerts", "rules", "delete", "api-made") == {"deleted": "api-made"}
        assert http.get("/v1/alert-rules/api-made").status_code == 404


def test_webhook_allow_lets_a_private_target_through(data: Path) -> None:
    args = ["alerts", "rules", "create", "local", *RULE, "--webhook", "http://127.0.0.1:9/hook"]
    code, output = cli(data, *args)
    assert code == 2 and "127.0.0.1 is loopback" in output and "--webhook-allow" in output
    code, output = cli(data, *args, "--webhook-allow", "127.0.0.1")
    assert code == 0, output


def test_alert_history(data: Path, server: LiveServer) -> None:
    assert cli(data, "alerts", "rules", "create", "drift", *RULE)[0] == 0
    code, output = cli(data, "alerts", "list")
    assert code == 0 and "no alerts" in output
    (fired,) = fire(data, 0.42)

    code, output = cli(data, "alerts", "list")
    assert code == 0, output
    row = next(line for line in output.splitlines() if line.startswith("│ "))
    assert str(fired["id"]) in row and "drift" in row and "fraud" in row and "data_drift_share = 0.42 > 0.3" in row
    assert "1/1" in row  # the log notifier delivered

    with httpx.Client(base_url=server.url) as http:
        assert cli_json(data, "alerts", "list") == http.get("/v1/alerts").json()
        assert cli_json(data, "alerts", "list", "--rule", "other") == {"alerts": []}
        assert cli_json(data, "alerts", "list", "--endpoint", "fraud", "--since", "2000-01-01")["alerts"]
        assert cli_json(data, "alerts", "list", "--until", "2000-01-01T00:00:00Z") == {"alerts": []}
        assert cli_json_error(data, "alerts", "list", "--limit", "0") == http.get("/v1/alerts?limit=0").json()

    code, output = cli(data, "alerts", "list", "--since", "yesterday")
    assert code == 2 and "expected epoch seconds or an ISO date/time" in output


def cli_json_error(data: Path, *args: str) -> dict[str, Any]:
    code, output = cli(data, *args, "--json")
    assert code == 2, output
    return json.loads(output)


def _http_body(name: str, args: list[str]) -> dict[str, Any]:
    """The HTTP body the CLI options stand for (the last of a repeated option wins, as in the CLI)."""
    body: dict[str, Any] = {"name": name, "severity": "warning", "cooldown_seconds": 600, "enabled": True}
    pairs = dict(zip(args[::2], args[1::2], strict=True))
    body.update(endpoint=pairs["--endpoint"], metric=pairs["--metric"], op=pairs["--op"])
    body["threshold"] = float(pairs["--threshold"])
    body["actions"] = [pairs["--action"]] if "--action" in pairs else []
    if "--webhook" in pairs:
        body["notify"] = [{"webhook": pairs["--webhook"]}]
    if "--detail" in pairs:
        key, _, value = pairs["--detail"].partition("=")
        body["detail"] = {key: value}
    return body
