"""An endpoint's configuration, validated once when it is PUT, then read on every request."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

Automation = Literal["human_only", "assist", "partial", "governed", "full"]


class Batching(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_batch_size: int = Field(1024, ge=1, le=100_000, description="Most rows merged into one model call.")
    max_wait_us: int = Field(500, ge=0, le=1_000_000, description="Longest a request waits for others to join.")
    # One call at a time merges the most requests per call: best for models that hold the GIL
    # (scikit-learn pipelines: measured ~10-30 % more req/s than two). Models that release it
    # (onnxruntime, big numpy work) on a machine with spare cores gain from overlapping calls.
    max_concurrent_calls: int = Field(
        1, ge=1, le=64, description="Model calls of one version running at once in this process."
    )


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
    redact: dict[str, Literal["drop", "hash"]] = Field(
        default_factory=dict, description="Input fields dropped or hashed before anything is stored."
    )
    batching: Batching = Field(default_factory=Batching)
    timeout_ms: int = Field(10_000, ge=1, le=600_000, description="Per-request model time limit (504 after).")
    unknown_categories: Literal["allow", "reject"] = Field(
        "allow", description="Categories unseen in the reference: counted ('allow') or refused with 422 ('reject')."
    )

    @model_validator(mode="after")
    def _threshold_needed(self) -> EndpointConfig:
        if self.automation == "partial" and self.review_threshold is None:
            raise ValueError("automation 'partial' needs review_threshold (confidence below it goes to review)")
        return self
