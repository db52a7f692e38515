"""Alert rules on text and tensor input metrics (on a real store): a dimmer lamp (image brightness) fires a
rule on the drift of the `image.brightness` descriptor (and on data_drift_share), an audio model that
hears nothing fires a rule on empty_answer_rate; calm traffic fires neither."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from driftgate.alerts.engine import AlertEngine
from driftgate.alerts.rules import parse_rule
from driftgate.core.points import MetricPoint
from driftgate.monitoring.drift import DriftSettings
from driftgate.monitoring.live import reference_of, window_drift
from driftgate.monitoring.measures import drift_measures
from driftgate.monitoring.window_metrics import Window, output_metrics
from driftgate.store import Store
from tests.monitoring.media_windows import IMAGE, KINDS, images, log_rows

T0 = 1_700_000_000.0


def _rule(store: Store, **fields: Any) -> None:
    body = {"name": "r", "endpoint": "line", "op": ">", "threshold": 0.5, "cooldown_seconds": 0, **fields}
    store.alerts.create_rule(parse_rule(body).stored(), actor="test")


def _points(scale: float, answers: list[Any]) -> list[MetricPoint]:
    """A monitor run's drift and output points on 300 images (lit at `scale`) and these answers."""
    kind = KINDS["image"]
    reference = reference_of(kind.reference_frame(1, 600), kind.schema)
    rng = np.random.default_rng(2)
    rows = log_rows(IMAGE, images(2, 300, scale=scale), rng, payload_rate=0.3)
    report, _ = window_drift(reference, kind.schema, rows, DriftSettings())
    for row, answer in zip(rows, answers * (len(rows) // len(answers)), strict=True):
        row["output"] = answer
    window = Window.from_rows([{**r, "latency_ms": 1.0} for r in rows])
    measures = [*drift_measures(report.to_dict()), *output_metrics(window, "classification", ["ok", "scratch"])]
    return [MetricPoint("line", m.name, m.value, T0, 1, m.detail) for m in measures]


def _fired(store: Store, points: list[MetricPoint]) -> list[str]:
    engine = AlertEngine(store, allow=[], clock=lambda: T0, attempts=1, base_delay=0.01)
    return sorted(alert["rule"] for alert in asyncio.run(engine.evaluate("line", points)))


def test_descriptor_drift_and_empty_answers_fire_their_rules(store: Store) -> None:
    _rule(store, name="lighting", metric="feature_drift", detail={"feature": "image.brightness"})
    _rule(store, name="sharpness", metric="feature_drift", detail={"feature": "image.sharpness"}, enabled=False)
    _rule(store, name="drift", metric="data_drift_share", threshold=0.3)
    _rule(store, name="silence", metric="empty_answer_rate", threshold=0.2)
    assert _fired(store, _points(1.0, ["ok", "scratch", "ok", "ok"])) == []
    assert _fired(store, _points(0.7, ["ok", "", "ok", "ok"])) == ["drift", "lighting", "silence"]
