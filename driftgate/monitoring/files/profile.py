"""Fit a `ReferenceProfile` from a file in one streaming pass.

The bin edges are known only at the end of the pass, so each batch's numeric columns are
summarised as it goes by and their sorted finite values wait in a `SortedSpill` to be counted
into the bins afterwards: the reference is read once. Past the spill's budget the numeric columns
are read a second time instead (same counts either way).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from driftgate.monitoring.drift.binning import CategoricalBinning, NumericBinning
from driftgate.monitoring.drift.kinds import FeatureKind, parse_kind
from driftgate.monitoring.drift.profile import EDGE_SEED, REFERENCE_SAMPLE_SEED, FeatureSpec, ReferenceProfile
from driftgate.monitoring.drift.sketches import (
    CategoricalSketch,
    FeatureSketch,
    NumericSketch,
    NumericSummary,
    WindowSketch,
)
from driftgate.monitoring.files.columns import as_floats, category_counts, type_kind
from driftgate.monitoring.files.read import BATCH_ROWS, file_schema, iter_batches
from driftgate.monitoring.files.sample import RowSample
from driftgate.monitoring.files.sketch import sketch_file
from driftgate.monitoring.files.spill import EXACT_ROWS, SortedSpill, spill_budget
from driftgate.monitoring.files.tensors import is_tensor_type

# Per batch: numeric column -> (its spill segment, its summary).
BatchSummaries = dict[str, tuple[int, NumericSummary]]


def profile_file(
    path: str | Path,
    feature_types: dict[str, str] | None = None,
    n_bins: int = 100,
    max_levels: int = 10_000,
    sample_rows: int = 2_000,
    edge_sample_rows: int = 100_000,
    batch_rows: int = BATCH_ROWS,
    spill_bytes: int | None = None,
) -> ReferenceProfile:
    """Fit a `ReferenceProfile` from a file in one streaming pass (see `SortedSpill`).

    spill_bytes: disk budget for the sorted numeric values (default: `SPILL_LIMIT` or half the free
    space of the temporary directory); 0 reads the numeric columns twice instead.
    """
    with SortedSpill(spill_bytes if spill_bytes is not None else spill_budget()) as spill:
        profile, _ = profile_file_spilled(
            path, spill, feature_types, n_bins, max_levels, sample_rows, edge_sample_rows, batch_rows
        )
    return profile


def profile_file_spilled(
    path: str | Path,
    spill: SortedSpill,
    feature_types: dict[str, str] | None = None,
    n_bins: int = 100,
    max_levels: int = 10_000,
    sample_rows: int = 2_000,
    edge_sample_rows: int = 100_000,
    batch_rows: int = BATCH_ROWS,
    exact_rows: int = EXACT_ROWS,
) -> tuple[ReferenceProfile, dict[str, list[int]]]:
    """`profile_file` with the spill given, and the spill's segments per numeric column (the sorted
    finite values of each batch; `SortedValues` reads them back), none past `exact_rows` rows."""
    schema = file_schema(path)
    gathered = _ReferencePass(_kinds(schema, feature_types), edge_sample_rows, sample_rows)
    for batch in iter_batches(path, batch_rows, schema):
        gathered.add(batch, spill)
    specs = gathered.specs(n_bins, max_levels)
    features: dict[str, FeatureSketch] = {}
    segments: dict[str, list[int]] = {}
    if gathered.numeric and spill.open:
        numeric, segments = _numeric_from_spill(specs, gathered.summaries, spill)
        features.update(numeric)
    elif gathered.numeric:
        features.update(_numeric_read_again(specs, list(gathered.numeric), path, batch_rows))
    features.update(gathered.categorical_features(specs))
    skeleton = ReferenceProfile(specs)
    reference = WindowSketch(skeleton.profile_id, gathered.rows, {name: features[name] for name in sorted(features)})
    profile = ReferenceProfile.from_parts(specs, reference, gathered.row_sample.head(sample_rows))
    return profile, segments if gathered.rows <= exact_rows else {}


def _kinds(schema: pa.Schema, feature_types: dict[str, str] | None) -> dict[str, FeatureKind]:
    """Each column's kind: the one `feature_types` names, else the one its file type says. List
    columns (tensors) are no feature of the profile: the embedding test takes them (`files.tensors`)."""
    return {
        f.name: parse_kind(f.name, feature_types[f.name])
        if feature_types and f.name in feature_types
        else type_kind(f.type)
        for f in schema
        if not is_tensor_type(f.type)
    }


class _ReferencePass:
    """What the one pass over the reference gathers, batch by batch.

    Bin edges need many numeric values; the multivariate tests need few whole rows. Two samples
    keep the (slow) object arrays of categorical values small. Both draw their keys as
    `ReferenceProfile.fit` does (the same seeds), so a file and the same rows in memory agree.
    """

    def __init__(self, kinds: dict[str, FeatureKind], edge_sample_rows: int, sample_rows: int) -> None:
        self.kinds = kinds
        self.numeric = {name: kind for name, kind in kinds.items() if kind.is_numeric}
        self.edge_sample = RowSample(edge_sample_rows, seed=EDGE_SEED)
        self.row_sample = RowSample(max(sample_rows, 1), seed=REFERENCE_SAMPLE_SEED)
        self.category_totals: dict[str, dict[str, int]] = {n: {} for n, k in kinds.items() if not k.is_numeric}
        self.category_missing = dict.fromkeys(self.category_totals, 0)
        self.rows = 0
        self.summaries: list[BatchSummaries] = []

    def add(self, batch: pa.RecordBatch, spill: SortedSpill) -> None:
        self.rows += batch.num_rows
        floats = {name: as_floats(batch.column(name)) for name in self.numeric}
        self.edge_sample.add(batch, self.numeric, floats)
        self.row_sample.add(batch, self.kinds, floats)
        self._count_categories(batch)
        if spill.open:
            self.summaries.append(_spilled(floats, spill))

    def _count_categories(self, batch: pa.RecordBatch) -> None:
        for name, totals in self.category_totals.items():
            levels, counts, missing = category_counts(batch.column(name), self.kinds[name])
            self.category_missing[name] += missing
            for text, count in zip(levels, counts, strict=True):
                totals[text] = totals.get(text, 0) + count

    def specs(self, n_bins: int, max_levels: int) -> dict[str, FeatureSpec]:
        """Numeric bins from the edge sample's quantiles; the levels from the exact counts."""
        specs: dict[str, FeatureSpec] = {}
        for name, kind in self.kinds.items():
            if kind.is_numeric:
                specs[name] = FeatureSpec(name, kind, NumericBinning.fit(self.edge_sample.columns[name], n_bins))
            else:
                totals = self.category_totals[name]
                specs[name] = FeatureSpec.of_levels(name, kind, list(totals), list(totals.values()), max_levels)
        return specs

    def categorical_features(self, specs: dict[str, FeatureSpec]) -> dict[str, FeatureSketch]:
        """The category counts of the pass are exact and final."""
        features: dict[str, FeatureSketch] = {}
        for name, totals in self.category_totals.items():
            binning = specs[name].binning
            assert isinstance(binning, CategoricalBinning)
            features[name] = CategoricalSketch.of_counts(
                binning, list(totals), list(totals.values()), self.category_missing[name]
            )
        return features


def _spilled(floats: dict[str, np.ndarray], spill: SortedSpill) -> BatchSummaries:
    """Summarise a batch's numeric columns now and spill their sorted finite values for later."""
    parts = {}
    for name, values in floats.items():
        ordered, summary = NumericSketch.summarise(values)
        parts[name] = (spill.put(ordered), summary)
    return parts


def _numeric_from_spill(
    specs: dict[str, FeatureSpec], summaries: list[BatchSummaries], spill: SortedSpill
) -> tuple[dict[str, NumericSketch], dict[str, list[int]]]:
    """Count the spilled values into the bins, merged batch by batch in file order, exactly as
    `sketch_file` merges them; and each column's segments."""
    features: dict[str, NumericSketch] = {}
    segments: dict[str, list[int]] = {}
    for parts in summaries:
        for name, (segment, summary) in parts.items():
            binning = specs[name].binning
            assert isinstance(binning, NumericBinning)
            sketch = NumericSketch.from_summary(binning, spill.get(segment), summary)
            previous = features.get(name)
            features[name] = sketch if previous is None else previous.merge(sketch)
            segments.setdefault(name, []).append(segment)
    return features, segments


def _numeric_read_again(
    specs: dict[str, FeatureSpec], names: list[str], path: str | Path, batch_rows: int
) -> dict[str, FeatureSketch]:
    """Past the spill budget: read the numeric columns a second time, now that the bins are known."""
    numeric = ReferenceProfile({name: specs[name] for name in names})
    counted, _, _ = sketch_file(numeric, path, 0, batch_rows=batch_rows, columns=names)
    return dict(counted.features)
