"""Software, input and output metrics of one window of logged predictions. Pure: numpy and pandas.

A window is the primary log rows of one endpoint version (`Window.from_rows` takes the store's row
mappings). Input metrics are judged against the version's `InputSchema`, inferred from its reference
data: `min`/`max` per numeric feature, the reference categories per categorical feature.

>>> import pandas as pd
>>> w = Window(inputs=pd.DataFrame({"x": [1.0, None, 9.0]}), outputs=[0, 1, None],
...            probabilities=[[0.9, 0.1], [0.3, 0.7], None], latency_ms=[5.0, 5.0, 7.0],
...            status=["ok", "ok", "error"], ts=[0.0, 0.0, 2.0])
>>> {m.name: m.value for m in software_metrics(w)}["error_rate"]
0.3333333333333333
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from driftgate.monitoring.drift.media import descriptor_columns
from driftgate.monitoring.guards import OutputLimits, check_outputs
from driftgate.registry.schema import FeatureSpec, InputSchema

# Rows the model scored ("audit": answered under `governed`, queued for a person afterwards);
# "error" and "timeout" rows have no output.
ANSWERED = ("ok", "review", "audit")
FAILED = ("error", "timeout")


@dataclass(frozen=True, slots=True)
class Measure:
    """One metric value of a window; `detail` says what it is about (a feature, a class...)."""

    name: str
    value: float | None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Window:
    """Logged rows, one entry per prediction, oldest first."""

    inputs: pd.DataFrame
    outputs: Sequence[Any]
    probabilities: Sequence[Sequence[float] | None]
    latency_ms: Sequence[float]
    status: Sequence[str]
    ts: Sequence[float]

    def __len__(self) -> int:
        return len(self.status)

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]]) -> Window:
        return cls(
            inputs=pd.DataFrame([r["inputs"] or {} for r in rows], index=range(len(rows))),
            outputs=[r["output"] for r in rows],
            probabilities=[r["probabilities"] for r in rows],
            latency_ms=[float(r["latency_ms"]) for r in rows],
            status=[str(r["status"]) for r in rows],
            ts=[float(r["ts"]) for r in rows],
        )


def _rate(numerator: float, denominator: float) -> float | None:
    return float(numerator / denominator) if denominator else None


def software_metrics(window: Window, span_seconds: float | None = None) -> list[Measure]:
    """request_count (logged predictions), request_rate (per second over `span_seconds`, else over the
    rows' own time span), error_rate (error or timeout rows), latency p50/p95/p99 in ms.

    Rows of one call share its time stamp and latency, so latency percentiles are taken over calls
    (distinct time stamps), not over rows: a 1000-row batch is one slow call, not 1000 of them.
    """
    n = len(window)
    status = np.asarray(window.status, dtype=object)
    ts = np.asarray(window.ts, dtype=np.float64)
    if span_seconds is None and n > 1:
        span_seconds = float(ts.max() - ts.min())
    out = [
        Measure("request_count", float(n)),
        Measure(
            "request_rate",
            _rate(n, span_seconds) if span_seconds and span_seconds > 0 else None,
            {"span_seconds": span_seconds},
        ),
        Measure("error_rate", _rate(int(np.isin(status, FAILED).sum()), n)),
    ]
    answered = np.isin(status, ANSWERED)
    calls = pd.DataFrame({"ts": ts[answered], "latency": np.asarray(window.latency_ms, dtype=np.float64)[answered]})
    latency = calls.drop_duplicates("ts")["latency"].to_numpy()
    for q in (50, 95, 99):
        value = float(np.percentile(latency, q)) if latency.size else None
        out.append(Measure(f"latency_p{q}_ms", value, {"calls": int(latency.size)}))
    return out


def _numeric_values(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(values as float with NaN for anything that is not a number, mask of wrong-typed cells)."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column.to_numpy(dtype=np.float64, na_value=np.nan), np.zeros(len(column), dtype=bool)
    values = column.to_numpy(dtype=object)
    missing = pd.isna(column).to_numpy()
    is_number = np.fromiter(
        (isinstance(v, int | float | np.number) and not isinstance(v, str) for v in values), bool, len(values)
    )
    wrong = ~missing & ~is_number
    numbers = np.full(len(values), np.nan)
    ok = ~missing & is_number
    numbers[ok] = values[ok].astype(np.float64)
    return numbers, wrong


def _feature_rates(spec: FeatureSpec, column: pd.Series) -> dict[str, int]:
    missing = pd.isna(column).to_numpy()
    counts = {
        "rows": len(column),
        "missing": int(missing.sum()),
        "out_of_range": 0,
        "numeric": 0,
        "unseen": 0,
        "categorical": 0,
        "wrong_type": 0,
    }
    if spec.kind == "tensor":  # the column holds its first descriptor: only presence counts
        return counts
    if spec.is_numeric:
        numbers, wrong = _numeric_values(column)
        present = ~np.isnan(numbers)
        counts["wrong_type"] = int(wrong.sum())
        if spec.kind in ("numeric", "integer") and spec.min is not None and spec.max is not None:
            counts["numeric"] = int(present.sum())
            counts["out_of_range"] = int(((numbers[present] < spec.min) | (numbers[present] > spec.max)).sum())
        return counts
    values = column.to_numpy(dtype=object)[~missing]
    counts["wrong_type"] = int(sum(not isinstance(v, str) for v in values))
    if spec.categories is not None:
        known = set(spec.categories)
        counts["categorical"] = len(values)
        counts["unseen"] = len(values) - int(pd.Series(values, dtype=object).isin(known).sum())
    return counts


def input_metrics(window: Window, schema: InputSchema, skip: Collection[str] = ()) -> list[Measure]:
    """missing_rate (null cells among feature cells), out_of_range_rate (numeric values outside the
    reference min/max), unseen_category_rate (categorical values outside the reference categories),
    schema_violation_rate (rows with a required feature absent or null, or a value of the wrong type).

    Only rows the model scored count, and `skip` names features to leave out (redacted ones: their
    stored values are dropped or hashed, so they would read as missing or wrong-typed). A text feature
    counts like a categorical one without categories. A tensor feature's raw payload is logged for a
    sample of rows only, so its presence is read from its descriptors, logged for every row ("x.d"
    inputs: a row without them is missing); a tensor without descriptors is left out.
    """
    answered = np.isin(np.asarray(window.status, dtype=object), ANSWERED)
    frame = _with_tensor_presence(window.inputs.loc[answered], schema)
    n = len(frame)
    features = [f for f in schema.features if f.name not in skip and (f.kind != "tensor" or descriptor_columns(f))]
    totals = {"cells": 0, "missing": 0, "numeric": 0, "out_of_range": 0, "categorical": 0, "unseen": 0}
    by_feature: dict[str, dict[str, float | None]] = {}
    violating = np.zeros(n, dtype=bool)
    for spec in features:
        if spec.name not in frame:
            violating[:] = True  # absent from every row: a schema violation, and all missing
            totals["cells"] += n
            totals["missing"] += n
            by_feature[spec.name] = {"missing_rate": 1.0 if n else None}
            continue
        column = frame[spec.name]
        counts = _feature_rates(spec, column)
        missing = pd.isna(column).to_numpy()
        if not spec.nullable:
            violating |= missing
        if counts["wrong_type"]:
            violating |= _wrong_type_mask(spec, column)
        for key in ("missing", "numeric", "out_of_range", "categorical", "unseen"):
            totals[key] += counts[key]
        totals["cells"] += n
        categorical = spec.kind == "categorical"
        by_feature[spec.name] = {
            "missing_rate": _rate(counts["missing"], n),
            **({"out_of_range_rate": _rate(counts["out_of_range"], counts["numeric"])} if spec.is_numeric else {}),
            **({"unseen_category_rate": _rate(counts["unseen"], counts["categorical"])} if categorical else {}),
        }

    def per(key: str) -> dict[str, Any]:
        return {"by_feature": {name: rates[key] for name, rates in by_feature.items() if key in rates}}

    return [
        Measure("missing_rate", _rate(totals["missing"], totals["cells"]), per("missing_rate")),
        Measure("out_of_range_rate", _rate(totals["out_of_range"], totals["numeric"]), per("out_of_range_rate")),
        Measure("unseen_category_rate", _rate(totals["unseen"], totals["categorical"]), per("unseen_category_rate")),
        Measure("schema_violation_rate", _rate(int(violating.sum()), n), {"rows": int(violating.sum())}),
    ]


def _with_tensor_presence(frame: pd.DataFrame, schema: InputSchema) -> pd.DataFrame:
    """`frame` with each described tensor feature's column replaced by its first descriptor (present
    or null), which is what its missing rate reads."""
    described = [(f.name, descriptor_columns(f)) for f in schema.features if f.kind == "tensor"]
    tensors = {name: columns[0] for name, columns in described if columns}
    if not tensors:
        return frame
    frame = frame.copy()
    for name, first in tensors.items():
        if first in frame:
            frame[name] = pd.to_numeric(frame[first], errors="coerce")
        elif name in frame:
            del frame[name]  # no descriptors logged: missing in every row
    return frame


def _wrong_type_mask(spec: FeatureSpec, column: pd.Series) -> np.ndarray:
    if spec.is_numeric:
        return _numeric_values(column)[1]
    values = column.to_numpy(dtype=object)
    missing = pd.isna(column).to_numpy()
    return ~missing & np.fromiter((not isinstance(v, str) for v in values), bool, len(values))


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_empty(value: Any) -> bool:
    """An empty answer: null, "" (or only whitespace), or an empty list or mapping."""
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple | dict):
        return not value
    return _is_null(value)


def output_metrics(window: Window, kind: str, classes: Sequence[Any] | None = None) -> list[Measure]:
    """null_output_rate, empty_answer_rate (answers that are null, "" or an empty list: a speech model
    that heard nothing); for classifiers class_share per class (`detail["class"]`) and
    mean_confidence (mean largest class probability); for regression prediction_mean and
    prediction_std. Over the rows the model scored (`ok` and `review`)."""
    answered = np.isin(np.asarray(window.status, dtype=object), ANSWERED)
    outputs = [o for o, a in zip(window.outputs, answered, strict=True) if a]
    nulls = [_is_null(o) for o in outputs]
    present = [o for o, null in zip(outputs, nulls, strict=True) if not null]
    out = [
        Measure("null_output_rate", _rate(sum(nulls), len(outputs))),
        Measure("empty_answer_rate", _rate(sum(_is_empty(o) for o in outputs), len(outputs))),
    ]
    if kind == "classification":
        return [*out, *_class_shares(present, classes), _mean_confidence(window, answered)]
    return [*out, *_prediction_moments(present)]


def _class_shares(present: list[Any], classes: Sequence[Any] | None) -> list[Measure]:
    """The share of each class among the non-null outputs: the model's classes first (0 when
    absent), then any other output seen (an unhashable one, such as a list answer, by its text)."""
    present = [o if isinstance(o, Hashable) else str(o) for o in present]
    counts = pd.Series(present, dtype=object).value_counts() if present else pd.Series(dtype=float)
    levels = list(classes) if classes else []
    levels += [c for c in counts.index if c not in levels]
    return [
        Measure("class_share", _rate(int(counts.get(level, 0)), len(present)), {"class": level}) for level in levels
    ]


def _mean_confidence(window: Window, answered: np.ndarray) -> Measure:
    """The mean largest class probability over the answered rows that logged complete probabilities."""
    probabilities = [p for p, a in zip(window.probabilities, answered, strict=True) if a and p]
    confidence = [max(p) for p in probabilities if all(v is not None for v in p)]
    return Measure("mean_confidence", float(np.mean(confidence)) if confidence else None, {"rows": len(confidence)})


def _prediction_moments(present: list[Any]) -> list[Measure]:
    values = np.asarray([o for o in present if isinstance(o, int | float)], dtype=np.float64)
    return [
        Measure("prediction_mean", float(values.mean()) if values.size else None),
        Measure("prediction_std", float(values.std(ddof=1)) if values.size > 1 else None),
    ]


def guard_metrics(window: Window, limits: OutputLimits) -> list[Measure]:
    """output_guard_violation_rate: share of the scored rows whose logged model output violates
    `limits` (the endpoint's output guard now, also for rows logged before it changed);
    `detail.by_guard` gives the rate per guard kind."""
    answered = np.isin(np.asarray(window.status, dtype=object), ANSWERED)
    outputs = [o for o, a in zip(window.outputs, answered, strict=True) if a]
    probabilities = [p for p, a in zip(window.probabilities, answered, strict=True) if a]
    result = check_outputs(limits, outputs, probabilities)
    violating = int(result.violating.sum())
    by_guard = {kind: _rate(count, result.n_rows) for kind, count in result.counts().items()}
    return [
        Measure(
            "output_guard_violation_rate", _rate(violating, result.n_rows), {"rows": violating, "by_guard": by_guard}
        )
    ]


def event_metrics(counts: Mapping[str, int], rows: int, names: Collection[str] = ()) -> list[Measure]:
    """event_rate per outcome event name (`detail["event"]`): events of that name tied to the window's
    rows over the rows (every status counts: an application may react to an error too). A name in
    `names` but not in `counts` still gets its point, 0 (None for an empty window), so a series has no
    gaps and a rule such as `event_rate < 0.1` can be judged on a quiet window.

    >>> [(m.detail["event"], m.value) for m in event_metrics({"user_retried": 5}, 20, names={"clicked"})]
    [('clicked', 0.0), ('user_retried', 0.25)]
    """
    return [Measure("event_rate", _rate(counts.get(n, 0), rows), {"event": n}) for n in sorted({*counts, *names})]
