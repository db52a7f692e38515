"""Shared by the overload benchmarks: a `driftgate serve` process on a fresh data dir with the
3-feature scikit-learn pipeline of the serving benchmarks deployed at endpoint `clf`."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd


def prepare(data_dir: Path) -> None:
    import skops.io as sio
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    from driftgate.registry.registry import Registration, register
    from driftgate.store import Store

    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"x1": rng.normal(size=2000), "x2": rng.uniform(0, 10, 2000)})
    ref["colour"] = rng.choice(["red", "green", "blue"], 2000)
    ref["y"] = (ref.x1 + 0.2 * ref.x2 > 1.5).astype(int)
    pre = ColumnTransformer([("n", "passthrough", ["x1", "x2"]), ("c", OneHotEncoder(), ["colour"])])
    model = Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(ref[["x1", "x2", "colour"]], ref.y)
    store = Store.open(data_dir)
    register(store, Registration("clf", sio.dumps(model), "sklearn", ref.to_csv(index=False).encode(), "r.csv", "y"))
    store.endpoints.put("clf", {"model": "clf", "version": 1}, actor="bench")
    store.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(data_dir: Path, port: int, settings: dict[str, object], cores: str | None = None) -> subprocess.Popen[bytes]:
    """`create_app(Settings(...))` under uvicorn in a child process (optionally pinned with taskset)."""
    code = f"""
import uvicorn
from pathlib import Path
from driftgate.server.app import create_app
from driftgate.settings import Settings
settings = Settings(data_dir=Path({str(data_dir)!r}), port={port}, **{settings!r})
uvicorn.run(create_app(settings), port={port}, log_level="warning")
"""
    cmd = [sys.executable, "-c", code]
    if cores:
        cmd = ["taskset", "-c", cores, *cmd]
    proc = subprocess.Popen(cmd)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def records_body(rows: int, seed: int = 0) -> bytes:
    """A native predict body of `rows` records (~46 bytes a row)."""
    import orjson

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x1": rng.normal(size=rows).round(6),
            "x2": rng.uniform(0, 10, rows).round(6),
            "colour": rng.choice(["red", "green", "blue"], rows),
        }
    )
    return orjson.dumps({"instances": frame.to_dict("records")})
