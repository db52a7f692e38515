"""SIGTERM under load, to the server's whole process group (what a terminal's Ctrl-C or a container
stop sends; the server alone is in tests/records/test_kill.py): nothing acknowledged is lost, no child
starts during the shutdown, nothing outlives the server, and how long the drain took."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests import procs
from tests.conftest import Artifacts
from tests.records.test_kill import Load, Server, _prepare, _stored, _wait_until_written

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_sigterm_drain_under_load(
    tmp_path: Path, artifacts: Artifacts, full: bool, figures: dict[str, Any], servers: list[Server]
) -> None:
    data_dir = _prepare(tmp_path, artifacts, None)
    rounds = 5 if full else 1
    acked_total = lost_total = started_during_shutdown = orphans = 0
    drains: list[float] = []
    for _ in range(rounds):
        server = Server(data_dir, None, durable=False)
        servers.append(server)
        load = Load(server.url)
        load.wait_for(600)
        _wait_until_written(data_dir, None, load)
        before = {p.pid for p in server.processes() if procs.is_spawn_child(p)}
        seen: set[int] = set()
        stop = threading.Event()

        def watch(server: Server = server, seen: set[int] = seen, stop: threading.Event = stop) -> None:
            while not stop.is_set():
                seen.update(p.pid for p in server.processes() if procs.is_spawn_child(p))
                time.sleep(0.02)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        sent = time.monotonic()
        os.killpg(server.proc.pid, signal.SIGTERM)
        code = server.proc.wait(timeout=60)
        drains.append(time.monotonic() - sent)
        load.finish()
        stop.set()
        watcher.join()
        assert code in (0, -signal.SIGTERM)
        started_during_shutdown += len(seen - before)
        orphans += len(procs.wait_tag_gone(server.tag, timeout=30))
        acked = [i for _, i in load.acked]
        acked_total += len(acked)
        lost_total += len(set(acked) - _stored(data_dir, None, acked))
    figures.update(
        runs=rounds,
        acked_predictions=acked_total,
        lost_predictions=lost_total,
        drain_s_max=round(max(drains), 2),
        children_started_during_shutdown=started_during_shutdown,
        orphans=orphans,
    )
    assert lost_total == 0
    assert started_during_shutdown == 0
    assert orphans == 0
