"""The Grafana dashboard and the Prometheus config in examples/ only use what driftgate exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from driftgate.client import Client
from tests.conftest import LiveServer

EXAMPLES = Path(__file__).parents[1] / "examples"
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"), "gauge": ("",)}
METRIC = re.compile(r"\b((?:driftgate|process)_[a-zA-Z0-9_]+)")


def exported_names(url: str) -> set[str]:
    """Every series name a scrape can hold, from the families' types (a labelled counter with no
    samples yet still says what it will be called)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
        names |= {s.name for s in family.samples}
    return names


def expressions(dashboard: dict) -> list[str]:
    exprs = [v["definition"] for v in dashboard["templating"]["list"] if v.get("type") == "query"]
    for panel in dashboard["panels"]:
        exprs += [t["expr"] for t in panel.get("targets", [])]
    return exprs


def test_dashboard_queries_use_only_exported_metrics(deployed: Client, server: LiveServer) -> None:
    deployed.predict("clf", [{"x1": 0.5, "x2": 3.0, "colour": "red"}])
    exported = exported_names(server.url)
    dashboard = json.loads((EXAMPLES / "grafana" / "driftgate-dashboard.json").read_text())
    exprs = expressions(dashboard)
    assert len(exprs) >= 12
    used: set[str] = set()
    for expr in exprs:
        names = set(METRIC.findall(expr))
        assert names, f"no driftgate metric in {expr!r}"
        assert names <= exported, f"{expr!r} uses {sorted(names - exported)}, not exported"
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr
        used |= names
    # What the brief asks the dashboard to chart is there.
    for name in (
        "driftgate_requests_total",
        "driftgate_model_latency_seconds_bucket",
        "driftgate_rows_total",
        "driftgate_review_rows_total",
        "driftgate_log_queue_rows",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    ):
        assert name in used, name
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"endpoint", "version"} <= variables


def test_prometheus_config_scrapes_driftgate_on_8080() -> None:
    import yaml

    config = yaml.safe_load((EXAMPLES / "prometheus" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "driftgate" and job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:8080"]
