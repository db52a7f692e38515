"""List columns (one tensor a row) in the offline report (`driftgate drift report` -> `report_files`):
tested by the MMD embedding test over the files' streamed reservoirs, in the report's Holm family.
Before, a list column made the report fail (Arrow has no value_counts for lists)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from driftgate.monitoring.drift import holm
from driftgate.monitoring.files import report_files
from driftgate.monitoring.files.tensors import rows_of
from driftgate.monitoring.report_html import render_html


def _write(path: Path, seed: int, rows: int, shift: float = 0.0, nested: bool = True) -> Path:
    rng = np.random.default_rng(seed)
    tensors = rng.normal(shift, 1.0, (rows, 4, 8))
    cells = [t.tolist() if nested else t.reshape(-1).tolist() for t in tensors]
    pd.DataFrame({"x": rng.normal(size=rows), "embedding": cells}).to_parquet(path)
    return path


def test_a_list_column_is_tested_by_mmd_in_the_family(tmp_path: Path) -> None:
    reference = _write(tmp_path / "ref.parquet", 1, 400)
    calm = report_files(reference, _write(tmp_path / "calm.parquet", 2, 300), batch_rows=64)
    moved = report_files(reference, _write(tmp_path / "moved.parquet", 3, 300, shift=0.3, nested=False))
    for report in (calm, moved):
        embedding = report.feature("embedding")
        assert embedding.kind == "tensor" and embedding.distribution.effect == "mmd"
        assert embedding.n_reference == 400 and embedding.n_current == 300
        family = [t for f in report.features for t in f.subtests]
        family += report.multivariate.subtests if report.multivariate else []
        assert [t.p_value_adjusted for t in family] == pytest.approx(holm([t.p_value for t in family]))
    assert not calm.dataset.drifted and moved.drifted_features == ["embedding"]
    assert calm.dataset.n_features == 2
    page = render_html(moved)
    assert "embedding" in page and "http" not in page


def test_batches_merge_into_the_same_sample(tmp_path: Path) -> None:
    # A file of fewer rows than a reservoir holds: every row is kept, whatever the batches.
    reference = _write(tmp_path / "ref.parquet", 4, 200)
    current = _write(tmp_path / "cur.parquet", 5, 150, shift=0.2)
    one = report_files(reference, current).feature("embedding")
    many = report_files(reference, current, batch_rows=32).feature("embedding")
    assert many.n_current == one.n_current == 150
    assert many.statistics["mmd2"] == pytest.approx(one.statistics["mmd2"], rel=1e-9)


def test_rows_of_flattens_nested_cells_and_leaves_out_odd_ones() -> None:
    cells = [[[1.0, 2.0], [3.0, 4.0]], None, [[1.0, 2.0]], [[1.0, None], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]]
    column = pa.array(cells)
    rows, left_out = rows_of(column)
    assert rows.tolist() == [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]] and left_out == 3
