"""Serving throughput with the prediction log on vs off (`driftgate serve` app, wrk load).

    .venv/bin/python benchmarks/logging/serving.py [--seconds 10] [--rounds 2]

The server runs on core 0 (`taskset -c 0`), `wrk -t1 -c16` on core 1, 1-row JSON requests to a
3-feature scikit-learn pipeline on SQLite. "off" replaces `Recorder.record` with a no-op in the
server process; "on" is the shipped recorder. Rounds alternate on/off so drift in the machine's
speed hits both alike.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

HERE = Path(__file__).parent
LUA = """wrk.method = "POST"
wrk.body = '{"instances": [{"x1": 0.3, "x2": 4.0, "colour": "red"}]}'
wrk.headers["Content-Type"] = "application/json"
"""


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


def serve(data_dir: Path, port: int, logging: str) -> subprocess.Popen:
    code = f"""
import uvicorn
from pathlib import Path
from driftgate.server.app import create_app
from driftgate.records.recorder import Recorder
from driftgate.settings import Settings
if {logging!r} == "off":
    Recorder.record = lambda self, batch: True
uvicorn.run(create_app(Settings(data_dir=Path({str(data_dir)!r}), port={port})), port={port}, log_level="warning")
"""
    proc = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", code])
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def wrk(port: int, seconds: int, script: Path) -> float:
    out = subprocess.run(
        [
            "taskset",
            "-c",
            "1",
            "wrk",
            "-t1",
            "-c16",
            f"-d{seconds}s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/v1/endpoints/clf/predict",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(out)
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(LUA)
        for rnd in range(args.rounds):
            for mode in ("off", "on") if rnd % 2 == 0 else ("on", "off"):
                data_dir = Path(tmp) / f"{mode}{rnd}"
                prepare(data_dir)
                proc = serve(data_dir, 18600 + rnd * 2 + (mode == "on"), mode)
                try:
                    port = 18600 + rnd * 2 + (mode == "on")
                    wrk(port, 3, script)  # warm-up
                    rps = wrk(port, args.seconds, script)
                finally:
                    proc.terminate()
                    proc.wait(timeout=60)
                results[mode].append(rps)
                print(f"round {rnd} logging {mode:<3} {rps:8.0f} req/s", flush=True)
    on, off = float(np.median(results["on"])), float(np.median(results["off"]))
    print(json.dumps({"on_req_s": on, "off_req_s": off, "ratio": on / off}))


if __name__ == "__main__":
    main()
