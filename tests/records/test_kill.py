"""Kill a real `driftgate serve` under load and count which acknowledged predictions survived."""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from driftgate.registry.registry import Registration, register
from driftgate.serving.dataplane import DataPlane
from driftgate.store import Store
from tests import procs
from tests.conftest import Artifacts, free_port

DRIFTGATE = str(Path(sys.executable).parent / "driftgate")
FLUSH_INTERVAL = 0.5  # Settings.log_ship_interval's default, which `serve` uses


def _dataplane_awaits_durable() -> bool:
    return "record_durable" in inspect.getsource(DataPlane)


class Server:
    """`driftgate serve` in a session of its own, tagged (tests/procs.py) so that everything it starts
    is found, orphans included; `close()` kills whatever is left."""

    def __init__(self, data_dir: Path, db: str | None, durable: bool, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tag = procs.new_tag()
        args = [DRIFTGATE, "serve", "--data-dir", str(data_dir), "--port", str(self.port)]
        if db:
            args += ["--db", db]
        if durable:
            args.append("--durable-log")
        if workers > 1:
            args += ["--workers", str(workers)]
        data_dir.mkdir(parents=True, exist_ok=True)  # with PostgreSQL nothing else creates it
        self.stderr = (data_dir / f"server-{self.port}.err").open("wb")
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
            env={**os.environ, procs.TAG_VAR: self.tag},
            start_new_session=True,  # a signal to its process group reaches only this server's processes
        )
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, Path(self.stderr.name).read_text()[-3000:]
            if time.monotonic() >= deadline:
                self.close()
                raise AssertionError("server did not become ready")
            try:
                if httpx.get(self.url + "/v2/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)

    def stop(self, sig: int) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)

    def processes(self) -> list[procs.Proc]:
        """Every live process of this server (itself included), wherever it was reparented."""
        return procs.tagged(self.tag)

    def close(self) -> None:
        """End the server and anything of it still running (a failed test must not leak processes)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=60)
        procs.kill_all(self.processes())
        self.stderr.close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers a test starts: closed afterwards whatever happened."""
    started: list[Server] = []
    yield started
    for server in started:
        server.close()


class Load:
    """Concurrent 1-row predictions; remembers every acknowledged id and when it was acknowledged."""

    def __init__(self, url: str, clients: int = 8) -> None:
        self.url = url
        self.acked: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)]
        for t in self.threads:
            t.start()

    def _run(self, seed: int) -> None:
        body = {"instances": [{"x1": 0.1 * seed, "x2": 3.0, "colour": "red"}]}
        with httpx.Client(base_url=self.url, timeout=10) as http:
            while not self._stop.is_set():
                try:
                    response = http.post("/v1/endpoints/clf/predict", json=body)
                except httpx.HTTPError:
                    return  # the server is gone
                if response.status_code == 200:
                    now = time.monotonic()
                    with self._lock:
                        self.acked.extend((now, i) for i in response.json()["ids"])

    def wait_for(self, n: int) -> None:
        deadline = time.monotonic() + 60
        while len(self.acked) < n:
            assert time.monotonic() < deadline, f"only {len(self.acked)} predictions acknowledged"
            time.sleep(0.05)

    def finish(self) -> None:
        self._stop.set()
        for t in self.threads:
            t.join(timeout=30)


def _prepare(tmp_path: Path, artifacts: Artifacts, db: str | None) -> Path:
    data_dir = tmp_path / "data"
    store = Store.open(data_dir, db)
    register(
        store,
        Registration("clf", artifacts.skops, "sklearn", artifacts.reference_csv, "ref.csv", target="y"),
    )
    store.endpoints.put("clf", {"model": "clf", "version": 1}, actor="test")
    store.close()
    return data_dir


def _wait_until_written(data_dir: Path, db: str | None, load: Load) -> None:
    """The writer child starts at idle priority and a loaded machine may starve its imports for
    seconds: wait until it has written, so that it runs (with the database open) from here on."""
    deadline = time.monotonic() + 60
    while not _stored(data_dir, db, [i for _, i in list(load.acked)]):
        assert time.monotonic() < deadline, "nothing was written in 60 s of load"
        time.sleep(0.2)


def _stored(data_dir: Path, db: str | None, ids: list[str]) -> set[str]:
    store = Store.open(data_dir, db)
    try:
        return store.predictions.known_ids("clf", ids)
    finally:
        store.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def kill_db(request: pytest.FixtureRequest) -> str | None:
    return None if request.param == "sqlite" else request.getfixturevalue("pg_url")


@pytest.mark.slow
def test_sigterm_loses_nothing(
    tmp_path: Path, artifacts: Artifacts, kill_db: str | None, servers: list[Server]
) -> None:
    data_dir = _prepare(tmp_path, artifacts, kill_db)
    server = Server(data_dir, kill_db, durable=False)
    servers.append(server)
    load = Load(server.url)
    load.wait_for(1500)
    server.stop(signal.SIGTERM)
    load.finish()
    acked = [i for _, i in load.acked]
    assert set(acked) <= _stored(data_dir, kill_db, acked)


@pytest.mark.slow
def test_sigkill_loses_at_most_the_last_flush_interval(
    tmp_path: Path, artifacts: Artifacts, kill_db: str | None, servers: list[Server]
) -> None:
    data_dir = _prepare(tmp_path, artifacts, kill_db)
    server = Server(data_dir, kill_db, durable=False)
    servers.append(server)
    load = Load(server.url)
    load.wait_for(1500)
    _wait_until_written(data_dir, kill_db, load)
    children = [p for p in server.processes() if p.pid != server.proc.pid]
    assert any(procs.is_spawn_child(p) for p in children), "\n".join(map(str, children))
    killed_at = time.monotonic()
    server.stop(signal.SIGKILL)
    load.finish()
    # The log writer (with the database open) and the resource tracker die with the server.
    left = procs.wait_tag_gone(server.tag, timeout=30)
    assert not left, "outlived the server:\n" + "\n".join(map(str, left))
    acked = dict((i, at) for at, i in load.acked)
    stored = _stored(data_dir, kill_db, list(acked))
    lost = set(acked) - stored
    assert stored, "nothing was written before the kill"
    # What was lost sat in the queue: acknowledged within the last flush (plus the write in flight).
    # The margin is generous because this 2-core machine also runs the load and the database.
    window = FLUSH_INTERVAL + 2.0
    assert all(acked[i] >= killed_at - window for i in lost), sorted(killed_at - acked[i] for i in lost)[-5:]


@pytest.mark.slow
@pytest.mark.skipif(
    not _dataplane_awaits_durable(),
    reason="DataPlane.predict must `await self.recorder.record_durable(...)` for --durable-log to hold",
)
def test_sigkill_with_durable_log_loses_nothing_acknowledged(
    tmp_path: Path, artifacts: Artifacts, kill_db: str | None, servers: list[Server]
) -> None:
    data_dir = _prepare(tmp_path, artifacts, kill_db)
    server = Server(data_dir, kill_db, durable=True)
    servers.append(server)
    load = Load(server.url)
    load.wait_for(1500)
    server.stop(signal.SIGKILL)
    load.finish()
    acked = [i for _, i in load.acked]
    spooled = list((data_dir / "spool").rglob("seg-*.log"))
    assert spooled, "a crash under load should leave spool files behind"
    restarted = Server(data_dir, kill_db, durable=True)  # replays the spool before it is ready
    servers.append(restarted)
    try:
        assert set(acked) <= _stored(data_dir, kill_db, acked)
    finally:
        restarted.stop(signal.SIGTERM)
    assert not list((data_dir / "spool").rglob("seg-*.log"))


def test_sigterm_turns_readiness_false_and_hands_on() -> None:
    from types import SimpleNamespace

    from driftgate.server.server import Server
    from driftgate.settings import Settings

    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        svc = SimpleNamespace(ready=True)
        server = Server(Settings(), app=None)
        server.services = svc  # type: ignore[assignment]
        with server.unready_on_sigterm():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            assert svc.ready is False
        assert seen == [signal.SIGTERM]  # uvicorn's handler still runs: in-flight requests finish
    finally:
        signal.signal(signal.SIGTERM, previous)


def _spawn_children(server: Server) -> set[int]:
    return {p.pid for p in server.processes() if procs.is_spawn_child(p)}


@pytest.mark.slow
@pytest.mark.skipif(not procs.available(), reason="reads /proc")
@pytest.mark.parametrize("target", ["server", "process group"])
def test_sigterm_under_load_starts_no_child_and_leaves_none(
    tmp_path: Path, artifacts: Artifacts, servers: list[Server], target: str
) -> None:
    """SIGTERM to the server, or to its whole process group (Ctrl-C in a terminal, a container stop):
    the log is drained through the running writer, nothing is started during the shutdown, nothing
    outlives it. The writer used to die of the group's SIGTERM and be replaced mid-shutdown."""
    data_dir = _prepare(tmp_path, artifacts, None)
    server = Server(data_dir, None, durable=False)
    servers.append(server)
    load = Load(server.url)
    load.wait_for(500)
    _wait_until_written(data_dir, None, load)
    before = _spawn_children(server)
    assert before, "no log writer child"
    seen: set[int] = set()
    stop = threading.Event()

    def watch() -> None:  # a spawned child takes ~1 s to import: a 20 ms poll cannot miss one
        while not stop.is_set():
            seen.update(_spawn_children(server))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    if target == "server":
        server.proc.send_signal(signal.SIGTERM)
    else:
        os.killpg(server.proc.pid, signal.SIGTERM)
    # uvicorn re-raises the signal once it has shut down: the exit status is "killed by SIGTERM".
    assert server.proc.wait(timeout=60) in (0, -signal.SIGTERM)
    load.finish()
    stop.set()
    watcher.join()
    assert seen <= before, f"children started during the shutdown: {sorted(seen - before)}"
    left = procs.wait_tag_gone(server.tag, timeout=30)
    assert not left, "outlived the server:\n" + "\n".join(map(str, left))
    acked = [i for _, i in load.acked]
    assert set(acked) <= _stored(data_dir, None, acked)


@pytest.mark.slow
@pytest.mark.skipif(not procs.available(), reason="reads /proc")
def test_kill_9_of_a_worker_or_of_the_supervisor_leaves_no_process(
    tmp_path: Path, artifacts: Artifacts, servers: list[Server]
) -> None:
    """`--workers 2`: a killed worker's children die with it; a killed supervisor's workers drain and
    exit (as on SIGTERM), and their children with them."""
    data_dir = _prepare(tmp_path, artifacts, None)
    server = Server(data_dir, None, durable=False, workers=2)
    servers.append(server)

    def workers() -> list[procs.Proc]:
        return [p for p in procs.descendants(server.proc.pid) if p.ppid == server.proc.pid and procs.is_spawn_child(p)]

    def serving_workers() -> list[procs.Proc]:
        """Workers whose log writer child runs (each starts its own once its app is up)."""
        return [w for w in workers() if any(procs.is_spawn_child(c) for c in procs.descendants(w.pid))]

    def wait_for_two_workers() -> list[procs.Proc]:
        deadline = time.monotonic() + 120
        while len(ready := serving_workers()) < 2:
            assert time.monotonic() < deadline, f"workers: {workers()}"
            time.sleep(0.1)
        return ready

    victim = wait_for_two_workers()[0]
    below = procs.descendants(victim.pid)
    os.kill(victim.pid, signal.SIGKILL)
    left = procs.wait_gone(below, timeout=30)
    assert not left, "outlived their worker:\n" + "\n".join(map(str, left))

    wait_for_two_workers()  # the supervisor replaced the killed worker
    server.stop(signal.SIGKILL)
    left = procs.wait_tag_gone(server.tag, timeout=30)  # a worker first drains, as on SIGTERM
    assert not left, "outlived the supervisor:\n" + "\n".join(map(str, left))
