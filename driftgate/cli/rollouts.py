"""`driftgate rollout | promote | rollback | pause | resume`: rollouts from the command line.

They work on the store, like `deploy`: running servers follow within a poll. Mounted by the main CLI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from driftgate.cli import DataDir, DbUrl, _fail, _store, console
from driftgate.errors import DriftgateError


def _service(data_dir: Path, db: str | None) -> Any:
    """The rollouts use case over the store: the routes' code, with this process only checking and
    warming (running servers follow within a poll)."""
    from driftgate.rollout.controller import RolloutController
    from driftgate.services.rollouts import RolloutService
    from driftgate.services.serving import Offline

    store = _store(data_dir, db)
    return RolloutService(RolloutController(store), Offline(store))


def _show(row: dict[str, Any]) -> None:
    from driftgate.rollout.controller import describe

    view = describe(row)
    champ, cand = view["champion"], view["candidate"]
    step = f", step {view['step']}/{len(view['steps'])}" if view["step"] else ""
    console.print(
        f"[bold]{view['endpoint']}[/bold]: {view['strategy']} {champ['model']} v{champ['version']} -> "
        f"v{cand['version']} [bold]{view['state']}[/bold], candidate at {view['weight']:g}%{step}"
    )
    if view["gates"]:
        table = Table("gate", "value", "threshold", "status", "samples", "evidence")
        for g in view["gates"]:
            value = "-" if g["value"] is None else f"{g['value']:.4g}"
            # Rate gates fail when their e-value reaches the needed one (reports from older versions lack it).
            evidence = "-" if g.get("evidence") is None else f"{g['evidence']:.3g}/{g['evidence_needed']:g}"
            table.add_row(
                g["name"],
                value,
                f"{g['op']} {g['threshold']:g}",
                g["status"],
                f"{g['samples']}/{g['needed']}",
                evidence,
            )
        console.print(table)
    if view["reason"]:
        console.print(f"reason: {view['reason']}")


def rollout(
    endpoint: str,
    strategy: Annotated[
        str | None, typer.Option(help="shadow | canary | blue_green | ab; leave out to show the current one.")
    ] = None,
    version: Annotated[str | None, typer.Option(help="Candidate version number, 'latest' or an alias.")] = None,
    model: Annotated[str | None, typer.Option(help="Candidate model (default: the endpoint's).")] = None,
    steps: Annotated[str | None, typer.Option(help="Canary weights in percent, e.g. 10,50,100.")] = None,
    weight: Annotated[float | None, typer.Option(help="A/B: the candidate's share in percent.")] = None,
    min_requests: Annotated[int | None, typer.Option(help="Canary: rows each step needs.")] = None,
    step_seconds: Annotated[float | None, typer.Option(help="Canary: shortest time per step.")] = None,
    analysis: Annotated[str | None, typer.Option(help='Gates as JSON, e.g. {"min_agreement": 0.9}.')] = None,
    sticky_key: Annotated[str | None, typer.Option(help="Input field that keeps a caller on one version.")] = None,
    manual: Annotated[bool, typer.Option(help="Canary: report the gates but let a person decide.")] = False,
    reason: Annotated[str, typer.Option(help="Why, kept in the audit trail.")] = "",
    data_dir: DataDir = Path(".driftgate"),
    db: DbUrl = None,
) -> None:
    """Start a rollout of another version on an endpoint, or show the current one."""
    import asyncio

    service = _service(data_dir, db)
    try:
        if strategy is None:
            _show(service.current(endpoint))
            return
        if version is None:
            console.print("[red]error:[/red] --version is needed to start a rollout")
            raise typer.Exit(2)
        body: dict[str, Any] = {"strategy": strategy, "version": version, "auto": not manual, "reason": reason}
        optional = {
            "model": model,
            "weight": weight,
            "min_requests_per_step": min_requests,
            "step_seconds": step_seconds,
            "sticky_key": sticky_key,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        if steps:
            body["steps"] = [float(s) for s in steps.split(",") if s.strip()]
        if analysis:
            body["analysis"] = json.loads(analysis)
        _show(asyncio.run(service.start(endpoint, body, "cli")))
    except (ValueError, json.JSONDecodeError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    except DriftgateError as exc:
        _fail(exc)


def _command(name: str) -> Any:
    def command(
        endpoint: str,
        reason: Annotated[str, typer.Option(help="Why, kept in the audit trail.")] = "",
        data_dir: DataDir = Path(".driftgate"),
        db: DbUrl = None,
    ) -> None:
        import asyncio

        try:
            _show(asyncio.run(_service(data_dir, db).steer(name, endpoint, "cli", reason)))
        except DriftgateError as exc:
            _fail(exc)

    command.__name__ = name
    command.__doc__ = {
        "promote": "Make the rollout's candidate the endpoint's version now.",
        "pause": "Freeze the rollout: traffic split kept, no automatic decisions.",
        "resume": "Let a paused rollout go on.",
    }[name]
    return command


promote, pause, resume = (_command(n) for n in ("promote", "pause", "resume"))


def rollback(
    endpoint: str,
    reason: Annotated[str, typer.Option(help="Why, kept in the audit trail.")] = "",
    data_dir: DataDir = Path(".driftgate"),
    db: DbUrl = None,
) -> None:
    """Send all traffic back to the champion now. After a blue-green promotion: back to the previous
    version at once while servers still hold it (keep_previous_s), else through a new rollout to it."""
    import asyncio

    try:
        # The route's code; the candidate of a new rollout is warmed here, as `rollout` warms one.
        done = asyncio.run(_service(data_dir, db).rollback(endpoint, "cli", reason))
    except DriftgateError as exc:
        _fail(exc)
        return
    _show(done.row)
    console.print(f"rolled back: {done.how.replace('_', ' ')}")
