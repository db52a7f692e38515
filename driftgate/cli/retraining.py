"""`driftgate retrain`: a retraining run from the command line, on the store like `rollout`; running
servers follow the rollout it starts within a poll. Mounted by the main CLI."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from driftgate.cli import DataDir, DbUrl, _fail, _store, console
from driftgate.errors import DriftgateError


def _show(run: dict[str, Any]) -> None:
    colour = {"succeeded": "green", "rejected": "yellow", "failed": "red"}.get(run["state"], "white")
    console.print(f"run {run['id']} on [bold]{run['endpoint']}[/bold]: [{colour}]{run['state']}[/{colour}]")
    if run.get("detail"):
        console.print(run["detail"])
    evaluation = run.get("evaluation")
    if evaluation:
        table = Table("held-out rows", "metric", "champion", "candidate", "better")
        table.add_row(
            str(evaluation["rows"]),
            evaluation["metric"],
            f"{evaluation['champion']:.4g}",
            f"{evaluation['candidate']:.4g}",
            "yes" if evaluation["better"] else "no",
        )
        console.print(table)


def _list(store: Any, endpoint: str) -> None:
    table = Table("id", "started", "trigger", "state", "candidate", "detail", title=f"retraining runs of {endpoint}")
    for run in store.retraining.list(endpoint):
        when = dt.datetime.fromtimestamp(run["created_at"]).strftime("%Y-%m-%d %H:%M:%S")
        candidate = f"v{run['candidate']['version']}" if run["candidate"] else "-"
        table.add_row(str(run["id"]), when, run["trigger"], run["state"], candidate, (run["detail"] or "")[:100])
    console.print(table)


def retrain(
    endpoint: str,
    train: Annotated[str | None, typer.Option(help="Train function `package.module:function`.")] = None,
    data: Annotated[str | None, typer.Option(help="all | recent | reference_and_recent.")] = None,
    window_days: Annotated[float | None, typer.Option(help="How far back 'recent' reaches, in days.", min=0)] = None,
    holdout: Annotated[float | None, typer.Option(help="Share of the newest rows held out to compare.")] = None,
    min_rows: Annotated[int | None, typer.Option(help="Labelled rows the run needs.")] = None,
    rollout: Annotated[
        str | None, typer.Option(help='Rollout of a better candidate as JSON, e.g. {"strategy": "canary"}; "none".')
    ] = None,
    reason: Annotated[str, typer.Option(help="Why, kept with the run and its rollout.")] = "",
    list_runs: Annotated[bool, typer.Option("--list", help="Show the endpoint's runs instead.")] = False,
    data_dir: DataDir = Path(".driftgate"),
    db: DbUrl = None,
) -> None:
    """Retrain an endpoint's model on its labelled predictions now, and roll a better one out."""
    from driftgate.retraining.service import Retrainer
    from driftgate.rollout.controller import RolloutController
    from driftgate.services.rollouts import RolloutService
    from driftgate.services.serving import Offline

    store = _store(data_dir, db)
    try:
        if list_runs:
            _list(store, endpoint)
            return
        overrides: dict[str, Any] = {
            k: v for k, v in {"train": train, "data": data, "holdout": holdout, "min_rows": min_rows}.items() if v
        }
        if window_days is not None:
            overrides["window_seconds"] = window_days * 86400
        if rollout is not None:
            overrides["rollout"] = None if rollout == "none" else json.loads(rollout)
        if reason:
            overrides["reason"] = reason
        rollouts = RolloutService(RolloutController(store), Offline(store))
        retrainer = Retrainer(store, data_dir=data_dir, db=db, allowed_modules=None, start_rollout=rollouts.start)
        with console.status(f"retraining {endpoint}: reading labelled predictions, training, comparing"):
            run = asyncio.run(retrainer.run_now(endpoint, overrides, trigger="manual", actor="cli"))
        _show(run)
        if run["state"] == "failed":
            raise typer.Exit(1)
    except json.JSONDecodeError as exc:
        console.print(f"[red]error:[/red] --rollout is not JSON: {exc}")
        raise typer.Exit(2) from None
    except DriftgateError as exc:
        _fail(exc)
    finally:
        store.close()
