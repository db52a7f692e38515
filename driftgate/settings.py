"""Server settings: one object built by the CLI (or tests), passed to `create_app`."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

ENV_VAR = "DRIFTGATE_SETTINGS"


@dataclass
class Settings:
    data_dir: Path = Path(".driftgate")
    """Where the embedded SQLite database lives (ignored for the store when `db` is set)."""
    db: str | None = None
    """SQLAlchemy URL of the store, e.g. postgresql+psycopg://user@host/db; SQLite under data_dir if unset."""
    host: str = "127.0.0.1"
    """Address to bind; a non-loopback one needs an API token (or `insecure`)."""
    port: int = 8080
    """Port of the HTTP API."""
    grpc_port: int = 0
    """Port of the Open Inference Protocol's gRPC service (api/grpc_server.py) on `host`; 0: no gRPC.
    `driftgate serve` defaults to 8081 (SPEC 12); servers built from `Settings()` directly have none."""
    workers: int = 1
    """Worker processes; each is a full replica sharing the store."""
    monitor_interval: float = 60.0
    """Seconds between periodic monitor runs."""
    webhook_allow: list[str] = field(default_factory=list)
    """Hosts or CIDRs webhooks may reach although they are loopback, link-local or private."""
    durable_log: bool = False
    """Acknowledge a prediction only once its log rows are fsynced to the spool: a crash loses none."""
    insecure: bool = False
    """Allow serving on a non-loopback address without any token."""
    metrics_auth: bool = False
    """Require a token with scope `metrics` (or `admin`) for /metrics once any token exists; open by default."""
    trust_pickle: bool = False
    """Load pickle/joblib artifacts registered without trust (not recommended)."""
    mlflow_endpoint: str | None = None
    """The endpoint that answers MLflow's root scoring-server routes (`/invocations`, `/ping`, ...)."""
    max_body_bytes: int = 64 * 1024 * 1024
    """Largest JSON request body; bigger ones get 413."""
    max_upload_bytes: int = 1024 * 1024 * 1024
    """Largest model/reference upload; bigger ones get 413."""
    log_flush_interval: float = 0.05
    """Seconds between prediction log flushes when the server writes the log itself (`log_process` off,
    `durable_log`, or while the writer process is behind; kill -9 can lose at most this much). Short
    flushes keep each burst of log encoding short: at 0.2 s the p99 at half load (100-row requests) was
    24 ms, at 0.05 s 15 ms, with no throughput change under saturation (the writer drains continuously)."""
    log_ship_interval: float = 0.5
    """Seconds between hand-overs of the prediction log to its writer process (kill -9 can lose at most
    this much); `log_batch_rows` waiting rows start one sooner. Encoding happens in the child, so a long
    interval costs no burst here, and it spreads each hand-over's fixed cost over more requests."""
    log_batch_rows: int = 5000
    """Rows per prediction log write; this many waiting rows start a flush (or a hand-over to the writer
    process) before its interval ends."""
    log_process: bool = True
    """Encode and write the prediction log in a child process (off: a thread of the server). Ignored
    with `durable_log`, whose acknowledgements wait for an fsync in the server itself."""
    log_max_queued_rows: int = 500_000
    """Rows the in-process log queue may hold. A prediction request is admitted only while the queue has
    room for all its rows (else 503 with Retry-After), so no id is handed out for a row that is dropped."""
    max_rows_per_request: int = 100_000
    """Most rows one prediction request may carry (native, MLflow, V2); more get 413 naming this setting.
    Bounds the time and memory one request takes; `driftgate batch score` streams bigger inputs in chunks."""
    big_body_bytes: int = 1024 * 1024
    """Prediction bodies (and gRPC ModelInfer messages) larger than this are decoded in a helper process,
    one at a time (api/body_decoder.py), so the event loop (and liveness) keeps answering while they parse."""
    shadow_process: bool = True
    """Score shadow copies in a separate idle-priority process (off: in threads of the server)."""
    model_threads: int = 4
    """Threads that run models off the event loop."""
    sync_interval: float = 0.5
    """Seconds between checks for endpoint changes made by other replicas."""
    rollout_interval: float = 1.0
    """Seconds between analyses of running rollouts (gates, steps, promotion, rollback)."""
    retention_days: float | None = None
    """Delete prediction log rows (with their labels and events) older than this, every `retention_interval`."""
    monitoring_retention_days: float | None = None
    """Delete monitoring points and reports older than this (each endpoint keeps its newest report)."""
    retention_interval: float = 3600.0
    """Seconds between retention passes (the first runs a minute after start, or sooner when shorter)."""
    pipeline_modules: list[str] = field(default_factory=list)
    """Packages whose functions endpoint pipeline steps may name (each with its submodules); none by default."""
    train_modules: list[str] = field(default_factory=list)
    """Packages whose functions retraining runs may call to train (each with its submodules); none by default."""
    retrain_concurrency: int = 2
    """Retraining jobs running at once in this server; more runs wait, queued."""
    retrain_check_interval: float = 30.0
    """Seconds between looks for endpoints whose retraining schedule (`every_seconds`) is due."""
    max_label_bytes: int = 64 * 1024
    """Largest feedback label (a string, UTF-8 bytes); a bigger one gets 413 naming the label."""

    def to_env(self) -> str:
        data = asdict(self)
        data["data_dir"] = str(self.data_dir)
        return json.dumps(data)

    @classmethod
    def from_env(cls) -> Settings:
        data = json.loads(os.environ.get(ENV_VAR, "{}"))
        if "data_dir" in data:
            data["data_dir"] = Path(data["data_dir"])
        return cls(**data)
