"""kill -9 of `driftgate serve` under load, repeated (3 runs quick, 20 full) on one SQLite store that
each next server recovers: acknowledged labels lost (must be 0), acknowledged predictions lost and
how old the oldest lost one was against the flush bound (`log_ship_interval`, 0.5 s), SQLite's
`PRAGMA integrity_check`, and processes left behind (must be none)."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from driftgate.store import Store
from driftgate.store.predictions import labels_of
from tests import procs
from tests.conftest import Artifacts
from tests.records.test_kill import FLUSH_INTERVAL, Load, Server, _prepare, _stored, _wait_until_written

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # 20 full runs on a loaded machine

# What may be lost: rows acknowledged within the last hand-over interval, plus the write in flight and
# scheduling delay on a loaded 2-core machine (the same margin as tests/records/test_kill.py).
LOSS_WINDOW_S = FLUSH_INTERVAL + 2.0


class Labeller:
    """Sends labels for acknowledged predictions while the load runs; remembers which were accepted."""

    def __init__(self, url: str, load: Load) -> None:
        self.url, self.load = url, load
        self.accepted: list[str] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        sent = 0
        with httpx.Client(base_url=self.url, timeout=10) as http:
            while not self._stop.is_set():
                ids = [i for _, i in self.load.acked[sent : sent + 25]]
                if not ids:
                    time.sleep(0.01)
                    continue
                sent += len(ids)
                body = {"labels": [{"id": i, "label": 1} for i in ids]}
                try:
                    response = http.post("/v1/endpoints/clf/feedback", json=body)
                except httpx.HTTPError:
                    return  # the server is gone
                if response.status_code == 200:
                    unknown = set(response.json()["unknown_ids"])
                    self.accepted += [i for i in ids if i not in unknown]

    def finish(self) -> None:
        self._stop.set()
        self.thread.join(timeout=30)


def _labelled(data_dir: Path, ids: list[str]) -> set[str]:
    store = Store.open(data_dir)
    try:
        with store.engine.connect() as conn:
            return set(labels_of(conn, ids))
    finally:
        store.close()


def _integrity(data_dir: Path) -> str:
    with sqlite3.connect(data_dir / "driftgate.db") as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def test_kill_9_under_load(
    tmp_path: Path, artifacts: Artifacts, runs: int, figures: dict[str, Any], servers: list[Server]
) -> None:
    data_dir = _prepare(tmp_path, artifacts, None)
    totals = {"acked_predictions": 0, "lost_predictions": 0, "acked_labels": 0, "lost_labels": 0}
    oldest_lost_s = 0.0
    integrity: list[str] = []
    orphans = 0
    left_running: list[str] = []
    for _ in range(runs):
        server = Server(data_dir, None, durable=False)  # recovers the previous run's crash
        servers.append(server)
        load = Load(server.url)
        labeller = Labeller(server.url, load)
        load.wait_for(600)
        _wait_until_written(data_dir, None, load)
        killed_at = time.monotonic()
        server.stop(signal.SIGKILL)
        load.finish()
        labeller.finish()
        left = procs.wait_tag_gone(server.tag, timeout=30)
        orphans += len(left)
        left_running += [str(p) for p in left]
        acked = {i: at for at, i in load.acked}
        lost = set(acked) - _stored(data_dir, None, list(acked))
        lost_labels = set(labeller.accepted) - _labelled(data_dir, labeller.accepted)
        totals["acked_predictions"] += len(acked)
        totals["lost_predictions"] += len(lost)
        totals["acked_labels"] += len(labeller.accepted)
        totals["lost_labels"] += len(lost_labels)
        oldest_lost_s = max([oldest_lost_s, *(killed_at - acked[i] for i in lost)])
        integrity.append(_integrity(data_dir))
        figures.update(  # after every run, so that a run cut short still reports what it measured
            runs=len(integrity),
            **totals,
            oldest_lost_prediction_s=round(oldest_lost_s, 3),
            loss_window_s=LOSS_WINDOW_S,
            integrity_ok=sum(r == "ok" for r in integrity),
            orphans=orphans,
            left_running=left_running,
        )
    assert totals["acked_labels"] > 0
    assert totals["lost_labels"] == 0
    assert oldest_lost_s <= LOSS_WINDOW_S
    assert integrity == ["ok"] * runs
    assert orphans == 0, left_running
