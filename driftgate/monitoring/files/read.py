"""The record batches and schema of a CSV or Parquet file."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from driftgate.errors import InvalidInput, UnsupportedFormat

BATCH_ROWS = 131_072
# pandas' default missing-value texts (`pd.read_csv`'s na_values), which registered references go through.
CSV_NULLS = [
    *("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN"),
    *("<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"),
]


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
