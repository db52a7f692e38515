"""What a retraining run does, validated once: the endpoint's `retraining` config, with a request's
fields laid over it (SPEC 8). Pure code."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from driftgate.rollout.spec import RolloutSpec
from driftgate.validation import function_path

DataPolicy = Literal["all", "recent", "reference_and_recent"]
WEEK = 7 * 86400.0


class RetrainSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    train: str = Field(
        description="`package.module:function`, called as fn(frame) -> fitted model; the frame holds the features "
        "and the target column. The server must allow the package (`driftgate serve --train-module PACKAGE`)."
    )
    data: DataPolicy = Field(
        "recent",
        description="'all': every labelled prediction logged; 'recent': those of the last `window_seconds` (old data "
        "dropped); 'reference_and_recent': the champion's reference data plus the recent ones.",
    )
    window_seconds: float = Field(WEEK, gt=0, allow_inf_nan=False, description="How far back 'recent' reaches.")
    max_rows: int = Field(200_000, ge=100, le=5_000_000, description="Newest labelled rows read at most.")
    holdout: float = Field(
        0.2,
        ge=0.05,
        le=0.5,
        allow_inf_nan=False,
        description="Share of the newest labelled rows kept out of training to compare the two.",
    )
    min_rows: int = Field(200, ge=10, description="Labelled rows of the window a run needs; fewer fail it.")
    min_improvement: float = Field(
        0.0,
        ge=0,
        allow_inf_nan=False,
        description="How much the candidate must beat the champion by (accuracy, or RMSE lower).",
    )
    rollout: dict[str, Any] | None = Field(
        default_factory=lambda: {"strategy": "shadow"},
        description="Rollout started when the candidate is better (a rollout request without 'version'); "
        "null: register only.",
    )
    trust: bool = Field(False, description="Accept a model holding types skops cannot vouch for (your own classes).")
    timeout_seconds: float = Field(
        3600.0, gt=0, le=86400, allow_inf_nan=False, description="The subprocess is killed after this long."
    )
    every_seconds: float | None = Field(
        None,
        ge=60,
        allow_inf_nan=False,
        description="Schedule: start a run when the last one began this long ago (endpoint config).",
    )
    reason: str = Field("", max_length=2000, description="Why, kept with the run and its rollout.")

    @field_validator("train")
    @classmethod
    def _train(cls, value: str) -> str:
        return function_path(value, "train")

    @field_validator("rollout")
    @classmethod
    def _rollout(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        chosen = sorted({"version", "model"} & set(value))
        if chosen:
            raise ValueError(f"rollout must not name {chosen}: the run's new version is the candidate")
        try:
            RolloutSpec.model_validate({**value, "version": 1})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"rollout {where}: {first['msg']}") from None
        return value

    def module(self) -> str:
        return self.train.partition(":")[0]
