"""Overload of the prediction log (issue 19, item 5): a burst of concurrent multi-row predictions
against a small `log_max_queued_rows`, through `driftgate serve`'s app in a child process.

The scenario is `benchmarks/overload/log_admission.py`'s `run` (the benchmark calls the same
function). A request the log cannot take now gets 503 + Retry-After (the clients honour it), one
above the queue bound gets 413; afterwards feedback for every acknowledged id must find all of them,
and the server must have dropped no row. Figures: acknowledged rows/s, shed rate, RSS before/after.
The per-request behaviour (status codes, metrics, every protocol) is tests/api/test_overload.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.overload.log_admission import run


@pytest.mark.slow
def test_a_burst_sheds_with_503_and_every_acknowledged_id_is_stored(figures: dict[str, Any], full: bool) -> None:
    queued = 20_000 if full else 2_000
    out = run(
        seconds=20 if full else 3,
        clients=8 if full else 4,
        rows=10_000 if full else 1_000,
        # The 1.2M-row request of the issue (full) or just one row over the queue bound (quick).
        big_rows=1_200_000 if full else queued + 1,
        log_max_queued_rows=queued,
    )
    server = out["server"]
    figures.update(
        {k: out[k] for k in ("clients", "rows_per_request", "log_max_queued_rows", "seconds", "acked_requests")}
        | {k: out[k] for k in ("shed_requests", "shed_rate", "acked_rows_per_s", "acked_ids")}
        | {
            "big_request_status": out["big_request"]["status"],
            "unknown_ids": out["unknown_ids_in_feedback"],
            "dropped_rows": server.get("driftgate_log_dropped_rows_total", 0.0),
            "server_rss_mb": out["server_rss_mb"],
            "server_counters": server,
        }
    )
    assert out["acked_requests"] > 0
    assert out["big_request"]["status"] == 413, out["big_request"]  # more rows than the log may ever hold
    assert out["unknown_ids_in_feedback"] == 0  # never an id for a row that is not stored
    # A labelled counter is absent until it counts: absent is 0.
    assert server.get("driftgate_log_dropped_rows_total", 0.0) == 0
    # Every 503 the clients saw is counted by the server as shed rows.
    assert server.get("driftgate_shed_rows_total{log_full}", 0.0) == out["shed_requests"] * out["rows_per_request"]
