"""Serving the image model (issue 22): driftgate over every wire form against an inline floor and MLServer.

    .venv/bin/python benchmarks/serving/image_model.py            # 3 alternating rounds of 6 s runs (~15 min)
    .venv/bin/python benchmarks/serving/image_model.py --quick    # 2 rounds of 2 s runs (~5 min)

The model: issue 22's ONNX digits MLP (image_bodies.py), registered with its declared schema (one
tensor feature "image", [8, 8] float32, media image). Servers, all pinned to core 0 (`taskset -c 0`),
started first and kept up, stopped with SIGSTOP (children included) while another is loaded, as in
run.py (whose Server, wrk and installer this reuses):

- `bare`: image_bare_app.py, Starlette + onnxruntime inline on the event loop: the floor;
- `driftgate`: `driftgate serve` (prediction log on, default settings) with two endpoints on the
  same version: `digits` (isolation "auto", which runs ONNX in worker processes) and `digits_thread`
  (isolation "thread": model calls in the server);
- `mlserver`: MLServer + mlserver-sklearn (`parallel_workers=0`) serving the same MLPClassifier,
  fitted with its own scikit-learn, V2 FP32 [n, 64] in JSON.

REST load is `wrk -t1 -c16` with post.lua on core 1; gRPC load (no ghz here) is grpc_vs_rest.py's
Python loop on core 1 (grpc.aio, one channel, 16 calls in flight, prebuilt ModelInferRequest bytes with
raw_input_contents, as tritonclient.grpc sends them); the same loop also posts the V2 binary body
(aiohttp) so that gRPC is compared with REST under one load generator. Each round gives every
(target, images per request) pair one run, servers in an order reversed every round; figures are
medians over rounds, ratios taken within a round, then the median. Results go to
benchmarks/serving/image_model.json and the `image-serving` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WORK = ROOT / "benchmarks" / ".data" / "image_serving"
DOC = ROOT / "docs" / "benchmarks.md"
RESULTS = HERE / "image_model.json"
PY = Path(sys.executable)
BIN = PY.parent
SECTION = "image-serving"

sys.path.insert(0, str(HERE))
import grpc_vs_rest  # noqa: E402
import image_bodies as ib  # noqa: E402
import run as serving  # noqa: E402

SIZES = ib.SIZES
ENDPOINTS = {"driftgate": "digits", "driftgate_thread": "digits_thread"}
log = serving.log


@dataclass
class Target:
    key: str  # "<server or endpoint>/<form>"
    server: str  # the Server it loads
    form: str
    url: str  # http URL, or host:port for gRPC
    bodies: dict[int, Path]
    loader: str = "wrk"  # "wrk", or the Python loop's protocol: "grpc_raw", "rest_binary"
    header_len: dict[int, int] | None = None


# ---- setup -----------------------------------------------------------------------------------------


def register_driftgate() -> Path:
    data_dir = WORK / "driftgate"
    shutil.rmtree(data_dir, ignore_errors=True)
    cli, data = str(BIN / "driftgate"), ["--data-dir", str(data_dir)]
    subprocess.run([cli, "models", "register", "digits", str(WORK / "digits.onnx"), "--format", "onnx",
                    "--reference", str(WORK / "reference.parquet"), "--target", "label",
                    "--schema", str(WORK / "schema.json"), *data], check=True, capture_output=True)  # fmt: skip
    for endpoint, mode in (("digits", "auto"), ("digits_thread", "thread")):
        config = json.dumps({"isolation": mode})
        subprocess.run([cli, "deploy", endpoint, "--model", "digits", "--version", "1", "--config", config, *data],
                       check=True, capture_output=True)  # fmt: skip
    return data_dir


def body_paths(form: str) -> dict[int, Path]:
    return {n: WORK / f"{form}_{n}.body" for n in SIZES}


def header_lens() -> dict[int, int]:
    return {n: int((WORK / f"v2_binary_{n}.len").read_text()) for n in SIZES}


def build(skip: set[str], notes: dict[str, str]) -> tuple[list[serving.Server], list[Target]]:
    servers: list[serving.Server] = []
    targets: list[Target] = []
    p = serving.free_port()
    lists = body_paths("native_lists")
    servers.append(serving.Server("image_bare", "bare Starlette + onnxruntime inline (floor)",
                                  [str(PY), str(HERE / "image_bare_app.py"), str(WORK / "digits.onnx"), str(p)],
                                  f"http://127.0.0.1:{p}/predict", lists))  # fmt: skip
    targets.append(Target("bare/native_lists", "image_bare", "native_lists", f"http://127.0.0.1:{p}/predict", lists))
    targets.append(Target("bare/v2_binary", "image_bare", "v2_binary", f"http://127.0.0.1:{p}/v2",
                          body_paths("v2_binary"), header_len=header_lens()))  # fmt: skip

    p, g = serving.free_port(), serving.free_port()
    data_dir = register_driftgate()
    base = f"http://127.0.0.1:{p}"
    servers.append(serving.Server("image_driftgate", "driftgate serve (log on)",
                                  [str(BIN / "driftgate"), "serve", "--data-dir", str(data_dir), "--port", str(p),
                                   "--grpc-port", str(g)],
                                  f"{base}/v1/endpoints/digits/predict", lists,
                                  metrics_url=f"{base}/metrics"))  # fmt: skip
    for name, endpoint in ENDPOINTS.items():
        if name in skip:
            continue
        native, v2 = f"{base}/v1/endpoints/{endpoint}/predict", f"{base}/v2/models/{endpoint}/infer"
        grpc_bodies = {n: WORK / f"grpc_{endpoint}_{n}.body" for n in SIZES}
        targets += [
            Target(f"{name}/native_lists", "image_driftgate", "native_lists", native, lists),
            Target(f"{name}/native_b64", "image_driftgate", "native_b64", native, body_paths("native_b64")),
            Target(f"{name}/v2_json", "image_driftgate", "v2_json", v2, body_paths("v2_json")),
            Target(f"{name}/v2_binary", "image_driftgate", "v2_binary", v2, body_paths("v2_binary"),
                   header_len=header_lens()),
            Target(f"{name}/grpc", "image_driftgate", "grpc", f"127.0.0.1:{g}", grpc_bodies, loader="grpc_raw"),
            Target(f"{name}/v2_binary_py", "image_driftgate", "v2_binary", v2, body_paths("v2_binary"),
                   loader="rest_binary", header_len=header_lens()),
        ]  # fmt: skip

    if "mlserver" not in skip:
        try:
            venv = serving.ensure_venv("mlserver")
            mdir = WORK / "mlserver"
            (mdir / "digits").mkdir(parents=True, exist_ok=True)
            ib.train_in(venv, WORK, mdir / "digits" / "model.joblib")
            p, g, m = serving.free_port(), serving.free_port(), serving.free_port()
            (mdir / "settings.json").write_text(
                json.dumps({"http_port": p, "grpc_port": g, "metrics_port": m, "parallel_workers": 0})
            )
            (mdir / "digits" / "model-settings.json").write_text(json.dumps({
                "name": "digits", "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "v1"}}))  # fmt: skip
            url = f"http://127.0.0.1:{p}/v2/models/digits/infer"
            mls = body_paths("mlserver_v2_json")
            servers.append(serving.Server("image_mlserver", "MLServer + mlserver-sklearn, parallel_workers=0",
                                          [str(venv / "bin" / "mlserver"), "start", str(mdir)], url, mls,
                                          env={"PATH": f"{venv / 'bin'}:{os.environ['PATH']}"},
                                          version=serving.peer_version(venv, "mlserver")))  # fmt: skip
            targets.append(Target("mlserver/v2_json", "image_mlserver", "v2_json", url, mls))
        except Exception as exc:
            notes["mlserver"] = f"not run: {str(exc)[:400]}"
            log(f"mlserver: {notes['mlserver']}")
    return servers, targets


# ---- checks and load ---------------------------------------------------------------------------------


def http_post(url: str, body: bytes, header_len: int | None) -> tuple[int, bytes, dict[str, str]]:
    headers = {"Content-Type": "application/json" if header_len is None else "application/octet-stream"}
    if header_len is not None:
        headers["Inference-Header-Content-Length"] = str(header_len)
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read(), {k.lower(): v for k, v in resp.headers.items()}
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), {}


def check(t: Target, labels: Any, proba: Any) -> dict[str, float]:
    """Answer on the 32-image body against the ONNX graph in-process: max |p - expected|, label agreement."""
    import numpy as np

    n = max(SIZES)
    body = t.bodies[n].read_bytes()
    if t.loader == "grpc_raw":
        import grpc

        with grpc.insecure_channel(t.url) as channel:
            got = ib.grpc_probabilities(channel.unary_unary(grpc_vs_rest.METHOD)(body, timeout=30))
    else:
        status, raw, headers = http_post(t.url, body, t.header_len[n] if t.header_len else None)
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {raw[:300]!r}")
        got = ib.probabilities(raw, headers)
    agreement = float((got.argmax(1) == labels).mean())
    return {"max_abs_diff": float(np.abs(got - proba).max()), "label_agreement": agreement}


def load(t: Target, n: int, seconds: float, warmup: float, pgid: int) -> dict[str, Any]:
    """A warm-up run, then the measured one, with the server's CPU time over the measured run: in its
    main process and in its children (ONNX worker processes, the log writer, the monitor)."""
    run_once = wrk_run if t.loader == "wrk" else loop_run
    run_once(t, n, warmup)
    before, t0 = serving.group_cpu_s(pgid), time.perf_counter()
    res = run_once(t, n, seconds)
    after, wall = serving.group_cpu_s(pgid), time.perf_counter() - t0
    main = after.get(pgid, 0.0) - before.get(pgid, 0.0)
    children = sum(v - before.get(pid, 0.0) for pid, v in after.items() if pid != pgid)
    # The share of a core the server used: under 1 where other work on the machine took core 0 too.
    res["core_share"] = round((main + children) / wall, 3)
    if res["requests"]:
        res["cpu_ms_per_req"] = round((main + children) / res["requests"] * 1000, 3)
        res["cpu_ms_per_req_children"] = round(children / res["requests"] * 1000, 3)
    return res


def wrk_run(t: Target, n: int, seconds: float) -> dict[str, Any]:
    env = {}
    if t.header_len:
        env = {"WRK_CTYPE": "application/octet-stream", "WRK_HEADER_LENGTH": str(t.header_len[n])}
    with patched_env(env):
        return serving.wrk(t.url, t.bodies[n], seconds)


def loop_run(t: Target, n: int, seconds: float) -> dict[str, Any]:
    """grpc_vs_rest.py's Python load loop in a child process on the client core."""
    cmd = ["taskset", "-c", serving.CLIENT_CORE, str(PY), __file__, "--load", t.loader, "--target", t.url,
           "--body", str(t.bodies[n]), "--seconds", str(seconds)]  # fmt: skip
    if t.header_len:
        cmd += ["--header-len", str(t.header_len[n])]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    if done.returncode != 0:
        raise RuntimeError(f"load loop failed: {done.stderr[-400:]}")
    r = json.loads(done.stdout.strip().splitlines()[-1])
    return {"rps": r["rps"], "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"], "requests": r["requests"],
            "errors_non2xx": r["errors"], "errors_socket": 0}  # fmt: skip


@contextlib.contextmanager
def patched_env(env: dict[str, str]):
    """run.wrk passes os.environ to wrk: the content type and binary header length travel that way."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def load_child(a: argparse.Namespace) -> None:
    import asyncio

    body = Path(a.body).read_bytes()
    result = asyncio.run(grpc_vs_rest._load(a.load, a.target, body, a.header_len, serving.CONNS, a.seconds, 0.0))
    print(json.dumps(result))


def group_rss(pgid: int) -> list[str]:
    """'<MB> <command>' of each process in the server's group (where its memory is)."""
    out = []
    for pid, fields in serving.proc_stats().items():
        if int(fields[2]) != pgid:
            continue
        with contextlib.suppress(OSError, StopIteration):
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
            kb = int(next(ln for ln in status if ln.startswith("VmRSS:")).split()[1])
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            out.append(f"{kb / 1024:.0f} MB {cmd[:160]}")
    return out


# ---- the run ------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 rounds of 2 s runs (~5 min)")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--duration", type=float, help="measured seconds per run (default 6)")
    ap.add_argument("--warmup", type=float, help="warm-up seconds before each run (default 2)")
    ap.add_argument("--skip", default="", help="comma-separated: mlserver,driftgate_thread")
    ap.add_argument("--no-doc", action="store_true")
    ap.add_argument("--doc-only", action="store_true", help="rewrite the docs section from image_model.json")
    # The Python load loop (internal).
    ap.add_argument("--load", choices=("grpc_raw", "rest_binary"))
    ap.add_argument("--target")
    ap.add_argument("--body")
    ap.add_argument("--header-len", type=int)
    ap.add_argument("--seconds", type=float)
    a = ap.parse_args()
    if a.load:
        load_child(a)
        return
    import image_report as report

    if a.doc_only:
        report.write_doc(report.markdown(json.loads(RESULTS.read_text())))
        return
    rounds = a.rounds or (2 if a.quick else 3)
    duration = a.duration or (2.0 if a.quick else 6.0)
    warmup = a.warmup or (1.0 if a.quick else 2.0)
    serving.check_machine()
    os.sched_setaffinity(0, {int(serving.CLIENT_CORE)})
    serving.WORK.mkdir(parents=True, exist_ok=True)  # run.Server writes its log there
    started, load_before = time.time(), os.getloadavg()
    import numpy as np

    log("preparing the model and bodies")
    ib.prepare(WORK)
    floor = ib.in_process_floor(WORK)
    log(f"in-process floor: {floor}")
    labels, proba = ib.expected(WORK)
    for endpoint in ENDPOINTS.values():
        for n in SIZES:
            batch = np.load(WORK / "test.npy")[:n]
            (WORK / f"grpc_{endpoint}_{n}.body").write_bytes(ib.grpc_body(batch, endpoint))
    notes: dict[str, str] = {}
    servers, targets = build({s for s in a.skip.split(",") if s}, notes)
    raw: dict[str, dict] = {t.key: {"runs": {n: [] for n in SIZES}, "check": None} for t in targets}
    rss: dict[str, list[float]] = {s.name: [] for s in servers}
    processes: dict[str, list[list[str]]] = {s.name: [] for s in servers}
    loads: list[list[float]] = []
    live: list[serving.Server] = []
    try:
        for srv in servers:
            log(f"starting {srv.name}")
            try:
                srv.start()
                srv.wait_ready()
                live.append(srv)
            except Exception as exc:
                notes[srv.name] = f"not run: {str(exc)[:400]}"
                log(f"  {notes[srv.name]}")
                srv.stop()
        for t in targets:
            if t.server in notes:
                continue
            try:
                raw[t.key]["check"] = c = check(t, labels, proba)
                # MLServer runs its own scikit-learn fit of the MLP (float64): same labels, close probabilities.
                ok = c["label_agreement"] >= 0.9 if t.server == "image_mlserver" else c["max_abs_diff"] <= 1e-4
                if not ok:
                    raise RuntimeError(f"answers differ from the ONNX graph's: {c}")
            except Exception as exc:
                notes[t.key] = f"not run: {str(exc)[:400]}"
                log(f"  {t.key}: {notes[t.key]}")
        for rnd in range(rounds):
            order = live if rnd % 2 == 0 else live[::-1]
            for n in SIZES:
                for srv in order:
                    with serving.alone(srv, live):
                        for t in targets if rnd % 2 == 0 else targets[::-1]:
                            if t.server != srv.name or t.key in notes:
                                continue
                            try:
                                res = load(t, n, duration, warmup, srv.proc.pid)
                                srv.drain_log(res)
                            except Exception as exc:
                                notes[t.key] = f"failed in round {rnd + 1}: {str(exc)[:400]}"
                                log(f"  {t.key}: {notes[t.key]}")
                                continue
                            res["round"] = rnd
                            raw[t.key]["runs"][n].append(res)
                            log(f"round {rnd + 1}/{rounds} {t.key:>30} {n:>2} img: {res['rps']:7.0f} req/s  "
                                f"p50 {res['p50_ms']:6.2f} ms  p99 {res['p99_ms']:7.2f} ms  errors "
                                f"{res['errors_non2xx']}+{res['errors_socket']}  server CPU "
                                f"{res.get('cpu_ms_per_req', 0):.2f} ms/req")  # fmt: skip
            for srv in live:
                rss[srv.name].append(round(srv.rss_mb(), 1))
                if srv.proc is not None:
                    processes[srv.name].append(group_rss(srv.proc.pid))
            loads.append([round(x, 2) for x in os.getloadavg()])
    finally:
        for srv in servers:
            srv.stop()
    doc = {
        "command": "python benchmarks/serving/image_model.py" + (" --quick" if a.quick else ""),
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}",
        "method": {"rounds": rounds, "warmup_s": warmup, "measured_s": duration, "conns": serving.CONNS},
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after_rounds": loads,
        "in_process_floor_us": floor,
        "versions": {s.name: s.version for s in servers if s.version},
        "labels": {s.name: s.label for s in servers},
        "rss_mb": {k: max(v) if v else None for k, v in rss.items()},
        "rss_mb_per_round": rss,
        "processes_per_round": processes,
        "notes": notes,
        "summary": report.summarise(raw),
        "raw": raw,
        "wall_s": round(time.time() - started),
    }
    RESULTS.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    md = report.markdown(doc)
    print(md)
    if not a.no_doc:
        report.write_doc(md)
        log(f"updated {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
