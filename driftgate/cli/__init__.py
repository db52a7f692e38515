"""The `driftgate` command line."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from driftgate.errors import DriftgateError

app = typer.Typer(help="Serve, roll out, log and monitor ML models.", no_args_is_help=True, add_completion=False)
models_app = typer.Typer(help="Register and list model versions.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens with scopes.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(token_app, name="token")
console = Console()

DataDir = Annotated[Path, typer.Option("--data-dir", help="Embedded store directory.")]
DbUrl = Annotated[str | None, typer.Option("--db", help="Store URL, e.g. postgresql+psycopg://postgres@127.0.0.1/db.")]


def _store(data_dir: Path, db: str | None):
    from driftgate.store import Store

    return Store.open(data_dir, db)


def _fail(exc: DriftgateError) -> None:
    console.print(f"[red]error:[/red] {exc.message}")
    raise typer.Exit(2)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def serve(
    data_dir: DataDir = Path(".driftgate"),
    db: DbUrl = None,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8080,
    grpc_port: Annotated[
        int, typer.Option(help="Port of the Open Inference Protocol's gRPC service (0: none).", min=0, max=65535)
    ] = 8081,
    workers: Annotated[int, typer.Option(help="Worker processes (replicas sharing the store).")] = 1,
    monitor_interval: Annotated[float, typer.Option(help="Seconds between monitor runs.")] = 60.0,
    webhook_allow: Annotated[list[str] | None, typer.Option(help="Private host/CIDR webhooks may reach.")] = None,
    durable_log: Annotated[bool, typer.Option(help="Lose no acknowledged prediction on a crash.")] = False,
    insecure: Annotated[bool, typer.Option(help="Serve a non-loopback address without tokens.")] = False,
    trust_pickle: Annotated[bool, typer.Option(help="Load pickle artifacts registered without trust.")] = False,
    shadow_in_process: Annotated[
        bool, typer.Option(help="Score shadow copies in threads of the server, not an idle-priority process.")
    ] = False,
    log_in_process: Annotated[
        bool, typer.Option(help="Write the prediction log from a thread of the server, not a child process.")
    ] = False,
    pipeline_module: Annotated[
        list[str] | None,
        typer.Option(help="Package whose functions endpoint pipeline steps may name (repeatable)."),
    ] = None,
    train_module: Annotated[
        list[str] | None,
        typer.Option(help="Package whose functions retraining runs may call to train (repeatable)."),
    ] = None,
    retention_days: Annotated[
        float | None, typer.Option(help="Delete prediction log rows older than this many days (hourly).", min=0)
    ] = None,
    monitoring_retention_days: Annotated[
        float | None, typer.Option(help="Delete monitoring points and reports older than this many days.", min=0)
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    mlflow_endpoint: Annotated[
        str | None, typer.Option(help="Endpoint that answers MLflow's root routes (/invocations, /ping).")
    ] = None,
) -> None:
    """Run the HTTP server."""
    import uvicorn

    from driftgate.serving.metrics import MULTIPROC_ENV
    from driftgate.settings import ENV_VAR, Settings

    settings = Settings(
        data_dir=data_dir,
        db=db,
        host=host,
        port=port,
        grpc_port=grpc_port,
        workers=workers,
        monitor_interval=monitor_interval,
        webhook_allow=list(webhook_allow or []),
        durable_log=durable_log,
        insecure=insecure,
        trust_pickle=trust_pickle,
        shadow_process=not shadow_in_process,
        log_process=not log_in_process,
        pipeline_modules=list(pipeline_module or []),
        train_modules=list(train_module or []),
        retention_days=retention_days,
        monitoring_retention_days=monitoring_retention_days,
        mlflow_endpoint=mlflow_endpoint,
    )
    store = _store(data_dir, db)
    has_tokens = bool(store.tokens.scopes_by_digest())
    store.close()
    if not is_loopback(host) and not has_tokens and not insecure:
        console.print(
            f"[red]refusing to serve {host} without an API token[/red]: run `driftgate token create --scope admin` "
            "first, or pass --insecure"
        )
        raise typer.Exit(2)
    os.environ[ENV_VAR] = settings.to_env()
    console.print(f"driftgate serving on http://{host}:{port} (store: {db or data_dir}, workers: {workers})")
    if grpc_port:
        console.print(f"gRPC (Open Inference Protocol) on {host}:{grpc_port}")
    # Several workers share their Prometheus metrics through files in a directory of this server's
    # own, created before the workers start and removed when the server exits; one worker keeps
    # them in its own registry. Either way `serve` owns the variable: an inherited one is ignored.
    metrics_dir = tempfile.mkdtemp(prefix="driftgate-metrics-") if workers > 1 else None
    if metrics_dir:
        os.environ[MULTIPROC_ENV] = metrics_dir
    else:
        os.environ.pop(MULTIPROC_ENV, None)
    try:
        uvicorn.run(
            "driftgate.api.app:create_app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            timeout_graceful_shutdown=30,
        )
    finally:
        if metrics_dir:
            os.environ.pop(MULTIPROC_ENV, None)
            shutil.rmtree(metrics_dir, ignore_errors=True)


@models_app.command("register")
def models_register(
    name: str,
    path: Annotated[str, typer.Argument(help="Artifact file, MLflow directory, or module:Class for python.")],
    format: Annotated[str, typer.Option("--format", help="sklearn | onnx | python | mlflow")],
    reference: Annotated[Path | None, typer.Option(help="Reference data (CSV or Parquet).")] = None,
    target: Annotated[str | None, typer.Option(help="Target column in the reference data.")] = None,
    trust_pickle: Annotated[bool, typer.Option(help="Allow a pickle/joblib artifact (runs its code).")] = False,
    description: Annotated[str | None, typer.Option(help="Free text kept with the version.")] = None,
    data_dir: DataDir = Path(".driftgate"),
    db: DbUrl = None,
) -> None:
    """Register a new immutable model version."""
    from driftgate.registry.formats import python_artifact, zip_directory
    from driftgate.registry.registry import Registration, register

    source = Path(path)
    if format == "python":
        artifact = python_artifact(path)
    elif source.is_dir():
        artifact = zip_directory(source)
    elif source.is_file():
        artifact = source.read_bytes()
    else:
        console.print(f"[red]error:[/red] no such file or directory: {path}")
        raise typer.Exit(2)
    reg = Registration(
        name=name,
        artifact=artifact,
        format=format,
        reference=reference.read_bytes() if reference else None,
        reference_filename=reference.name if reference else "",
        target=target,
        trust=trust_pickle,
        description=description,
    )
    try:
        record = register(_store(data_dir, db), reg)
    except DriftgateError as exc:
        _fail(exc)
        return
    console.print(f"registered [bold]{record.name}[/bold] version {record.version} ({record.artifact_kind})")


@models_app.command("list")
def models_list(data_dir: DataDir = Path(".driftgate"), db: DbUrl = None) -> None:
    """List registered models and their versions."""
    store = _store(data_dir, db)
    table = Table("model", "version", "format", "output", "features", "created")
    import datetime as dt

    for name in store.models.names():
        for v in store.models.versions(name):
            created = dt.datetime.fromtimestamp(v.created_at).strftime("%Y-%m-%d %H:%M")
            table.add_row(
                name,
                str(v.version),
                v.artifact_kind,
                v.output.get("kind", ""),
                str(len(v.input_schema["features"])),
                created,
            )
    console.print(table)


@app.command()
def deploy(
    endpoint: str,
    model: Annotated[str, typer.Option(help="Registered model name.")],
    version: Annotated[str, typer.Option(help="Version number, 'latest' or an alias.")] = "latest",
    config: Annotated[str | None, typer.Option(help="Extra endpoint config as JSON.")] = None,
    data_dir: DataDir = Path(".driftgate"),
    db: DbUrl = None,
) -> None:
    """Point an endpoint at a model version (running servers pick it up within a second)."""
    from driftgate.registry.registry import check_version, validate_name
    from driftgate.rollout.policy import VersionRef
    from driftgate.serving.dataplane import parse_config
    from driftgate.serving.pipeline import compile_pipeline
    from driftgate.serving.runtime import ModelCache

    try:
        extra = json.loads(config or "{}")
    except json.JSONDecodeError as exc:
        extra = exc
    if not isinstance(extra, dict):
        console.print(f"[red]error:[/red] --config must be a JSON object, got {config!r}")
        raise typer.Exit(2)
    store = _store(data_dir, db)
    try:
        validate_name(endpoint, what="endpoint name", field="endpoint")
        body = {**extra, "model": model, "version": version}
        cfg = parse_config(body)
        number = store.models.resolve(model, check_version(cfg.version))
        ModelCache(store).get(VersionRef(model, number))  # refuse what cannot load
        # Steps must import here; a server runs them only from its --pipeline-module packages.
        compile_pipeline(cfg.pipeline, None)
        revision = store.endpoints.put(
            endpoint, cfg.model_copy(update={"version": number}).model_dump(), actor="cli", reason="deploy"
        )
    except DriftgateError as exc:
        _fail(exc)
        return
    console.print(f"endpoint [bold]{endpoint}[/bold] -> {model} v{number} (revision {revision})")


@token_app.command("create")
def token_create(
    scope: Annotated[str, typer.Option(help="predict | admin")],
    name: Annotated[str, typer.Option(help="A label to recognise the token by.")] = "",
    data_dir: DataDir = Path(".driftgate"),
    db: DbUrl = None,
) -> None:
    """Create a token; it is printed once and stored only as a hash."""
    try:
        token = _store(data_dir, db).tokens.create(scope, name)
    except DriftgateError as exc:
        _fail(exc)
        return
    print(token)


@app.command()
def demo(
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Exit when the story is told.")] = False,
    port: Annotated[int, typer.Option(help="Port for the demo server.")] = 8765,
    data_dir: DataDir = Path(".driftgate-demo"),
) -> None:
    """Tell the whole story on a synthetic card-fraud scenario."""
    from driftgate.demo.story import run

    sys.exit(run(port=port, data_dir=data_dir, wait=not no_wait, console=console))


def _mount_subcommands() -> None:
    from driftgate.cli import batch, drift, export, retraining, rollouts

    app.add_typer(drift.app, name="drift")
    app.add_typer(batch.app, name="batch")
    app.command()(export.export)
    app.command()(export.retention)
    app.command()(retraining.retrain)
    for command in (rollouts.rollout, rollouts.promote, rollouts.rollback, rollouts.pause, rollouts.resume):
        app.command()(command)


_mount_subcommands()


def main() -> None:
    app()
