"""Serving through a store outage: a real `driftgate serve` on a PostgreSQL cluster of the test's own,
which the test stops and starts again.

While the store is down predictions keep answering 200 (tokens and endpoint config cached), readiness
says what is degraded, feedback answers 503 with Retry-After (never a false `unknown_ids`), and the
server log stays bounded (each repeated error logged once, then counted). When the store is back,
readiness recovers, the predictions made during the outage are stored and feedback works.
The scenario itself is tests/outage.py (the reliability suite runs it under load).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Artifacts
from tests.outage import Served, outage, serve_on
from tests.pg_cluster import PgCluster, cluster_available

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(not cluster_available(), reason="needs initdb/pg_ctl to run a PostgreSQL cluster of our own"),
]


@pytest.fixture(params=[False, True], ids=["no-tokens", "tokens"])
def served(request: pytest.FixtureRequest, cluster: PgCluster, tmp_path: Path) -> Iterator[Served]:
    """`driftgate serve` on the cluster, its output in a file; with or without API tokens."""
    with serve_on(cluster, tmp_path, tokens=request.param) as s:
        yield s


def test_serving_continues_through_a_postgres_outage(served: Served, cluster: PgCluster, artifacts: Artifacts) -> None:
    figures = outage(served, cluster, artifacts)
    print(f"\noutage: {figures}")
