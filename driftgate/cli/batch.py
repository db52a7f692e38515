"""`driftgate batch score`: a file scored through an endpoint on the store, as online requests are
(SPEC 3). Mounted by the main CLI."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from driftgate.cli import DataDir, DbUrl, _fail, console
from driftgate.errors import DriftgateError

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
    from driftgate.server.batch import score_on_store

    columns = (TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:

        def progress(total: int | None) -> Callable[[int], None]:
            task = bar.add_task("score", total=total)
            return lambda n: bar.advance(task, n)

        try:
            summary = asyncio.run(
                score_on_store(
                    endpoint,
                    input,
                    output,
                    chunk_rows,
                    data_dir,
                    db,
                    trust_pickle,
                    list(pipeline_module or []),
                    progress,
                )
            )
        except DriftgateError as exc:
            _fail(exc)
            return
    versions = ", ".join(f"v{v}: {n:,}" for v, n in sorted(summary.versions.items()))
    deferred = f"; {summary.deferred:,} deferred to review" if summary.deferred else ""
    console.print(
        f"scored {summary.rows:,} rows in {summary.chunks} chunks, {summary.seconds:.1f} s ({versions}){deferred} "
        f"-> {output}"
    )
