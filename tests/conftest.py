"""Shared fixtures: real stores (SQLite and PostgreSQL), real models, a real server on loopback."""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
import uvicorn
from sqlalchemy import create_engine, text

from driftgate.client import Client
from driftgate.server.app import create_app
from driftgate.settings import Settings
from driftgate.store import Store
from tests import procs

if TYPE_CHECKING:  # tests/pg_cluster.py imports this module
    from tests.pg_cluster import PgCluster

PG_ROOT = os.environ.get("DRIFTGATE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

# Every process a test starts inherits this tag (tests/procs.py), wherever it is reparented: at the
# end of the session anything still carrying it outlived its test (a kill test once left four
# orphaned ~190 MB processes running). DRIFTGATE_TEST_LEAKS=warn reports without failing.
SESSION_TAG = procs.new_tag()
os.environ[procs.SESSION_VAR] = SESSION_TAG
LEAK_WAIT_S = 10.0  # processes that are exiting get this long


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("driftgate")
    group.addoption(
        "--reliability",
        choices=["quick", "full"],
        default="quick",
        help="tests/reliability size: quick (the default run, CI) or full (make reliability).",
    )
    group.addoption("--soak", action="store_true", help="run the soak test (make soak; SOAK_SECONDS sets its length)")
    group.addoption("--reliability-report", default=None, help="write the reliability figures (JSON) here")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not procs.available():
        return
    deadline = time.monotonic() + LEAK_WAIT_S
    while True:
        left = [
            p
            for p in procs.with_env(procs.SESSION_VAR, SESSION_TAG)
            # our own resource tracker ends with this process (its pipe closes)
            if not (procs.is_resource_tracker(p) and p.ppid == os.getpid())
        ]
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    if not left:
        return
    lines = "\n".join(f"  {p}" for p in left)
    message = f"{len(left)} process(es) started by the tests outlived the session (now killed):\n{lines}"
    procs.kill_all(left)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line(message, red=True, bold=True)
    else:
        print(message)
    if os.environ.get("DRIFTGATE_TEST_LEAKS", "fail") != "warn" and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pg_available() -> bool:
    try:
        with create_engine(PG_ROOT).connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    schema = "t_" + secrets.token_hex(6)
    engine = create_engine(PG_ROOT)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    yield f"{PG_ROOT}?options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store.open(db=db_url)
    yield s
    s.close()


def classification_data(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(0, 1, n), rng.uniform(0, 10, n)
    colour = rng.choice(["red", "green", "blue"], n)
    y = ((x1 + 0.2 * x2 + (colour == "red")) > 1.5).astype(int)
    return pd.DataFrame({"x1": x1, "x2": x2, "colour": colour, "y": y})


@dataclass
class Artifacts:
    reference: pd.DataFrame
    reference_csv: bytes
    skops: bytes
    pickle: bytes
    onnx: bytes
    regression_skops: bytes
    model: object


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    import io

    import joblib
    import skops.io as sio
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    ref = classification_data(2000, 1)
    pre = ColumnTransformer(
        [("num", "passthrough", ["x1", "x2"]), ("cat", OneHotEncoder(handle_unknown="ignore"), ["colour"])]
    )
    model = Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(ref[["x1", "x2", "colour"]], ref["y"])
    buf = io.BytesIO()
    joblib.dump(model, buf)
    regression = Pipeline([("pre", pre), ("reg", LinearRegression())]).fit(ref[["x1", "x2", "colour"]], ref["x1"] * 3)
    return Artifacts(
        reference=ref,
        reference_csv=ref.to_csv(index=False).encode(),
        skops=sio.dumps(model),
        pickle=buf.getvalue(),
        onnx=_onnx_model(ref),
        regression_skops=sio.dumps(regression),
        model=model,
    )


def _onnx_model(ref: pd.DataFrame) -> bytes:
    """A numeric-only ONNX classifier on x1, x2 with one [n, 2] float input."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression().fit(ref[["x1", "x2"]].to_numpy(np.float32), ref["y"])
    onx = to_onnx(clf, ref[["x1", "x2"]].to_numpy(np.float32)[:1], options={id(clf): {"zipmap": False}})
    return onx.SerializeToString()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """A real uvicorn server on loopback in a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = f"http://127.0.0.1:{settings.port}"
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=settings.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    @property
    def app(self):
        return self.server.config.app


def make_server(tmp_path: Path, db: str | None = None, **overrides: object) -> LiveServer:
    settings = Settings(data_dir=tmp_path / "data", db=db, port=free_port(), sync_interval=0.1, **overrides)
    return LiveServer(settings).start()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = make_server(tmp_path)
    yield srv
    srv.stop()


@pytest.fixture
def client(server: LiveServer) -> Iterator[Client]:
    # Not the client's 30 s: a call that starts a model worker process (isolation "auto" for a trusted
    # or ONNX model, rollout warm-up included) waits for its imports, which a loaded 2-core machine
    # stretched past 30 s (seen at load 15).
    with Client(server.url, timeout=180) as c:
        yield c


@pytest.fixture
def deployed(client: Client, artifacts: Artifacts) -> Client:
    """A server with model 'clf' v1 (skops pipeline) deployed at endpoint 'clf'."""
    client.register_model("clf", artifacts.skops, "sklearn", reference=artifacts.reference_csv, target="y")
    client.deploy("clf", "clf", 1)
    return client


@pytest.fixture
def stuck_server(tmp_path: Path, artifacts: Artifacts) -> Iterator[LiveServer]:
    """Four endpoints on a model that hangs until released, and a healthy 'clf' (tests/slow_model.py)."""
    from tests.slow_model import stuck_site  # it imports this module

    with stuck_site(tmp_path, artifacts) as srv:
        yield srv


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    """A started PostgreSQL cluster of the test's own (tests/pg_cluster.py), removed afterwards."""
    from tests.pg_cluster import PgCluster  # at run time: that module imports this one

    c = PgCluster()
    try:
        c.start()
        yield c
    finally:
        c.close()
