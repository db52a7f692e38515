"""Drift of live traffic: the logged predictions of a window against the version's reference data.

Not pure (it reads the store); the statistics come from the pure `monitoring.drift` package.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from driftgate.core.redaction import hidden_fields, mask_text
from driftgate.core.refs import VersionRef
from driftgate.errors import BadRequest, DriftgateError
from driftgate.monitoring.drift import DriftReport, DriftSettings, compare_frames
from driftgate.monitoring.drift.media import MediaReference, payload_rows, stack_tensors
from driftgate.monitoring.live_performance import live_performance
from driftgate.monitoring.scoring import ScoringVersion
from driftgate.monitoring.window_metrics import ANSWERED
from driftgate.registry.reference import from_parquet
from driftgate.registry.schema import FeatureSpec, InputSchema
from driftgate.store import Store

PREDICTION = "__prediction__"
Rules = tuple[tuple[str, str], ...]  # redaction rules (feature, rule), sorted: a cache key
DEFAULT_WINDOW = 5000
MIN_ROWS = 10


@dataclass(frozen=True)
class Reference:
    """What a window is compared with: the features as the model takes them (tensor cells as arrays of
    the feature's shape), the model's scores and the target on them, and the text and tensor features'
    reference side (`drift.media`: descriptor columns, vocabularies, embedding references)."""

    features: pd.DataFrame
    scores: np.ndarray | None
    target: np.ndarray | None
    media: MediaReference

    def drift_columns(self, scalar: Sequence[str]) -> dict[str, np.ndarray]:
        """The drift engine's reference columns: scalar features as they are, descriptors for the rest."""
        return {**{name: self.features[name].to_numpy() for name in scalar}, **self.media.columns}


class LiveDrift:
    """Computes drift reports for endpoints; reference frames and their scores are cached per version."""

    def __init__(self, store: Store, settings: DriftSettings | None = None) -> None:
        self.store = store
        self.settings = settings or DriftSettings()
        # Per version and the redaction rules of its text and tensor features (a masked text's reference
        # is masked alike): a change of rules fits the reference again.
        self._references: dict[tuple[VersionRef, Rules], Reference] = {}
        self._lock = threading.Lock()
        self.latest: dict[str, dict[str, Any]] = {}

    def _reference(self, version: ScoringVersion, rules: Rules = ()) -> Reference:
        with self._lock:
            hit = self._references.get((version.ref, rules))
            if hit is not None:
                return hit
            blob = self.store.models.blob(version.ref.model, version.ref.version, "reference")
            if blob is None:
                raise BadRequest(
                    f"model {version.ref} was registered without reference data, so there is nothing to compare "
                    "live traffic with; register a version with `reference`",
                    model=version.ref.model,
                )
            frame = from_parquet(blob)
            record = self.store.models.get(version.ref.model, version.ref.version)
            target = frame[record.target].to_numpy() if record.target and record.target in frame else None
            try:
                hit = reference_of(frame, version.schema, target, dict(rules))
            except ValueError as exc:  # a tensor cell of another size than the feature's shape
                raise BadRequest(f"model {version.ref}: {exc}", model=version.ref.model) from None
            features = hit.features
            preds, proba = version.score(
                version.schema.to_frame({n: features[n].tolist() for n in features}, len(features))
            )
            hit = replace(hit, scores=_score_column(preds, proba))
            self._references[version.ref, rules] = hit
            return hit

    def _rules(self, endpoint: str, schema: InputSchema) -> Rules:
        """The endpoint's redaction rules of text and tensor features (none for an unknown endpoint)."""
        try:
            config, _ = self.store.endpoints.get(endpoint)
        except DriftgateError:
            return ()
        media = {f.name for f in schema.features if not f.is_scalar}
        return tuple(sorted((k, str(v)) for k, v in (config.get("redact") or {}).items() if k in media))

    def report(
        self,
        endpoint: str,
        version: ScoringVersion,
        *,
        last: int | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> dict[str, Any]:
        if last is not None and not 1 <= last <= 1_000_000:
            raise BadRequest(f"last must be between 1 and 1000000, got {last}", field="last")
        if last is None and since is None:
            last = DEFAULT_WINDOW
        rows = self.store.predictions.window(endpoint, last=last, since=since, until=until)
        rows = [r for r in rows if r["model"] == version.ref.model]
        return self.compare(endpoint, version, rows)

    def compare(
        self,
        endpoint: str,
        version: ScoringVersion,
        rows: list[dict[str, Any]],
        *,
        baseline_rows: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The drift report of logged `rows` (store rows, oldest first) against the version's
        reference data, or against `baseline_rows` (a past window of the same endpoint) when given."""
        rows = [r for r in rows if r["status"] in ANSWERED]
        rules = self._rules(endpoint, version.schema)
        if baseline_rows is None:
            reference = self._reference(version, rules)
        else:
            reference = baseline_of(baseline_rows, version.schema, dict(rules))
        if len(rows) < MIN_ROWS:
            raise BadRequest(
                f"the window holds {len(rows)} logged predictions of endpoint {endpoint!r}; drift needs at least "
                f"{MIN_ROWS}",
                endpoint=endpoint,
            )
        drift, notes = window_drift(reference, version.schema, rows, self.settings)
        labelled = [i for i, r in enumerate(rows) if r["label"] is not None]
        # Realised on the labelled rows, estimated on every row of the window (live_performance).
        drift.performance = live_performance(
            version, reference.features, reference.target, rows, baseline_rows=baseline_rows
        )
        body = drift.to_dict(include_histograms=True)
        body["window"] = {
            "endpoint": endpoint,
            "model": version.ref.model,
            "version": version.ref.version,
            "rows": len(rows),
            "labelled": len(labelled),
            "from": rows[0]["ts"],
            "to": rows[-1]["ts"],
            "computed_at": time.time(),
        }
        if notes:
            body["notes"] = notes
        if baseline_rows is not None:
            body["window"]["baseline"] = {
                "rows": len(reference.features),
                "from": baseline_rows[0]["ts"],
                "to": baseline_rows[-1]["ts"],
            }
        self.latest[endpoint] = body
        return body


def _score_column(preds: np.ndarray, proba: np.ndarray | None) -> np.ndarray | None:
    """The output monitored for prediction drift: the positive-class probability for binary
    classifiers (more sensitive than labels), the predicted value for regression, else labels."""
    if proba is not None and proba.ndim == 2 and proba.shape[1] == 2:
        return proba[:, 1].astype(float)
    try:
        return preds.astype(float)
    except (TypeError, ValueError):
        return preds.astype(str)


def window_drift(
    reference: Reference, schema: InputSchema, rows: list[dict[str, Any]], settings: DriftSettings
) -> tuple[DriftReport, list[str]]:
    """The drift report of logged rows (answered ones, oldest first) against `reference`, without its
    performance section, and notes on the tests left out."""
    inputs = [r["inputs"] or {} for r in rows]
    # The serving schema's kinds: the reference's `bool` column and the log's 0.0 / 1.0 are one
    # boolean feature, read the same way here as by `driftgate drift report` (drift.kinds). Text and
    # tensor features are read through their descriptors, numeric columns "f.<descriptor>".
    scalar = [f.name for f in schema.features if f.is_scalar]
    kinds: dict[str, str] = {f.name: f.kind for f in schema.features if f.is_scalar}
    kinds.update(reference.media.kinds)
    current = pd.DataFrame(inputs, index=range(len(inputs))).reindex(columns=scalar)
    ref_cols = reference.drift_columns(scalar)
    cur_cols = {name: current[name].to_numpy() for name in scalar}
    cur_cols.update(reference.media.current_columns(inputs))
    cur_scores = _score_column(
        np.asarray([r["output"] for r in rows], dtype=object),
        np.asarray([r["probabilities"] for r in rows], dtype=float) if rows[0]["probabilities"] else None,
    )
    if reference.scores is not None and cur_scores is not None:
        ref_cols[PREDICTION], cur_cols[PREDICTION] = reference.scores, cur_scores
    if not ref_cols:
        raise BadRequest("no feature to compare: the endpoint's redaction rules drop or hash every one")
    embeddings, notes = reference.media.embedding_drift(inputs, settings)
    drift = compare_frames(
        ref_cols,
        cur_cols,
        feature_types=kinds,
        prediction=PREDICTION if PREDICTION in ref_cols else None,
        settings=settings,
        extra=embeddings,
    )
    return drift, notes


def reference_of(
    frame: pd.DataFrame,
    schema: InputSchema,
    target: np.ndarray | None = None,
    redact: Mapping[str, str] | None = None,
) -> Reference:
    """A registered reference (as read from its Parquet) for drift, without the model's scores: the
    schema's columns (tensor cells as arrays of the feature's shape and dtype; ValueError when a cell
    does not fit it) and the reference side of its text and tensor features.

    `redact`: the endpoint's rules. A text the log masks ("mask") is masked here too, so that the
    reference's descriptors are those of texts as stored; a feature the log drops or hashes is left
    out (what is stored is not what the model saw)."""
    specs = schema.features
    features = frame[[f.name for f in specs if f.name in frame]].copy()
    tensors: dict[str, np.ndarray] = {}
    for spec in specs:
        if spec.kind == "tensor" and spec.shape is not None and spec.name in features:
            tensors[spec.name] = stack_tensors(spec.name, features[spec.name].tolist(), spec.shape, spec.dtype)
            features[spec.name] = _cells(tensors[spec.name])
    rules = redact or {}
    texts = {
        f.name: [mask_text(t) if rules.get(f.name) == "mask" else t for t in features[f.name].tolist()]
        for f in specs
        if f.kind == "text" and f.name in features
    }
    return Reference(features, None, target, MediaReference.fit(_monitored(specs, rules), texts, tensors))


def _monitored(specs: Sequence[FeatureSpec], rules: Mapping[str, str]) -> list[FeatureSpec]:
    """The features whose stored values are what the model saw (`core.redaction.hidden_fields`)."""
    hidden = set(hidden_fields(rules))
    return [f for f in specs if f.name not in hidden]


def _cells(array: np.ndarray) -> pd.Series:
    """An (n, *shape) array as an object column whose cells are the rows' arrays."""
    cells = np.empty(len(array), dtype=object)
    cells[:] = list(array)
    return pd.Series(cells, dtype=object)


def baseline_of(rows: list[dict[str, Any]], schema: InputSchema, redact: Mapping[str, str] | None = None) -> Reference:
    """A past window used as the reference: features, scores, labels (None where unlabelled); its text
    features' descriptors as for a registered reference, its tensors' as logged, its sampled payloads
    as the embedding reference (`redact`: as for `reference_of`; stored texts are already masked)."""
    rows = [r for r in rows if r["status"] in ANSWERED]
    if len(rows) < MIN_ROWS:
        raise BadRequest(
            f"the baseline window holds {len(rows)} logged predictions; drift needs at least {MIN_ROWS}",
            field="baseline_since",
        )
    inputs = [r["inputs"] or {} for r in rows]
    specs = schema.features
    frame = pd.DataFrame(inputs, index=range(len(inputs))).reindex(columns=schema.names)
    scores = _score_column(
        np.asarray([r["output"] for r in rows], dtype=object),
        np.asarray([r["probabilities"] for r in rows], dtype=float) if rows[0]["probabilities"] else None,
    )
    labels = np.asarray([r["label"] for r in rows], dtype=object)
    texts = {f.name: _texts(frame[f.name]) for f in specs if f.kind == "text"}
    tensors = {f.name: _stacked(payload_rows(f, inputs)[0]) for f in specs if f.kind == "tensor"}
    logged = MediaReference(tuple(f for f in specs if f.kind == "tensor")).current_columns(inputs)
    media = MediaReference.fit(_monitored(specs, redact or {}), texts, tensors, tensor_columns=logged)
    return Reference(frame, scores, None if all(v is None for v in labels) else labels, media)


def _texts(column: pd.Series) -> list[str | None]:
    return [v if isinstance(v, str) else None for v in column.tolist()]


def _stacked(rows: list[np.ndarray]) -> np.ndarray:
    return np.stack(rows) if rows else np.empty((0, 0))
