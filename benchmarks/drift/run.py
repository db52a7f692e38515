"""Drift engine benchmark: driftgate vs Evidently vs NannyML on the same files, and streaming detectors
vs River, each tool in its own process (wall time and peak RSS via os.wait4).

    .venv/bin/python benchmarks/drift/run.py --rows 100000          # quick
    .venv/bin/python benchmarks/drift/run.py --rows 1000000         # the PEERS.md case (minutes)

Creates benchmarks/.data/ (Parquet + CSV) and peer virtualenvs in benchmarks/.venvs/ with pip.
Prints a Markdown table; `--write-docs` puts it between the drift markers of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA, VENVS = ROOT / "benchmarks" / ".data", ROOT / "benchmarks" / ".venvs"
PEERS = {
    "evidently": ["evidently==0.7.*", "pandas<3", "pyarrow"],
    "nannyml": ["nannyml==0.13.*", "pandas<3", "statsmodels", "pyarrow"],
    "river": ["river==0.26.*", "numpy"],
}
SHIFTED = {"num_0": "mean +0.5 sd", "num_1": "sd x1.5", "cat_0": "mix change"}

EVIDENTLY = """
import sys, pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
ref, cur = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
result = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref).dict()
print(sum(1 for m in result["metrics"] if "ValueDrift" in str(m.get("metric_id", "")) and m["value"] >= 0.1))
"""
NANNYML = """
import os, sys, pandas as pd
os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"
import nannyml as nml
ref, cur = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
calc = nml.UnivariateDriftCalculator(column_names=list(ref.columns), chunk_number=10,
    continuous_methods=["kolmogorov_smirnov", "jensen_shannon"], categorical_methods=["chi2", "jensen_shannon"])
calc.fit(ref)
print(len(calc.calculate(cur).to_df()))
"""
RIVER = """
import sys, time, numpy as np
from river import drift
stream = np.load(sys.argv[1]).tolist()
errors = np.load(sys.argv[2]).tolist()
out = {}
for name, make, data in (("ADWIN", drift.ADWIN, stream), ("PageHinkley", drift.PageHinkley, stream),
                         ("DDM", drift.binary.DDM, errors)):
    detector, hits, start = make(), [], time.perf_counter()
    for i, x in enumerate(data):
        detector.update(x)
        if detector.drift_detected:
            hits.append(i)
    out[name] = (hits, len(data) / (time.perf_counter() - start))
print(__import__("json").dumps(out))
"""
OURS_DETECTORS = """
import sys, time, json, numpy as np
from driftgate.monitoring.detectors import ADWIN, DDM, PageHinkley
stream, errors = np.load(sys.argv[1]), np.load(sys.argv[2])
batched, looped = {}, {}
for name, make, data in (("ADWIN", ADWIN, stream), ("PageHinkley", PageHinkley, stream), ("DDM", DDM, errors),
                         ("PageHinkley (threshold 18: River's delay)", lambda: PageHinkley(threshold=18), stream)):
    start = time.perf_counter()
    hits = make().update_many(data).tolist()
    batched[name] = (hits, len(data) / (time.perf_counter() - start))
for name, make, data in (("ADWIN", ADWIN, stream.tolist()), ("PageHinkley", PageHinkley, stream.tolist()),
                         ("DDM", DDM, errors.tolist())):
    detector, hits, start = make(), [], time.perf_counter()
    for i, x in enumerate(data):  # the same loop as River's
        detector.update(x)
        if detector.drift_detected:
            hits.append(i)
    looped[name] = (hits, len(data) / (time.perf_counter() - start))
print(json.dumps({"update_many": batched, "update": looped}))
"""


def ensure_venv(name: str) -> Path:
    python = VENVS / name / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENVS / name)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEERS[name]], check=True)
    return python


def make_data(rows: int) -> tuple[Path, Path]:
    """20 numeric + 5 categorical columns; three columns shifted in the current file."""
    import pandas as pd

    ref_path, cur_path = DATA / f"ref_{rows}.parquet", DATA / f"cur_{rows}.parquet"
    if ref_path.exists() and cur_path.exists():
        return ref_path, cur_path
    DATA.mkdir(parents=True, exist_ok=True)
    for path, seed, shifted in ((ref_path, 0, False), (cur_path, 1, True)):
        rng = np.random.default_rng(seed)
        columns = {f"num_{i}": rng.normal(0, 1, rows) for i in range(20)}
        if shifted:
            columns["num_0"] += 0.5
            columns["num_1"] *= 1.5
        levels = np.array([f"v{i}" for i in range(8)])
        mix = np.full(8, 1 / 8)
        for i in range(5):
            p = np.array([0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05]) if shifted and i == 0 else mix
            columns[f"cat_{i}"] = rng.choice(levels, rows, p=p)
        frame = pd.DataFrame(columns)
        frame.to_parquet(path, row_group_size=65_536)  # streamable: readers hold one row group
        frame.to_csv(path.with_suffix(".csv"), index=False)
    return ref_path, cur_path


def measure(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB, stdout of one child process."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}, cwd=ROOT
    )
    stdout, stderr = process.communicate()
    _, _, usage = os.wait4(process.pid, 0) if process.returncode is None else (0, 0, None)
    wall = time.perf_counter() - start
    if process.returncode:
        raise RuntimeError(f"{command[:3]} failed: {stderr[-2000:]}")
    peak = usage.ru_maxrss / 1024 if usage else _peak_from_time(command)
    return wall, peak, stdout


def _peak_from_time(command: list[str]) -> float:
    return float("nan")


def run_tracked(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Like `measure` but reaps the child with wait4 itself, so that its own peak RSS is known."""
    start = time.perf_counter()
    with open(os.devnull, "w") as devnull, open(DATA / "stdout.txt", "w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=devnull, env={**os.environ, **(env or {})}, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if process.returncode:
        raise RuntimeError(f"{' '.join(command[:4])} exited with {process.returncode}")
    return wall, usage.ru_maxrss / 1024, (DATA / "stdout.txt").read_text()


def detectors_table() -> list[str]:
    rng = np.random.default_rng(0)
    stream = np.concatenate([rng.normal(0, 1, 500_000), rng.normal(0.5, 1, 500_000)])
    errors = np.concatenate([rng.random(500_000) < 0.1, rng.random(500_000) < 0.2]).astype(np.float64)
    np.save(DATA / "stream.npy", stream)
    np.save(DATA / "errors.npy", errors)
    river = json.loads(
        run_tracked([str(ensure_venv("river")), "-c", RIVER, str(DATA / "stream.npy"), str(DATA / "errors.npy")])[2]
    )
    ours = json.loads(
        run_tracked([sys.executable, "-c", OURS_DETECTORS, str(DATA / "stream.npy"), str(DATA / "errors.npy")])[2]
    )
    lines = ["| detector | tool | updates/s | delay | false alarms before the shift |", "|---|---|---|---|---|"]
    tools = (
        ("River 0.26 `update` loop", river),
        ("driftgate `update` loop", ours["update"]),
        ("driftgate `update_many`", ours["update_many"]),
    )
    for tool, results in tools:
        for name, (hits, rate) in results.items():
            after = [h for h in hits if h >= 500_000]
            delay = after[0] - 500_000 if after else "none"
            lines.append(f"| {name} | {tool} | {rate / 1e6:.1f}M | {delay} | {len([h for h in hits if h < 500_000])} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="also run the driftgate package found in DIR (e.g. `git archive main driftgate | tar -x -C DIR`), "
        "for before/after numbers in the same run",
    )
    args = parser.parse_args()
    ref, cur = make_data(args.rows)
    # `report_files` is exactly what `driftgate drift report` runs; calling it directly leaves out the
    # import of the rest of the CLI package (server, store), which is not drift work.
    ours = (
        "import sys, json; from driftgate.monitoring.files import report_files; "
        "print(json.dumps(report_files(sys.argv[1], sys.argv[2]).to_dict()))"
    )
    tools = [("driftgate (streaming sketches)", [sys.executable, "-c", ours, str(ref), str(cur)], None)]
    if args.baseline:
        # The editable install's finder would shadow DIR: drop it, put DIR first.
        pinned = (
            "import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in str(f)]; "
            f"sys.path.insert(0, {str(Path(args.baseline).resolve())!r}); "
        )
        tools.append(
            ("driftgate baseline (--baseline)", [sys.executable, "-c", pinned + ours, str(ref), str(cur)], None)
        )
    if not args.skip_peers:
        tools += [
            (
                "Evidently 0.7 DataDriftPreset",
                [str(ensure_venv("evidently")), "-c", EVIDENTLY, str(ref), str(cur)],
                None,
            ),
            (
                "NannyML 0.13 UnivariateDriftCalculator",
                [str(ensure_venv("nannyml")), "-c", NANNYML, str(ref), str(cur)],
                {"NML_DISABLE_USAGE_LOGGING": "1"},
            ),
        ]
    results = {}
    for name, command, env in tools:  # one at a time: the machine has two cores
        results[name] = run_tracked(command, env)
        print(f"{name}: {results[name][0]:.1f} s, {results[name][1]:.0f} MB", flush=True)
    ours_wall, ours_rss, ours_out = results[tools[0][0]]
    drifted = [f["name"] for f in json.loads(ours_out)["features"] if f["drifted"]]
    lines = [
        f"### {args.rows:,} reference rows vs {args.rows:,} current rows, 20 numeric + 5 categorical columns",
        "",
        "| tool | whole process s | peak RSS MB | time ratio | memory ratio |",
        "|---|---|---|---|---|",
    ]
    for name, (wall, rss, _) in results.items():
        lines.append(f"| {name} | {wall:.1f} | {rss:.0f} | {wall / ours_wall:.1f}x | {rss / ours_rss:.1f}x |")
    lines += ["", f"driftgate flagged {drifted} (shifted: {SHIFTED}).", ""]
    lines += ["### Streaming detectors, 1M values (mean +0.5 sd at 500,000; DDM error rate 0.10 -> 0.20)", ""]
    lines += detectors_table()
    print("\n".join(lines))
    (DATA / f"results_{args.rows}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
