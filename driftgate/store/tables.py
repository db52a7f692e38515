"""The schema, as SQLAlchemy Core tables. Alembic migrations under `migrations/` create it.

JSON columns hold small documents (schemas, configs, inputs); artifacts and reference data are
stored as blobs so that replicas on other hosts need nothing but the database.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

models = Table(
    "models",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("created_at", Float, nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("format", String(32), nullable=False),
    Column("artifact_kind", String(32), nullable=False),
    Column("artifact_sha256", String(64), nullable=False),
    Column("input_schema", JSON, nullable=False),
    Column("output", JSON, nullable=False),
    Column("target", String(200)),
    Column("reference_rows", Integer, nullable=False, default=0),
    Column("lineage", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("description", Text),
    Column("created_at", Float, nullable=False),
    ForeignKeyConstraint(["name"], ["models.name"]),
)

# Blobs live apart from version rows so listing versions never drags megabytes along.
artifacts = Table(
    "artifacts",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("kind", String(32), primary_key=True),  # "model" | "reference"
    Column("data", LargeBinary, nullable=False),
    ForeignKeyConstraint(["name", "version"], ["model_versions.name", "model_versions.version"]),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("alias", String(100), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
    ForeignKeyConstraint(["name", "version"], ["model_versions.name", "model_versions.version"]),
)

endpoints = Table(
    "endpoints",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("config", JSON, nullable=False),
    # Bumped on every change; replicas poll max(revision) to pick changes up within a second.
    Column("revision", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Who changed what, when and why: endpoint configs, rollouts, aliases.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("detail", JSON, nullable=False),
    Index("ix_audit_subject_at", "subject", "at"),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("scope", String(32), nullable=False),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
)

# The prediction log (0005): one row per request's predictions, not per prediction, so a 100-row
# request costs one insert and one index entry. A prediction id names its row: its first 28 hex digits
# are `batch_key`, the last 4 its row number (`driftgate.core.ids`); `driftgate.core.rows`
# encodes and expands rows. Columns that differ per prediction are JSON lists.
prediction_batches = Table(
    "prediction_batches",
    metadata,
    Column("batch_key", String(32), primary_key=True),
    Column("first_row", Integer, nullable=False),
    Column("n_rows", Integer, nullable=False),
    Column("endpoint", String(200), nullable=False),
    Column("model", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("role", String(16), nullable=False),  # "primary" | "shadow"
    Column("ts", Float, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("status", Text, nullable=False),  # one status, or a JSON list of them
    Column("review", Integer, nullable=False),  # rows waiting for review ("review" | "audit")
    Column("error", Text),
    Column("inputs", Text, nullable=False),  # JSON: list of row objects, or object of columns
    Column("outputs", Text),  # JSON list
    Column("probabilities", Text),  # JSON list of lists
    Column("parents", Text),  # shadow rows: JSON list of the answering rows' ids
    Index("ix_prediction_batches_endpoint_ts", "endpoint", "ts"),
    # Only rows with predictions deferred to a person: the review queue reads these alone.
    Index(
        "ix_prediction_batches_review",
        "ts",
        sqlite_where=text("review > 0"),
        postgresql_where=text("review > 0"),
    ),
)

labels = Table(
    "labels",
    metadata,
    Column("prediction_id", String(32), primary_key=True),
    Column("endpoint", String(200), nullable=False),
    Column("label", JSON, nullable=False),
    Column("source", String(32), nullable=False),  # "feedback" | "review"
    Column("ts", Float, nullable=False),
    Index("ix_labels_endpoint_ts", "endpoint", "ts"),
)

# Outcome events (added in 0003): at most one per prediction and name, so retries change nothing. The
# prediction's time, model and version are copied in, so a monitor window counts its events with one
# range scan of this table instead of a join over the prediction log.
outcome_events = Table(
    "outcome_events",
    metadata,
    Column("prediction_id", String(32), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("endpoint", String(200), nullable=False),
    Column("model", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("prediction_ts", Float, nullable=False),
    Column("ts", Float, nullable=False),  # when the event happened
    Index("ix_outcome_events_endpoint_prediction_ts", "endpoint", "prediction_ts"),
)

# One row per rollout; the running one (at most one per endpoint) drives traffic. History is kept.
rollouts = Table(
    "rollouts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("endpoint", String(200), nullable=False),
    Column("strategy", String(16), nullable=False),  # shadow | canary | blue_green | ab
    Column("state", String(16), nullable=False),  # running | paused | promoted | rolled_back
    Column("baseline", JSON, nullable=False),  # {"model", "version"}
    Column("candidate", JSON, nullable=False),
    Column("spec", JSON, nullable=False),  # the validated request
    Column("step", Integer, nullable=False),
    Column("weight", Float, nullable=False),  # candidate's share of answered traffic, percent
    Column("started_at", Float, nullable=False),
    Column("step_started_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("analysis", JSON),  # the last gate evaluation
    Column("reason", Text),  # why the last decision was taken
    Column("actor", String(200), nullable=False),
    Index("ix_rollouts_endpoint_started", "endpoint", "started_at"),
)

# Monitor output as time series: one value per (endpoint, version, metric, time).
monitoring_points = Table(
    "monitoring_points",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("endpoint", String(200), nullable=False),
    Column("version", Integer),
    Column("metric", String(100), nullable=False),
    Column("ts", Float, nullable=False),
    Column("value", Float),
    Column("detail", JSON),
    Index("ix_monitoring_endpoint_metric_ts", "endpoint", "metric", "ts"),
)

# Full monitor reports (drift per feature, performance), the latest one answers GET .../drift.
monitor_reports = Table(
    "monitor_reports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("endpoint", String(200), nullable=False),
    Column("version", Integer),
    Column("ts", Float, nullable=False),
    Column("report", JSON, nullable=False),
    Index("ix_monitor_reports_endpoint_ts", "endpoint", "ts"),
)

alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("endpoint", String(200)),  # None: every endpoint
    Column("metric", String(100), nullable=False),
    Column("op", String(4), nullable=False),
    Column("threshold", Float, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("cooldown_seconds", Float, nullable=False),
    Column("notify", JSON, nullable=False),
    Column("actions", JSON, nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("detail", JSON),  # selects per-detail points, e.g. {"event": "user_retried"} (added in 0003)
    Column("created_at", Float, nullable=False),
    Column("created_by", String(200), nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule_id", String(32), nullable=False),
    Column("rule_name", String(200), nullable=False),
    Column("endpoint", String(200), nullable=False),
    Column("metric", String(100), nullable=False),
    Column("op", String(4), nullable=False),
    Column("value", Float),
    Column("threshold", Float, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("fired_at", Float, nullable=False),
    Column("message", Text, nullable=False),
    Column("deliveries", JSON, nullable=False),  # per notifier: target, ok, attempts, error
    Column("actions", JSON, nullable=False),  # per action: name, ok, detail
    Column("detail", JSON),  # which point fired a per-detail metric, e.g. {"event": "user_retried"} (0003)
    Index("ix_alerts_fired_at", "fired_at"),
    Index("ix_alerts_rule_endpoint_fired", "rule_id", "endpoint", "fired_at"),
)

# One row per retraining run (SPEC 8); at most one queued or running per endpoint.
retraining_runs = Table(
    "retraining_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("endpoint", String(200), nullable=False),
    Column("state", String(16), nullable=False),  # queued | running | succeeded | rejected | failed
    Column("trigger", String(16), nullable=False),  # manual | schedule | alert
    Column("actor", String(200), nullable=False),
    Column("spec", JSON, nullable=False),  # the validated RetrainSpec
    Column("champion", JSON, nullable=False),  # {"model", "version"} the run started from
    Column("candidate", JSON),  # the version it registered
    Column("rows", JSON),  # {"train", "holdout", "reference"}
    Column("evaluation", JSON),  # candidate against champion on the holdout
    Column("rollout_id", Integer),
    Column("detail", Text),  # the outcome in words, or the error
    Column("log", Text),  # the tail of the subprocess's output
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("deadline", Float, nullable=False),  # past it, a run still open was abandoned by its server
    Index("ix_retraining_runs_endpoint_created", "endpoint", "created_at"),
)

__all__ = [
    "alert_rules",
    "alerts",
    "artifacts",
    "audit_log",
    "endpoints",
    "labels",
    "metadata",
    "model_aliases",
    "model_versions",
    "models",
    "monitor_reports",
    "monitoring_points",
    "outcome_events",
    "prediction_batches",
    "retraining_runs",
    "rollouts",
    "tokens",
]
