"""`driftgate alerts`: alert rules (create, list, delete) and alert history on the store.

The same calls as `POST/GET/DELETE /v1/alert-rules` and `GET /v1/alerts` (driftgate.alerts.service), so
validation, the webhook SSRF check and the redaction of webhook paths are the API's. Running servers read
rules from the store at every monitor run. Mounted lazily by the main CLI.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from driftgate.cli import DataDir, DbUrl, _store, console
from driftgate.errors import DriftgateError

app = typer.Typer(help="Alert rules and the alerts they fired.", no_args_is_help=True)
rules_app = typer.Typer(help="Create, list and delete alert rules.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")

Json = Annotated[bool, typer.Option("--json", help="Print JSON (the HTTP API's shape) instead of a table.")]


def _run(json_out: bool, data_dir: Path, db: str | None, work: Callable[[Any], Any]) -> Any:
    """`work(store)`, with a driftgate error printed (as {"error": ...} under --json) and exit status 2."""
    store = _store(data_dir, db)
    try:
        return work(store)
    except DriftgateError as exc:
        if json_out:
            print(json.dumps(exc.to_dict(), default=str))
        else:
            console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None
    finally:
        store.close()


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


@rules_app.command("create")
def rules_create(
    name: Annotated[str, typer.Argument(help="Unique rule name.")],
    metric: Annotated[str, typer.Option(help="Monitor metric, e.g. data_drift_share, estimated_accuracy.")],
    op: Annotated[str, typer.Option(help="Comparison: > >= < <= == != (quote it in the shell).")],
    threshold: Annotated[float, typer.Option(help="The alert fires when `value op threshold` holds.")],
    endpoint: Annotated[str | None, typer.Option(help="Endpoint watched (default: every endpoint).")] = None,
    severity: Annotated[str, typer.Option(help="info | warning | critical")] = "warning",
    cooldown_seconds: Annotated[float, typer.Option(help="No second alert for the rule and endpoint within.")] = 600,
    webhook: Annotated[
        list[str] | None, typer.Option(help="http(s) URL that gets a JSON POST per alert (repeatable).")
    ] = None,
    log: Annotated[bool, typer.Option("--log", help="Also log each alert (the default without --webhook).")] = False,
    action: Annotated[list[str] | None, typer.Option(help="rollback | retrain (repeatable).")] = None,
    detail: Annotated[
        str | None, typer.Option(help="Select one point of a per-detail metric: KEY=VALUE, e.g. event=user_retried.")
    ] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Store the rule switched off.")] = False,
    webhook_allow: Annotated[
        list[str] | None, typer.Option(help="Private host/CIDR a webhook may reach (the server's own list).")
    ] = None,
    json_out: Json = False,
    data_dir: DataDir = Path(".driftgate"),
    db: DbUrl = None,
) -> None:
    """Create an alert rule (validated and checked like POST /v1/alert-rules)."""
    from driftgate.alerts import service

    body: dict[str, Any] = {
        "name": name,
        "endpoint": endpoint,
        "metric": metric,
        "op": op,
        "threshold": threshold,
        "severity": severity,
        "cooldown_seconds": cooldown_seconds,
        "actions": list(action or []),
        "enabled": not disabled,
    }
    if webhook or log:
        body["notify"] = [{"webhook": url} for url in webhook or []] + ([{"log": True}] if log else [])
    if detail is not None:
        key, sep, value = detail.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected KEY=VALUE, got {detail!r}", param_hint="--detail")
        body["detail"] = {key: value}
    rule = _run(
        json_out,
        data_dir,
        db,
        lambda store: service.create_rule(store, body, webhook_allow=list(webhook_allow or []), actor="cli"),
    )
    if json_out:
        _print_json(rule)
    else:
        console.print(f"created alert rule [bold]{rule['name']}[/bold]")
        _rules_table([service.shown(rule)])


@rules_app.command("list")
def rules_list(
    endpoint: Annotated[str | None, typer.Option(help="Only rules watching this endpoint.")] = None,
    json_out: Json = False,
    data_dir: DataDir = Path(".driftgate"),
    db: DbUrl = None,
) -> None:
    """List alert rules (webhooks shown as scheme://host/...)."""
    from driftgate.alerts import service

    rules = _run(json_out, data_dir, db, lambda store: service.list_rules(store, endpoint))
    if json_out:
        _print_json({"rules": rules})
    else:
        _rules_table(rules)


@rules_app.command("delete")
def rules_delete(
    name: str,
    json_out: Json = False,
    data_dir: DataDir = Path(".driftgate"),
    db: DbUrl = None,
) -> None:
    """Delete an alert rule; the alerts it fired stay in the history."""
    from driftgate.alerts import service

    _run(json_out, data_dir, db, lambda store: service.delete_rule(store, name))
    if json_out:
        _print_json({"deleted": name})
    else:
        console.print(f"deleted alert rule [bold]{name}[/bold]")


@app.command("list")
def alerts_list(
    endpoint: Annotated[str | None, typer.Option(help="Only alerts of this endpoint.")] = None,
    rule: Annotated[str | None, typer.Option(help="Only alerts of this rule (by name).")] = None,
    since: Annotated[str | None, typer.Option(help="Fired at or after: epoch seconds or ISO 8601 (UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="Fired at or before: epoch seconds or ISO 8601 (UTC).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first (1-10000).")] = 100,
    json_out: Json = False,
    data_dir: DataDir = Path(".driftgate"),
    db: DbUrl = None,
) -> None:
    """Alert history, newest first (GET /v1/alerts)."""
    from driftgate.alerts import service
    from driftgate.cli.export import parse_time

    window = {"since": parse_time(since, "--since"), "until": parse_time(until, "--until")}
    alerts = _run(
        json_out,
        data_dir,
        db,
        lambda store: service.history(store, endpoint=endpoint, rule=rule, limit=limit, **window),
    )
    if json_out:
        _print_json({"alerts": alerts})
        return
    table = Table("id", "fired (UTC)", "rule", "endpoint", "condition", "severity", "notified", "actions")
    for alert in alerts:
        deliveries = alert.get("deliveries") or []
        delivered = sum(1 for d in deliveries if d.get("ok"))
        actions = ", ".join(f"{a['name']}: {'ok' if a.get('ok') else 'failed'}" for a in alert.get("actions") or [])
        table.add_row(
            str(alert["id"]),
            _when(alert["fired_at"]),
            alert["rule"],
            alert["endpoint"],
            f"{alert['metric']} = {alert['value']:.4g} {alert['op']} {alert['threshold']:g}",
            _severity(alert["severity"]),
            f"{delivered}/{len(deliveries)}" if deliveries else "-",
            actions or "-",
        )
    console.print(table)
    if not alerts:
        console.print("no alerts")


def _rules_table(rules: list[dict[str, Any]]) -> None:
    table = Table("name", "endpoint", "condition", "severity", "cooldown s", "notify", "actions", "enabled")
    for rule in rules:
        selector = rule.get("detail")
        condition = f"{rule['metric']} {rule['op']} {rule['threshold']:g}"
        if selector:
            condition += " (" + ", ".join(f"{k}={v}" for k, v in selector.items()) + ")"
        notify = ", ".join(n.get("webhook", "log") for n in rule["notify"])
        table.add_row(
            rule["name"],
            rule["endpoint"] or "(every)",
            condition,
            _severity(rule["severity"]),
            f"{rule['cooldown_seconds']:g}",
            notify or "-",
            ", ".join(rule["actions"]) or "-",
            "yes" if rule["enabled"] else "no",
        )
    console.print(table)


def _severity(value: str) -> str:
    colour = {"critical": "red", "warning": "yellow"}.get(value)
    return f"[{colour}]{value}[/{colour}]" if colour else value


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
