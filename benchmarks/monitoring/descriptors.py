"""Cost of the input descriptors per row (text, images, audio) and of one MMD embedding-drift test.

    .venv/bin/python benchmarks/monitoring/descriptors.py [--repeats 3] [--json results.json]

Each case is timed `repeats` times and the fastest run is kept (the machine is shared: the minimum is
the least disturbed). Inputs are generated, seeded: texts of ~12 Zipf-distributed tokens, scikit-learn's
8x8 digit images (tiled), uint8 grey 28x28 and RGB 224x224 images, and float clips at 16 kHz.
Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.datasets import load_digits

from driftgate.monitoring.descriptors import TextDescriber, describe_audio, describe_images
from driftgate.monitoring.drift.mmd import MMDReference, mmd_test


def _texts(rng: np.random.Generator, n: int) -> list[str]:
    words = np.array([f"word{i}" for i in range(5000)])
    weights = 1.0 / np.arange(1, words.size + 1)
    lengths = rng.poisson(12, n)
    tokens = rng.choice(words, int(lengths.sum()), p=weights / weights.sum())
    return [" ".join(t).capitalize() + "." for t in np.split(tokens, np.cumsum(lengths)[:-1])]


def _best(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def cases(rng: np.random.Generator) -> list[tuple[str, int, Callable[[], object]]]:
    """(name, rows, the call to time)."""
    describer = TextDescriber.fit(_texts(rng, 20_000))
    texts = _texts(rng, 20_000)
    digits = np.tile(load_digits().images, (12, 1, 1))[:20_000]
    grey = rng.integers(0, 256, (10_000, 28, 28), dtype=np.uint8)
    colour = rng.integers(0, 256, (200, 224, 224, 3), dtype=np.uint8)
    clips = [np.clip(rng.normal(0, 0.2, int(rng.uniform(0.8, 1.2) * 16_000)), -1, 1) for _ in range(1000)]
    reference_rows, current_rows = rng.normal(size=(500, 64)), rng.normal(0.05, 1.0, size=(500, 64))
    big_reference, big_current = rng.random((2000, 28, 28)), rng.random((2000, 28, 28))

    def mmd_64() -> None:
        mmd_test(MMDReference.fit(reference_rows), current_rows, n_permutations=500)

    def mmd_784() -> None:
        mmd_test(MMDReference.fit(big_reference), big_current, n_permutations=500)

    return [
        ("text, ~12 tokens (~70 chars)", len(texts), lambda: describer.describe(texts)),
        ("image, 8x8 grey float (digits)", len(digits), lambda: describe_images(digits, max_value=16)),
        ("image, 28x28 grey uint8", len(grey), lambda: describe_images(grey)),
        ("image, 224x224 RGB uint8", len(colour), lambda: describe_images(colour)),
        ("audio, ~1 s at 16 kHz float64", len(clips), lambda: describe_audio(clips, 16_000)),
        ("MMD test, 500 + 500 rows, d = 64 -> 32, 500 permutations", 1, mmd_64),
        ("MMD test, 2,000 + 2,000 rows of 28x28 -> 500 + 500, d = 784 -> 32, 500 perm.", 1, mmd_784),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    results: list[dict[str, Any]] = []
    for name, rows, run in cases(rng):
        seconds = _best(run, args.repeats)
        results.append({"case": name, "rows": rows, "seconds": seconds, "us_per_row": seconds / rows * 1e6})
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"| case | rows | best of {args.repeats} (s) | per row |")
    print("| --- | ---: | ---: | ---: |")
    for r in results:
        per_row = f"{r['us_per_row']:.1f} µs" if r["rows"] > 1 else "-"
        print(f"| {r['case']} | {r['rows']:,} | {r['seconds']:.3f} | {per_row} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
