"""Window metrics and concept drift on hand-made windows (pure: no server, no store)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftgate.monitoring.concept import detect_concept_drift, error_stream
from driftgate.monitoring.window_metrics import (
    Window,
    event_metrics,
    input_metrics,
    output_metrics,
    software_metrics,
)
from driftgate.registry.schema import FeatureSpec, InputSchema

SCHEMA = InputSchema(
    (
        FeatureSpec("x", "numeric", nullable=True, min=0.0, max=10.0),
        FeatureSpec("n", "integer", nullable=False, min=1.0, max=3.0),
        FeatureSpec("c", "categorical", nullable=False, categories=("a", "b")),
    )
)


def _values(measures: list) -> dict[str, float | None]:
    return {m.name: m.value for m in measures}


def _window(inputs: list[dict], status: list[str] | None = None, **columns: list) -> Window:
    n = len(inputs)
    return Window(
        inputs=pd.DataFrame(inputs, index=range(n)),
        outputs=columns.get("outputs", [0] * n),
        probabilities=columns.get("probabilities", [None] * n),
        latency_ms=columns.get("latency_ms", [1.0] * n),
        status=status or ["ok"] * n,
        ts=columns.get("ts", [float(i) for i in range(n)]),
    )


def test_software_metrics_count_calls_not_rows_for_latency() -> None:
    # Three calls: a 3-row batch at t=0 (10 ms), one row at t=1 (20 ms), one failed row at t=4.
    w = _window(
        [{}] * 5,
        status=["ok", "ok", "ok", "review", "timeout"],
        ts=[0.0, 0.0, 0.0, 1.0, 4.0],
        latency_ms=[10.0, 10.0, 10.0, 20.0, 0.0],
    )
    m = _values(software_metrics(w))
    assert m["request_count"] == 5 and m["request_rate"] == pytest.approx(5 / 4) and m["error_rate"] == 0.2
    assert m["latency_p50_ms"] == pytest.approx(15.0) and m["latency_p99_ms"] == pytest.approx(19.9)
    assert _values(software_metrics(w, span_seconds=10.0))["request_rate"] == 0.5
    empty = _values(software_metrics(_window([])))
    assert empty["request_count"] == 0 and empty["error_rate"] is None and empty["latency_p99_ms"] is None


def test_input_metrics_against_the_schema() -> None:
    rows = [
        {"x": 1.0, "n": 2, "c": "a"},
        {"x": None, "n": 5, "c": "zz"},  # missing (nullable), out of range, unseen
        {"x": 11.0, "n": 1, "c": None},  # out of range, null in a non-nullable feature
        {"x": "oops", "n": 2, "c": "b"},  # wrong type
        {"x": 99.0, "n": 99, "c": "zz"},  # a failed row: not counted
    ]
    measures = input_metrics(_window(rows, status=["ok"] * 4 + ["error"]), SCHEMA)
    m = _values(measures)
    assert m["missing_rate"] == pytest.approx(2 / 12)
    # numeric values present: x 1, 11 (oops is not a number), n 2, 5, 1, 2
    assert m["out_of_range_rate"] == pytest.approx(2 / 6)
    assert m["unseen_category_rate"] == pytest.approx(1 / 3)
    assert m["schema_violation_rate"] == pytest.approx(2 / 4)
    by_feature = next(x for x in measures if x.name == "missing_rate").detail["by_feature"]
    assert by_feature == {"x": 0.25, "n": 0.0, "c": 0.25}


def test_absent_and_skipped_features() -> None:
    rows = [{"x": 1.0, "n": 2}] * 4  # "c" absent: dropped by redaction, or a broken client
    assert _values(input_metrics(_window(rows), SCHEMA))["schema_violation_rate"] == 1.0
    skipped = _values(input_metrics(_window(rows), SCHEMA, skip={"c"}))
    assert skipped["schema_violation_rate"] == 0.0 and skipped["missing_rate"] == 0.0
    assert skipped["unseen_category_rate"] is None


def test_output_metrics_classification_and_regression() -> None:
    w = _window(
        [{}] * 5,
        status=["ok", "ok", "review", "ok", "error"],
        outputs=[1, 0, 1, None, None],
        probabilities=[[0.2, 0.8], [0.6, 0.4], [0.45, 0.55], [0.5, 0.5], None],
    )
    measures = output_metrics(w, "classification", classes=[0, 1, 2])
    shares = {m.detail["class"]: m.value for m in measures if m.name == "class_share"}
    assert shares == {0: pytest.approx(1 / 3), 1: pytest.approx(2 / 3), 2: 0.0}
    m = _values(measures)
    assert m["null_output_rate"] == 0.25 and m["mean_confidence"] == pytest.approx((0.8 + 0.6 + 0.55 + 0.5) / 4)
    r = _values(output_metrics(_window([{}] * 3, outputs=[1.0, 2.0, float("nan")]), "regression"))
    assert r["prediction_mean"] == 1.5 and r["prediction_std"] == pytest.approx(np.std([1, 2], ddof=1))
    assert r["null_output_rate"] == pytest.approx(1 / 3)


def test_event_rates_per_name_with_carried_names() -> None:
    measures = event_metrics({"user_retried": 3, "clicked": 12}, 12, names={"abandoned", "clicked"})
    assert [(m.name, m.detail, m.value) for m in measures] == [
        ("event_rate", {"event": "abandoned"}, 0.0),
        ("event_rate", {"event": "clicked"}, 1.0),
        ("event_rate", {"event": "user_retried"}, 0.25),
    ]
    assert [m.value for m in event_metrics({}, 0, names={"clicked"})] == [None]  # an empty window has no rate
    assert event_metrics({}, 50) == []


def test_error_stream_and_concept_drift() -> None:
    assert error_stream("classification", [1, "0", 1.0, "b"], [1.0, 0, 0, "b"]).tolist() == [0, 0, 1, 0]
    assert error_stream("regression", [1.0, 3.0], [2.0, 1.0]).tolist() == [1.0, 2.0]
    rng = np.random.default_rng(5)
    calm = (rng.random(3000) < 0.1).astype(float)
    ts = np.arange(3000.0)
    assert not detect_concept_drift(calm, ts, task="classification", in_window=ts >= 2000).fired
    jump = np.concatenate([calm[:2000], (rng.random(1000) < 0.6).astype(float)])
    result = detect_concept_drift(jump, ts, task="classification", in_window=ts >= 2000)
    assert result.fired and result.detector == "ADWIN" and 2000 <= result.index < 2200 and result.ts == result.index
    # A change before the window is not this window's news; a drop in errors is not reported.
    assert not detect_concept_drift(jump, ts, task="classification", in_window=ts >= 2900).fired
    assert not detect_concept_drift(jump[::-1].copy(), ts, task="classification", in_window=ts >= 1000).fired
    shifted = np.abs(np.concatenate([rng.normal(0, 1, 2000), rng.normal(2, 1, 500)]))
    regression = detect_concept_drift(shifted, np.arange(2500.0), task="regression", in_window=np.arange(2500) >= 2000)
    assert regression.fired and regression.detector == "PageHinkley"


def test_audited_rows_count_as_scored() -> None:
    # `governed` logs answered rows that a person will check as "audit": the model scored them.
    w = _window([{"x": 1.0, "n": 2, "c": "a"}] * 3, status=["ok", "audit", "error"], outputs=[1, 0, None])
    shares = {
        m.detail["class"]: m.value for m in output_metrics(w, "classification", [0, 1]) if m.name == "class_share"
    }
    assert shares == {0: 0.5, 1: 0.5}
    assert next(m for m in software_metrics(w) if m.name == "latency_p50_ms").detail["calls"] == 2
    assert _values(input_metrics(w, SCHEMA))["missing_rate"] == 0.0


def test_empty_answer_rate_counts_null_empty_text_and_empty_lists() -> None:
    outputs = ["yes", "", "  ", None, [], ["go"], float("nan"), 0, {}, "no"]
    w = _window([{}] * 11, status=["ok"] * 10 + ["error"], outputs=[*outputs, None])
    m = _values(output_metrics(w, "classification", classes=["yes", "no"]))
    assert m["empty_answer_rate"] == pytest.approx(6 / 10)  # the error row was not answered
    assert m["null_output_rate"] == pytest.approx(2 / 10)
    assert _values(output_metrics(_window([{}] * 2, outputs=[1.0, 2.0]), "regression"))["empty_answer_rate"] == 0.0
    assert _values(output_metrics(_window([]), "regression"))["empty_answer_rate"] is None


def test_text_and_tensor_features_in_the_input_metrics() -> None:
    # A tensor's payload is kept for a sample of rows only (null otherwise): its presence is read from
    # its descriptors, logged for every row. A text is a string, or null.
    schema = InputSchema(
        (
            FeatureSpec("t", "text", nullable=True),
            FeatureSpec("image", "tensor", shape=(8, 8), dtype="float32", media="image"),
            FeatureSpec("embedding", "tensor", shape=(4,), dtype="float32"),  # no descriptors: left out
        )
    )
    payload = {"dtype": "float32", "shape": [8, 8], "zlib": "..."}
    rows = [
        {"t": "hello", "image": payload, "image.brightness": 0.5, "image.contrast": 0.1, "embedding": None},
        {"t": None, "image": None, "image.brightness": 0.4, "image.contrast": 0.2, "embedding": None},
        {"t": 3, "image": None, "image.brightness": 0.3, "image.contrast": 0.1, "embedding": None},
        {"t": "", "image": None, "image.brightness": None, "image.contrast": None, "embedding": None},
    ]
    measures = input_metrics(_window(rows), schema)
    m = _values(measures)
    by_feature = next(x for x in measures if x.name == "missing_rate").detail["by_feature"]
    assert by_feature == {"t": 0.25, "image": 0.25}  # unsampled payloads are not missing
    assert m["missing_rate"] == pytest.approx(2 / 8)
    assert m["schema_violation_rate"] == pytest.approx(2 / 4)  # the text 3, the image without descriptors
    assert m["unseen_category_rate"] is None and m["out_of_range_rate"] is None
    no_descriptors = [{"t": "a", "image": None}] * 2
    assert (
        next(x for x in input_metrics(_window(no_descriptors), schema) if x.name == "missing_rate").detail[
            "by_feature"
        ]["image"]
        == 1.0
    )
