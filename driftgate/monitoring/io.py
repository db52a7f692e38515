"""Stream CSV or Parquet files into profiles and window sketches, chunk by chunk (pyarrow).

Not pure (pyarrow); the pure statistics live in `driftgate.monitoring.drift`. Memory stays at
one batch plus a bounded row sample, whatever the file size:

* one pass over the reference: exact category counts, a uniform row sample (bottom-k of random
  keys, `edge_sample_rows` rows) whose quantiles give the numeric bin edges, and per batch the
  numeric moments plus the sorted finite values, which wait in a bounded temporary file
  (`SortedSpill`) until the edges are known and are then counted (past the spill budget the
  numeric columns are read a second time instead);
* one pass over the current file: exact counts into sketches.

The bin edges come from a sample, so they are only approximately the reference quantiles; the
counts in them are exact, which is all the tests need. Every column is read in its kind's one
representation (`drift.kinds`): a boolean file column, an exported 0.0 / 1.0 column and the text
"true" all count as the same level. `report_files` also keeps the sorted numeric values of both
files on disk, so that KS and Wasserstein are exact, as in the live monitor (`compare_frames`).
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from driftgate.errors import InvalidInput, UnsupportedFormat
from driftgate.monitoring.drift.binning import CategoricalBinning, NumericBinning
from driftgate.monitoring.drift.compare import compare
from driftgate.monitoring.drift.evaluate import DriftSettings
from driftgate.monitoring.drift.kinds import FeatureKind, canonical, level_counts_of, parse_kind
from driftgate.monitoring.drift.profile import (
    CURRENT_SAMPLE_SEED,
    EDGE_SEED,
    REFERENCE_SAMPLE_SEED,
    FeatureSpec,
    ReferenceProfile,
)
from driftgate.monitoring.drift.report import DriftReport
from driftgate.monitoring.drift.sketches import (
    CategoricalSketch,
    FeatureSketch,
    NumericSketch,
    NumericSummary,
    WindowSketch,
)
from driftgate.monitoring.performance import performance_report

BATCH_ROWS = 131_072
# pandas' default missing-value texts (`pd.read_csv`'s na_values), which registered references go through.
CSV_NULLS = [
    *("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN"),
    *("<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"),
]
# Up to this many rows per file, `report_files` computes KS and Wasserstein from the raw values (read
# back one column at a time from the sorted spill); beyond, from the bins, with their error bounds.
# The live monitor's largest window (monitor.MAX_ROWS): any window it reports, a file report of the
# same rows computes the same way. Exact costs a merge of sorted runs and one two-sample pass per
# numeric column: about twice the time of the binned report on 1M + 1M rows x 20 numeric columns.
EXACT_ROWS = 1_000_000


def iter_batches(
    path: str | Path,
    batch_rows: int = BATCH_ROWS,
    schema: pa.Schema | None = None,
    columns: Sequence[str] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Record batches of a `.parquet` / `.pq` or `.csv` file; `schema` pins CSV column types and
    `columns` reads only those columns.

    Parquet text columns arrive dictionary-encoded (as Parquet stores them): counting categories then
    costs one pass over small integer codes instead of hashing every string.
    """
    path = _existing(path)
    if _is_parquet(path):
        # pre_buffer=False: otherwise the reader buffers the column chunks of the whole file ahead.
        parquet = _parquet_file(path)
        yield from parquet.iter_batches(batch_size=batch_rows, columns=list(columns) if columns is not None else None)
    else:
        include = list(columns) if columns is not None else []
        convert = pa_csv.ConvertOptions(
            column_types=schema if schema is not None else {},
            include_columns=include,
            include_missing_columns=False,
            # Missing as pandas reads it (`registry.reference.read_table`): an empty text cell is a
            # missing value, not the category "", so a CSV reference reads the same here and live.
            null_values=CSV_NULLS,
            strings_can_be_null=True,
        )
        reader = pa_csv.open_csv(path, read_options=pa_csv.ReadOptions(block_size=16 << 20), convert_options=convert)
        yield from reader


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"File {str(path)!r} does not exist: give the path of a CSV or Parquet file.")
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv", ".txt"):
        raise UnsupportedFormat(f"File {path.name!r} must end in .csv or .parquet. Got {suffix!r} instead.")
    return path


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def _parquet_file(path: Path) -> pq.ParquetFile:
    text = [
        f.name
        for f in pq.read_schema(path)
        if pa.types.is_string(f.type) or pa.types.is_large_string(f.type) or pa.types.is_binary(f.type)
    ]
    return pq.ParquetFile(path, pre_buffer=False, read_dictionary=text or None)


def file_schema(path: str | Path) -> pa.Schema:
    """The Arrow schema of the batches `iter_batches` yields (Parquet: from the footer, no data read)."""
    path = _existing(path)
    if _is_parquet(path):
        return _parquet_file(path).schema_arrow
    return next(iter_batches(path)).schema


def _kind(field_type: pa.DataType) -> FeatureKind:
    """The kind a file column's type says (the same rule as `kinds.kind_of` for in-memory columns)."""
    if pa.types.is_boolean(field_type):
        return FeatureKind.BOOLEAN
    if pa.types.is_integer(field_type):
        return FeatureKind.INTEGER
    if pa.types.is_floating(field_type) or pa.types.is_decimal(field_type):
        return FeatureKind.NUMERIC
    return FeatureKind.CATEGORICAL


def _floats(column: pa.Array) -> np.ndarray:
    return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)


def _category_counts(column: pa.Array, kind: FeatureKind = FeatureKind.CATEGORICAL) -> tuple[list[str], list[int], int]:
    """Canonical levels, counts and missing count of a boolean or categorical column: Arrow counts
    the distinct values, `kinds` spells out each distinct value once."""
    counted = pc.value_counts(column)
    values = counted.field("values")
    if pa.types.is_dictionary(values.type):
        # Counted on the codes; only the distinct values are spelled out (duplicates in a dictionary
        # are harmless: counts are added up per level).
        values = values.dictionary_decode()
    return level_counts_of(values.to_pylist(), counted.field("counts").to_pylist(), kind)


def _values(column: pa.Array, kind: FeatureKind) -> np.ndarray:
    if kind.is_numeric:
        return _floats(column)
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    return canonical(np.array(column.to_pylist(), dtype=object), kind)


class RowSample:
    """Uniform sample of rows without replacement: the rows with the `size` smallest random keys,
    in key order (so any prefix is itself a uniform sample).

    Candidates are buffered and cut back to `size` rows only when the buffer doubles; a batch
    offers at most its own `size` smallest keys, and only those rows are converted to numpy.
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size, self.seed = size, seed
        self._rng = np.random.default_rng(seed)
        self._keys: list[np.ndarray] = []
        self._parts: dict[str, list[np.ndarray]] = {}
        self._buffered = 0
        self._threshold = math.inf  # a key at or above this cannot enter any more
        self._settled = True

    def add(
        self, batch: pa.RecordBatch, kinds: dict[str, FeatureKind], floats: dict[str, np.ndarray] | None = None
    ) -> None:
        """Offer every row of `batch`; only rows that can enter the sample are converted to numpy.

        floats: numeric columns of the batch already converted with `_floats` (reused, not redone).
        """
        keys = self._rng.random(batch.num_rows)
        chosen = np.flatnonzero(keys < self._threshold) if self._threshold < math.inf else None
        if (keys.size if chosen is None else chosen.size) > self.size:  # beyond its own bottom `size`: never kept
            pool = keys if chosen is None else keys[chosen]
            bottom = np.argpartition(pool, self.size - 1)[: self.size]
            chosen = np.sort(bottom if chosen is None else chosen[bottom])
        if chosen is not None:
            keys = keys[chosen]
        for name, kind in kinds.items():
            known = floats.get(name) if floats is not None and kind.is_numeric else None
            if known is not None:
                part = known if chosen is None else known[chosen]
            else:
                part = _rows(batch.column(name), kind, chosen)
            self._parts.setdefault(name, []).append(part)
        self._keys.append(keys)
        self._buffered += keys.size
        self._settled = False
        if self._buffered >= 2 * self.size:
            self._settle()

    def _settle(self) -> None:
        if self._settled:
            return
        keys = np.concatenate(self._keys) if self._keys else np.zeros(0)
        keep = np.argpartition(keys, self.size)[: self.size] if keys.size > self.size else np.arange(keys.size)
        keep = keep[np.argsort(keys[keep])]  # key order
        self._keys = [keys[keep]]
        self._parts = {name: [np.concatenate(parts)[keep]] for name, parts in self._parts.items()}
        self._buffered = keep.size
        if keep.size >= self.size:
            self._threshold = float(keys[keep[-1]])
        self._settled = True

    @property
    def keys(self) -> np.ndarray:
        self._settle()
        return self._keys[0] if self._keys else np.zeros(0)

    @property
    def columns(self) -> dict[str, np.ndarray]:
        self._settle()
        return {name: parts[0] for name, parts in self._parts.items()}

    def head(self, rows: int) -> dict[str, np.ndarray]:
        return {name: values[:rows] for name, values in self.columns.items()}


def _rows(column: pa.Array, kind: FeatureKind, rows: np.ndarray | None) -> np.ndarray:
    """`_values` of the given rows (all when None) of one column."""
    if kind.is_numeric:
        values = _floats(column)
        return values if rows is None else values[rows]
    return _values(column if rows is None else column.take(pa.array(rows)), kind)


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
    with SortedSpill(spill_bytes if spill_bytes is not None else _spill_budget()) as spill:
        profile, _ = _profile_file(
            path, spill, feature_types, n_bins, max_levels, sample_rows, edge_sample_rows, batch_rows
        )
    return profile


def _profile_file(
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
    finite values of each batch; `SortedValues` reads them back)."""
    schema = file_schema(path)
    kinds = {
        f.name: parse_kind(f.name, feature_types[f.name])
        if feature_types and f.name in feature_types
        else _kind(f.type)
        for f in schema
    }
    # Bin edges need many numeric values; the multivariate tests need few whole rows. Two samples
    # keep the (slow) object arrays of categorical values small. Both draw their keys as
    # `ReferenceProfile.fit` does (the same seeds), so a file and the same rows in memory agree.
    numeric_kinds = {name: kind for name, kind in kinds.items() if kind.is_numeric}
    edge_sample = RowSample(edge_sample_rows, seed=EDGE_SEED)
    row_sample = RowSample(max(sample_rows, 1), seed=REFERENCE_SAMPLE_SEED)
    category_totals: dict[str, dict[str, int]] = {n: {} for n, k in kinds.items() if not k.is_numeric}
    category_missing = dict.fromkeys(category_totals, 0)
    rows = 0
    # The bin edges are known only at the end of the pass, so each batch's numeric columns are
    # summarised now and their sorted finite values wait in a temporary file to be counted into
    # the bins afterwards: the reference is read once. Past the spill's budget the file is dropped and
    # the numeric columns are read a second time instead (same counts either way).
    summaries: list[dict[str, tuple[int, NumericSummary]]] = []
    for batch in iter_batches(path, batch_rows, schema):
        rows += batch.num_rows
        floats = {name: _floats(batch.column(name)) for name in numeric_kinds}
        edge_sample.add(batch, numeric_kinds, floats)
        row_sample.add(batch, kinds, floats)
        for name, totals in category_totals.items():
            levels, counts, missing = _category_counts(batch.column(name), kinds[name])
            category_missing[name] += missing
            for text, count in zip(levels, counts, strict=True):
                totals[text] = totals.get(text, 0) + count
        if spill.open:
            parts = {}
            for name, values in floats.items():
                ordered, summary = NumericSketch.summarise(values)
                parts[name] = (spill.put(ordered), summary)
            summaries.append(parts)
    specs: dict[str, FeatureSpec] = {}
    for name, kind in kinds.items():
        if kind.is_numeric:
            specs[name] = FeatureSpec(name, kind, NumericBinning.fit(edge_sample.columns[name], n_bins))
        else:
            totals = category_totals[name]
            specs[name] = FeatureSpec.of_levels(name, kind, list(totals), list(totals.values()), max_levels)
    features: dict[str, FeatureSketch] = {}
    numeric_features: dict[str, NumericSketch] = {}
    segments: dict[str, list[int]] = {}
    if numeric_kinds and spill.open:
        # Merged batch by batch in file order, exactly as `sketch_file` merges them.
        for parts in summaries:
            for name, (segment, summary) in parts.items():
                binning = specs[name].binning
                assert isinstance(binning, NumericBinning)
                sketch = NumericSketch.from_summary(binning, spill.get(segment), summary)
                previous = numeric_features.get(name)
                numeric_features[name] = sketch if previous is None else previous.merge(sketch)
                segments.setdefault(name, []).append(segment)
        features.update(numeric_features)
    elif numeric_kinds:
        numeric = ReferenceProfile({name: specs[name] for name in numeric_kinds})
        counted, _, _ = sketch_file(numeric, path, 0, batch_rows=batch_rows, columns=list(numeric_kinds))
        features.update(counted.features)
    # The category counts of the pass are exact and final.
    for name in category_totals:
        binning = specs[name].binning
        assert isinstance(binning, CategoricalBinning)
        totals = category_totals[name]
        features[name] = CategoricalSketch.of_counts(
            binning, list(totals), list(totals.values()), category_missing[name]
        )
    skeleton = ReferenceProfile(specs)
    reference = WindowSketch(skeleton.profile_id, rows, {name: features[name] for name in sorted(features)})
    profile = ReferenceProfile.from_parts(specs, reference, row_sample.head(sample_rows))
    return profile, segments if rows <= exact_rows else {}


SPILL_LIMIT = 4 << 30  # bytes of sorted reference values kept on disk at most; beyond, read twice


def _spill_budget() -> int:
    try:
        free = shutil.disk_usage(tempfile.gettempdir()).free
    except OSError:
        return 0
    return min(SPILL_LIMIT, free // 2)


class SortedSpill:
    """Append-only float64 segments in an anonymous temporary file, up to `limit` bytes.

    `put` returns a segment id; once a write would pass the limit (or fails) the spill closes
    itself, frees the file, and `open` turns False for good: callers then recompute instead.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._file: Any = None
        self._segments: list[tuple[int, int]] = []
        self._size = 0
        self.open = limit > 0

    def __enter__(self) -> SortedSpill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def put(self, values: np.ndarray) -> int:
        if not self.open:
            return -1
        nbytes = values.size * 8
        if self._size + nbytes > self.limit:
            self.close()
            return -1
        try:
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="driftgate-spill-")  # noqa: SIM115 (closed by close())
            self._file.write(np.ascontiguousarray(values, dtype=np.float64).data)
        except OSError:
            self.close()
            return -1
        self._segments.append((self._size, values.size))
        self._size += nbytes
        return len(self._segments) - 1

    def get(self, segment: int) -> np.ndarray:
        offset, count = self._segments[segment]
        if count == 0:
            return np.zeros(0)
        self._file.seek(offset)
        return np.fromfile(self._file, dtype=np.float64, count=count)

    def close(self) -> None:
        self.open = False
        if self._file is not None:
            self._file.close()
            self._file = None


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
            values = _floats(column)
            if spill is not None and segments is not None and spill.open:
                ordered, summary = NumericSketch.summarise(values)
                segments.setdefault(name, []).append(spill.put(ordered))
                features[name] = NumericSketch.from_summary(spec.binning, ordered, summary)
            else:
                features[name] = NumericSketch.of(spec.binning, values)
        else:
            levels, counts, missing = _category_counts(column, spec.kind)
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
    sketch, sample, kept, _ = _sketch_file(profile, path, sample_rows, keep_columns, batch_rows, columns)
    return sketch, sample, kept


def _sketch_file(
    profile: ReferenceProfile,
    path: str | Path,
    sample_rows: int = 2_000,
    keep_columns: Sequence[str] = (),
    batch_rows: int = BATCH_ROWS,
    columns: Sequence[str] | None = None,
    spill: SortedSpill | None = None,
    exact_rows: int = EXACT_ROWS,
) -> tuple[WindowSketch, dict[str, np.ndarray], dict[str, np.ndarray], dict[str, list[int]]]:
    """`sketch_file`, plus the spill segments of each numeric column (with a `spill`)."""
    schema = file_schema(path)
    sketch = WindowSketch(profile.profile_id, 0, {})
    sample = RowSample(max(sample_rows, 1), seed=CURRENT_SAMPLE_SEED)
    kept: dict[str, list[np.ndarray]] = {name: [] for name in keep_columns if name in schema.names}
    segments: dict[str, list[int]] = {}
    for batch in iter_batches(path, batch_rows, schema, columns):
        sketch = sketch.merge(sketch_batch(profile, batch, spill, segments))
        if sample_rows:
            sample.add(batch, {name: spec.kind for name, spec in profile.specs.items() if name in batch.schema.names})
        for name, parts in kept.items():
            parts.append(
                _values(
                    batch.column(name),
                    profile.specs[name].kind if name in profile.specs else _kind(schema.field(name).type),
                )
            )
    kept_columns = {name: np.concatenate(parts) if parts else np.zeros(0) for name, parts in kept.items()}
    current_sample = {
        name: profile.specs[name].values(values) if name in profile.specs else values
        for name, values in (sample.columns if sample_rows else {}).items()
    }
    return sketch, current_sample, kept_columns, segments if sketch.rows <= exact_rows else {}


class SortedValues(Mapping[str, tuple[np.ndarray, np.ndarray]]):
    """(reference, current) finite values of each numeric feature, sorted, read back from the two
    spills one feature at a time (what `compare` takes as `raw` for exact KS and Wasserstein). A
    feature whose values did not all fit in a spill is absent: its statistics come from the bins."""

    def __init__(
        self,
        reference: tuple[SortedSpill, dict[str, list[int]]],
        current: tuple[SortedSpill, dict[str, list[int]]],
    ) -> None:
        self.reference, self.current = reference, current
        self.names = [
            name
            for name, parts in reference[1].items()
            if name in current[1] and reference[0].open and current[0].open and min(parts + current[1][name]) >= 0
        ]

    def __getitem__(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in self.names:
            raise KeyError(name)
        return _merged(*self.reference, name), _merged(*self.current, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


def _merged(spill: SortedSpill, segments: dict[str, list[int]], name: str) -> np.ndarray:
    parts = [spill.get(segment) for segment in segments[name]]
    values = np.concatenate(parts) if parts else np.zeros(0)
    # Sorted runs, one per batch: the stable sort (timsort for floats) merges them in O(n log runs).
    return np.sort(values, kind="stable") if len(parts) > 1 else values


def report_files(
    reference: str | Path,
    current: str | Path,
    settings: DriftSettings | None = None,
    target: str | None = None,
    prediction: str | None = None,
    sample_rows: int = 2_000,
    batch_rows: int = BATCH_ROWS,
    decision_threshold: float | None = None,
    spill_bytes: int | None = None,
    exact_rows: int = EXACT_ROWS,
) -> DriftReport:
    """The whole offline report between two files, streamed: what `driftgate drift report` runs.
    `decision_threshold`: where the model cuts a binary probability `prediction` (0.5 if None).

    KS and Wasserstein are exact (from the sorted values each file leaves in a temporary spill) as
    long as each file holds at most `exact_rows` rows and its values fit the spill budget; beyond,
    they come from the bins and the report carries their error bounds (`ks_error_bound`,
    `wasserstein_error_bound`).
    """
    budget = spill_bytes if spill_bytes is not None else _spill_budget()
    with SortedSpill(budget) as reference_spill, SortedSpill(budget) as current_spill:
        profile, reference_segments = _profile_file(
            reference, reference_spill, sample_rows=sample_rows, batch_rows=batch_rows, exact_rows=exact_rows
        )
        outcome_columns = [name for name in (target, prediction) if name]
        for name in outcome_columns:
            if name not in profile.specs:
                columns = sorted(profile.specs)
                raise InvalidInput(f"Column {name!r} is not in {Path(reference).name}: columns are {columns}.")
        reference_outcomes: dict[str, np.ndarray] = {}
        if outcome_columns:
            _, _, reference_outcomes = sketch_file(profile, reference, 0, outcome_columns, batch_rows)
        sketch, current_sample, current_outcomes, current_segments = _sketch_file(
            profile,
            current,
            sample_rows,
            outcome_columns,
            batch_rows,
            spill=current_spill if exact_rows > 0 else None,
            exact_rows=exact_rows,
        )
        performance = performance_report(
            reference_outcomes.get(target or ""),
            reference_outcomes.get(prediction or ""),
            current_outcomes.get(target or ""),
            current_outcomes.get(prediction or ""),
            threshold=decision_threshold,
        )
        raw = SortedValues((reference_spill, reference_segments), (current_spill, current_segments))
        return compare(
            profile, sketch, settings, current_sample if sample_rows else None, prediction, target, performance, raw
        )
