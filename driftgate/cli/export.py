"""`driftgate export` and `driftgate retention`: the prediction log out to a file, and pruned.

Mounted by the main CLI with `app.command()(export)` and `app.command()(retention)`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from driftgate.cli import export_media
from driftgate.cli.export_media import TensorSpec

console = Console(stderr=True)
BASE_COLUMNS = ("id", "ts", "model", "version", "role", "status", "latency_ms", "prediction", "probabilities")
TAIL_COLUMNS = ("label", "label_ts", "error")


def parse_time(value: str | None, option: str) -> float | None:
    """Epoch seconds, or an ISO 8601 date/time (UTC unless it says otherwise).

    >>> parse_time("2026-01-02", "--since")
    1767312000.0
    >>> parse_time("1767312000", "--since")
    1767312000.0
    """
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"expected epoch seconds or an ISO date/time like 2026-01-02T15:04:05Z, got {value!r}", param_hint=option
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


Kinds = Callable[[str, int], Mapping[str, str]]
"""The feature kinds (`registry.schema`) of a model version, by name; {} when unknown."""


class InputValues:
    """Logged inputs in their kind's one representation (`monitoring.drift.kinds`): the serving schema
    logs a boolean feature as 0.0 / 1.0, the export writes it as a boolean (a Parquet `bool` column,
    True / False in CSV), the way the reference data had it; categories as their canonical text.
    A boolean value that is neither 0 nor 1 (only an old log can hold one) is written as missing and
    counted in `not_boolean`."""

    def __init__(self) -> None:
        from driftgate.monitoring.drift import kinds  # numpy: imported only when exporting

        self.kinds = kinds
        self.not_boolean = 0

    def __call__(self, value: Any, kind: str | None) -> Any:
        if kind is None or kind in ("numeric", "integer", "text", "tensor"):  # text as is, tensors: export_media
            return value
        text = self.kinds.level(value, self.kinds.FeatureKind(kind))
        if kind != "boolean" or text is None:
            return text
        if text in (self.kinds.TRUE, self.kinds.FALSE):
            return text == self.kinds.TRUE
        self.not_boolean += 1
        return None


def flatten(
    rows: list[dict[str, Any]],
    reserved: frozenset[str],
    kinds: Kinds | None = None,
    values: InputValues | None = None,
) -> list[dict[str, Any]]:
    """One flat record per row: log columns, then each input field as its own column (in its kind's
    representation when `kinds` knows the row's model version)."""
    values = values or InputValues()
    out = []
    for row in rows:
        record = {
            "id": row["id"],
            "ts": row["ts"],
            "model": row["model"],
            "version": row["version"],
            "role": row["role"],
            "status": row["status"],
            "latency_ms": row["latency_ms"],
            "prediction": row["output"],
            "probabilities": row["probabilities"],
            "label": row["label"],
            "label_ts": row["label_ts"],
            "error": row["error"],
        }
        known = kinds(row["model"], row["version"]) if kinds is not None else {}
        for name, value in (row["inputs"] or {}).items():
            record[f"input.{name}" if name in reserved else name] = values(value, known.get(name))
        out.append(record)
    return out


class _Writer:
    """Writes flattened chunks to CSV or Parquet with the columns fixed by the first chunk."""

    def __init__(self, path: Path, label_sample: Any = None, input_kinds: Mapping[str, str] | None = None) -> None:
        self.path = path
        self.label_sample = label_sample
        self.input_kinds = dict(input_kinds or {})  # column -> feature kind: types a column all null at first
        self.tensors: dict[str, TensorSpec] = {}  # column -> (shape, dtype) of the tensor features
        self.kind = "parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv"
        self.columns: list[str] | None = None
        self._schema: Any = None
        self._parquet: Any = None
        self._first = True

    def write(self, records: list[dict[str, Any]]) -> None:
        import pandas as pd

        if self.columns is None:
            inputs = sorted({k for r in records for k in r} - set(BASE_COLUMNS) - set(TAIL_COLUMNS))
            self.columns = [*BASE_COLUMNS, *inputs, *TAIL_COLUMNS]
        frame = pd.DataFrame.from_records(records, columns=self.columns)
        tensor_columns = export_media.payload_columns(records, self.columns, self.tensors)
        # A fixed unit: pandas would otherwise pick one per chunk from the values.
        for column in ("ts", "label_ts"):
            frame[column] = pd.to_datetime(frame[column], unit="s", utc=True).astype("datetime64[us, UTC]")
        if self.kind == "csv":
            frame["probabilities"] = [
                orjson.dumps(p).decode() if p is not None else None for p in frame["probabilities"]
            ]
            for column in tensor_columns:
                frame[column] = export_media.payload_texts(frame[column])
            frame.to_csv(self.path, mode="w" if self._first else "a", header=self._first, index=False)
            self._first = False
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        # The first chunk fixes the schema (all-null columns become strings); later chunks cast to it.
        table = pa.Table.from_pandas(frame.drop(columns=tensor_columns), preserve_index=False)
        tensors = {
            c: export_media.tensor_array(list(frame[c]), self.tensors.get(c))
            if self._schema is None
            else export_media.cast_column(list(frame[c]), self._schema.field(c).type)
            for c in tensor_columns
        }
        table = export_media.with_tensors(table, self.columns, tensors)
        if self._schema is None:
            # Labels may all be missing in the first chunk: their type comes from a stored label.
            label_type = {bool: pa.bool_(), int: pa.float64(), float: pa.float64()}.get(
                type(self.label_sample), pa.string()
            )
            by_kind = {"boolean": pa.bool_(), "numeric": pa.float64(), "integer": pa.float64()}
            fields = [
                f.with_type(
                    label_type if f.name == "label" else by_kind.get(self.input_kinds.get(f.name, ""), pa.string())
                )
                if pa.types.is_null(f.type)
                else f
                for f in table.schema
            ]
            if table.schema.field("label").type in (pa.int64(), pa.float64()):
                fields = [f.with_type(pa.float64()) if f.name == "label" else f for f in fields]
            self._schema = pa.schema(fields)
            self._parquet = pq.ParquetWriter(self.path, self._schema)
        try:
            table = table.cast(self._schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise typer.BadParameter(
                f"column types changed within the export ({exc}); export one --version at a time or use CSV"
            ) from None
        self._parquet.write_table(table)

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        elif self.kind == "parquet" and self.columns is None:
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.table({c: pa.array([], pa.string()) for c in (*BASE_COLUMNS, *TAIL_COLUMNS)}), self.path)
        elif self.kind == "csv" and self._first:
            self.path.write_text(",".join((*BASE_COLUMNS, *TAIL_COLUMNS)) + "\n")


def export(
    endpoint: Annotated[str, typer.Argument(help="Endpoint whose prediction log to export.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="F.parquet or F.csv")],
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Embedded store directory.")] = Path(".driftgate"),
    db: Annotated[str | None, typer.Option("--db", help="Store URL (PostgreSQL).")] = None,
    since: Annotated[str | None, typer.Option(help="From this time on (ISO 8601 or epoch seconds).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time (ISO 8601 or epoch seconds).")] = None,
    version: Annotated[int | None, typer.Option(help="Only rows of this model version.")] = None,
    role: Annotated[str, typer.Option(help="primary | shadow | all")] = "primary",
    chunk_rows: Annotated[int, typer.Option(help="Rows read per query.")] = 20_000,
) -> None:
    """Export logged predictions with their latest label; inputs become columns."""
    from driftgate.store import Store

    if output.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise typer.BadParameter(f"expected a .parquet or .csv file, got {output.name!r}", param_hint="--output")
    if role not in ("primary", "shadow", "all"):
        raise typer.BadParameter(f"expected primary, shadow or all, got {role!r}", param_hint="--role")
    filters: dict[str, Any] = {
        "since": parse_time(since, "--since"),
        "until": parse_time(until, "--until"),
        "version": version,
        "role": None if role == "all" else role,
    }
    store = Store.open(data_dir, db)
    try:
        total = store.predictions.count_range(endpoint, **filters)
        reserved = frozenset((*BASE_COLUMNS, *TAIL_COLUMNS))
        kinds, tensor_specs = _version_kinds(store)
        writer = _Writer(output, store.predictions.label_sample(endpoint))
        values = InputValues()
        done = 0
        with Progress(
            TextColumn(f"exporting {endpoint}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("rows", total=total)
            for chunk in store.predictions.iter_with_labels(endpoint, chunk_rows=chunk_rows, **filters):
                if done == 0:  # the first rows' kinds type the columns that start all null
                    first = kinds(chunk[0]["model"], chunk[0]["version"])
                    writer.input_kinds = {f"input.{n}" if n in reserved else n: k for n, k in first.items()}
                    specs = tensor_specs(chunk[0]["model"], chunk[0]["version"])
                    writer.tensors = {f"input.{n}" if n in reserved else n: s for n, s in specs.items()}
                writer.write(flatten(chunk, reserved, kinds, values))
                done += len(chunk)
                progress.update(task, completed=done)
        writer.close()
    finally:
        store.close()
    console.print(f"exported {done} rows of [bold]{endpoint}[/bold] to {output}")
    if values.not_boolean:
        console.print(f"[yellow]{values.not_boolean} logged values of boolean features were neither 0 nor 1[/yellow]")
        console.print("and were exported as missing")


def _version_kinds(store: Any) -> tuple[Kinds, Callable[[str, int], Mapping[str, TensorSpec]]]:
    """Logged input columns' kinds (a tensor's descriptors as numeric) and tensor specs per model
    version from the registry, looked up once each."""
    from driftgate.errors import DriftgateError

    cache: dict[tuple[str, int], tuple[dict[str, str], dict[str, TensorSpec]]] = {}

    def columns(model: str, version: int) -> tuple[dict[str, str], dict[str, TensorSpec]]:
        key = (model, version)
        if key not in cache:
            try:
                schema = store.models.get(model, version).input_schema or {}
                cache[key] = export_media.schema_columns(schema.get("features", []))
            except DriftgateError:  # a log row of a version no longer registered: values as logged
                cache[key] = ({}, {})
        return cache[key]

    return (lambda model, version: columns(model, version)[0]), (lambda model, version: columns(model, version)[1])


def retention(
    days: Annotated[
        float | None, typer.Option(help="Keep this many days of prediction log; delete older rows.", min=0)
    ] = None,
    monitoring_days: Annotated[
        float | None,
        typer.Option(
            help="Keep this many days of monitoring points and reports (each endpoint keeps its newest report).",
            min=0,
        ),
    ] = None,
    endpoint: Annotated[str | None, typer.Option(help="Only this endpoint (default: all).")] = None,
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Embedded store directory.")] = Path(".driftgate"),
    db: Annotated[str | None, typer.Option("--db", help="Store URL (PostgreSQL).")] = None,
) -> None:
    """Delete prediction log rows (with their labels) older than --days, and monitoring points and
    reports older than --monitoring-days. `driftgate serve --retention-days/--monitoring-retention-days`
    does the same every hour."""
    from driftgate.store import Store

    if days is None and monitoring_days is None:
        raise typer.BadParameter("give --days, --monitoring-days or both", param_hint="--days")
    store = Store.open(data_dir, db)
    try:
        deleted = store.apply_retention(prediction_days=days, monitoring_days=monitoring_days, endpoint=endpoint)
    finally:
        store.close()
    if days is not None:
        console.print(f"deleted {deleted['predictions']} prediction rows older than {days:g} days")
    if monitoring_days is not None:
        console.print(
            f"deleted {deleted['monitoring_points']} monitoring points and {deleted['monitor_reports']} monitor "
            f"reports older than {monitoring_days:g} days"
        )
