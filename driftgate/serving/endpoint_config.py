"""An endpoint's configuration, validated once when it is PUT, then read on every request."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from driftgate.monitoring.guards import OutputLimits
from driftgate.retraining.spec import RetrainSpec
from driftgate.validation import function_path

Automation = Literal["human_only", "assist", "partial", "governed", "full"]
STEP_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class Batching(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # A scikit-learn pipeline's call costs ~3.5 ms whatever its rows (~0.5 us more per row): the more
    # requests share one, the less each pays.
    max_batch_size: int = Field(4096, ge=1, le=100_000, description="Most rows merged into one model call.")
    max_wait_us: int = Field(
        20_000,
        ge=0,
        le=1_000_000,
        description="Longest a request waits for others to join its model call; only while the model is saturated, "
        "and never more than ~3 model calls' time (see driftgate/serving/batching.py).",
    )
    # One call at a time merges the most requests per call: best for models that hold the GIL
    # (scikit-learn pipelines: measured ~10-30 % more req/s than two). Models that release it
    # (onnxruntime, big numpy work) on a machine with spare cores gain from overlapping calls.
    max_concurrent_calls: int = Field(
        1, ge=1, le=64, description="Model calls of one version running at once in this process."
    )


class PipelineStep(BaseModel):
    """One step: a name (its metrics label) and an importable function `module:function`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Step name, unique in the endpoint: 1-64 letters, digits, '-', '_' or '.'.")
    function: str = Field(description="`module:function` importable on the server (see docs/pipelines.md).")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not STEP_NAME.match(value):
            raise ValueError(f"step name must be 1-64 letters, digits, '-', '_' or '.', got {value!r}")
        return value

    @field_validator("function")
    @classmethod
    def _function(cls, value: str) -> str:
        return function_path(value, "function")


class Pipeline(BaseModel):
    """Steps around the model: `pre` turn the request's rows into the model's inputs, `post` turn the
    model's predictions into the answer. Each step has its own metrics."""

    model_config = ConfigDict(extra="forbid")

    pre: list[PipelineStep] = Field(
        default_factory=list, max_length=20, description="fn(frame: DataFrame) -> DataFrame, in order."
    )
    post: list[PipelineStep] = Field(
        default_factory=list,
        max_length=20,
        description="fn(predictions: ndarray, probabilities: ndarray | None, frame: DataFrame) -> predictions.",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> Pipeline:
        names = [s.name for s in (*self.pre, *self.post)]
        if not names:
            raise ValueError("a pipeline needs at least one step in 'pre' or 'post'")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"step names must be unique in the endpoint, got {dupes} more than once")
        return self


class OutputGuard(BaseModel):
    """Limits on the model's outputs; a violation is counted and, with action 'review', deferred."""

    model_config = ConfigDict(extra="forbid")

    min: float | None = Field(None, allow_inf_nan=False, description="Lowest allowed prediction (regression).")
    max: float | None = Field(None, allow_inf_nan=False, description="Highest allowed prediction (regression).")
    classes: list[bool | int | float | str] | None = Field(
        None, min_length=1, max_length=10_000, description="Allowed predicted classes."
    )
    min_confidence: float | None = Field(
        None, ge=0.0, le=1.0, description="Lowest allowed largest class probability (classifiers)."
    )
    action: Literal["count", "review"] = Field(
        "count", description="'count': answer and count; 'review': also defer the row to the review queue."
    )

    @model_validator(mode="after")
    def _limits(self) -> OutputGuard:
        if self.min is None and self.max is None and self.classes is None and self.min_confidence is None:
            raise ValueError("an output guard needs at least one of min, max, classes, min_confidence")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) must not be above max ({self.max})")
        return self

    def limits(self) -> OutputLimits:
        classes = tuple(self.classes) if self.classes is not None else None
        return OutputLimits(self.min, self.max, classes, self.min_confidence)


class EndpointConfig(BaseModel):
    """PUT /v1/endpoints/{endpoint} body."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="Registered model name.")
    version: StrictInt | str = Field(description="Version number, 'latest' or an alias; stored resolved.")
    automation: Automation = Field("full", description="Degree of automation (SPEC 4).")
    review_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="'partial': confidence below this goes to review; 'governed': also queued after answering.",
    )
    review_sample_rate: float = Field(
        0.05, ge=0.0, le=1.0, description="'governed': share of answered rows queued for a person to check."
    )
    redact: dict[str, Literal["drop", "hash", "mask"]] = Field(
        default_factory=dict,
        description="Input fields redacted before anything is stored (spool, store, log lines): 'drop' removes "
        "the field, 'hash' keeps a SHA-256 pseudonym, 'mask' keeps a free text with its e-mail addresses replaced "
        "by [email] and every digit by # (see driftgate/core/redaction.py).",
    )
    # 5 %: a window of 4,000 predictions then holds ~200 raw tensors, enough for the embedding-drift test
    # (MMD), while a second of float32 audio (78 KB as stored: noisy float32 barely compresses and base64
    # adds a third) costs ~4 KB a row on average; an 8x8 digit image costs 200 bytes either way.
    payload_sample_rate: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="Share of rows whose raw tensor inputs (images, audio, embeddings) are kept in the prediction "
        "log, compressed. Rows routed to review always keep theirs (a person must see them); descriptors "
        "(brightness, volume, ...) are logged for every row. 5 % by default: ~200 payloads in a 4,000-row window "
        "for the embedding-drift test, at a twentieth of the storage of keeping every payload.",
    )
    batching: Batching = Field(default_factory=Batching)
    timeout_ms: int = Field(10_000, ge=1, le=600_000, description="Per-request model time limit (504 after).")
    isolation: Literal["auto", "thread", "process"] = Field(
        "auto",
        description="Where model calls run: 'thread' (in the server, the fastest), 'process' (worker processes "
        "of this endpoint version: a native crash answers 500 and restarts the worker instead of ending the "
        "server) or 'auto': 'thread' for models loaded through driftgate's own checks (skops sklearn, also "
        "inside MLflow) and for python models, 'process' for everything else (ONNX, MLflow pyfunc, anything "
        "registered with trust). GET /v1/endpoints/{name} shows what each version resolved to. "
        "See driftgate/serving/isolation.py.",
    )
    unknown_categories: Literal["allow", "reject"] = Field(
        "allow", description="Categories unseen in the reference: counted ('allow') or refused with 422 ('reject')."
    )
    pipeline: Pipeline | None = Field(None, description="Pre- and post-processing steps around the model.")
    output_guard: OutputGuard | None = Field(None, description="Limits on the model's outputs (SPEC 6).")
    retraining: RetrainSpec | None = Field(
        None, description="How to retrain this endpoint's model (SPEC 8): manual runs, the schedule and alerts use it."
    )

    @model_validator(mode="after")
    def _threshold_needed(self) -> EndpointConfig:
        if self.automation == "partial" and self.review_threshold is None:
            raise ValueError("automation 'partial' needs review_threshold (confidence below it goes to review)")
        return self
