"""What `POST /v1/endpoints/{endpoint}/rollouts` accepts, validated once (SPEC 4)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from driftgate.core.refs import ACTIVE_ROLLOUT_STATES

Strategy = Literal["shadow", "canary", "blue_green", "ab"]
# "superseded": a shadow ended because a canary, blue-green or A/B rollout of the same candidate began.
STATES = ("running", "paused", "promoted", "rolled_back", "superseded")
ACTIVE_STATES = ACTIVE_ROLLOUT_STATES
# Blue-green: how long the previous version stays loaded after promotion, for an instant rollback.
KEEP_PREVIOUS_S = 600.0


class Analysis(BaseModel):
    """Gates on the candidate. A gate left out (None) is not checked."""

    model_config = ConfigDict(extra="forbid")

    max_error_rate: float | None = Field(0.01, ge=0, le=1, description="Share of candidate rows that failed.")
    max_latency_p99_ms: float | None = Field(None, gt=0, description="p99 of the candidate's request latency.")
    min_agreement: float | None = Field(
        None, ge=0, le=1, description="Share of inputs where candidate and champion give the same answer."
    )
    min_accuracy: float | None = Field(None, ge=0, le=1, description="Candidate accuracy on labels that arrived.")
    min_estimated_accuracy: float | None = Field(
        None, ge=0, le=1, description="Confidence-based accuracy estimate for rows without labels yet."
    )
    max_prediction_drift: float | None = Field(
        None, ge=0, le=1, description="Jensen-Shannon distance between candidate and champion outputs."
    )
    min_samples: int = Field(50, ge=1, description="Rows (or compared pairs) a gate needs before it decides.")
    min_labels: int = Field(30, ge=1, description="Labelled rows the accuracy gate needs before it decides.")
    agreement_tolerance: float = Field(
        0.05, ge=0, description="Regression: outputs within this relative difference agree."
    )
    confidence: float = Field(
        0.95,
        ge=0.5,
        lt=1,
        description="Rate gates (error rate, latency, agreement, accuracy) fail only when this sure that the "
        "candidate breaks them; a candidate within every limit is failed with at most 1 - confidence chance, "
        "however long the rollout runs.",
    )


class RolloutSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: Strategy
    version: StrictInt | str = Field(description="Candidate version number, 'latest' or an alias.")
    model: str | None = Field(None, description="Candidate model; defaults to the endpoint's model.")
    steps: list[float] = Field(
        default_factory=lambda: [10.0, 50.0, 100.0], description="Canary: candidate share per step, percent."
    )
    weight: float = Field(50.0, gt=0, lt=100, description="A/B: the candidate's fixed share, percent.")
    min_requests_per_step: int = Field(100, ge=0, description="Canary: candidate rows a step needs.")
    step_seconds: float = Field(60.0, ge=0, description="Canary: shortest time a step is held.")
    max_step_seconds: float | None = Field(
        None, gt=0, description="Canary: pause (reason recorded) when gates still lack data after this long."
    )
    analysis: Analysis = Field(default_factory=Analysis)
    auto: bool = Field(True, description="Canary: advance, promote and roll back on the gates' verdict.")
    sticky_key: str | None = Field(None, description="Input field whose value keeps a caller on one version.")
    keep_previous_s: float = Field(
        KEEP_PREVIOUS_S,
        ge=0,
        description="Blue-green: seconds the previous version stays loaded after promotion; a rollback within "
        "them returns traffic to it at once, a later one is a new rollout to it. 0: unloaded at promotion.",
    )
    rollback_of: int | None = Field(
        None, description="Set by driftgate on the rollout a late rollback starts: the promoted rollout it undoes."
    )
    reason: str = Field("", max_length=2000, description="Why, kept in the audit trail.")

    @model_validator(mode="after")
    def _steps_valid(self) -> RolloutSpec:
        if self.strategy == "canary":
            if not self.steps:
                raise ValueError("steps must name at least one weight")
            if any(not 0 < s <= 100 for s in self.steps):
                raise ValueError("every step must be a percentage in (0, 100]")
            if any(b <= a for a, b in zip(self.steps, self.steps[1:], strict=False)):
                raise ValueError("steps must increase")
        return self

    def initial_weight(self) -> float:
        """The candidate's share of answered traffic when the rollout starts."""
        return {"shadow": 0.0, "canary": self.steps[0], "blue_green": 100.0, "ab": self.weight}[self.strategy]
