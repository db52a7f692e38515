"""An endpoint's state as the data plane serves it, and where its model calls run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from driftgate.core.log_batch import MediaLog, TensorLog
from driftgate.monitoring.guards import OutputLimits
from driftgate.registry.schema import InputSchema
from driftgate.rollout.policy import TrafficPolicy, VersionRef
from driftgate.serving.batching import MicroBatcher
from driftgate.serving.endpoint_config import EndpointConfig
from driftgate.serving.isolation import Lane, ProcessPool
from driftgate.serving.pipeline import EMPTY, CompiledPipeline
from driftgate.serving.runtime import LoadedVersion
from driftgate.validation import parse


@dataclass
class VersionCalls:
    """Where one endpoint version's model calls run: its batcher, its own threads and, with
    `isolation: "process"`, its worker processes. Kept across config changes that leave these
    settings alone, so a hung call stays counted against its version's slots."""

    settings: tuple[Any, ...]
    batcher: MicroBatcher
    lane: Lane
    pool: ProcessPool | None

    @property
    def isolation(self) -> str:
        """The mode the calls run in ("auto" resolved)."""
        return "thread" if self.pool is None else "process"

    def close(self, *, now: bool) -> None:
        self.lane.shutdown()
        if self.pool is not None:
            self.pool.close(now=now)


@dataclass
class EndpointState:
    name: str
    config: EndpointConfig
    revision: int
    policy: TrafficPolicy
    versions: dict[VersionRef, LoadedVersion]
    # Each version's schema with this endpoint's unknown-category policy applied.
    schemas: dict[VersionRef, InputSchema]
    batchers: dict[VersionRef, MicroBatcher]
    # Shadow copies go through batchers of their own (own threads, maybe another process), so
    # they never queue in front of, or merge into, the calls that answer callers.
    shadow_batchers: dict[VersionRef, MicroBatcher]
    # The active rollout's row (strategy, state, weight, spec...), None without one.
    rollout: dict[str, Any] | None = None
    pipeline: CompiledPipeline = EMPTY
    guard: OutputLimits | None = None
    # Each version's isolation mode ("auto" resolved): shown by GET /v1/endpoints/{name}.
    isolation: dict[VersionRef, str] = field(default_factory=dict)
    # How each version's tensor inputs are logged (None: it has none), made once per config.
    media: dict[VersionRef, MediaLog | None] = field(init=False)

    def __post_init__(self) -> None:
        self.media = {ref: media_log(schema, self.config.payload_sample_rate) for ref, schema in self.schemas.items()}

    @property
    def stable(self) -> LoadedVersion:
        """The version whose schema decodes requests (positional inputs follow its feature order)."""
        return self.versions[self.policy.baseline]

    def same_frame(self, a: VersionRef, b: VersionRef) -> bool:
        return self.schemas[a].frame_signature == self.schemas[b].frame_signature

    @property
    def sticky_key(self) -> str | None:
        return self.rollout["spec"].get("sticky_key") if self.rollout else None


def media_log(schema: InputSchema, payload_rate: float) -> MediaLog | None:
    """What the prediction log needs to know of a schema's tensor features; None without any."""
    tensors = tuple(TensorLog(f.name, f.media, f.max, f.sample_rate) for f in schema.features if f.kind == "tensor")
    return MediaLog(tensors, payload_rate) if tensors else None


def parse_config(body: dict[str, Any]) -> EndpointConfig:
    return parse(EndpointConfig, body, "endpoint config")
