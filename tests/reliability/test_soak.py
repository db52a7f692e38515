"""Soak (`make soak`, or `pytest tests/reliability/test_soak.py --soak`): `driftgate serve` under steady
load with labels for SOAK_SECONDS (default 1800); sampled every SOAK_SECONDS/30: RSS of the server
and its children, the server's open files, the SQLite WAL's size. Then SIGTERM: nothing acknowledged
lost, nothing left running. Skipped without --soak."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests import procs
from tests.conftest import Artifacts
from tests.records.test_kill import Load, Server, _prepare, _stored
from tests.reliability.test_kill9 import Labeller

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "1800"))
pytestmark = [pytest.mark.slow, pytest.mark.timeout(SOAK_SECONDS + 600)]

SAMPLES = 30
# Growth is measured from the first sample after this (or the 3rd sample of a short soak): imports,
# caches filling, the log writer starting, and the drift worker starting at the first monitor run
# (`serve --monitor-interval`, 60 s).
WARM_UP_S = 150.0
MAX_RSS_GROWTH = 0.5  # after warm-up, as a share of the warm RSS
MAX_FD_GROWTH = 16


def _open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_soak(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    artifacts: Artifacts,
    figures: dict[str, Any],
    servers: list[Server],
) -> None:
    if not request.config.getoption("soak"):
        pytest.skip("the soak runs with --soak (make soak)")
    if not procs.available():
        pytest.skip("reads /proc")
    seconds = SOAK_SECONDS
    data_dir = _prepare(tmp_path, artifacts, None)
    server = Server(data_dir, None, durable=False)
    servers.append(server)
    wal = data_dir / "driftgate.db-wal"
    load = Load(server.url, clients=4)
    labeller = Labeller(server.url, load)
    samples: list[dict[str, Any]] = []
    started = time.monotonic()
    for n in range(1, SAMPLES + 1):
        # Paced sampling, not a wait for a condition: the soak's length is the point.
        time.sleep(max(0.0, started + n * seconds / SAMPLES - time.monotonic()))
        assert server.proc.poll() is None, "the server died during the soak"
        tree = server.processes()
        samples.append(
            {
                "t": time.monotonic() - started,
                "rss_mb": sum(p.rss_mb for p in tree),
                "server_rss_mb": next((p.rss_mb for p in tree if p.pid == server.proc.pid), 0.0),
                "fds": _open_files(server.proc.pid),
                "wal_mb": wal.stat().st_size / 2**20 if wal.exists() else 0.0,
                "processes": len(tree),
                # by start: the log writer first, then the drift worker (first monitor run), the shadow scorer
                "children_rss_mb": [
                    round(p.rss_mb, 1)
                    for p in sorted(tree, key=lambda p: p.start)
                    if p.pid != server.proc.pid and procs.is_spawn_child(p)
                ],
                "acked": len(load.acked),
            }
        )
    server.stop(signal.SIGTERM)
    load.finish()
    labeller.finish()
    acked = [i for _, i in load.acked]
    lost = len(set(acked) - _stored(data_dir, None, acked))
    left = procs.wait_tag_gone(server.tag, timeout=30)
    warm = next((s for s in samples if s["t"] >= max(WARM_UP_S, seconds / 10) and s is not samples[-1]), samples[2])
    end = samples[-1]
    growth = (end["rss_mb"] - warm["rss_mb"]) / warm["rss_mb"]
    figures.update(
        seconds=round(seconds),
        predictions=len(acked),
        predictions_per_s=round(len(acked) / seconds, 1),
        labels=len(labeller.accepted),
        rss_mb_warm=round(warm["rss_mb"], 1),
        rss_mb_end=round(end["rss_mb"], 1),
        rss_mb_max=round(max(s["rss_mb"] for s in samples), 1),
        rss_growth_after_warm_up=round(growth, 3),
        server_rss_mb_end=round(end["server_rss_mb"], 1),
        fds_warm=warm["fds"],
        fds_end=end["fds"],
        wal_mb_max=round(max(s["wal_mb"] for s in samples), 1),
        processes_max=max(s["processes"] for s in samples),
        children_rss_mb_warm=warm["children_rss_mb"],
        children_rss_mb_end=end["children_rss_mb"],
        # The whole series: whether a child settles or keeps growing shows only over time.
        series=[
            {"t": round(s["t"]), "rss_mb": round(s["rss_mb"], 1), "children_rss_mb": s["children_rss_mb"]}
            for s in samples
        ],
        lost_after_sigterm=lost,
        left_running=len(left),
    )
    assert lost == 0
    assert not left
    assert end["fds"] - warm["fds"] <= MAX_FD_GROWTH
    assert growth <= MAX_RSS_GROWTH
