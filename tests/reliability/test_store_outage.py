"""PLACEHOLDER: PostgreSQL restarted under load.

Owner: issue 19, item 3 (store outage) and item 10 (no false unknown_ids): another helper's work;
the lead wires the scenario in here.
Scenario: a PostgreSQL cluster of the suite's own on another port (tests/pg_cluster.py), stopped for
30 s under predict and feedback load, then started: predictions keep being served, readiness says
what is degraded, errors are logged once with a count, feedback answers 503 (never unknown_ids)
while the store cannot confirm, nothing acknowledged is lost.
Report its figures with the `figures` fixture (see conftest.py) and in docs/reliability.md.
"""

from __future__ import annotations

import pytest


@pytest.mark.skip(reason="placeholder: issue 19, item 3; wired in by the lead")
def test_placeholder() -> None:
    """Replaced by the scenario."""
