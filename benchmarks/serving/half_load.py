"""Focused run of one target: p99 at half of the bare endpoint's saturation load, within 2 ms of it.

    .venv/bin/python benchmarks/serving/half_load.py               # 8 alternating rounds of 20 s, ~10 min
    .venv/bin/python benchmarks/serving/half_load.py --rounds 3 --seconds 5   # smoke test

`run.py` gives this target three rounds beside everything else, and one stall of the shared machine
moves a p99 by several ms (its per-round differences spread over ±4 ms). This run takes only the three
servers the target involves (bare, driftgate with logging on, driftgate with logging off), the same
setup, pinning and open-loop client (`fixed_rate.py`) as `run.py`, and many more alternating rounds,
then reports the per-round differences, their median and how many rounds met the target.

Each run also keeps its per-request trace (`benchmarks/.data/serving/half/*.txt`) and the slow requests
are summarised: how many of them came in clusters (a stall of the machine, or periodic work on the
server, delays several consecutive requests) and how many alone. It also reads each server's CPU per request from
`/proc` (the server process, and its helper processes: driftgate's log writer, monitor and shadow
children, which share the server's core): the headroom a slow spell of the machine eats into.
Results go to benchmarks/serving/half_load.json and the `serving-half` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from run import (  # the same servers, data, pinning and client as the full benchmark
    CLIENT_CORE,
    DOC,
    HERE,
    ROOT,
    WORK,
    alone,
    build_servers,
    check_machine,
    fixed_rate,
    group_cpu_s,
    log,
    prepare_data,
    register_driftgate,
    write_doc,
    wrk,
)

RESULTS = HERE / "half_load.json"  # {"runs": [...]}, newest last: one run alone says little on this machine
KEEP_RUNS = 4
TRACES = WORK / "half"
SERVERS = ("bare", "driftgate", "driftgate_nolog")
TARGET_MS = 2.0


def cpu_per_request(before: dict[int, float], after: dict[int, float], leader: int, requests: int) -> dict:
    """CPU ms per request sent (warm-up included) of the server process itself and of its helper
    processes (driftgate's log writer, monitor and shadow children), from two `group_cpu_s` readings."""
    used = {pid: after[pid] - before.get(pid, 0.0) for pid in after}
    helpers = sum(v for pid, v in used.items() if pid != leader)
    return {"server": round(used.get(leader, 0.0) * 1000 / requests, 3), "helpers": round(helpers * 1000 / requests, 3)}


def slow_requests(trace: Path, threshold_ms: float) -> dict:
    """Requests slower than `threshold_ms`, split into those with a slow neighbour (sent one interval
    before or after: a stall that held several requests) and lone ones."""
    rows = [tuple(map(float, line.split())) for line in trace.read_text().splitlines() if line.strip()]
    slow = [i for i, (_, ms) in enumerate(rows) if ms > threshold_ms]
    marked = set(slow)
    clustered = sum(1 for i in slow if i - 1 in marked or i + 1 in marked)
    return {"slow": len(slow), "clustered": clustered, "alone": len(slow) - clustered, "of": len(rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--rows", type=int, default=1, choices=(1, 100))
    ap.add_argument("--no-doc", action="store_true", help="do not rewrite docs/benchmarks.md")
    ap.add_argument("--doc-only", action="store_true", help="rewrite the docs section from half_load.json; run nothing")
    a = ap.parse_args()
    if a.doc_only:
        write_doc(history_markdown(load_runs()), "serving-half")
        log(f"updated {DOC.relative_to(ROOT)}")
        return
    check_machine()
    os.sched_setaffinity(0, {int(CLIENT_CORE)})
    started = time.time()
    paths = prepare_data()
    data_dir = register_driftgate(paths["csv"])
    servers = [s for s in build_servers(paths, data_dir, {"mlserver", "bentoml", "driftgate_batch"}, {})]
    servers = [s for s in servers if s.name in SERVERS]
    TRACES.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict]] = {s.name: [] for s in servers}
    try:
        for srv in servers:
            srv.start()
            srv.wait_ready()
        bare = servers[0]
        # The rate: half of the bare endpoint's saturation, measured as in run.py.
        with alone(bare, servers):
            wrk(bare.url, bare.bodies[a.rows], a.warmup)
            sat = wrk(bare.url, bare.bodies[a.rows], 8.0)
        rate = sat["rps"] / 2
        log(f"bare saturation {sat['rps']:.0f} req/s at {a.rows} row(s): fixed rate {rate:.0f} req/s")
        for rnd in range(a.rounds):
            order = servers if rnd % 2 == 0 else list(reversed(servers))
            for srv in order:
                trace = TRACES / f"{srv.name}_{a.rows}_{rnd}.txt"
                with alone(srv, servers):
                    before = group_cpu_s(srv.proc.pid)
                    res = fixed_rate(srv.url, srv.bodies[a.rows], rate, a.seconds, a.warmup, trace)
                    # Read before the drain: what a run's traffic cost while it ran.
                    used = group_cpu_s(srv.proc.pid)
                    res["cpu_ms_per_request"] = cpu_per_request(before, used, srv.proc.pid, res["sent"])
                    srv.drain_log(res)
                res["round"] = rnd
                res["trace"] = str(trace.relative_to(ROOT))
                runs[srv.name].append(res)
                log(
                    f"round {rnd + 1}/{a.rounds} {srv.name:>16}: p50 {res['p50_ms']:6.2f} ms  p90 "
                    f"{res['p90_ms']:6.2f} ms  p99 {res['p99_ms']:6.2f} ms  late sends {res['late_sends']}"
                )
    finally:
        for srv in servers:
            srv.stop()

    # Slow = over the bare endpoint's median p99 plus the target: the requests that make a miss.
    bare_p99 = statistics.median(r["p99_ms"] for r in runs["bare"])
    for rs in runs.values():
        for r in rs:
            r["slow"] = slow_requests(ROOT / r["trace"], bare_p99 + TARGET_MS)
    diffs = {
        name: [round(x["p99_ms"] - b["p99_ms"], 3) for x, b in zip(runs[name], runs["bare"], strict=True)]
        for name in ("driftgate", "driftgate_nolog")
    }
    doc = {
        "command": "python benchmarks/serving/half_load.py"
        + (f" --rounds {a.rounds}" if a.rounds != 8 else "")
        + (f" --seconds {a.seconds:g}" if a.seconds != 20 else "")
        + (f" --rows {a.rows}" if a.rows != 1 else ""),
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "rows": a.rows,
        "rate_rps": round(rate, 1),
        "bare_saturation_rps": sat["rps"],
        "rounds": a.rounds,
        "measured_s": a.seconds,
        "runs": runs,
        "p99_minus_bare_ms": {
            name: {
                "per_round": ds,
                "median": round(statistics.median(ds), 3),
                "rounds_within_target": sum(d <= TARGET_MS for d in ds),
            }
            for name, ds in diffs.items()
        },
        "wall_s": round(time.time() - started),
    }
    runs_kept = [*load_runs(), doc][-KEEP_RUNS:]
    RESULTS.write_text(json.dumps({"runs": runs_kept}, indent=1) + "\n")
    md = history_markdown(runs_kept)
    print(md)
    if not a.no_doc:
        write_doc(md, "serving-half")
        log(f"updated {DOC.relative_to(ROOT)}")


def load_runs() -> list[dict]:
    if not RESULTS.exists():
        return []
    saved = json.loads(RESULTS.read_text())
    return saved["runs"] if "runs" in saved and isinstance(saved["runs"], list) else [saved]


def history_markdown(runs: list[dict]) -> str:
    """Every kept run, newest first, with a line per run on the target."""
    lines = [
        "| run | rate req/s | logging on minus bare, median p99 ms | rounds within 2 ms | target |",
        "|---|---|---|---|---|",
    ]
    for doc in reversed(runs):
        d = doc["p99_minus_bare_ms"]["driftgate"]
        verdict = "met" if d["median"] <= TARGET_MS else "missed"
        lines.append(
            f"| {doc['when']} | {doc['rate_rps']:.0f} | {d['median']:+.2f} | {d['rounds_within_target']} of "
            f"{doc['rounds']} | {verdict} |"
        )
    sections = [f"#### Run of {doc['when']}\n\n" + markdown(doc) for doc in reversed(runs)]
    return "\n".join(lines) + "\n\n" + "\n\n".join(sections)


def markdown(doc: dict) -> str:
    runs = doc["runs"]
    rounds = doc["rounds"]
    lines = [
        f"Command: `{doc['command']}` (run {doc['when']}; {doc['wall_s']} s in all). {doc['rows']}-row bodies at "
        f"{doc['rate_rps']:.0f} req/s, half of the bare endpoint's saturation ({doc['bare_saturation_rps']:.0f} "
        f"req/s, measured first with `wrk -t1 -c16`); {rounds} alternating rounds of {doc['measured_s']:g} s per "
        "server, servers on core 0, `fixed_rate.py` on core 1, the others stopped (SIGSTOP) during each run.",
        "",
        "| server | p50 ms per round | p99 ms per round | median p99 ms |",
        "|---|---|---|---|",
    ]
    for name, rs in runs.items():
        p50s = ", ".join(f"{r['p50_ms']:.1f}" for r in rs)
        p99s = ", ".join(f"{r['p99_ms']:.1f}" for r in rs)
        lines.append(f"| {name} | {p50s} | {p99s} | {statistics.median(r['p99_ms'] for r in rs):.2f} |")
    lines += [
        "",
        "| p99 minus bare, same round | per round ms | median ms | rounds within 2 ms | target |",
        "|---|---|---|---|---|",
    ]
    for name, d in doc["p99_minus_bare_ms"].items():
        target = f"<= {TARGET_MS:g} ms (median): {'met' if d['median'] <= TARGET_MS else 'missed'}"
        lines.append(
            f"| {name} | {', '.join(f'{x:+.1f}' for x in d['per_round'])} | {d['median']:+.2f} "
            f"| {d['rounds_within_target']} of {rounds} | {target if name == 'driftgate' else '-'} |"
        )
    bare_p99 = statistics.median(r["p99_ms"] for r in runs["bare"])
    lines += [
        "",
        f"Slow requests (over the bare endpoint's median p99 + 2 ms = {bare_p99 + TARGET_MS:.1f} ms), summed over "
        "rounds: *clustered* ones have a slow neighbour (the request sent just before or after was slow too: "
        "a stall that held several), *alone* ones do not.",
        "",
        "| server | requests | slow | clustered | alone |",
        "|---|---|---|---|---|",
    ]
    for name, rs in runs.items():
        tot = {k: sum(r["slow"][k] for r in rs) for k in ("of", "slow", "clustered", "alone")}
        lines.append(f"| {name} | {tot['of']:,} | {tot['slow']} | {tot['clustered']} | {tot['alone']} |")
    if all("cpu_ms_per_request" in r for rs in runs.values() for r in rs):
        lines += [
            "",
            "CPU per request (ms, median over rounds, warm-up requests included): the server process, and its "
            "helper processes (driftgate's idle-priority log writer, monitor and shadow children) on the same core. "
            "Less CPU per request is more headroom before a slow spell of the machine saturates the core.",
            "",
            "| server | server process | helper processes | total |",
            "|---|---|---|---|",
        ]
        for name, rs in runs.items():
            own = statistics.median(r["cpu_ms_per_request"]["server"] for r in rs)
            helpers = statistics.median(r["cpu_ms_per_request"]["helpers"] for r in rs)
            lines.append(f"| {name} | {own:.2f} | {helpers:.2f} | {own + helpers:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
