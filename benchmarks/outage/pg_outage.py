"""A PostgreSQL outage under load (issue 19, items 3 and 10).

A real `driftgate serve` on a throwaway PostgreSQL cluster (tests/pg_cluster.py: initdb/pg_ctl as the
postgres user), with API tokens; THREADS clients send ROWS-row predicts; the cluster is stopped for
OUTAGE seconds and started again. Prints the answers per phase, the rows acknowledged and lost per
phase (every acknowledged id looked up in the store afterwards), what readiness said, the server
log written during the outage, and how long readiness took to say "ok" after the restart.

    python benchmarks/outage/pg_outage.py                            # OUTAGE=15 THREADS=4 ROWS=10
    EXTRA="--log-in-process" python benchmarks/outage/pg_outage.py   # extra `serve` options
    CMD=/path/to/driftgate python benchmarks/outage/pg_outage.py     # another driftgate (a baseline)
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from driftgate.client import Client  # noqa: E402
from driftgate.store import Store  # noqa: E402
from tests.conftest import classification_data, free_port  # noqa: E402
from tests.pg_cluster import PgCluster  # noqa: E402

OUTAGE = float(os.environ.get("OUTAGE", "15"))
THREADS = int(os.environ.get("THREADS", "4"))
ROWS = int(os.environ.get("ROWS", "10"))
EXTRA = os.environ.get("EXTRA", "").split()
CMD = os.environ.get("CMD", str(Path(sys.executable).parent / "driftgate")).split()


def ready(url: str) -> dict[str, Any]:
    return dict(httpx.get(f"{url}/v2/health/ready", timeout=10).json())


def main() -> None:
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    cluster = PgCluster()
    cluster.start()
    work = Path(tempfile.mkdtemp(prefix="driftgate-outage-"))
    store = Store.open(db=cluster.url)
    headers = {"Authorization": f"Bearer {store.tokens.create('predict')}"}
    admin = store.tokens.create("admin")
    store.close()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = work / "server.log"
    with log_path.open("wb") as out:
        serve = [*CMD, "serve", "--port", str(port), "--db", cluster.url, "--data-dir", str(work / "data"), *EXTRA]
        proc = subprocess.Popen(serve, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            try:
                if httpx.get(f"{url}/v2/health/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        ref = classification_data(500, 1)[["x1", "x2", "y"]]
        model = LogisticRegression().fit(ref[["x1", "x2"]], ref["y"])
        with Client(url, token=admin) as client:
            client.register_model(
                "clf", sio.dumps(model), "sklearn", reference=ref.to_csv(index=False).encode(), target="y"
            )
            client.deploy("clf", "clf", 1)

        body = {"instances": [{"x1": 0.5, "x2": 3.0}] * ROWS}
        phase = ["before"]
        answers: collections.Counter[tuple[str, object]] = collections.Counter()
        ids: dict[str, list[str]] = collections.defaultdict(list)
        stop = threading.Event()
        lock = threading.Lock()

        def send() -> None:
            with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
                while not stop.is_set():
                    now = phase[0]
                    try:
                        r = http.post("/v1/endpoints/clf/predict", json=body)
                    except httpx.HTTPError as exc:
                        with lock:
                            answers[(now, type(exc).__name__)] += 1
                        continue
                    with lock:
                        answers[(now, r.status_code)] += 1
                        if r.status_code == 200:
                            ids[now].extend(r.json()["ids"])

        clients = [threading.Thread(target=send) for _ in range(THREADS)]
        for t in clients:
            t.start()
        time.sleep(2)  # a benchmark's load phase, not a wait on a condition
        size_before = log_path.stat().st_size
        lines_before = log_path.read_text(errors="replace").count("\n")
        phase[0] = "outage"
        cluster.stop()
        stopped = time.monotonic()
        noticed = None
        while time.monotonic() - stopped < OUTAGE:
            if noticed is None and ready(url).get("store") == "unavailable":
                noticed = time.monotonic() - stopped
            time.sleep(0.1)
        during = ready(url)
        text = log_path.read_text(errors="replace")
        outage_lines = text.count("\n") - lines_before
        outage_bytes = log_path.stat().st_size - size_before
        tracebacks = text.count("Traceback")
        phase[0] = "after"
        cluster.start()
        restarted = time.monotonic()
        while ready(url).get("status", "ok") != "ok" and time.monotonic() - restarted < 120:
            time.sleep(0.05)
        recovery = time.monotonic() - restarted
        time.sleep(2)
        stop.set()
        for t in clients:
            t.join()
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:  # flushes this server's log
            http.post("/v1/endpoints/clf/feedback", json={"labels": [{"id": ids["after"][-1], "label": 1}]})
        store = Store.open(db=cluster.url, migrate=False)
        lost = {}
        for name in ("before", "outage", "after"):
            known: set[str] = set()
            for i in range(0, len(ids[name]), 5000):
                known |= store.predictions.known_ids("clf", ids[name][i : i + 5000])
            lost[name] = (len(ids[name]), len(ids[name]) - len(known))
        store.close()
        print(f"serve options {EXTRA or 'default'}; {THREADS} clients, {ROWS}-row requests, outage {OUTAGE:g} s")
        print("answers", dict(answers))
        print("rows acknowledged / lost per phase", lost)
        print(f"readiness noticed the outage after {noticed if noticed is not None else -1:.2f} s; during: {during}")
        print(f"server log during the outage: {outage_lines} lines, {outage_bytes} bytes, {tracebacks} tracebacks")
        print(f"readiness status ok {recovery:.2f} s after the restart")
    finally:
        proc.terminate()
        proc.wait(60)
        cluster.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
