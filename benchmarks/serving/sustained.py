"""Sustained saturation with the prediction log watched: does the log keep up, or is its work deferred?

    .venv/bin/python benchmarks/serving/sustained.py --seconds 90 --rounds 3
    .venv/bin/python benchmarks/serving/sustained.py --tree base=/tmp/base --tree head=.   # compare commits

`run.py` measures short runs (3-8 s) and lets the log drain between them. An idle-priority log writer
gets no CPU on a saturated core, so a short run can end with its rows still queued: their writing is
not paid for inside the window. This script runs one long `wrk -t1 -c16` (core 1) against a fresh
`driftgate serve` (core 0) per run, reads the log's counters from /metrics every few seconds during the
run and after it until the queue is empty, and reports the rows written inside the window, the queue
left at its end, the time to drain it and the req/s counting that time.

`--tree NAME=PATH` serves the `driftgate` package of another checkout (e.g. `git worktree add /tmp/base
<commit>`) through PYTHONPATH, with this virtualenv; the trees run alternately (ABAB, the order
reversed every round), so noise from other work on the machine falls on all of them alike.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run as bench  # noqa: E402

POLL_S = 2.0
METRICS = {
    "queued": "driftgate_log_queue_rows",
    "written": "driftgate_log_written_rows_total",
    "overflow": "driftgate_log_overflow_rows_total",
    "dropped": "driftgate_log_dropped_rows_total",
    "lost": "driftgate_log_lost_rows_total",
}


def log_counters(url: str) -> dict[str, float]:
    """The log's counters from /metrics (dropped summed over its labels)."""
    with urllib.request.urlopen(url, timeout=30) as resp:
        text = resp.read().decode()
    out = dict.fromkeys(METRICS, 0.0)
    for line in text.splitlines():
        for key, name in METRICS.items():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                out[key] += float(line.split()[-1])
    return out


def register(tree: Path, data_dir: Path, env: dict[str, str]) -> None:
    shutil.rmtree(data_dir, ignore_errors=True)
    cli = str(bench.BIN / "driftgate")
    work = bench.WORK
    args = ["--format", "sklearn", "--reference", str(work / "ref.csv"), "--target", bench.bench_model.TARGET]
    subprocess.run(
        [cli, "models", "register", "bench-model", str(work / "model.skops"), *args, "--data-dir", str(data_dir)],
        check=True,
        capture_output=True,
        env=env,
    )
    subprocess.run(
        [cli, "deploy", bench.ENDPOINT, "--model", "bench-model", "--version", "1", "--data-dir", str(data_dir)],
        check=True,
        capture_output=True,
        env=env,
    )


def tree_env(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree.resolve())
    return env


def one_run(
    name: str, tree: Path, rows: int, seconds: float, warmup: float, nolog: bool = False, starve: bool = False
) -> dict:
    """A fresh server of `tree`, warmed up, then `seconds` of saturation watched, then its drain. `starve`:
    its idle-priority children are stopped for the window (what a saturated core of its own does to them)."""
    env = tree_env(tree)
    data_dir = bench.WORK / f"sustained_{name}"
    register(tree, data_dir, env)
    port = bench.free_port()
    url = f"http://127.0.0.1:{port}/v1/endpoints/{bench.ENDPOINT}/predict"
    murl = f"http://127.0.0.1:{port}/metrics"
    srv = bench.Server(
        name,
        name,
        [str(bench.PY), str(tree / "benchmarks" / "serving" / "driftgate_nolog.py"), str(data_dir), str(port)]
        if nolog
        else [str(bench.BIN / "driftgate"), "serve", "--data-dir", str(data_dir), "--port", str(port)],
        url,
        {n: bench.WORK / f"native_{n}.json" for n in bench.ROW_COUNTS},
        env=env,
        metrics_url=murl,
    )
    srv.start()
    try:
        srv.wait_ready()
        bench.wrk(url, srv.bodies[rows], warmup)
        wait_drained(murl, 300.0)
        before = log_counters(murl)
        cpu0 = bench.group_cpu_s(srv.proc.pid)
        stopped = idle_children(srv.proc.pid) if starve else []
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        t0 = time.monotonic()
        series: list[tuple[float, float]] = []
        load = subprocess.Popen(
            [sys.executable, "-c", WRK_CHILD, url, str(srv.bodies[rows]), str(seconds), str(HERE)],
            stdout=subprocess.PIPE,
            text=True,
        )
        while True:
            try:
                load.wait(timeout=POLL_S)  # the counters are read the moment the load ends
                break
            except subprocess.TimeoutExpired:
                series.append((round(time.monotonic() - t0, 1), log_counters(murl)["queued"]))
        end = log_counters(murl)
        cpu1 = bench.group_cpu_s(srv.proc.pid)
        t_end = time.monotonic()
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        res = json.loads(load.stdout.read().strip().splitlines()[-1])
        drained_s, after = wait_drained(murl, 600.0)
        cpu2 = bench.group_cpu_s(srv.proc.pid)
        acked = (res["requests"] - res["errors_non2xx"]) * rows
        res.update(
            tree=name,
            rows=rows,
            starved_pids=stopped,
            queued_end=int(end["queued"]),
            written_in_window=int(end["written"] - before["written"]),
            overflow_in_window=int(end["overflow"] - before["overflow"]),
            dropped_in_window=int(end["dropped"] - before["dropped"]),
            written_total=int(after["written"] - before["written"]),
            overflow_total=int(after["overflow"] - before["overflow"]),
            rows_acked=acked,
            logged_in_window=round((end["written"] - before["written"]) / max(acked, 1), 3),
            drain_s=round(drained_s, 2),
            window_overrun_s=round(t_end - t0 - res["measured_s"], 2),
            rps_incl_drain=round(res["requests"] / (res["measured_s"] + drained_s), 1),
            queue_series=series,
            # CPU of the server's process group (server, log writer, drift worker, ...): in the window,
            # and in the window plus the drain, per request: what a request costs, whatever the noise
            cpu_window_s=round(sum(cpu1.values()) - sum(cpu0.values()), 2),
            cpu_by_pid_window={str(pid): round(cpu1.get(pid, 0) - cpu0.get(pid, 0), 2) for pid in cpu1},
            cpu_drain_s=round(sum(cpu2.values()) - sum(cpu1.values()), 2),
            cpu_ms_per_req=round(1000 * (sum(cpu2.values()) - sum(cpu0.values())) / max(res["requests"], 1), 4),
        )
        return res
    finally:
        srv.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


# wrk in its own process, so the parent keeps polling /metrics meanwhile.
WRK_CHILD = """
import json, pathlib, sys
sys.path.insert(0, sys.argv[4])
import run
print(json.dumps(run.wrk(sys.argv[1], pathlib.Path(sys.argv[2]), float(sys.argv[3]))))
"""


def idle_children(root: int) -> list[int]:
    """Descendants of `root` running at idle CPU priority (SCHED_IDLE, policy 5): the log writer, the
    drift worker, the shadow process."""
    stats = bench.proc_stats()
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(pid)
    out, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        if pid in stats and int(stats[pid][38]) == 5:
            out.append(pid)
    return out


def wait_drained(murl: str, timeout: float) -> tuple[float, dict[str, float]]:
    """Seconds until the log queue is empty (and its counters settle), and the counters then."""
    t0 = time.monotonic()
    c = log_counters(murl)
    while time.monotonic() - t0 < timeout:
        if c["queued"] == 0:
            return time.monotonic() - t0, c
        time.sleep(0.25)
        c = log_counters(murl)
    return time.monotonic() - t0, c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", action="append", default=[], help="NAME=PATH of a checkout to serve (default: this one)")
    ap.add_argument("--rows", default="1,100", help="bodies: rows per request, comma-separated")
    ap.add_argument("--seconds", type=float, default=90.0, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--nolog", action="store_true", help="each tree's benchmarks/serving/driftgate_nolog.py")
    ap.add_argument(
        "--starve", action="store_true", help="stop the idle-priority children for each window (a saturated core)"
    )
    ap.add_argument("--out", type=Path, default=bench.WORK / "sustained.json")
    a = ap.parse_args()
    bench.check_machine()
    os.sched_setaffinity(0, {int(bench.CLIENT_CORE)})
    trees = [(t.split("=", 1)[0], Path(t.split("=", 1)[1])) for t in a.tree] or [("this", bench.ROOT)]
    row_counts = [int(r) for r in a.rows.split(",")]
    bench.prepare_data()
    results: list[dict] = []
    for rnd in range(a.rounds):
        order = trees if rnd % 2 == 0 else list(reversed(trees))
        for rows in row_counts:
            for name, tree in order:
                res = one_run(name, tree, rows, a.seconds, a.warmup, a.nolog, a.starve)
                res["round"] = rnd
                results.append(res)
                a.out.write_text(json.dumps(results, indent=1) + "\n")
                bench.log(
                    f"round {rnd + 1} {name:>6} {rows:>3} rows: {res['rps']:7.0f} req/s p99 {res['p99_ms']:6.1f} ms"
                    f" non2xx {res['errors_non2xx']}; logged in window {res['logged_in_window']:.3f}, queued at end"
                    f" {res['queued_end']}, drain {res['drain_s']} s, incl. drain {res['rps_incl_drain']:.0f} req/s,"
                    f" overflow {res['overflow_in_window']}; CPU {res['cpu_ms_per_req']:.3f} ms/req"
                    f" (window {res['cpu_window_s']} s, drain {res['cpu_drain_s']} s)"
                )
    summarise(results, trees, row_counts)


def summarise(results: list[dict], trees: list[tuple[str, Path]], row_counts: list[int]) -> None:
    """Per round, each tree's req/s over the first tree's (same round, same body): median and range."""
    if len(trees) < 2:
        return
    ref = trees[0][0]
    for rows in row_counts:
        for name, _ in trees[1:]:
            for key in ("rps", "rps_incl_drain", "cpu_ms_per_req"):
                ratios = []
                for rnd in sorted({r["round"] for r in results}):
                    a = [r[key] for r in results if r["round"] == rnd and r["rows"] == rows and r["tree"] == name]
                    b = [r[key] for r in results if r["round"] == rnd and r["rows"] == rows and r["tree"] == ref]
                    if a and b:
                        ratios.append(a[0] / b[0])
                if ratios:
                    bench.log(
                        f"{rows:>3} rows {key:>15} {name}/{ref}: median {statistics.median(ratios):.3f}, "
                        f"range {min(ratios):.3f}-{max(ratios):.3f} ({len(ratios)} rounds)"
                    )


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    main()
