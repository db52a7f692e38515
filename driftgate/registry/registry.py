"""Registering model versions: check the artifact, infer the schema, store everything at once."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from driftgate.errors import BadRequest, DriftgateError, InvalidInput
from driftgate.one_shot import run_once
from driftgate.registry import formats
from driftgate.registry.reference import read_table, to_parquet
from driftgate.registry.schema import FeatureSpec, InputSchema
from driftgate.registry.schema_declared import apply_declared, parse_declared
from driftgate.store import Store, VersionRecord

# Rows of the reference data the new model must score before it is accepted.
SANITY_ROWS = 16


@dataclass
class Registration:
    """What a caller hands in to register a version."""

    name: str
    artifact: bytes
    format: str
    reference: bytes | None = None
    reference_filename: str = ""
    target: str | None = None
    trust: bool = False
    description: str | None = None
    lineage: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    # A declared schema (JSON text or object, see registry/schema_declared.py) laid over the inferred one.
    schema: str | bytes | dict[str, Any] | None = None


def output_spec(model: formats.ModelAdapter, reference: pd.DataFrame | None, target: str | None) -> dict[str, Any]:
    if model.classes is not None:
        classes = model.classes
        if not classes and reference is not None and target:
            classes = sorted(pd.unique(reference[target]).tolist())
        return {"kind": "classification", "classes": [_plain(c) for c in classes]}
    return {"kind": "regression"}


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def validate_name(name: str, what: str = "model name", field: str = "name") -> str:
    if not name or len(name) > 200 or not all(c.isalnum() or c in "-_." for c in name):
        raise BadRequest(f"{what} must be 1-200 letters, digits, '-', '_' or '.', got {name!r}", field=field)
    return name


# model_versions.version is a 32-bit INTEGER on PostgreSQL; a larger number is no version.
MAX_VERSION = 2**31 - 1


def check_version(version: int | str, field: str = "version") -> int | str:
    """A version reference the store can look up: a number in range, 'latest' or an alias name.

    Numbers past the column's range, or digits outside ASCII ('²'), would otherwise reach the
    database driver or `int()` and come back as a 500.
    """
    if isinstance(version, bool):
        raise BadRequest(f"{field} must be a version number, 'latest' or an alias, got {version!r}", field=field)
    if isinstance(version, str) and version.isdigit():
        if not version.isascii():
            raise BadRequest(f"{field} must use the digits 0-9, got {version!r}", field=field)
        version = int(version)
    if isinstance(version, int) and not 1 <= version <= MAX_VERSION:
        raise BadRequest(f"{field} must be between 1 and {MAX_VERSION}, got {version}", field=field)
    return version


def register(store: Store, reg: Registration) -> VersionRecord:
    """Check and store a version. An artifact driftgate did not vet (`formats.vetted`: ONNX, MLflow
    pyfunc flavors, anything trusted) is loaded and checked in a throwaway process, never here: a
    file that crashes its native library on load or predict fails its registration (400 naming the
    crash), nothing is stored, and the server goes on."""
    validate_name(reg.name)
    declared = parse_declared(reg.schema)
    kind = formats.detect_kind(reg.artifact, reg.format)
    formats.refuse_unloadable(kind, reg.trust)
    in_process = formats.vetted(reg.artifact, kind, reg.trust)
    model = formats.load(reg.artifact, kind, trust=reg.trust) if in_process else None
    reference = read_table(reg.reference, reg.reference_filename) if reg.reference is not None else None
    if reference is not None and reg.target and reg.target not in reference.columns:
        raise BadRequest(
            f"target {reg.target!r} is not a column of the reference data (columns: {list(reference.columns)})",
            field="target",
        )
    if model is not None:
        schema, output = _inspect_loaded(model, reference, reg.target, declared)
    else:
        what = f"loaded and checked the artifact of model {reg.name!r}"
        args = (reg.artifact, kind, reg.trust, reference, reg.target, declared)
        schema, output = run_once(inspect, args, what=what)
    record = {
        "name": reg.name,
        "format": reg.format,
        "artifact_kind": kind,
        "artifact_sha256": hashlib.sha256(reg.artifact).hexdigest(),
        "input_schema": schema,
        "output": output,
        "target": reg.target,
        "reference_rows": 0 if reference is None else len(reference),
        "lineage": {"trusted": reg.trust, **reg.lineage},
        "metrics": reg.metrics,
        "description": reg.description,
    }
    blob = to_parquet(reference) if reference is not None else None
    return store.models.add_version(record, reg.artifact, blob)


def inspect(
    artifact: bytes,
    kind: str,
    trust: bool,
    reference: pd.DataFrame | None,
    target: str | None,
    declared: list[FeatureSpec] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load the artifact, infer its input schema (with the declared features laid over it), score the
    first reference rows, describe its output: (schema, output) as stored. In a throwaway process for
    an artifact not vetted."""
    return _inspect_loaded(formats.load(artifact, kind, trust=trust), reference, target, declared)


def _inspect_loaded(
    model: formats.ModelAdapter,
    reference: pd.DataFrame | None,
    target: str | None,
    declared: list[FeatureSpec] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    schema = _schema(model, reference, target, declared)
    # A declared feature the reference lacks leaves nothing to score its rows with.
    if reference is not None and all(name in reference.columns for name in schema.names):
        _sanity_check(model, schema, reference)
    return schema.to_dict(), output_spec(model, reference, target)


def _schema(
    model: formats.ModelAdapter,
    reference: pd.DataFrame | None,
    target: str | None,
    declared: list[FeatureSpec] | None = None,
) -> InputSchema:
    named = {f.name for f in declared or ()}
    if reference is not None:
        features = reference.drop(columns=[target]) if target else reference
        wanted = model.feature_names
        if wanted is not None:
            absent = [n for n in wanted if n not in features.columns and n not in named]
            if absent:
                raise BadRequest(
                    f"the model expects features {absent} that the reference data lacks", field="reference"
                )
            features = features[[n for n in wanted if n in features.columns]]
        return _in_model_order(apply_declared(InputSchema.infer(features), declared), wanted)
    if model.feature_names:
        return apply_declared(InputSchema.from_names(model.feature_names), declared)
    if declared:
        return apply_declared(None, declared)
    raise BadRequest(
        "cannot tell which features the model takes: upload reference data (the training sample) with it",
        field="reference",
    )


def _in_model_order(schema: InputSchema, wanted: list[str] | None) -> InputSchema:
    """The features in the order the model names them (a declared one the reference lacks included)."""
    if wanted is None:
        return schema
    extra = [n for n in schema.names if n not in wanted]
    if extra:
        raise BadRequest(f"declared feature(s) {extra} are not among the model's inputs {wanted}", field="schema")
    return InputSchema(tuple(schema.feature(n) for n in wanted), schema.unknown_categories)


def _sanity_check(model: formats.ModelAdapter, schema: InputSchema, reference: pd.DataFrame) -> None:
    sample = reference.head(SANITY_ROWS)
    columns = {name: sample[name].tolist() for name in schema.names}
    try:
        frame = schema.to_frame(columns, len(sample))
    except InvalidInput as exc:
        raise BadRequest(f"the reference data does not fit the schema: {exc.message}", field="reference") from None
    try:
        model.predict(frame)
    except DriftgateError:
        raise
    except Exception as exc:
        raise BadRequest(
            f"the model failed on the first reference rows: {type(exc).__name__}: {exc}", field="file"
        ) from None
