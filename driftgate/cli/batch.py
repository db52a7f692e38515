"""`driftgate batch score`: a file scored through an endpoint on the store, as online requests are
(SPEC 3). Mounted by the main CLI."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from driftgate.cli import DataDir, DbUrl, _fail, console
from driftgate.errors import DriftgateError

if TYPE_CHECKING:  # the server's modules load only when a command runs
    from driftgate.serving.batch import BatchSummary

app = typer.Typer(help="Score files through an endpoint.", no_args_is_help=True)


@app.command("score")
def score(
    endpoint: str,
    input: Annotated[Path, typer.Option("--input", help="CSV or Parquet file of rows to score.")],
    output: Annotated[Path, typer.Option("--output", help="Parquet or CSV file to write (inputs + predictions).")],
    chunk_rows: Annotated[int, typer.Option(help="Rows scored per model call.", min=1)] = 10_000,
    trust_pickle: Annotated[bool, typer.Option(help="Load pickle artifacts registered without trust.")] = False,
    pipeline_module: Annotated[
        list[str] | None, typer.Option(help="Package whose functions the endpoint's pipeline steps may name.")
    ] = None,
    data_dir: DataDir = Path(".driftgate"),
    db: DbUrl = None,
) -> None:
    """Score a file through an endpoint: its version (or its rollout's split), checks, pipeline and
    guards, with every row logged for monitoring and feedback like an online one."""
    try:
        summary = asyncio.run(
            score_on_store(endpoint, input, output, chunk_rows, data_dir, db, trust_pickle, list(pipeline_module or []))
        )
    except DriftgateError as exc:
        _fail(exc)
    versions = ", ".join(f"v{v}: {n:,}" for v, n in sorted(summary.versions.items()))
    deferred = f"; {summary.deferred:,} deferred to review" if summary.deferred else ""
    console.print(
        f"scored {summary.rows:,} rows in {summary.chunks} chunks, {summary.seconds:.1f} s ({versions}){deferred} "
        f"-> {output}"
    )


async def score_on_store(
    endpoint: str,
    source: Path,
    target: Path,
    chunk_rows: int,
    data_dir: Path,
    db: str | None,
    trust_pickle: bool = False,
    pipeline_modules: list[str] | None = None,
    show_progress: bool = True,
) -> BatchSummary:
    """Score `source` through `endpoint` with a data plane of this process over the store."""
    from driftgate.server.wiring import build_services, close_services
    from driftgate.serving.batch import score_file, total_rows
    from driftgate.settings import Settings

    # The log is written from this process (no writer child) and shadows are scored in threads: a
    # short-lived command needs no helper processes.
    settings = Settings(
        data_dir=data_dir,
        db=db,
        trust_pickle=trust_pickle,
        pipeline_modules=pipeline_modules or [],
        log_process=False,
        shadow_process=False,
        monitor_interval=0,
    )
    svc = build_services(settings)
    try:
        await svc.dataplane.load_all()
        total = total_rows(source) if source.exists() else None
        columns = (TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True, disable=not show_progress) as progress:
            task = progress.add_task("score", total=total)
            summary = await score_file(
                svc.dataplane, endpoint, source, target, chunk_rows, lambda n: progress.advance(task, n)
            )
        # Done means logged: the last chunks' rows may still wait for the log writer.
        started = time.perf_counter()
        await asyncio.to_thread(svc.recorder.flush)
        summary.seconds += time.perf_counter() - started
        return summary
    finally:
        await close_services(svc)  # every scored row reaches the log
