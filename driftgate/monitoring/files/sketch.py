"""Count a file (the current window) against a reference profile, batch by batch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from driftgate.monitoring.drift.binning import NumericBinning
from driftgate.monitoring.drift.kinds import FeatureKind
from driftgate.monitoring.drift.profile import CURRENT_SAMPLE_SEED, ReferenceProfile
from driftgate.monitoring.drift.sketches import CategoricalSketch, FeatureSketch, NumericSketch, WindowSketch
from driftgate.monitoring.files.columns import as_floats, canonical_values, category_counts, type_kind
from driftgate.monitoring.files.read import BATCH_ROWS, file_schema, iter_batches
from driftgate.monitoring.files.sample import RowSample
from driftgate.monitoring.files.spill import EXACT_ROWS, SortedSpill


def sketch_batch(
    profile: ReferenceProfile,
    batch: pa.RecordBatch,
    spill: SortedSpill | None = None,
    segments: dict[str, list[int]] | None = None,
) -> WindowSketch:
    """Count one Arrow record batch against the profile (categories via Arrow's value_counts).

    spill, segments: where the sorted finite values of numeric columns go (one segment per column
    and batch, listed in `segments`), for exact statistics afterwards.
    """
    features: dict[str, FeatureSketch] = {}
    for name, spec in profile.specs.items():
        if name not in batch.schema.names:
            continue
        column = batch.column(name)
        if isinstance(spec.binning, NumericBinning):
            values = as_floats(column)
            if spill is not None and segments is not None and spill.open:
                ordered, summary = NumericSketch.summarise(values)
                segments.setdefault(name, []).append(spill.put(ordered))
                features[name] = NumericSketch.from_summary(spec.binning, ordered, summary)
            else:
                features[name] = NumericSketch.of(spec.binning, values)
        else:
            levels, counts, missing = category_counts(column, spec.kind)
            features[name] = CategoricalSketch.of_counts(spec.binning, levels, counts, missing)
    return WindowSketch(profile.profile_id, batch.num_rows, features)


def sketch_file(
    profile: ReferenceProfile,
    path: str | Path,
    sample_rows: int = 2_000,
    keep_columns: Sequence[str] = (),
    batch_rows: int = BATCH_ROWS,
    columns: Sequence[str] | None = None,
) -> tuple[WindowSketch, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Sketch a whole file; also return a row sample and the full values of `keep_columns`
    (e.g. the target and prediction for performance metrics). `columns`: read only these."""
    sketch, sample, kept, _ = sketch_file_spilled(profile, path, sample_rows, keep_columns, batch_rows, columns)
    return sketch, sample, kept


def sketch_file_spilled(
    profile: ReferenceProfile,
    path: str | Path,
    sample_rows: int = 2_000,
    keep_columns: Sequence[str] = (),
    batch_rows: int = BATCH_ROWS,
    columns: Sequence[str] | None = None,
    spill: SortedSpill | None = None,
    exact_rows: int = EXACT_ROWS,
) -> tuple[WindowSketch, dict[str, np.ndarray], dict[str, np.ndarray], dict[str, list[int]]]:
    """`sketch_file`, plus the spill segments of each numeric column (with a `spill`; none past
    `exact_rows` rows)."""
    schema = file_schema(path)
    sketch = WindowSketch(profile.profile_id, 0, {})
    sample = RowSample(max(sample_rows, 1), seed=CURRENT_SAMPLE_SEED)
    kept_kinds = _kept_kinds(profile, schema, keep_columns)
    kept: dict[str, list[np.ndarray]] = {name: [] for name in kept_kinds}
    segments: dict[str, list[int]] = {}
    for batch in iter_batches(path, batch_rows, schema, columns):
        sketch = sketch.merge(sketch_batch(profile, batch, spill, segments))
        if sample_rows:
            sample.add(batch, {name: spec.kind for name, spec in profile.specs.items() if name in batch.schema.names})
        for name, parts in kept.items():
            parts.append(canonical_values(batch.column(name), kept_kinds[name]))
    kept_columns = {name: np.concatenate(parts) if parts else np.zeros(0) for name, parts in kept.items()}
    current_sample = _sample_values(profile, sample) if sample_rows else {}
    return sketch, current_sample, kept_columns, segments if sketch.rows <= exact_rows else {}


def _kept_kinds(profile: ReferenceProfile, schema: pa.Schema, keep_columns: Sequence[str]) -> dict[str, FeatureKind]:
    """The kind each kept column (of those the file has) is read in: the profile's, else its file type's."""
    return {
        name: profile.specs[name].kind if name in profile.specs else type_kind(schema.field(name).type)
        for name in keep_columns
        if name in schema.names
    }


def _sample_values(profile: ReferenceProfile, sample: RowSample) -> dict[str, np.ndarray]:
    """The sampled rows, each profiled column in its spec's values."""
    return {
        name: profile.specs[name].values(values) if name in profile.specs else values
        for name, values in sample.columns.items()
    }
