"""Batch scoring of a file through an endpoint, by a data plane of this process over the store:
`driftgate batch score` and the demo."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from driftgate.server.wiring import build_services, close_services
from driftgate.serving.batch import BatchSummary, score_file, total_rows
from driftgate.settings import Settings


async def score_on_store(
    endpoint: str,
    source: Path,
    target: Path,
    chunk_rows: int,
    data_dir: Path,
    db: str | None,
    trust_pickle: bool = False,
    pipeline_modules: list[str] | None = None,
    progress: Callable[[int | None], Callable[[int], None]] | None = None,
) -> BatchSummary:
    """Score `source` into `target`; every row is logged before this returns. `progress(total_rows)`
    (total None when unknown) returns what is called with each chunk's row count."""
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
        advance = progress(total_rows(source) if source.exists() else None) if progress else (lambda n: None)
        summary = await score_file(svc.dataplane, endpoint, source, target, chunk_rows, advance)
        # Done means logged: the last chunks' rows may still wait for the log writer.
        started = time.perf_counter()
        await asyncio.to_thread(svc.recorder.flush)
        summary.seconds += time.perf_counter() - started
        return summary
    finally:
        await close_services(svc)  # every scored row reaches the log
