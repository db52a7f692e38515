"""PostgreSQL restarted under load (issue 19, items 3 and 10).

A PostgreSQL cluster of the suite's own on another port (tests/pg_cluster.py; the shared server on
5432 is never touched), `driftgate serve` on it with API tokens, closed-loop predict clients in threads
plus the scenario's own requests; the cluster is stopped (fast shutdown) until readiness has reported
the store unavailable and the token cache has met the stopped store a few times, then started again.
Checked by tests/outage.py (shared with tests/api/test_store_outage.py): predictions keep answering 200,
readiness says "degraded" with the store "unavailable", feedback answers 503 with Retry-After (never
unknown_ids), the log gets a handful of lines and no traceback, readiness says "ok" again, and every
acknowledged row, in every phase, is in the store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Artifacts
from tests.outage import outage, serve_on
from tests.pg_cluster import PgCluster, cluster_available

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(not cluster_available(), reason="needs initdb/pg_ctl to run a PostgreSQL cluster of our own"),
]


def test_postgres_restarted_under_load(
    cluster: PgCluster, tmp_path: Path, artifacts: Artifacts, figures: dict[str, Any], full: bool
) -> None:
    with serve_on(cluster, tmp_path, tokens=True) as served:
        measured = outage(served, cluster, artifacts, clients=4 if full else 2)
    figures.update(measured)
    assert measured["acked_rows_lost"] == {phase: 0 for phase in measured["acked_rows_lost"]}
    # Predictions are answered in every phase: the outage costs no prediction.
    assert all(key.endswith(":200") for key in measured["answers"]), measured["answers"]
