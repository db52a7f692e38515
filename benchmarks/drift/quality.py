"""Detection quality in the spirit of "Failing Loudly" (Rabanser et al. 2019): detection rate versus
shift size and sample size, and the false-alarm rate on no-drift pairs, for driftgate's defaults and
for Evidently-style defaults emulated with scipy (normed Wasserstein / Jensen-Shannon at 0.1 above
1,000 rows; KS / chi-square p < 0.05 below; no correction; a column drifted counts as an alarm).

    .venv/bin/python benchmarks/drift/quality.py [--repeats 20]

Data: 10 numeric N(0, 1) columns + 2 categorical (5 levels); the shift moves the first numeric
column's mean by `shift` sd (a dataset alarm is any flagged column).
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

from driftgate.monitoring.drift import compare_frames

LEVELS = np.array(list("abcde"), dtype=object)
SIZES = (10, 100, 1_000, 10_000)
SHIFTS = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0)


def table(rng: np.random.Generator, n: int, shift: float) -> dict[str, np.ndarray]:
    columns = {f"x{i}": rng.normal(shift if i == 0 else 0.0, 1, n) for i in range(10)}
    for i in range(2):
        columns[f"c{i}"] = rng.choice(LEVELS, n)
    return columns


def evidently_style(reference: dict[str, np.ndarray], current: dict[str, np.ndarray]) -> bool:
    large = len(next(iter(reference.values()))) > 1_000
    for name, ref in reference.items():
        cur = current[name]
        if ref.dtype.kind == "f":
            if large:
                drifted = stats.wasserstein_distance(ref, cur) / max(np.std(ref), 1e-12) >= 0.1
            else:
                drifted = stats.ks_2samp(ref, cur).pvalue < 0.05
        else:
            ref_counts = np.array([np.sum(ref == level) for level in LEVELS], dtype=float)
            cur_counts = np.array([np.sum(cur == level) for level in LEVELS], dtype=float)
            if large:
                drifted = jensenshannon(ref_counts, cur_counts) >= 0.1
            else:
                keep = (ref_counts + cur_counts) > 0
                drifted = stats.chi2_contingency(np.array([ref_counts[keep], cur_counts[keep]])).pvalue < 0.05
        if drifted:
            return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    lines = ["| rows per side | shift (sd) | driftgate alarm rate | Evidently-style alarm rate |", "|---|---|---|---|"]
    for n in SIZES:
        for shift in SHIFTS:
            ours = theirs = 0
            for seed in range(args.repeats):
                rng = np.random.default_rng(seed)
                reference, current = table(rng, n, 0.0), table(rng, n, shift)
                ours += compare_frames(reference, current, multivariate=False).dataset.drifted
                theirs += evidently_style(reference, current)
            lines.append(f"| {n:,} | {shift} | {ours / args.repeats:.2f} | {theirs / args.repeats:.2f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
