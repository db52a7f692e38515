"""Batch scoring (SPEC 3): a CSV or Parquet file streamed through an endpoint chunk by chunk, each chunk
scored exactly as an online request is (schema checks, pipeline steps, rollout routing, guards, the
prediction log), into a Parquet or CSV file of the inputs with their predictions and prediction ids
(for feedback). Memory stays at one chunk; the output appears under its name only when complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from driftgate.errors import BadRequest, InvalidInput
from driftgate.monitoring.files import file_schema, iter_batches
from driftgate.records.recorder import Admission, PredictionLog
from driftgate.registry.schema import InputSchema
from driftgate.serving.dataplane import DataPlane
from driftgate.serving.result import DecodedRequest, PredictionResult

OUTPUT_COLUMNS = ("prediction", "prediction_id", "model", "version", "status")


@dataclass
class BatchSummary:
    rows: int = 0
    chunks: int = 0
    deferred: int = 0  # rows sent to human review instead of answered
    seconds: float = 0.0  # reading, scoring, logging and writing (start-up not included)
    versions: dict[int, int] = field(default_factory=dict)  # rows per answering version


def output_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix == ".csv":
        return "csv"
    raise BadRequest(f"output {path.name!r} must end in .parquet or .csv", field="output")


def total_rows(path: Path) -> int | None:
    """Rows in the input when the file says so without reading it (Parquet's footer), else None."""
    if path.suffix.lower() in (".parquet", ".pq"):
        return pq.ParquetFile(path).metadata.num_rows
    return None


async def score_file(
    plane: DataPlane,
    endpoint: str,
    source: Path,
    target: Path,
    chunk_rows: int = 10_000,
    on_chunk: Callable[[int], None] | None = None,
) -> BatchSummary:
    output = _Output(target, output_format(target))
    state = plane.state(endpoint)
    _check_paths(source, target)
    pinned, text = _read_types(state.stable.schema)
    summary = BatchSummary()
    started = time.perf_counter()
    try:
        for batch in _chunks(source, chunk_rows, pinned):
            where = _where(summary, batch, source)
            result = await _score_chunk(plane, endpoint, DecodedRequest(_columns(batch, text), batch.num_rows), where)
            _write_chunk(output, _with_predictions(batch, result, state.stable.classes), batch, result, where)
            _count(summary, batch.num_rows, result)
            if on_chunk is not None:
                on_chunk(batch.num_rows)
        output.commit(source)
        summary.seconds = time.perf_counter() - started
    finally:
        output.discard()
    return summary


def _check_paths(source: Path, target: Path) -> None:
    """Refuse, before anything is scored, an output that cannot be written and input columns that
    would clash with the output's."""
    if target.is_dir() or not target.parent.is_dir():
        raise BadRequest(f"output {str(target)!r} must be a file in an existing folder", field="output")
    try:
        names = file_schema(source).names
    except (pa.ArrowInvalid, StopIteration) as exc:  # an empty file, or a header without rows
        raise InvalidInput(f"{source.name} holds no rows to score ({exc or 'no rows'})", field="input") from None
    clash = [c for c in names if c in OUTPUT_COLUMNS or c.startswith("probability_")]
    if clash:
        raise BadRequest(f"input columns {clash} clash with the output's columns; rename them", field="input")


def _read_types(schema: InputSchema) -> tuple[pa.Schema, frozenset[str]]:
    """The column types to read the input with, and the text features.

    A CSV's columns take the types the schema expects (the reader would guess per block of the file):
    digits in a text feature stay text, and a number column holding text is refused by name."""
    pinned = pa.schema([(f.name, pa.float64() if f.is_numeric else pa.string()) for f in schema.features])
    text = frozenset(f.name for f in schema.features if not f.is_numeric)
    return pinned, text


async def _score_chunk(plane: DataPlane, endpoint: str, request: DecodedRequest, where: str) -> PredictionResult:
    """A chunk scored as an online request, holding room in the prediction log while it is."""
    try:
        with await _admission(plane.recorder, request.n_rows):
            return await plane.predict(endpoint, request)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc.message}", **exc.details) from None


def _write_chunk(output: _Output, table: pa.Table, batch: pa.RecordBatch, result: PredictionResult, where: str) -> None:
    """A chunk's rows and answers appended to the output; a chunk whose answers have other columns
    than the first chunk's (a rollout's versions answer differently) is refused by its rows."""
    output.open(table.schema)
    try:
        output.write(table)
    except (pa.ArrowInvalid, ValueError):
        raise InvalidInput(
            f"{where}: v{result.version} answered them with other output columns "
            f"({', '.join(table.schema.names[batch.num_columns :])}) than earlier rows had; score the file "
            "when the rollout has ended",
            field="input",
        ) from None


class _Output:
    """The output file: written as `<name>.partial`, renamed to its name only when complete."""

    def __init__(self, target: Path, kind: str) -> None:
        self.target = target
        self.kind = kind
        self.partial = target.with_name(target.name + ".partial")
        self.writer: Any = None

    def open(self, schema: pa.Schema) -> None:
        """Opened on the first chunk: its columns (with the answers') are the file's."""
        if self.writer is None:
            self.writer = (
                pq.ParquetWriter(self.partial, schema)
                if self.kind == "parquet"
                else pa_csv.CSVWriter(self.partial, schema)
            )

    def write(self, table: pa.Table) -> None:
        self.writer.write_table(table.cast(self.writer.schema) if self.kind == "parquet" else table)

    def commit(self, source: Path) -> None:
        if self.writer is None:
            raise InvalidInput(f"{source.name} holds no rows to score", field="input")
        self.writer.close()
        self.writer = None
        os.replace(self.partial, self.target)

    def discard(self) -> None:
        """What is left of an output not committed: closed and removed."""
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
        self.partial.unlink(missing_ok=True)


async def _admission(log: PredictionLog, rows: int) -> Admission:
    """Room in the prediction log for a chunk's rows, held while it is scored (as online requests hold
    it, where a full log answers 503): while the log is full, its queue is written out here and the
    chunk tried again, so a batch is slowed down by its log rather than losing rows of it."""
    if rows > log.capacity_rows:
        raise BadRequest(
            f"chunks of {rows} rows do not fit the prediction log's queue (log_max_queued_rows="
            f"{int(log.capacity_rows)}); use a smaller --chunk-rows",
            field="chunk_rows",
        )
    pause = 0.01
    while (admission := log.admit(rows)) is None:
        await asyncio.to_thread(log.flush)  # writes the backlog (or parks it in the spool if the store is down)
        if (admission := log.admit(rows)) is not None:
            break
        await asyncio.sleep(pause)  # another writer holds the room: back off a little
        pause = min(pause * 2, 1.0)
    return admission


def _chunks(source: Path, rows: int, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Batches of at most `rows` rows (the CSV reader cuts by bytes, not rows)."""
    batches = iter_batches(source, rows, schema=schema)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except pa.ArrowInvalid as exc:  # a value that does not fit its column's type
            raise InvalidInput(f"{source.name} cannot be read: {_named(exc, source)}", field="input") from None
        for start in range(0, batch.num_rows, rows):
            yield batch.slice(start, rows)


def _where(summary: BatchSummary, batch: pa.RecordBatch, source: Path) -> str:
    first = summary.rows
    done = f"; the {first:,} rows before them were scored and logged" if first else ""
    return f"rows {first}-{first + batch.num_rows - 1} of {source.name} (output not written{done})"


def _columns(batch: pa.RecordBatch, text: frozenset[str]) -> dict[str, Any]:
    """A chunk's columns as a request's: numbers as float64 arrays (a null is NaN, as a JSON null
    becomes), text as object arrays. Python lists per value cost 40 % of a chunk's time. A text
    feature stored as numbers (Parquet integers) becomes text first, as "1", the way a JSON 1 does."""
    out: dict[str, Any] = {}
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        if name in text and (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            column = pc.cast(column, pa.string())
        kind = column.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind):
            out[name] = column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            out[name] = column.to_numpy(zero_copy_only=False)
        else:  # booleans, dates, lists (tensors)...: as JSON would carry them
            block = _list_block(column)
            out[name] = block if block is not None else column.to_pylist()
    return out


def _list_block(column: pa.Array) -> np.ndarray | None:
    """A list column of numbers whose rows all have one shape (a tensor feature in Parquet, nested or
    flat) as one array (n, ...) without a Python list per value; None for anything else (nulls, ragged
    rows: the per-row path names them)."""
    n, dims, values = len(column), [], column
    while (
        pa.types.is_list(values.type) or pa.types.is_large_list(values.type) or pa.types.is_fixed_size_list(values.type)
    ):
        lengths = pc.list_value_length(values)
        if values.null_count or len(values) == 0 or pc.min(lengths).as_py() != pc.max(lengths).as_py():
            return None
        dims.append(pc.min(lengths).as_py())
        values = values.flatten()
    if not dims or n == 0 or not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
        return None
    if values.null_count:
        return None
    return values.to_numpy(zero_copy_only=False).reshape(n, *dims)


def _named(exc: Exception, source: Path) -> str:
    """pyarrow's CSV errors number the column ("In CSV column #0: ..."): name it as well."""
    message = str(exc)
    found = re.search(r"column #(\d+)", message)
    names = file_schema(source).names
    if found is None or int(found[1]) >= len(names):
        return message
    return f"column {names[int(found[1])]!r}: {message}"


def _with_predictions(batch: pa.RecordBatch, result: PredictionResult, classes: list[Any] | None) -> pa.Table:
    n = batch.num_rows
    columns = {name: batch.column(name) for name in batch.schema.names}
    kind = pa.array(classes).type if classes else pa.float64()
    predictions = result.predictions
    columns["prediction"] = pa.array(
        predictions if isinstance(predictions, np.ndarray) else list(predictions), type=kind
    )
    if result.probabilities is not None and result.classes is not None:
        proba = np.asarray(result.probabilities, dtype=np.float64)
        for j, label in enumerate(result.classes):
            columns[f"probability_{label}"] = pa.array(proba[:, j])
    columns["prediction_id"] = pa.array(result.ids, type=pa.string())
    columns["model"] = pa.repeat(pa.scalar(result.model, pa.string()), n)
    versions = result.versions if result.versions is not None else [int(result.version)] * n
    columns["version"] = pa.array(versions, type=pa.int64())
    columns["status"] = pa.array(result.status or ["ok"] * n, type=pa.string())
    return pa.table(columns)


def _count(summary: BatchSummary, rows: int, result: PredictionResult) -> None:
    summary.rows += rows
    summary.chunks += 1
    summary.deferred += sum(1 for s in result.status or () if s == "review")
    if result.versions is None:
        summary.versions[int(result.version)] = summary.versions.get(int(result.version), 0) + rows
        return
    for v, n in zip(*np.unique(np.asarray(result.versions), return_counts=True), strict=True):
        summary.versions[int(v)] = summary.versions.get(int(v), 0) + int(n)
