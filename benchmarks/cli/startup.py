"""CLI start-up time: `driftgate --help`, `driftgate models list`, `driftgate token list`, N runs each.

Reports the median wall time and the median CPU time (user + system) of each command as a whole process;
CPU time moves less than wall time on a shared, loaded machine. `--source DIR` runs another driftgate
tree (e.g. `git archive <commit> driftgate | tar -x -C DIR`) with the same interpreter, for before/after
in one run. Each command runs against a fresh, already-migrated SQLite data directory.

    .venv/bin/python benchmarks/cli/startup.py --runs 10 [--source /tmp/base]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = (["--help"], ["models", "list"], ["token", "list"], ["alerts", "rules", "list"])
RUN = "import sys; sys.argv[0] = 'driftgate'; from driftgate.cli import main; main()"


def run_once(args: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    # cwd: `python -c` puts it first on sys.path, and a checkout's own driftgate/ would shadow --source.
    done = subprocess.run(
        [sys.executable, "-c", RUN, *args], env=env, cwd=tempfile.gettempdir(), capture_output=True, check=False
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode


def bare_interpreter(runs: int) -> str:
    """`python -c pass` as a reference row: on a loaded machine every figure grows with it."""
    samples = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        samples.append((wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)))
    walls, cpus = [w for w, _ in samples], [c for _, c in samples]
    return (
        f"| python -c pass (reference) | {statistics.median(walls):.2f} | {statistics.median(cpus):.2f} | "
        f"{min(walls):.2f} | {max(walls):.2f} |"
    )


def measure(label: str, source: str | None, runs: int, data_dir: Path) -> None:
    env = dict(os.environ, COLUMNS="80")
    if source:
        env["PYTHONPATH"] = source  # ahead of the editable install's finder
    where = subprocess.run(
        [sys.executable, "-c", "import driftgate, os; print(os.path.dirname(driftgate.__file__))"],
        env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    print(f"## {label} (driftgate from {where})")
    print("| command | median wall s | median CPU s | min wall s | max wall s |")
    print("|---|---|---|---|---|")
    print(bare_interpreter(runs))
    for command in COMMANDS:
        args = command if command == ["--help"] else [*command, "--data-dir", str(data_dir)]
        if args != ["--help"] and not _supported(args, env):
            print(f"| driftgate {' '.join(command)} | (no such command) | | | |")
            continue
        run_once(args, env)  # warm the page cache and __pycache__
        samples = [run_once(args, env) for _ in range(runs)]
        failed = [code for _, _, code in samples if code != 0]
        walls = [w for w, _, _ in samples]
        cpus = [c for _, c, _ in samples]
        note = f" (exit {failed[0]})" if failed else ""
        print(
            f"| driftgate {' '.join(command)}{note} | {statistics.median(walls):.2f} | "
            f"{statistics.median(cpus):.2f} | {min(walls):.2f} | {max(walls):.2f} |"
        )
    print()


def _supported(args: list[str], env: dict[str, str]) -> bool:
    return run_once(args, env)[2] == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--source", help="Another driftgate tree to measure first (the baseline).")
    options = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; CPUs: {os.cpu_count()}\n")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        if options.source:
            measure("baseline", options.source, options.runs, data_dir)
        measure("this tree", None, options.runs, data_dir)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
