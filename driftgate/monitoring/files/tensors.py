"""Tensor columns of a file (Arrow lists, one tensor a row) in the offline report: the MMD test.

A file tells no media (image, audio) nor, for a string column, text from a category: without a
schema, a list column is a generic tensor, tested by the embedding test of `drift.mmd` alone (no
descriptors), and a string column stays categorical. Each file is streamed once more, reading only
its list columns, into mergeable reservoirs (`mmd.Reservoir`): at most `MAX_ROWS` rows are held
whatever the file's size, and a batch's reservoir merges into the file's exactly as replicas' would.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from driftgate.monitoring.drift.evaluate import DriftSettings
from driftgate.monitoring.drift.media import EMBEDDING_PERMUTATIONS, MIN_EMBEDDING_ROWS, MMD_SEED
from driftgate.monitoring.drift.mmd import MAX_ROWS, MMDReference, Reservoir, mmd_test
from driftgate.monitoring.drift.report import FeatureDrift, Subtest
from driftgate.monitoring.files.read import BATCH_ROWS, iter_batches


def is_tensor_type(field_type: pa.DataType) -> bool:
    types = pa.types
    return bool(types.is_list(field_type) or types.is_large_list(field_type) or types.is_fixed_size_list(field_type))


def tensor_columns(schema: pa.Schema) -> list[str]:
    return [f.name for f in schema if is_tensor_type(f.type)]


def rows_of(column: pa.Array) -> tuple[np.ndarray, int]:
    """The column's rows as a float matrix (n, values a row), and how many rows were left out (null,
    another number of values than the first row's, or a value that is not a finite number)."""
    # Nested lists arrive as object arrays of arrays: each cell is flattened to its values.
    cells = [_flat(cell) for cell in column.to_numpy(zero_copy_only=False) if cell is not None]
    if not cells:
        return np.empty((0, 0)), len(column)
    size = cells[0].size
    kept = [cell for cell in cells if cell.size == size and np.all(np.isfinite(cell))]
    return (np.stack(kept) if kept else np.empty((0, size))), len(column) - len(kept)


def _flat(cell: object) -> np.ndarray:
    array = np.asarray(cell)
    if array.dtype != object:
        return array.astype(np.float64).reshape(-1)
    if array.size == 0 or any(part is None for part in array.reshape(-1)):
        return np.full(1 if array.size else 0, np.nan)  # a null inside: not a finite row
    return np.concatenate([_flat(part) for part in array.reshape(-1)])


def embedding_drifts(
    reference: str | Path,
    current: str | Path,
    names: list[str],
    settings: DriftSettings,
    batch_rows: int = BATCH_ROWS,
) -> tuple[list[FeatureDrift], list[str]]:
    """The MMD test of each tensor column of both files, undecided (its p-value joins the family)."""
    drifts: list[FeatureDrift] = []
    notes: list[str] = []
    rng = np.random.default_rng(MMD_SEED)
    sampled = _reservoirs(reference, names, batch_rows, rng, None)
    fitted = {name: MMDReference.fit(r.rows, seed=MMD_SEED) for name, r in sampled.items() if r.rows.shape[0] >= 2}
    counted = _reservoirs(current, list(fitted), batch_rows, rng, fitted)
    for name in names:
        window = counted.get(name)
        if name not in fitted or window is None or window.rows.shape[0] < MIN_EMBEDDING_ROWS:
            notes.append(f"column {name!r}: embedding drift (mmd) not tested: too few rows of one shape on a side")
            continue
        result = mmd_test(fitted[name], window, n_permutations=EMBEDDING_PERMUTATIONS, seed=MMD_SEED)
        subtest = Subtest(
            "embedding", "mmd_permutation", result.p_value, "mmd", result.effect_size, settings.threshold("mmd")
        )
        subtest.details.update(mmd2=result.mmd2, z_score=result.z_score, bandwidth=result.bandwidth)
        statistics = {"mmd": result.effect_size, **subtest.details, "rows_seen": float(window.seen)}
        drifts.append(FeatureDrift(name, "tensor", subtest, statistics=statistics, n_reference=result.n_reference,
                                   n_current=result.n_current))  # fmt: skip
    return drifts, notes


def _reservoirs(
    path: str | Path,
    names: list[str],
    batch_rows: int,
    rng: np.random.Generator,
    fitted: dict[str, MMDReference] | None,
) -> dict[str, Reservoir]:
    """Per column, a reservoir of the file's rows: raw (the reference's, `fitted` None) or mapped into
    each column's test space (the current file's)."""
    out: dict[str, Reservoir] = {}
    if not names:
        return out
    for batch in iter_batches(path, batch_rows, columns=names):
        for name in names:
            rows, _ = rows_of(batch.column(name))
            if rows.shape[0] == 0:
                continue
            if fitted is None:
                part = Reservoir.empty(rows.shape[1], MAX_ROWS).add(rows, rng)
            elif rows.shape[1] != fitted[name].center.size:
                continue  # another shape than the reference's: not comparable
            else:
                part = fitted[name].sketch(rows, rng)
            previous = out.get(name)
            if previous is None:
                out[name] = part
            elif previous.dim == part.dim:  # a batch whose rows have another size is left out
                out[name] = previous.merge(part)
    return out
