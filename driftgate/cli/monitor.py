"""`driftgate monitor ENDPOINT`: run the monitor once on the store (what `POST /v1/endpoints/{e}/monitor`
does), or show the newest stored report (`GET /v1/endpoints/{e}/monitoring/report`), as tables or JSON.

Mounted lazily by the main CLI: the monitor's stack (numpy, pandas, the model) loads only when this runs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.table import Table

from driftgate.cli import DataDir, DbUrl, _store, console
from driftgate.core.redaction import hidden_fields
from driftgate.errors import DriftgateError, NotFound

if TYPE_CHECKING:
    from driftgate.store import Store

ESTIMATED = ("accuracy", "roc_auc", "f1", "precision", "recall", "mae", "rmse")


def monitor(
    endpoint: str,
    last: Annotated[
        bool, typer.Option("--last", help="Show the newest stored report instead of running the monitor.")
    ] = False,
    rows: Annotated[
        int | None, typer.Option("--rows", help="Monitor the last N logged predictions (default 5000).", min=1)
    ] = None,
    since: Annotated[str | None, typer.Option(help="Window start: epoch seconds or ISO 8601 (UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="Window end: epoch seconds or ISO 8601 (UTC).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON (the HTTP shape).")] = False,
    alerts: Annotated[bool, typer.Option(help="Judge the alert rules on this run, as the server does.")] = True,
    webhook_allow: Annotated[
        list[str] | None, typer.Option(help="Private host/CIDR that alert webhooks may reach (repeatable).")
    ] = None,
    train_module: Annotated[
        list[str] | None, typer.Option(help="Package a retrain alert action may train with (repeatable).")
    ] = None,
    trust_pickle: Annotated[bool, typer.Option(help="Load pickle artifacts registered without trust.")] = False,
    data_dir: DataDir = Path(".driftgate"),
    db: DbUrl = None,
) -> None:
    """Run the monitor on an endpoint now (stored, alert rules judged) and show drift, estimates, verdicts."""
    from driftgate.cli.export import parse_time

    window = {"last": rows, "since": parse_time(since, "--since"), "until": parse_time(until, "--until")}
    try:
        if last:
            if any(v is not None for v in window.values()):
                raise typer.BadParameter("--last shows the stored report; it takes no window", param_hint="--last")
            report = newest_report(endpoint, data_dir, db)
        else:
            settings = {"webhook_allow": list(webhook_allow or []), "train_modules": list(train_module or [])}
            with console.status(f"monitoring {endpoint}", spinner="dots") if not json_out else _Quiet():
                report = asyncio.run(
                    run_monitor(endpoint, data_dir, db, window, alerts=alerts, trust_pickle=trust_pickle, **settings)
                )
    except DriftgateError as exc:
        if json_out:
            print(json.dumps({"error": exc.message, **_jsonable(exc.details)}))
        else:
            console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None
    if json_out:
        print(json.dumps(_jsonable(report), indent=2))
    else:
        show(report)


class _Quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def newest_report(endpoint: str, data_dir: Path, db: str | None) -> dict[str, Any]:
    """The newest stored monitor report: the store call `GET .../monitoring/report` makes."""
    store: Store = _store(data_dir, db)
    try:
        store.endpoints.get(endpoint)  # EndpointNotFound for an unknown endpoint
        report = store.monitoring.latest_report(endpoint)
    finally:
        store.close()
    if report is None:
        raise NotFound(
            f"endpoint {endpoint!r} has no monitor report yet; run one with `driftgate monitor {endpoint}`",
            endpoint=endpoint,
        )
    return report


async def run_monitor(
    endpoint: str,
    data_dir: Path,
    db: str | None,
    window: dict[str, Any],
    *,
    alerts: bool = True,
    trust_pickle: bool = False,
    webhook_allow: list[str] | None = None,
    train_modules: list[str] | None = None,
) -> dict[str, Any]:
    """One manual monitor run over the store with the server's own services (`build_services`): the
    endpoint's serving version, redaction and output guard, the report and points stored, and the
    alert rules judged (notifiers and actions as on the server) unless `alerts` is off."""
    from driftgate.monitoring.monitor import check_window
    from driftgate.server.wiring import build_services, close_services
    from driftgate.settings import Settings

    check_window(window["last"], window["since"], window["until"])
    # A short-lived command: the log written from this process, shadows in threads, no schedule.
    settings = Settings(
        data_dir=data_dir,
        db=db,
        trust_pickle=trust_pickle,
        webhook_allow=list(webhook_allow or []),
        train_modules=list(train_modules or []),
        log_process=False,
        shadow_process=False,
        monitor_interval=0,
    )
    svc = build_services(settings)
    try:
        state = await svc.dataplane.refresh(endpoint)
        if not alerts:
            svc.monitor.listeners.clear()
        report = await svc.monitor.run(
            endpoint,
            state.stable,
            **window,
            redacted=hidden_fields(state.config.redact),
            guard=state.guard,
        )
        # A retraining run that an alert action started ends before this process does.
        await svc.retraining.join()
        return report
    finally:
        await close_services(svc)


# ---- tables -------------------------------------------------------------------------------------------


def show(report: dict[str, Any]) -> None:
    """The report as tables: the window, drift per feature (and prediction, multivariate), performance
    realised and estimated, the drift verdicts, notes."""
    window = report.get("window") or {}
    run = report.get("run") or {}
    when = _time(run.get("ts"))
    span = []
    if window.get("since") is not None:
        span.append(f"since {_time(window['since'])}")
    if window.get("until") is not None:
        span.append(f"until {_time(window['until'])}")
    if window.get("last") is not None and not span:
        span.append(f"last {window['last']:,}")
    console.print(
        f"[bold]{window.get('endpoint', '?')}[/bold]: {window.get('model', '?')} v{window.get('version', '?')}, "
        f"{window.get('rows', 0):,} rows ({', '.join(span) or 'whole log'}); run {when} ({run.get('trigger', '?')})"
    )
    _drift_table(report)
    _performance_table(report)
    _verdicts(report)
    for note in report.get("notes") or []:
        console.print(f"[yellow]note:[/yellow] {note}")


def _drift_table(report: dict[str, Any]) -> None:
    features = report.get("features") or []
    if not features and not report.get("prediction"):
        return
    columns = ("feature", "type", "test", "stat", "p adj", "thresh", "drift")
    table = _table(*columns, title="drift (p adj: p-value after multiple-testing correction)", fold=("feature", "test"))
    for feature in features:
        table.add_row(*_drift_row(feature))
    if report.get("prediction"):
        table.add_row(*_drift_row({**report["prediction"], "name": "(prediction)"}))
    # Multivariate tests (domain classifier, PCA reconstruction): one row each, by effect size.
    for method, test in (report.get("multivariate") or {}).items():
        if isinstance(test, dict) and "drifted" in test:
            name = {**test, "name": "(multivariate)", "type": "", "test": method, "statistic": test.get("effect_size")}
            table.add_row(*_drift_row(name))
    console.print(table)
    dataset = report.get("dataset")
    if dataset:
        console.print(
            f"dataset: {_flag(dataset.get('drifted'))} drifted "
            f"({dataset.get('n_drifted', '?')} of {dataset.get('n_features', len(features))} features, "
            f"share {_num(dataset.get('share_drifted'))}; {dataset.get('correction', '')})"
        )


def _drift_row(feature: dict[str, Any]) -> list[str]:
    p_value = feature.get("p_value_adjusted", feature.get("p_value"))
    return [
        str(feature.get("name", "")),
        str(feature.get("type", "")),
        str(feature.get("test", "")),
        _num(feature.get("statistic")),
        _num(p_value, ".2g"),
        _num(feature.get("threshold")),
        _flag(feature.get("drifted")),
    ]


def _performance_table(report: dict[str, Any]) -> None:
    performance = report.get("performance") or {}
    reference = performance.get("reference") or {}
    current = performance.get("current") or {}
    estimated = performance.get("estimated") or {}
    bands = estimated.get("bands") or {}
    names = [n for n in ESTIMATED if n in current or f"estimated_{n}" in estimated or n in reference]
    if not names:
        return
    labelled = current.get("n")
    table = _table(
        "metric",
        "reference",
        f"realised (n={int(labelled):,})" if isinstance(labelled, int | float) else "realised",
        "estimated",
        "band",
        "alert",
        title="performance",
        fold=("band",),
    )
    for name in names:
        band = bands.get(f"estimated_{name}") or {}
        low, high = band.get("lower"), band.get("upper")
        alert = band.get("alert")
        table.add_row(
            name,
            _num(reference.get(name)),
            _num(current.get(name)),
            _num(estimated.get(f"estimated_{name}")),
            f"{_num(low)}..{_num(high)}" if low is not None or high is not None else "",
            "" if alert is None else _flag(alert),
        )
    console.print(table)


def _verdicts(report: dict[str, Any]) -> None:
    """Data, performance and concept drift verdicts (the `concept_drift` section: present once labels are)."""
    concept = report.get("concept_drift")
    if not concept:
        return
    table = _table("verdict", "fired", "test", "evidence", title="verdicts", fold=("verdict", "test", "evidence"))
    for key, label in (("data_drift", "data drift"), ("performance_drift", "performance drift")):
        part = concept.get(key)
        if isinstance(part, dict):
            table.add_row(label, _flag(part.get("fired")), str(part.get("test") or ""), _evidence(part))
    evidence = _evidence(concept.get("evidence"))
    if concept.get("stream_fired") and concept.get("detector"):
        evidence = f"detector {concept['detector']} fired; " + evidence
    if concept.get("ambiguous"):
        evidence += " (ambiguous)"
    table.add_row("concept drift", _flag(concept.get("fired")), str(concept.get("test") or ""), evidence)
    console.print(table)


def _evidence(part: Any) -> str:
    """`key value` pairs of a verdict's evidence, numbers to 4 digits; the verdict's own keys left out."""
    if isinstance(part, dict):
        skip = {"test", "fired", "computed"}
        return ", ".join(f"{k} {_num(v)}" for k, v in part.items() if k not in skip and not isinstance(v, dict | list))
    return "" if part is None else str(part)


def _table(*columns: str, title: str, fold: tuple[str, ...] = ()) -> Table:
    """Light borders; the `fold` columns (names, tests, evidence) wrap onto more lines when the terminal
    is narrow, the others (numbers, flags) never do, so no value is cut short ("wasserst…") at 80 columns."""
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column not in fold)
    return table


def _flag(value: Any) -> str:
    if value is None:
        return "-"
    return "[red]yes[/red]" if value else "[green]no[/green]"


def _num(value: Any, spec: str = ".4g") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return format(value, spec)
    return str(value)


def _time(ts: Any) -> str:
    if not isinstance(ts, int | float):
        return "?"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _jsonable(value: Any) -> Any:
    """JSON text for what reports hold (NaN and infinities as null, as the HTTP API sends them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _jsonable(value.item())
    return value
