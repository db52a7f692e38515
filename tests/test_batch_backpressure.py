"""`driftgate batch score` waits for a full prediction log instead of losing rows (issue 19, item 5)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyarrow.parquet as pq

from driftgate.registry.registry import Registration, register
from driftgate.server.wiring import build_services, close_services
from driftgate.serving.batch import score_file
from driftgate.settings import Settings
from driftgate.store import Store
from tests.conftest import Artifacts, classification_data


def test_a_batch_faster_than_its_log_waits_for_it_and_every_row_is_logged(tmp_path: Path, artifacts: Artifacts) -> None:
    data = tmp_path / "data"
    store = Store.open(data)
    register(store, Registration("clf", artifacts.skops, "sklearn", artifacts.reference_csv, "r.csv", "y"))
    store.endpoints.put("clf", {"model": "clf", "version": 1}, actor="test")
    store.close()
    classification_data(5000, 3)[["x1", "x2", "colour"]].to_csv(tmp_path / "in.csv", index=False)
    # A log queue of 2,500 rows written only when asked: the third 1,000-row chunk does not fit.
    settings = Settings(
        data_dir=data, log_process=False, shadow_process=False, monitor_interval=0,
        log_flush_interval=3600, log_batch_rows=10**6, log_max_queued_rows=2500,
    )  # fmt: skip

    async def score() -> None:
        svc = build_services(settings)
        try:
            await svc.dataplane.load_all()
            summary = await score_file(svc.dataplane, "clf", tmp_path / "in.csv", tmp_path / "out.parquet", 1000)
            assert summary.rows == 5000 and svc.recorder.dropped_rows == 0
        finally:
            await close_services(svc)

    asyncio.run(score())
    ids = pq.read_table(tmp_path / "out.parquet").column("prediction_id").to_pylist()
    store = Store.open(data)
    try:
        assert len(store.predictions.known_ids("clf", ids)) == 5000
    finally:
        store.close()
