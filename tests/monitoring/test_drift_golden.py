"""Pinned drift answers: reports, profiles and sketches on seeded data, recorded before the engine was
optimised (tests/monitoring/data/drift_golden.json). Any speed-up must reproduce them: integers and
strings exactly, floats to 1e-9 relative.

Regenerate (only when an answer is meant to change, and say why in the commit):
    .venv/bin/python -m tests.monitoring.test_drift_golden
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from driftgate.monitoring.drift import ReferenceProfile, compare_frames
from driftgate.monitoring.files import profile_file, report_files, sketch_file

GOLDEN = Path(__file__).parent / "data" / "drift_golden.json"
BATCH_ROWS = 4_096


def frame(seed: int, rows: int, shifted: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    num_a = rng.normal(0.4 if shifted else 0.0, 1.0, rows)
    num_a[rng.random(rows) < (0.03 if shifted else 0.01)] = np.nan
    levels = np.array([f"v{i}" for i in range(6)] + (["new"] if shifted else []))
    p = np.full(levels.size, 1 / levels.size)
    cat = rng.choice(levels, rows, p=p).astype(object)
    cat[rng.random(rows) < 0.02] = None
    return pd.DataFrame(
        {
            "num_a": num_a,
            "num_b": rng.lognormal(0.0, 1.5 if shifted else 1.0, rows),
            "num_int": rng.integers(0, 50, rows),
            "num_ties": np.round(rng.normal(0, 1, rows), 1),
            "cat": cat,
            "cat_many": np.array([f"k{i}" for i in rng.zipf(1.6, rows) % 400]),
            "flag": rng.random(rows) < (0.6 if shifted else 0.5),
        }
    )


def cases(folder: Path) -> dict[str, Any]:
    ref, cur = frame(0, 30_000, False), frame(1, 20_000, True)
    paths = {}
    for name, data in (("ref", ref), ("cur", cur)):
        paths[name] = folder / f"{name}.parquet"
        data.to_parquet(paths[name], row_group_size=5_000)
        data.to_csv(folder / f"{name}.csv", index=False)
    out: dict[str, Any] = {}
    out["report_parquet"] = report_files(paths["ref"], paths["cur"], batch_rows=BATCH_ROWS).to_dict(True)
    out["report_csv"] = report_files(folder / "ref.csv", folder / "cur.csv", batch_rows=BATCH_ROWS).to_dict()
    profile = profile_file(paths["ref"], sample_rows=100, edge_sample_rows=5_000, batch_rows=BATCH_ROWS)
    out["profile_sampled_edges"] = profile.to_dict()
    sketch, sample, kept = sketch_file(
        profile, paths["cur"], sample_rows=50, keep_columns=["num_a", "cat"], batch_rows=BATCH_ROWS
    )
    out["current_sketch"] = sketch.to_dict()
    out["current_sample"] = {name: [str(v) for v in values] for name, values in sample.items()}
    out["kept"] = {name: [str(v) for v in values[:20]] for name, values in kept.items()}
    out["compare_frames_pandas"] = compare_frames(ref, cur).to_dict()
    as_dict = {name: ref[name].to_numpy() for name in ref.columns}
    out["compare_frames_dict"] = compare_frames(
        as_dict, {name: cur[name].to_numpy() for name in cur.columns}, n_bins=20, multivariate=False
    ).to_dict()
    fitted = ReferenceProfile.fit(as_dict, {"num_int": "categorical"}, n_bins=30, max_levels=50, sample_rows=100)
    out["fit_profile"] = fitted.to_dict()
    out["fit_sketch"] = fitted.sketch(cur).to_dict()
    return json.loads(json.dumps(out, default=str))


def assert_close(actual: Any, expected: Any, where: str = "") -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), where
        for key in expected:
            assert_close(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_close(a, e, f"{where}[{i}]")
    elif isinstance(expected, float) and not isinstance(actual, bool):
        assert isinstance(actual, int | float), where
        assert math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12), f"{where}: {actual} != {expected}"
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def test_answers_match_the_pinned_golden(tmp_path: Path) -> None:
    assert_close(cases(tmp_path), json.loads(GOLDEN.read_text()))


@pytest.mark.parametrize("spill_bytes", [0, 400_000])
def test_profile_without_or_with_a_full_spill_is_the_same(tmp_path: Path, spill_bytes: int) -> None:
    # 0: the numeric columns are read twice; 400 kB: the spill fills up after three batches and is dropped.
    cases(tmp_path)  # writes the files
    golden = json.loads(GOLDEN.read_text())["profile_sampled_edges"]
    profile = profile_file(
        tmp_path / "ref.parquet",
        sample_rows=100,
        edge_sample_rows=5_000,
        batch_rows=BATCH_ROWS,
        spill_bytes=spill_bytes,
    )
    assert_close(json.loads(json.dumps(profile.to_dict(), default=str)), golden)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(cases(Path(folder)), indent=None, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size:,} bytes)")
