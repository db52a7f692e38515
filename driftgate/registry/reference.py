"""Reading reference data sets (CSV or Parquet) from bytes, and storing them compactly."""

from __future__ import annotations

import io

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from driftgate.errors import BadRequest


def read_table(data: bytes, filename: str = "") -> pd.DataFrame:
    """A DataFrame from CSV or Parquet bytes; the format is sniffed, the name only breaks ties."""
    try:
        if data[:4] == b"PAR1" or filename.endswith(".parquet"):
            return pq.read_table(io.BytesIO(data)).to_pandas()
        return pd.read_csv(io.BytesIO(data))
    except Exception as exc:  # pandas/pyarrow raise many parser error types
        raise BadRequest(
            f"reference data {filename or ''} is neither valid CSV nor Parquet: {exc}", field="reference"
        ) from None


def to_parquet(frame: pd.DataFrame) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink, compression="zstd")
    return sink.getvalue()


def from_parquet(data: bytes) -> pd.DataFrame:
    return pq.read_table(io.BytesIO(data)).to_pandas()
