"""`serve --retention-days/--monitoring-retention-days`: a real server deletes what is past retention."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from sqlalchemy import func, select

from driftgate.core.ids import new_ids
from driftgate.core.points import MetricPoint
from driftgate.core.rows import encode
from driftgate.records.recorder import LogBatch
from driftgate.store import tables
from tests.conftest import make_server


def test_the_server_deletes_old_log_rows_points_and_reports_by_itself(tmp_path: Path) -> None:
    srv = make_server(
        tmp_path, retention_days=3, monitoring_retention_days=2, retention_interval=0.2, monitor_interval=0
    )
    try:
        store = srv.app.state.services.store
        now = time.time()
        ids = []
        for age in (5, 0):
            frame = pd.DataFrame({"x1": [1.0, 2.0]})
            batch = LogBatch("ep", "m", 1, "primary", now - age * 86400, new_ids(2), frame, [0, 1], None, 1.0, "ok")
            store.predictions.write_rows(encode(batch))
            ids += batch.ids
        store.monitoring.add_points([MetricPoint("ep", "psi", 0.1, now - d * 86400) for d in (4, 1)])
        store.monitoring.add_report("ep", 1, now - 4 * 86400, {"n": "old"})
        store.monitoring.add_report("ep", 1, now - 1 * 86400, {"n": "new"})

        def reports() -> int:
            with store.engine.connect() as conn:
                return conn.execute(select(func.count()).select_from(tables.monitor_reports)).scalar()

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if store.predictions.count("ep") == 2 and len(store.monitoring.series("ep", "psi")) == 1 and reports() == 1:
                break
            time.sleep(0.1)
        assert store.predictions.known_ids("ep", ids) == set(ids[2:])
        assert [p.ts for p in store.monitoring.series("ep", "psi")] == [now - 86400]
        assert store.monitoring.latest_report("ep") == {"n": "new"} and reports() == 1
    finally:
        srv.stop()
