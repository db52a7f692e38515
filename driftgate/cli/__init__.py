"""The `driftgate` command line.

Start-up stays fast (`driftgate --help`, `models list`, `token list`): this module imports only typer,
rich and the standard library. Commands import what they need when they run, and the commands in
`LAZY_COMMANDS` live in modules that are imported only when invoked; `--help` reads their help line
from their source. tests/test_cli_startup.py holds the import graph to that.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import ipaddress
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperCommand, TyperGroup

from driftgate.cli.serve_options import settings_options
from driftgate.errors import DriftgateError
from driftgate.settings import ENV_VAR, Settings

# name -> (module, attribute): a typer.Typer (a command group) or a command function. The module is
# imported when the command runs, never for `driftgate --help` or for the other commands.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "export": ("driftgate.cli.export", "export"),
    "retention": ("driftgate.cli.export", "retention"),
    "retrain": ("driftgate.cli.retraining", "retrain"),
    "rollout": ("driftgate.cli.rollouts", "rollout"),
    "promote": ("driftgate.cli.rollouts", "promote"),
    "rollback": ("driftgate.cli.rollouts", "rollback"),
    "pause": ("driftgate.cli.rollouts", "pause"),
    "resume": ("driftgate.cli.rollouts", "resume"),
    "monitor": ("driftgate.cli.monitor", "monitor"),
    "alerts": ("driftgate.cli.alerts", "app"),
    "drift": ("driftgate.cli.drift", "app"),
    "batch": ("driftgate.cli.batch", "app"),
}


def help_line(module: str, attribute: str) -> str:
    """The help a lazy command shows in `driftgate --help`, read from its module's source without
    importing it: a function's docstring, or the `help=` of `attribute = typer.Typer(...)`. Anything
    else (a generated function) is read from the imported module: right, only slower."""
    spec = importlib.util.find_spec(module)
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8")) if spec and spec.origin else None
    for node in tree.body if tree else []:
        if isinstance(node, ast.FunctionDef) and node.name == attribute:
            return ast.get_docstring(node) or ""
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == attribute for t in node.targets)
            and isinstance(node.value, ast.Call)
        ):
            for keyword in node.value.keywords:
                if keyword.arg == "help" and isinstance(keyword.value, ast.Constant):
                    return str(keyword.value.value)
    target = getattr(importlib.import_module(module), attribute)
    return str((target.info.help if isinstance(target, typer.Typer) else target.__doc__) or "")


def load_command(name: str) -> Any:
    """The click command of a lazy command, as `app.command()` / `app.add_typer` would have built it."""
    module, attribute = LAZY_COMMANDS[name]
    target = getattr(importlib.import_module(module), attribute)
    holder = typer.Typer(rich_markup_mode=None, add_completion=False)
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)
    else:
        holder.command(name=name)(target)
    return typer.main.get_group(holder).commands[name]


class LazyGroup(TyperGroup):
    """The top-level group: `LAZY_COMMANDS` are listed with a stand-in carrying their help line and
    imported only when one of them is the command being run."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*self.commands, *(name for name in LAZY_COMMANDS if name not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = self.commands.get(cmd_name)
        if command is None and cmd_name in LAZY_COMMANDS:
            return TyperCommand(cmd_name, help=help_line(*LAZY_COMMANDS[cmd_name]), rich_markup_mode=None)
        return command

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] in LAZY_COMMANDS and args[0] not in self.commands:
            self.add_command(load_command(args[0]), args[0])
        return super().resolve_command(ctx, args)


# Plain click help (rich_markup_mode=None): rich's option tables cut option names short at 80
# columns ("--monitor-interv…"); click's layout wraps the help text and keeps every name whole.
app = typer.Typer(
    help="Serve, roll out, log and monitor ML models.",
    no_args_is_help=True,
    add_completion=False,
    cls=LazyGroup,
    rich_markup_mode=None,
    context_settings={"max_content_width": 100},
)
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
@settings_options
def serve(settings: Settings, log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning") -> None:
    """Run the HTTP server."""
    import uvicorn

    from driftgate.serving.metrics import MULTIPROC_ENV

    host, port, workers = settings.host, settings.port, settings.workers
    store = _store(settings.data_dir, settings.db)
    has_tokens = bool(store.tokens.scopes_by_digest())
    store.close()
    if not is_loopback(host) and not has_tokens and not settings.insecure:
        console.print(
            f"[red]refusing to serve {host} without an API token[/red]: run `driftgate token create --scope admin` "
            "first, or pass --insecure"
        )
        raise typer.Exit(2)
    os.environ[ENV_VAR] = settings.to_env()
    console.print(
        f"driftgate serving on http://{host}:{port} (store: {settings.db or settings.data_dir}, workers: {workers})"
    )
    if settings.grpc_port:
        console.print(f"gRPC (Open Inference Protocol) on {host}:{settings.grpc_port}")
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
            "driftgate.server.app:create_app_from_env",
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
    schema: Annotated[
        Path | None,
        typer.Option(help='Declared input schema, a JSON file: {"features": [...]} (text and tensor features).'),
    ] = None,
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
        schema=schema.read_bytes() if schema else None,
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
    """Point an endpoint at a model version (running servers pick it up within a second). The same
    checks as `PUT /v1/endpoints/{e}`: refused while a rollout runs on another version."""
    import asyncio

    from driftgate.services.endpoints import EndpointService
    from driftgate.services.serving import Offline

    try:
        extra = json.loads(config or "{}")
    except json.JSONDecodeError as exc:
        extra = exc
    if not isinstance(extra, dict):
        console.print(f"[red]error:[/red] --config must be a JSON object, got {config!r}")
        raise typer.Exit(2)
    store = _store(data_dir, db)
    service = EndpointService(store, Offline(store))
    try:
        body = {**extra, "model": model, "version": version}
        deployed = asyncio.run(service.deploy(endpoint, body, actor="cli", reason="deploy"))
    except DriftgateError as exc:
        _fail(exc)
        return
    number = deployed.config["version"]
    console.print(f"endpoint [bold]{endpoint}[/bold] -> {model} v{number} (revision {deployed.revision})")


@token_app.command("create")
def token_create(
    scope: Annotated[str, typer.Option(help="predict | admin | metrics (only /metrics, with --metrics-auth)")],
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


@token_app.command("list")
def token_list(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    data_dir: DataDir = Path(".driftgate"),
    db: DbUrl = None,
) -> None:
    """List tokens: id, name, scope, created, revoked (the tokens themselves are not stored)."""
    import datetime as dt

    store = _store(data_dir, db)
    try:
        tokens = store.tokens.list()
    finally:
        store.close()
    if json_out:
        print(json.dumps({"tokens": tokens}, default=str))
        return
    table = Table("id", "name", "scope", "created (UTC)", "revoked")
    for token in tokens:
        created = dt.datetime.fromtimestamp(token["created_at"], dt.UTC).strftime("%Y-%m-%d %H:%M")
        table.add_row(str(token["id"]), token["name"], token["scope"], created, "yes" if token["revoked"] else "no")
    console.print(table)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (see `driftgate token list`).")],
    data_dir: DataDir = Path(".driftgate"),
    db: DbUrl = None,
) -> None:
    """Revoke a token; servers stop accepting it within their token refresh."""
    store = _store(data_dir, db)
    try:
        revoked = store.tokens.revoke(token_id)
    finally:
        store.close()
    if not revoked:
        console.print(f"[red]error:[/red] no token with id {token_id!r}")
        raise typer.Exit(2)
    console.print(f"revoked token {token_id}")


@app.command()
def demo(
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Exit when the story is told.")] = False,
    port: Annotated[int, typer.Option(help="Port for the demo server.")] = 8765,
    data_dir: DataDir = Path(".driftgate-demo"),
    scenario: Annotated[
        str,
        typer.Option(
            help="fraud: card transactions (tabular), the whole story; inspection: photos on a factory line, "
            "an image model beside a human inspector (needs the onnx and images extras)."
        ),
    ] = "fraud",
) -> None:
    """Tell the whole story on a synthetic scenario (card fraud by default)."""
    if scenario == "inspection":
        from driftgate.demo.inspection import run
    elif scenario == "fraud":
        from driftgate.demo.story import run
    else:
        raise typer.BadParameter(f"expected fraud or inspection, got {scenario!r}", param_hint="--scenario")
    sys.exit(run(port=port, data_dir=data_dir, wait=not no_wait, console=console))


def main() -> None:
    app()
