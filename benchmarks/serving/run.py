"""Serving benchmark: driftgate against a bare endpoint, MLServer and BentoML, in one run.

    .venv/bin/python benchmarks/serving/run.py            # full: 3 alternating rounds of 8 s runs, ~11 min
    .venv/bin/python benchmarks/serving/run.py --quick    # 2 rounds of 3 s runs (a smoke test, ~4 min)

Every server gets the same model (a scikit-learn Pipeline: ColumnTransformer with StandardScaler on
18 numeric and OneHotEncoder on 2 categorical features, then LogisticRegression), is pinned to core 0
(`taskset -c 0`) and is loaded by the same `wrk -t1 -c16` pinned to core 1 with 1-row and 100-row
bodies. All servers are started first and stay up, stopped (SIGSTOP, children included) while another
is under load, so no server's background work lands in another's run; each round
gives every (server, body) pair one short run, in an order reversed every round; ratios are taken
within each round, then the median.
The fixed-rate (half of the bare endpoint's saturation) latency comes from `fixed_rate.py` on core 1.

Peers are installed (pip only) into their own virtualenvs under benchmarks/.venvs/; a peer that cannot
be installed or started is recorded with the reason and the rest goes on. Results go to
benchmarks/serving/results.json and the `serving` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VENVS = ROOT / "benchmarks" / ".venvs"
WORK = ROOT / "benchmarks" / ".data" / "serving"
DOC = ROOT / "docs" / "benchmarks.md"
RESULTS = HERE / "results.json"
PY = Path(sys.executable)
BIN = PY.parent
BASE_PY = Path(getattr(sys, "_base_executable", sys.executable))

sys.path.insert(0, str(HERE))
import model as bench_model  # noqa: E402

SERVER_CORE, CLIENT_CORE = "0", "1"
CONNS = 16
ROW_COUNTS = (1, 100)
ENDPOINT = "bench"
CONTROL_CALLS = 2  # the control endpoint's batching.max_concurrent_calls (the default is 1)

PEER_PINS = {
    "mlserver": ["mlserver==1.7.*", "mlserver-sklearn==1.7.*", "uvloop==0.21.0"],
    "bentoml": ["bentoml==1.4.*", "scikit-learn", "pandas"],
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---- setup ------------------------------------------------------------------------------------


def prepare_data() -> dict[str, Path]:
    """Reference CSV, the driftgate (skops) and bare (joblib) artifacts, request bodies."""
    import joblib
    import numpy as np
    import orjson
    import skops.io as sio

    WORK.mkdir(parents=True, exist_ok=True)
    csv = WORK / "ref.csv"
    bench_model.make_data().to_csv(csv, index=False)
    pipe = bench_model.train(str(csv))
    sio.dump(pipe, WORK / "model.skops")
    joblib.dump(pipe, WORK / "model.joblib")
    paths = {"csv": csv}
    for n in ROW_COUNTS:
        rows = bench_model.request_rows(str(csv), n)
        (WORK / f"native_{n}.json").write_bytes(orjson.dumps({"instances": rows}))
        (WORK / f"v2_{n}.json").write_bytes(orjson.dumps(v2_body(rows)))
        paths[f"native_{n}"] = WORK / f"native_{n}.json"
        paths[f"v2_{n}"] = WORK / f"v2_{n}.json"
    import pandas as pd

    expected = pipe.predict_proba(pd.DataFrame(bench_model.request_rows(str(csv), max(ROW_COUNTS))))
    np.save(WORK / "expected.npy", expected)
    return paths


def in_process_floor() -> dict[str, float]:
    """Microseconds per call, in this process on the client core: what the model itself costs."""
    import joblib
    import orjson
    import pandas as pd

    pipe = joblib.load(WORK / "model.joblib")
    out: dict[str, float] = {}
    for n in ROW_COUNTS:
        body = (WORK / f"native_{n}.json").read_bytes()
        rows = orjson.loads(body)["instances"]
        frame = pd.DataFrame({k: [r[k] for r in rows] for k in rows[0]})

        def parse_predict(body: bytes = body) -> None:
            rows = orjson.loads(body)["instances"]
            proba = pipe.predict_proba(pd.DataFrame({k: [r[k] for r in rows] for k in rows[0]}))
            orjson.dumps({"probabilities": proba}, option=orjson.OPT_SERIALIZE_NUMPY)

        for key, fn in ((f"predict_proba_{n}_row_us", lambda f=frame: pipe.predict_proba(f)),
                        (f"parse_predict_serialise_{n}_row_us", parse_predict)):  # fmt: skip
            for _ in range(20):
                fn()
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                for _ in range(100):
                    fn()
                best = min(best, (time.perf_counter() - t0) / 100 * 1e6)
            out[key] = round(best)
    return out


def v2_body(rows: list[dict]) -> dict:
    """Open Inference Protocol request: one input per feature, decoded by MLServer into a DataFrame."""
    inputs = []
    for name in bench_model.FEATURES:
        values = [r[name] for r in rows]
        if name in bench_model.NUMERIC:
            inputs.append({"name": name, "shape": [len(rows)], "datatype": "FP64", "data": values})
        else:
            inputs.append(
                {
                    "name": name,
                    "shape": [len(rows)],
                    "datatype": "BYTES",
                    "data": values,
                    "parameters": {"content_type": "str"},
                }
            )
    return {"parameters": {"content_type": "pd"}, "inputs": inputs, "outputs": [{"name": "predict_proba"}]}


def register_driftgate(csv: Path) -> Path:
    data_dir = WORK / "driftgate"
    shutil.rmtree(data_dir, ignore_errors=True)
    cli = str(BIN / "driftgate")
    subprocess.run(
        [
            cli,
            "models",
            "register",
            "bench-model",
            str(WORK / "model.skops"),
            "--format",
            "sklearn",
            "--reference",
            str(csv),
            "--target",
            bench_model.TARGET,
            "--data-dir",
            str(data_dir),
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [cli, "deploy", ENDPOINT, "--model", "bench-model", "--version", "1", "--data-dir", str(data_dir)],
        check=True,
        capture_output=True,
    )
    # A control: the same model behind a second endpoint that runs two model calls at once
    # (the default is one, which merges more requests per call).
    big = json.dumps({"batching": {"max_concurrent_calls": CONTROL_CALLS}})
    subprocess.run(
        [
            cli,
            "deploy",
            f"{ENDPOINT}_batch",
            "--model",
            "bench-model",
            "--version",
            "1",
            "--config",
            big,
            "--data-dir",
            str(data_dir),
        ],
        check=True,
        capture_output=True,
    )
    return data_dir


def ensure_venv(name: str) -> Path:
    """benchmarks/.venvs/NAME with the peer's pinned packages; raises with pip's tail on failure."""
    venv = VENVS / name
    marker = venv / ".bench-ok"
    want = " ".join(PEER_PINS[name])
    if marker.exists() and marker.read_text() == want:
        return venv
    log(f"installing {name} into {venv} (pip)")
    if not (venv / "bin" / "python").exists():
        subprocess.run([str(BASE_PY), "-m", "venv", str(venv)], check=True)
    proc = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", *PEER_PINS[name]], capture_output=True, text=True
    )
    (VENVS / f"{name}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "is ignored" not in ln][-5:]
        raise RuntimeError(f"pip install {want} failed: {' | '.join(tail)}")
    marker.write_text(want)
    return venv


def peer_version(venv: Path, dist: str) -> str:
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() or "?"


def train_in(venv: Path, csv: Path, out: Path) -> None:
    """Train the same pipeline with the peer venv's own scikit-learn (no pickle crosses versions)."""
    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r}); import joblib, model; "
        f"joblib.dump(model.train({str(csv)!r}), {str(out)!r})"
    )
    subprocess.run([str(venv / "bin" / "python"), "-c", code], check=True, capture_output=True)


# ---- servers ----------------------------------------------------------------------------------


@contextlib.contextmanager
def alone(srv: Server, live: list[Server]):
    """The other servers (and their child processes) stopped with SIGSTOP while `srv` is measured:
    their background work (driftgate's periodic monitor over the traffic of its last run, log
    flushes, a peer's housekeeping) would otherwise land on the shared server core in another
    server's run. A server's own background work still counts in its own runs."""
    others = [o for o in live if o is not srv and o.proc is not None and o.proc.poll() is None]
    for other in others:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(other.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for other in others:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(other.proc.pid, signal.SIGCONT)


@dataclass
class Server:
    name: str
    label: str
    cmd: list[str]
    url: str
    bodies: dict[int, Path]
    cwd: Path = ROOT
    env: dict[str, str] = field(default_factory=dict)
    decode: str = "native"  # how to read probabilities from a response, for the correctness check
    version: str = ""
    proc: subprocess.Popen | None = None
    logfile: Path | None = None
    metrics_url: str | None = None  # driftgate with logging on: watch the log queue

    def log_state(self) -> tuple[int, int]:
        """(rows waiting in the prediction log queue, rows dropped so far) from /metrics."""
        with urllib.request.urlopen(self.metrics_url, timeout=10) as resp:
            text = resp.read().decode()
        queued = dropped = 0.0
        for line in text.splitlines():
            if line.startswith("driftgate_log_queue_rows "):
                queued = float(line.split()[-1])
            elif line.startswith("driftgate_log_dropped_rows_total"):
                dropped += float(line.split()[-1])
        return int(queued), int(dropped)

    def drain_log(self, res: dict, timeout: float = 180.0) -> None:
        """Record the log queue left by a run, then wait until it is written, so that the backlog's
        writes do not fall on the next server's run."""
        if not self.metrics_url:
            return
        queued, dropped = self.log_state()
        res["log_queue_after_run"] = queued
        t0 = time.time()
        while queued and time.time() - t0 < timeout:
            time.sleep(0.25)
            queued, dropped = self.log_state()
        res["log_drain_s"] = round(time.time() - t0, 2)
        res["log_dropped_total"] = dropped

    def start(self) -> None:
        self.logfile = WORK / f"{self.name}.log"
        env = {**os.environ, **self.env}
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *self.cmd],
            cwd=self.cwd,
            env=env,
            stdout=self.logfile.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.time() + timeout
        body = self.bodies[1].read_bytes()
        last = ""
        while time.time() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"exited with {self.proc.returncode}; see {self.logfile}: {self.log_tail()}")
            try:
                status, _ = post(self.url, body)
                if status == 200:
                    return
                last = f"HTTP {status}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.5)
        raise RuntimeError(f"not ready after {timeout:.0f} s ({last}); {self.log_tail()}")

    def check(self, expected) -> float:
        """Max |probability - expected| on the 100-row body (all servers must compute the same thing)."""
        import numpy as np

        status, raw = post(self.url, self.bodies[max(ROW_COUNTS)].read_bytes())
        if status != 200:
            raise RuntimeError(f"HTTP {status} on the 100-row body: {raw[:300]!r}")
        doc = json.loads(raw)
        if self.decode == "v2":
            out = next(o for o in doc["outputs"] if o["name"] == "predict_proba")
            proba = np.asarray(out["data"], dtype=float).reshape(out["shape"])
        else:
            proba = np.asarray(doc["probabilities"], dtype=float)
        return float(np.abs(proba - expected).max())

    def rss_mb(self) -> float:
        return tree_rss_kb(self.proc.pid) / 1024 if self.proc else 0.0

    def stop(self) -> None:
        if not self.proc or self.proc.poll() is not None:
            return
        pgid = self.proc.pid  # start_new_session: the group is ours alone
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait()
        # children that outlived their parent (e.g. a supervisor's workers) go too
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        time.sleep(0.5)

    def log_tail(self) -> str:
        if not self.logfile or not self.logfile.exists():
            return ""
        lines = self.logfile.read_text(errors="replace").splitlines()
        return " | ".join(ln.strip() for ln in lines[-4:])[-600:]


def post(url: str, body: bytes, ctype: str = "application/json") -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": ctype}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def proc_stats() -> dict[int, list[str]]:
    """Every live process's `/proc/PID/stat` fields after its name (field 3 onwards: state, ppid, pgrp,
    ...), by pid."""
    out: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            out[int(entry)] = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile
            continue
    return out


def tree_rss_kb(root: int) -> int:
    """Resident memory of a process and all its descendants (sum of VmRSS)."""
    children: dict[int, list[int]] = {}
    for pid, fields in proc_stats().items():
        children.setdefault(int(fields[1]), []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def group_cpu_s(pgid: int) -> dict[int, float]:
    """CPU seconds (user + system) so far of each process in a process group, by pid."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = proc_stats().items()
    return {pid: (int(fields[11]) + int(fields[12])) / tick for pid, fields in stats if int(fields[2]) == pgid}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_servers(paths: dict[str, Path], data_dir: Path, skip: set[str], notes: dict[str, str]) -> list[Server]:
    native = {n: paths[f"native_{n}"] for n in ROW_COUNTS}
    servers: list[Server] = []
    p = free_port()
    servers.append(
        Server(
            "bare",
            "bare Starlette + uvicorn (floor)",
            [str(PY), str(HERE / "bare_app.py"), str(WORK / "model.joblib"), str(p)],
            f"http://127.0.0.1:{p}/predict",
            native,
        )
    )
    p = free_port()
    servers.append(
        Server(
            "driftgate",
            "driftgate, logging on (default)",
            [str(BIN / "driftgate"), "serve", "--data-dir", str(data_dir), "--port", str(p)],
            f"http://127.0.0.1:{p}/v1/endpoints/{ENDPOINT}/predict",
            native,
            metrics_url=f"http://127.0.0.1:{p}/metrics",
        )
    )
    if "driftgate_batch" not in skip:
        p = free_port()
        servers.append(
            Server(
                "driftgate_batch",
                f"driftgate, logging on, max_concurrent_calls={CONTROL_CALLS} (control)",
                [str(BIN / "driftgate"), "serve", "--data-dir", str(data_dir), "--port", str(p)],
                f"http://127.0.0.1:{p}/v1/endpoints/{ENDPOINT}_batch/predict",
                native,
                metrics_url=f"http://127.0.0.1:{p}/metrics",
            )
        )
    p = free_port()
    servers.append(
        Server(
            "driftgate_nolog",
            "driftgate, logging off",
            [str(PY), str(HERE / "driftgate_nolog.py"), str(data_dir), str(p)],
            f"http://127.0.0.1:{p}/v1/endpoints/{ENDPOINT}/predict",
            native,
        )
    )

    if "mlserver" not in skip:
        try:
            venv = ensure_venv("mlserver")
            mdir = WORK / "mlserver"
            (mdir / "bench").mkdir(parents=True, exist_ok=True)
            train_in(venv, paths["csv"], mdir / "bench" / "model.joblib")
            p, g, m = free_port(), free_port(), free_port()
            (mdir / "settings.json").write_text(
                json.dumps({"http_port": p, "grpc_port": g, "metrics_port": m, "parallel_workers": 0})
            )
            (mdir / "bench" / "model-settings.json").write_text(
                json.dumps(
                    {
                        "name": ENDPOINT,
                        "implementation": "mlserver_sklearn.SKLearnModel",
                        "parameters": {"uri": "./model.joblib", "version": "v1"},
                    }
                )
            )
            servers.append(
                Server(
                    "mlserver",
                    "MLServer + mlserver-sklearn, parallel_workers=0",
                    [str(venv / "bin" / "mlserver"), "start", str(mdir)],
                    f"http://127.0.0.1:{p}/v2/models/{ENDPOINT}/infer",
                    {n: paths[f"v2_{n}"] for n in ROW_COUNTS},
                    env={"PATH": f"{venv / 'bin'}:{os.environ['PATH']}"},
                    decode="v2",
                    version=peer_version(venv, "mlserver"),
                )
            )
        except Exception as exc:
            notes["mlserver"] = f"not run: {exc}"
            log(f"mlserver: {notes['mlserver']}")
    if "bentoml" not in skip:
        try:
            venv = ensure_venv("bentoml")
            train_in(venv, paths["csv"], WORK / "bento_model.joblib")
            p = free_port()
            servers.append(
                Server(
                    "bentoml",
                    "BentoML @bentoml.service",
                    [
                        str(venv / "bin" / "bentoml"),
                        "serve",
                        "bento_service:Classifier",
                        "--port",
                        str(p),
                        "--host",
                        "127.0.0.1",
                    ],
                    f"http://127.0.0.1:{p}/predict",
                    native,
                    cwd=HERE,
                    env={
                        "BENCH_MODEL": str(WORK / "bento_model.joblib"),
                        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
                        "BENTOML_DO_NOT_TRACK": "true",
                        "BENTOML_HOME": str(WORK / "bentoml_home"),
                    },
                    version=peer_version(venv, "bentoml"),
                )
            )
        except Exception as exc:
            notes["bentoml"] = f"not run: {exc}"
            log(f"bentoml: {notes['bentoml']}")
    return servers


# ---- load -------------------------------------------------------------------------------------


def wrk(url: str, body: Path, seconds: float) -> dict:
    env = {**os.environ, "WRK_BODY": str(body)}
    cmd = [
        "taskset",
        "-c",
        CLIENT_CORE,
        "wrk",
        "-t1",
        f"-c{CONNS}",
        f"-d{seconds:g}s",
        "--timeout",
        "5s",
        "-s",
        str(HERE / "post.lua"),
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result: {out.stdout[-300:]} {out.stderr[-300:]}")
    r = json.loads(line[len("RESULT ") :])
    socket_errors = r["connect"] + r["read"] + r["write"] + r["timeout"]
    return {
        "rps": round(r["requests"] / (r["duration_us"] / 1e6), 1),
        "measured_s": round(r["duration_us"] / 1e6, 3),
        "p50_ms": r["p50_us"] / 1000,
        "p90_ms": r["p90_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "max_ms": r["max_us"] / 1000,
        "requests": r["requests"],
        "errors_non2xx": r["status"],
        "errors_socket": socket_errors,
    }


def fixed_rate(url: str, body: Path, rate: float, seconds: float, warmup: float, trace: Path | None = None) -> dict:
    """`fixed_rate.py` on the client core; `trace`: where it writes each request's time and latency."""
    cmd = [
        "taskset",
        "-c",
        CLIENT_CORE,
        str(PY),
        str(HERE / "fixed_rate.py"),
        url,
        str(body),
        f"{rate:.1f}",
        f"{seconds:g}",
        "--warmup",
        f"{warmup:g}",
        *(["--trace", str(trace)] if trace is not None else []),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + warmup + 120)
    if out.returncode != 0:
        raise RuntimeError(f"fixed_rate.py failed: {out.stderr[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- the run ----------------------------------------------------------------------------------


def check_machine() -> None:
    """Exit with what is missing: the load generator, or the second core the load runs on."""
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    if (os.cpu_count() or 1) < 2:
        sys.exit("needs 2 cores (server on core 0, load on core 1)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 rounds of 3 s runs (smoke test)")
    ap.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 3)")
    ap.add_argument("--duration", type=float, default=None, help="measured seconds per run (default 8)")
    ap.add_argument("--warmup", type=float, default=None, help="warm-up seconds before each run (default 2)")
    ap.add_argument(
        "--half-duration",
        type=float,
        default=None,
        help="measured seconds per fixed-rate (half-load) run (default 24: a p99 of 8 s at ~100 req/s is the "
        "8th-worst of 800 requests, which one stall of the shared machine moves by tens of ms)",
    )
    ap.add_argument("--skip", default="", help="comma-separated servers to leave out: mlserver,bentoml,driftgate_batch")
    ap.add_argument("--no-doc", action="store_true", help="do not rewrite docs/benchmarks.md")
    ap.add_argument("--doc-only", action="store_true", help="rewrite the docs section from results.json; run nothing")
    a = ap.parse_args()
    if a.doc_only:
        doc = json.loads(RESULTS.read_text())
        if "in_process_floor_us" not in doc:  # results from before the floor was measured in the run
            os.sched_setaffinity(0, {int(CLIENT_CORE)})
            doc["in_process_floor_us"] = in_process_floor()
            doc["in_process_floor_when"] = time.strftime("%Y-%m-%d %H:%M")
            RESULTS.write_text(json.dumps(doc, indent=1, default=str) + "\n")
        write_doc(markdown(doc))
        log(f"updated {DOC.relative_to(ROOT)} from {RESULTS.relative_to(ROOT)}")
        return
    rounds = a.rounds or (2 if a.quick else 3)
    duration = a.duration or (3.0 if a.quick else 8.0)
    warmup = a.warmup or (1.0 if a.quick else 2.0)
    half_duration = a.half_duration or (3.0 if a.quick else 24.0)
    skip = {s for s in a.skip.split(",") if s}
    check_machine()
    os.sched_setaffinity(0, {int(CLIENT_CORE)})  # this script (and its setup work) stays off the server's core
    started = time.time()

    import numpy as np

    log("preparing data, model and bodies")
    paths = prepare_data()
    floor = in_process_floor()
    log(f"in-process floor: {floor}")
    expected = np.load(WORK / "expected.npy")
    data_dir = register_driftgate(paths["csv"])
    notes: dict[str, str] = {}
    servers = build_servers(paths, data_dir, skip, notes)
    by_name = {s.name: s for s in servers}

    raw: dict[str, dict] = {
        s.name: {
            "saturation": {n: [] for n in ROW_COUNTS},
            "half": {n: [] for n in ROW_COUNTS},
            "rss_mb": [],
            "check_max_abs_diff": None,
        }
        for s in servers
    }
    half_rate: dict[int, float] = {}
    half_servers = ("bare", "driftgate", "driftgate_nolog")
    live: list[Server] = []
    try:
        # Every server is started (and checked) first and stays up, idle, while the others are
        # loaded: then each round can take one short run of every (server, body) pair, so noise
        # from other work on the machine falls on all of them alike.
        for srv in servers:
            log(f"starting {srv.name}")
            try:
                srv.start()
                srv.wait_ready()
                diff = srv.check(expected)
                raw[srv.name]["check_max_abs_diff"] = diff
                if diff > 1e-6:
                    raise RuntimeError(f"answers differ from the reference probabilities by {diff:.2g}")
                live.append(srv)
            except Exception as exc:
                notes[srv.name] = f"not run: {str(exc)[:400]}"
                log(f"  {srv.name}: {notes[srv.name]}")
                srv.stop()
        for rnd in range(rounds):
            order = live if rnd % 2 == 0 else list(reversed(live))
            for n in ROW_COUNTS:
                for srv in order:
                    if srv.name in notes:
                        continue
                    try:
                        with alone(srv, live):
                            wrk(srv.url, srv.bodies[n], warmup)
                            srv.drain_log({})
                            res = wrk(srv.url, srv.bodies[n], duration)
                            srv.drain_log(res)
                    except Exception as exc:
                        notes[srv.name] = f"failed in round {rnd + 1}: {str(exc)[:400]}"
                        log(f"  {srv.name}: {notes[srv.name]}")
                        continue
                    res["round"] = rnd
                    raw[srv.name]["saturation"][n].append(res)
                    log(
                        f"round {rnd + 1}/{rounds} {srv.name:>16} {n:>3} rows: {res['rps']:7.0f} req/s  p50 "
                        f"{res['p50_ms']:7.2f} ms  p99 {res['p99_ms']:7.2f} ms  errors "
                        f"{res['errors_non2xx']}+{res['errors_socket']}"
                        + (
                            f"  log queue {res['log_queue_after_run']} rows, written in {res['log_drain_s']} s"
                            if "log_drain_s" in res
                            else ""
                        )
                    )
                    # The fixed rate is half of the bare endpoint's first measurement (it goes first).
                    if srv.name == "bare" and n not in half_rate:
                        half_rate[n] = res["rps"] / 2
            for n in ROW_COUNTS:
                for srv in order:
                    if srv.name not in half_servers or srv.name in notes or n not in half_rate:
                        continue
                    with alone(srv, live):
                        res = fixed_rate(srv.url, srv.bodies[n], half_rate[n], half_duration, warmup)
                        srv.drain_log(res)
                    res["round"] = rnd
                    raw[srv.name]["half"][n].append(res)
                    log(
                        f"round {rnd + 1}/{rounds} {srv.name:>16} {n:>3} rows at {half_rate[n]:.0f}/s: p50 "
                        f"{res['p50_ms']:7.2f} ms  p99 {res['p99_ms']:7.2f} ms  late sends {res['late_sends']}"
                    )
            for srv in live:
                raw[srv.name]["rss_mb"].append(round(srv.rss_mb(), 1))
    finally:
        for srv in servers:
            srv.stop()

    summary = summarise(raw, by_name, rounds)
    doc = {
        "command": "python benchmarks/serving/run.py" + (" --quick" if a.quick else ""),
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "method": {
            "server_core": SERVER_CORE,
            "client_core": CLIENT_CORE,
            "wrk": f"wrk -t1 -c{CONNS}",
            "rounds": rounds,
            "warmup_s": warmup,
            "measured_s": duration,
            "half_measured_s": half_duration,
            "half_rate_rps": half_rate,
        },
        "in_process_floor_us": floor,
        "versions": {s.name: s.version for s in servers if s.version},
        "notes": notes,
        "summary": summary,
        "raw": raw,
        "wall_s": round(time.time() - started),
    }
    RESULTS.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    log(f"wrote {RESULTS.relative_to(ROOT)}")
    md = markdown(doc)
    print(md)
    if not a.no_doc:
        write_doc(md)
        log(f"updated {DOC.relative_to(ROOT)}")


def med(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 3) if xs else None


def summarise(raw: dict, servers: dict[str, Server], rounds: int) -> dict:
    out: dict = {"servers": {}, "ratios": {}}
    for name, r in raw.items():
        s: dict = {"label": servers[name].label, "rss_mb": max(r["rss_mb"]) if r["rss_mb"] else None}
        for n in ROW_COUNTS:
            sat = r["saturation"][n]
            s[f"{n}"] = {
                "rps": med([x["rps"] for x in sat]),
                "p50_ms": med([x["p50_ms"] for x in sat]),
                "p99_ms": med([x["p99_ms"] for x in sat]),
                "errors": sum(x["errors_non2xx"] + x["errors_socket"] for x in sat),
                "rounds": len(sat),
            }
            if sat and "log_drain_s" in sat[0]:
                for x in sat:
                    # Throughput if the run had to end with every prediction logged: the backlog's
                    # write time counts as run time (the writer then has the core to itself, so this
                    # is generous to the writer).
                    x["rps_incl_drain"] = round(x["requests"] / (x["measured_s"] + x["log_drain_s"]), 1)
                s[f"{n}"]["log_queue_after_run"] = med([x["log_queue_after_run"] for x in sat])
                s[f"{n}"]["log_drain_s"] = med([x["log_drain_s"] for x in sat])
                s[f"{n}"]["rps_incl_drain"] = med([x["rps_incl_drain"] for x in sat])
                s[f"{n}"]["log_dropped_rows"] = max(x["log_dropped_total"] for x in sat)
            half = r["half"][n]
            if half:
                s[f"{n}"]["half_p50_ms"] = med([x["p50_ms"] for x in half])
                s[f"{n}"]["half_p99_ms"] = med([x["p99_ms"] for x in half])
                s[f"{n}"]["half_errors"] = sum(x["errors_status"] + x["errors_socket"] for x in half)
        out["servers"][name] = s

    def per_round(a: str, b: str, n: int, key: str = "rps", kind: str = "saturation") -> list[float]:
        if a not in raw or b not in raw:
            return []
        xa = {x["round"]: x[key] for x in raw[a][kind][n]}
        xb = {x["round"]: x[key] for x in raw[b][kind][n]}
        if kind == "half":
            return [round(xa[k] - xb[k], 3) for k in sorted(xa) if k in xb]
        return [round(xa[k] / xb[k], 3) for k in sorted(xa) if xb.get(k)]

    targets = [
        ("driftgate", "bare", 1, 1.0),
        ("driftgate", "bare", 100, 0.9),
        ("driftgate", "mlserver", 1, 2.0),
        ("driftgate", "mlserver", 100, 2.0),
        ("driftgate", "bentoml", 1, 4.0),
        ("driftgate", "bentoml", 100, 4.0),
        ("driftgate_nolog", "bare", 1, None),
        ("driftgate_nolog", "bare", 100, None),
        ("driftgate", "driftgate_nolog", 1, None),
        ("driftgate", "driftgate_nolog", 100, None),
        ("driftgate_batch", "bare", 1, None),
        ("driftgate_batch", "bare", 100, None),
        # A run can end with rows still queued for the log; counting their write time gives the rate
        # the server can sustain.
        ("driftgate", "bare", 1, None, "rps_incl_drain"),
        ("driftgate", "bare", 100, None, "rps_incl_drain"),
        ("driftgate", "mlserver", 1, None, "rps_incl_drain"),
        ("driftgate", "mlserver", 100, None, "rps_incl_drain"),
        ("driftgate", "bentoml", 1, None, "rps_incl_drain"),
        ("driftgate", "bentoml", 100, None, "rps_incl_drain"),
    ]
    for a, b, n, target, *key in targets:
        if key:
            xa = {x["round"]: x.get(key[0]) for x in raw.get(a, {}).get("saturation", {}).get(n, [])}
            xb = {x["round"]: x["rps"] for x in raw.get(b, {}).get("saturation", {}).get(n, [])}
            rs = [round(xa[k] / xb[k], 3) for k in sorted(xa) if xa[k] and xb.get(k)]
        else:
            rs = per_round(a, b, n)
        if rs:
            m = med(rs)
            what = "req/s counting the log drain" if key else "req/s"
            out["ratios"][f"{a}/{b} {n}-row {what}"] = {
                "per_round": rs,
                "median": m,
                "target": target,
                "met": None if target is None else bool(m >= target),
            }
    for a in ("driftgate", "driftgate_nolog"):
        for n in ROW_COUNTS:
            ds = per_round(a, "bare", n, key="p99_ms", kind="half")
            if ds:
                m = med(ds)
                out["ratios"][f"{a}-bare p99 ms at half load, {n}-row"] = {
                    "per_round": ds,
                    "median": m,
                    "target": "<= 2 ms" if a == "driftgate" else None,
                    "met": bool(m <= 2.0) if a == "driftgate" else None,
                }
    return out


def fmt(x, spec: str = ",.0f") -> str:
    return "-" if x is None else format(x, spec)


def markdown(doc: dict) -> str:
    s = doc["summary"]["servers"]
    m = doc["method"]
    v = doc["versions"]
    fl = doc["in_process_floor_us"]
    lines = [
        "## Serving",
        "",
        f"Command: `{doc['command']}` (run {doc['when']}; {doc['machine']}; {doc['wall_s']} s in all). "
        f"Every server on core 0 (`taskset -c 0`), `{m['wrk']}` on core 1 with a 1-row or 100-row body. All servers "
        "are started first and stay up, stopped (SIGSTOP, children included) while another is loaded, so one "
        "server's background work (driftgate's periodic monitor, say) never lands in another's run; each round "
        "gives every (server, body) pair "
        f"one run ({m['warmup_s']:g} s warm-up, then {m['measured_s']:g} s measured), in an order reversed every "
        f"round; {m['rounds']} rounds. Figures are medians over rounds; ratios are taken within a round, then the "
        "median (the machine is shared and noisy: read the ratios, not the absolute numbers). "
        "The same model everywhere: a scikit-learn Pipeline (ColumnTransformer: StandardScaler "
        "on 18 numeric + OneHotEncoder on 2 categorical features, then LogisticRegression), 20 named features; "
        "every server's probabilities are checked against the reference before it is loaded "
        f"(max abs diff {max((r['check_max_abs_diff'] or 0) for r in doc['raw'].values()):.1g}). In-process "
        "(one core, no HTTP), `predict_proba` on this pipeline costs "
        + ", ".join(f"{fl[f'predict_proba_{n}_row_us']:,} us for {n} row(s)" for n in ROW_COUNTS)
        + " and parse + DataFrame + predict + serialise "
        + ", ".join(f"{fl[f'parse_predict_serialise_{n}_row_us']:,} us" for n in ROW_COUNTS)
        + ": nearly all of it is per call, not per row, so throughput follows model calls per second.",
        "",
        "| server | 1-row req/s | p50 ms | p99 ms | 100-row req/s | p50 ms | p99 ms | errors | RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in s.items():
        one, hund = r["1"], r["100"]
        label = r["label"] + (f" {v[name]}" if name in v else "")
        lines.append(
            f"| {label} | {fmt(one['rps'])} | {fmt(one['p50_ms'], '.2f')} | {fmt(one['p99_ms'], '.2f')} | "
            f"{fmt(hund['rps'])} | {fmt(hund['p50_ms'], '.2f')} | {fmt(hund['p99_ms'], '.2f')} | "
            f"{one['errors'] + hund['errors']} | {fmt(r['rss_mb'])} |"
        )
    for name, why in doc["notes"].items():
        if name not in s or not s[name]["1"]["rps"]:
            lines.append(f"| {name} | {why} | | | | | | | |")
    logged = [(name, r) for name, r in s.items() if "log_drain_s" in r["1"]]
    if logged:
        lines += [
            "",
            "driftgate with logging on keeps up with its log or not: rows still queued when a run ends, the time the "
            "writer then took to store them (the next run waits for it), the throughput if that time counted as run "
            "time, and log rows dropped (queue full) over the whole benchmark.",
            "",
            "| server | rows | log queue after run | drain s | req/s | req/s counting the drain | rows dropped |",
            "|---|---|---|---|---|---|---|",
        ]
        for _, r in logged:
            for n in ROW_COUNTS:
                x = r[f"{n}"]
                lines.append(
                    f"| {r['label']} | {n} | {fmt(x['log_queue_after_run'])} | {fmt(x['log_drain_s'], '.1f')} | "
                    f"{fmt(x['rps'])} | {fmt(x['rps_incl_drain'])} | {fmt(x['log_dropped_rows'])} |"
                )
    hr = {int(k): v for k, v in m["half_rate_rps"].items()}  # JSON keys are strings after --doc-only
    if hr:
        lines += [
            "",
            "Latency at a fixed rate of half the bare endpoint's saturation throughput "
            f"({', '.join(f'{hr[n]:,.0f} req/s with {n}-row bodies' for n in ROW_COUNTS if n in hr)}; "
            f"{m.get('half_measured_s', m['measured_s']):g} s measured per run). wrk2 is not "
            "in Debian, so this load comes from `benchmarks/serving/fixed_rate.py` (Python, uvloop, open loop, "
            "latency from each request's scheduled send time, keep-alive connection pool) on core 1; its own "
            "overhead is in every row alike.",
            "",
            "| server | 1-row p50 ms | 1-row p99 ms | 100-row p50 ms | 100-row p99 ms | errors |",
            "|---|---|---|---|---|---|",
        ]
        for r in s.values():
            if "half_p99_ms" not in r["1"]:
                continue
            lines.append(
                f"| {r['label']} | {fmt(r['1'].get('half_p50_ms'), '.2f')} | {fmt(r['1'].get('half_p99_ms'), '.2f')} | "
                f"{fmt(r['100'].get('half_p50_ms'), '.2f')} | {fmt(r['100'].get('half_p99_ms'), '.2f')} | "
                f"{r['1'].get('half_errors', 0) + r['100'].get('half_errors', 0)} |"
            )
    lines += ["", "| ratio | per round | median | target | met |", "|---|---|---|---|---|"]
    for key, r in doc["summary"]["ratios"].items():
        target = r["target"]
        tgt = "-" if target is None else (target if isinstance(target, str) else f">= {target:g}x")
        met = "-" if r["met"] is None else ("yes" if r["met"] else "**no**")
        lines.append(f"| {key} | {', '.join(f'{x:g}' for x in r['per_round'])} | {r['median']:g} | {tgt} | {met} |")
    lines += [
        "",
        "What the rows are:",
        "",
        "- **bare**: `benchmarks/serving/bare_app.py`, Starlette + uvicorn in driftgate's virtualenv; on the "
        "event loop: `orjson.loads`, records to columns, `pd.DataFrame`, `predict_proba`, `orjson.dumps`. No "
        "validation, ids, metrics or logging: the floor.",
        "- **driftgate, logging on**: `driftgate serve` after `driftgate models register ... --format sklearn "
        "--reference ref.csv --target y` and `driftgate deploy`; default settings and endpoint config (adaptive "
        "micro-batching on, every prediction logged to the embedded SQLite store).",
        "- **driftgate, logging off**: there is no switch, so `benchmarks/serving/driftgate_nolog.py` runs the same "
        "`create_app` with `Settings(log_process=False)` and a `Recorder.record` that drops every batch at hand-over, "
        "so nothing is encoded or written; the request path still admits rows and builds ids and the log batch.",
        f"- **driftgate, max_concurrent_calls={CONTROL_CALLS}**: the same server with a second endpoint deployed "
        f'with `--config \'{{"batching": {{"max_concurrent_calls": {CONTROL_CALLS}}}}}\'` (two model calls at '
        "once, the default before this run; the default is now one, which merges more requests per call).",
        "- **MLServer**: `mlserver start` with mlserver-sklearn, `parallel_workers=0` (model in the server "
        "process), `uvloop==0.21.0` pinned (with 0.23 the model never loads). V2 request with one input per "
        "feature (FP64 for numeric, BYTES with `content_type: str` for categorical) and `content_type: pd`, so it "
        "decodes to a DataFrame for the ColumnTransformer (a single `[n, d]` FP64 tensor cannot carry the "
        "categorical columns); `outputs: [predict_proba]`.",
        "- **BentoML**: `bentoml serve bento_service:Classifier`, a `@bentoml.service` (1 worker) with a sync "
        '`@bentoml.api` taking the same `{"instances": [...]}` body.',
        "- Peers run in their own virtualenvs (benchmarks/.venvs/, pip only), each training the pipeline from the "
        "same CSV with its own scikit-learn. RSS is the sum over the server's process tree after its runs. Errors "
        "are non-2xx responses plus socket errors (connect, read, write, timeout) over all runs.",
    ]
    return "\n".join(lines) + "\n" + PROFILE_NOTES.rstrip()


# Written by hand from py-spy profiles of the run above; rerun the profiles when driftgate changes.
PROFILE_NOTES = """
What limits driftgate here (py-spy `--gil` profiles, 2026-11-21, this pipeline):

- **Per-request DataFrames (fixed)**: building a DataFrame per request (~400-650 us for 20 columns: pandas
  re-checks every array and infers Arrow strings) and `pd.concat` of the merged requests (~800 us for 16)
  took 35 % of the GIL time at 1-row saturation. Requests now reach the micro-batcher as validated numpy
  columns, merged with `np.concatenate` and turned into one DataFrame per model call with pandas' internal
  constructor (~60 us). 1-row req/s went from 2.0x to 4.4x the bare endpoint.
- **One model call at a time (changed)**: with two calls in flight a GIL-bound pipeline merged half as many
  requests per call; `batching.max_concurrent_calls` now defaults to 1 (the control row keeps 2: 0.72x the
  default on 1-row requests), and a call running past 50 ms releases its slot so a hanging request does not
  block the rest.
- **Background work on the serving core**: the other servers are now stopped while one is measured; before,
  driftgate's periodic monitor over the last run's traffic ran in the serving process (up to 100,000 rows)
  and landed in other servers' runs. Windows above 10,000 rows now run in the niced child.
- **The prediction log (moved to a writer process)**: encoding (~3 us per row) and the SQLite insert
  (~5-7 us per row) ran in a thread of the server; its GIL slices and CPU bursts landed between a
  request's steps. The log is now written by an idle-priority child (`records/log_process.py`): at half
  load on one core the child runs in the serving process's idle time (in an isolated run of 5 x 8 s at
  half load, 100-row p99 14.1-15.3 ms, against 12.6-16.1 ms logging off and 16-24 ms with the thread).
  Runs of small batches cross as one merged batch (1-row saturation p99 39 ms, was 129-173 ms while each
  request's batch was pickled on its own), and rows are encoded column by column (~40 % less encoding).
- **Periodic work on the serving core (fixed)**: a trace of every request at half load (`fixed_rate.py
  --trace`, 1-row, 102 req/s, 65-140 s) showed the p99 excess as one burst a minute: the scheduled
  monitor run. Its window (6,000 rows at this rate) was under the 10,000 rows that stay in-process, so
  it took the GIL for seconds (requests at 17-30 ms instead of 5.5); and where it went to the child, the
  child's first start (re-importing the CLI and the monitoring stack, ~1-2 s) ran at serving priority,
  because the child lowered its own priority only after those imports. Scheduled runs now always go to
  the idle-priority child, and the parent moves each helper child to idle priority the moment it exists:
  over 140 s with two monitor runs, 1-row p99 9.0 ms against the bare endpoint's 10.7 ms.
- **The prediction log, one stored row per request (run of 22:30, this build)**: a row per prediction
  cost ~2.5 us to encode the inputs, ~1 us the rest and ~7 us of SQLite insert (the table and two
  B-trees) per prediction, ~1.1 ms of CPU per 100-row request. The log now stores a request as one row
  (`prediction_batches`; ids carry their row's key), numeric inputs and probabilities packed as base64
  of their bytes: per prediction ~0.7 us to encode and ~1.0 us to write for 100-row requests (merged
  runs of 16, 20 features, in isolation; was 2.6 and 6.0). In this run: logging on / off 0.86x on
  100-row requests (was 0.75x), 0.5 s to drain what was queued after an 8 s run (was 3.1 s), so
  100-row req/s counting the drain is 3.36x BentoML (was 2.54x). **Still short of 4x BentoML on
  100-row requests (3.51x by req/s, per round 3.47-3.77x):** the logging-off server itself reached
  only 3.9-4.6x BentoML in the same rounds (BentoML moved between 154 and 183 req/s), so what is left
  is mostly the request path, not the log. 1-row requests pay ~1.7 us more per prediction to encode
  (each request is its own stored row, built from slices of batch-wide texts); they are not limited
  by it (1-row logging on / off 1.08x).
- **Split groups of calls (fixed, run of 2026-11-22 00:17)**: a py-spy profile of the logging-off server at
  100-row saturation put ~30 % of the core in `predict_proba`, whose ~3.5 ms a call hardly depends on its
  rows. A histogram of rows per call showed why so many calls: 16 connections settled into alternating
  calls of 15 requests and 1 (with the old 1,024-row cap: two groups of 5-10), so every round of 16
  requests paid two calls. The batcher now coalesces under saturation (`serving/batching.py`): when a
  call's queue is under half the last round's demand and requests are still arriving, it waits for them
  (1 ms probes; at most `max_wait_us`, now 20 ms by default, and 3 calls' time; an idle loop ends the
  wait at once); `max_batch_size` is now 4,096. Calls then carry all 16 requests. In A/B runs (two
  servers, alternating rounds): 100-row 1.34x req/s, 1-row 1.45x, p99 lower; at 1-row half load p99
  base 9.7-17.7 ms against 9.8-16.0 ms over 6 rounds (no difference). Request decoding also got cheaper
  (records transposed with `itemgetter`/`zip`: 99 -> 44 us per 100-row body; numeric features
  converted in one numpy call: 98 -> 63 us; ids by concatenation: 26 -> 10 us), and the log packs a
  request's numeric inputs as one block (encode 1.43 -> 1.0 us per prediction in isolation). This run:
  **100-row 5.17x BentoML in the run of 00:17 (target 4x, met; 4.86x counting the drain)**, 1-row 9.1x; logging on / off
  0.76x on 100-row requests (the log is now the largest cost left at saturation: its writer child gets
  no CPU on a saturated core, so the in-process recorder encodes and writes). The machine was slow in
  this run (`predict_proba` 3.8 ms in-process, bare 1-row 212 req/s against 347 in the run before), so
  ratios against bare are high; read the peer ratios.
- **Half-load p99 in the run of 00:17**: 100-row met (-0.52 ms median; round 3 had +20 ms for logging
  on and +8 ms for logging off); **1-row missed by +3.1 ms median** (rounds -0.25, +5.6, +3.1; logging
  off +1.7). The A/B above shows no effect of coalescing at this rate; the bare endpoint's own p99 moved
  between 10.1 and 13.4 ms across rounds.
- **Run of 01:01 (this table; same code plus the recorder merging runs of small batches)**: the machine
  was slower still (BentoML 93-158 req/s, bare 1-row 150) and noisy (logging on beat logging off in two
  rounds of three). 100-row 5.24x BentoML, 1-row 8.4x; 100-row half-load p99 met (-1.1 ms). **1-row
  half-load p99 with logging on missed again (+5.9 ms median; rounds -2.5, +11.4, +5.9) while logging
  off met it (-1.8 ms)**: two runs in a row point at the log at 1-row half load, not at batching. Not
  yet traced (`fixed_rate.py --trace` on logging on vs off is the next step).
- **1-row half load, traced (2026-11-22, after the run of 01:01; not a full run)**: the machine was
  ~2.5x slower than in the runs above (`predict_proba` 9.3 ms in-process, bare 1-row saturation 92
  req/s, a 46 req/s fixed rate) and so noisy that the bare endpoint's own half-load p99 moved between
  14 and 35 ms across rounds; end-to-end A/B runs (logging on, off, coalescing off, 5 rounds each)
  each won some rounds, so their p99 differences say nothing. Measured inside the server instead:
  (1) an event-loop lag probe (a 2 ms sleep, overshoot recorded) at half load: p90 4.1-4.5 ms, p99
  8.6-9.6 ms with logging on, the same with logging off: the log does not hold the loop up. The lag
  is the model thread's GIL (a ~9 ms call hands the GIL over every 5 ms switch interval); a 0.5 ms
  switch interval lowered the lag p99 to ~7.6 ms but not the p99 of requests measurably, so it is not
  adopted. (2) The coalescing waits, counted: after a saturating warm-up the batcher started 236 waits
  in 20 s at half load, all for a round of 3 requests (two that overlapped a call by chance and one
  behind them), 0.7 ms at the median, 5 ms at p90, up to 14 ms. Coalescing now waits only for rounds
  of at least 4 requests (`MIN_ROUND`); saturated calls are unchanged (15.7-15.9 requests per call at
  1-row, 12.7-13.4 at 100-row, with and without). (3) GC: in 20 s of half load, one gen-0 pass over
  1 ms (2.1 ms) and one gen-2 pass (8 ms); the startup `gc.freeze()` keeps full passes short.
- **Run of 2026-11-22 04:52 (this table; `MIN_ROUND` in the batcher) and three focused half-load runs**:
  the machine was ~1.7x slower than in the run of 00:17 (`predict_proba` 6.4 ms in-process, bare 1-row
  saturation 98-143 req/s) and stalled once for seconds (bare round 1 at half load: p99 2.4 s). Every
  target met by the median here: 1-row half-load p99 +0.45 ms (rounds: the stall, +0.45, +3.8). Three
  rounds cannot settle a 2 ms target, so `half_load.py` runs only bare, logging on and logging off, 8
  alternating rounds of 20 s (section below). **Its first run met the target (-0.17 ms median, every
  round within +1.9 ms); its second, an hour later at 64 req/s, missed it (+7.1 ms median, 2 rounds of 8
  within 2 ms; logging off +1.4 ms); the third met it again by the median (+1.5 ms, 4 rounds of 8 within
  2 ms) on a machine so noisy that logging off came out at +15.8 ms.** The second run's misses are
  episodes of 1-19 s in which requests took ~40 ms in a sawtooth (each ~4 ms later than the one before,
  then a merged call): the server fell behind its arrivals. No other process took the core and the
  hypervisor reported no steal time (per-thread CPU and `/proc/stat` sampled every 100 ms in a rerun);
  the model threads used ~40 % more CPU per call during an episode, and `predict_proba` alone, timed in
  one process, moved between 5.6 and 8.3 ms from one second to the next. So the machine itself slows in
  bursts. A slowdown costs driftgate more than bare because driftgate has less headroom at the same
  rate: at 64 req/s it used ~66 % of its core (measured), bare ~50 % (64 x its ~7.8 ms a request at
  saturation). Each 1-row request costs ~1.9 ms of event-loop CPU (HTTP, validation, ids, metrics, the
  log hand-off) on top of the model call, and the model runs in a worker thread whose GIL hand-offs to
  the loop (5 ms switch interval) stretch both. A burst that slows the machine by 40 % therefore
  saturates driftgate and queues its requests, while bare stays under saturation. What would remove it:
  less per-request work at low concurrency, or small models run inline on the event loop as bare does
  (no hand-offs). Neither is done.
- **2026-11-22, later (CPU per request; the log writer's hand-overs)**: the machine was ~2x slower than in
  session 7 (`predict_proba` 7-12 ms in-process; wrk put bare's 1-row saturation at 65-68 req/s, once at
  138). Measured from `/proc`, the headroom claim above was wrong for the serving process: at 1 row its
  CPU per request equals bare's (sequential requests at 40 req/s, 1,500 per round, 2 rounds: bare 13.3
  and 13.6 ms, driftgate 13.3 and 13.7 ms, logging off 13.4 and 13.1 ms; bare's ~7.8 ms above came from
  its saturation throughput, not a CPU reading). What driftgate adds on the core is its idle-priority
  helpers: the log writer, then handed rows every 0.05 s, used 0.36-0.40 s per 17 s run at 34 req/s
  (~0.65 ms a request: each hand-over costs a transaction and three GIL-taking threads in the server
  whatever it carries), and the monitor child its pass over the last minute (0.8 s of CPU for a
  4,000-row window, plus ~2-3 s of imports when it first starts). Hand-overs now go every 0.5 s or once
  `log_batch_rows` rows wait (`log_ship_interval`): the writer used 0.05-0.08 s per run, 4-6x less, in
  6- and 8-round runs against the old setting. The p99 could not be judged on that machine: in 6 rounds
  at 34 req/s the new setting's median excess over bare was -2.3 ms and the old one's +9.7 ms, but bare's
  own p99 moved from 27 to 54 ms between rounds; at 69 req/s (the 138 reading, ~80 % of the core by CPU)
  bare's p99 was 28-1,951 ms and driftgate's 42-67 ms with either setting (merged calls keep up where
  bare queues). `half_load.py` now reports each server's CPU per request, split into the server process
  and its helpers, so this is read off every run. **Its run of 09:10 (41 req/s; section below) met the
  target: -0.51 ms median, 5 rounds of 8 within 2 ms** (single rounds from -84 to +51 ms: bare's own
  p99 ran 29-126 ms). CPU per request, median over rounds: bare 13.71 ms; driftgate 12.65 ms in the
  server process plus 0.29 ms in its helpers (mostly the monitor's pass once a minute), 12.94 ms in
  all. At 1 row driftgate spends less of the core per request than bare does.
- **Run of 2026-11-22 09:47 (this table, with the 0.5 s hand-overs)**: the same slow machine
  (`predict_proba` 6.4 ms in-process; bare saturated at 80-86 req/s at 1 row). Every throughput target
  met (1-row 7.5x bare, 9.2x MLServer, 9.0x BentoML; 100-row 3.9x bare, 4.5x MLServer, 5.4x BentoML).
  **Both half-load p99 targets missed by the median of three rounds: 1-row +3.7 ms (rounds +4.6, -17.2,
  +3.7), 100-row +2.07 ms (+2.1, -73.5, +9.1)**, with logging off no better at 1 row (+8.4 ms). Bare's own
  1-row p99 ran 27-60 ms from round to round at 40 req/s, so three rounds cannot place the difference
  within 2 ms either way; the focused run an hour earlier (8 rounds, 41 req/s) met it at -0.51 ms.
"""


def write_doc(md: str, section: str = "serving") -> None:
    """Replace the text between `<!-- {section}:start -->` and `<!-- {section}:end -->`."""
    text = DOC.read_text()
    new, n = re.subn(
        rf"(<!-- {section}:start -->\n).*?(\n<!-- {section}:end -->)",
        lambda mt: mt.group(1) + md + mt.group(2),
        text,
        flags=re.S,
    )
    if n != 1:
        raise RuntimeError(f"{section} markers not found in docs/benchmarks.md")
    DOC.write_text(new)


if __name__ == "__main__":
    main()
