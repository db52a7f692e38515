"""The data plane: endpoint state, routing, scoring off the event loop, logging. No HTTP here."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import ValidationError

from driftgate.errors import BadRequest, DriftgateError, EndpointNotFound, ModelFailed, ModelTimeout
from driftgate.records.ids import new_ids
from driftgate.records.recorder import LogBatch, Recorder
from driftgate.registry.schema import InputSchema
from driftgate.rollout.policy import SingleVersion, TrafficPolicy, VersionRef
from driftgate.serving.batching import MicroBatcher
from driftgate.serving.endpoint_config import EndpointConfig
from driftgate.serving.metrics import ServingMetrics
from driftgate.serving.result import DecodedRequest, PredictionResult
from driftgate.serving.runtime import LoadedVersion, ModelCache
from driftgate.store import Store

log = logging.getLogger("driftgate.serving")
# Model calls per version at once: two keep a slow call from stalling the queue behind it,
# more would mostly split batches that are better merged.
MAX_CALLS_IN_FLIGHT = 2


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

    @property
    def stable(self) -> LoadedVersion:
        """The version whose schema decodes requests (positional inputs follow its feature order)."""
        return self.versions[self.policy.route(None).primary]


def parse_config(body: dict[str, Any]) -> EndpointConfig:
    try:
        return EndpointConfig.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadRequest(f"endpoint config field {where!r}: {first['msg']}", field=where) from None


class DataPlane:
    def __init__(
        self,
        store: Store,
        cache: ModelCache,
        recorder: Recorder,
        metrics: ServingMetrics,
        executor: ThreadPoolExecutor,
    ) -> None:
        self.store = store
        self.cache = cache
        self.recorder = recorder
        self.metrics = metrics
        self.executor = executor
        self._endpoints: dict[str, EndpointState] = {}
        self._head_revision = 0

    # ---- endpoint state -------------------------------------------------------------------------

    def state(self, endpoint: str) -> EndpointState:
        st = self._endpoints.get(endpoint)
        if st is None:
            raise EndpointNotFound(
                f"no endpoint named {endpoint!r}; create it with PUT /v1/endpoints/{endpoint}", endpoint=endpoint
            )
        return st

    def endpoint_names(self) -> list[str]:
        return sorted(self._endpoints)

    async def apply(self, name: str, config: dict[str, Any], revision: int) -> EndpointState:
        """Load what the config needs (off the loop), then swap the endpoint's state atomically."""
        cfg = parse_config(config)
        policy: TrafficPolicy = SingleVersion(VersionRef(cfg.model, int(cfg.version)))
        loop = asyncio.get_running_loop()
        versions = {ref: await loop.run_in_executor(self.executor, self.cache.get, ref) for ref in policy.versions}
        schemas = {ref: v.schema.with_unknown_categories(cfg.unknown_categories) for ref, v in versions.items()}
        batchers = {
            ref: MicroBatcher(
                v.score,
                self.executor,
                max_rows=cfg.batching.max_batch_size,
                max_wait_us=cfg.batching.max_wait_us,
                max_in_flight=MAX_CALLS_IN_FLIGHT,
            )
            for ref, v in versions.items()
        }
        state = EndpointState(name, cfg, revision, policy, versions, schemas, batchers)
        self._endpoints[name] = state
        self._head_revision = max(self._head_revision, revision)
        return state

    async def sync(self) -> None:
        """Pick up endpoint changes other processes committed (replicas converge within a poll)."""
        loop = asyncio.get_running_loop()
        # Re-read a few seconds back: a slow writer may commit a revision below one already seen.
        changed = await loop.run_in_executor(
            self.executor, self.store.endpoints.changed_since, self._head_revision - 5000
        )
        for name, (config, revision) in changed.items():
            current = self._endpoints.get(name)
            if current is None or current.revision < revision:
                try:
                    await self.apply(name, config, revision)
                except DriftgateError as exc:
                    log.error("endpoint %s revision %d cannot be applied: %s", name, revision, exc.message)

    async def load_all(self) -> None:
        loop = asyncio.get_running_loop()
        for name, (config, revision) in (await loop.run_in_executor(self.executor, self.store.endpoints.all)).items():
            try:
                await self.apply(name, config, revision)
            except DriftgateError as exc:
                log.error("endpoint %s cannot be loaded: %s", name, exc.message)

    # ---- scoring --------------------------------------------------------------------------------

    async def predict(self, endpoint: str, request: DecodedRequest) -> PredictionResult:
        st = self.state(endpoint)
        route = st.policy.route(None)
        version = st.versions[route.primary]
        frame = st.schemas[route.primary].to_frame(request.columns, request.n_rows)
        labels = (endpoint, str(route.primary.version), "primary")
        started = time.perf_counter()
        ts = time.time()
        try:
            preds, proba = await asyncio.wait_for(st.batchers[route.primary].submit(frame), st.config.timeout_ms / 1000)
        except TimeoutError:
            self.metrics.requests.labels(*labels, "timeout").inc()
            self._log_failure(st, route.primary, ts, frame, "timeout", f"over {st.config.timeout_ms} ms")
            raise ModelTimeout(
                f"model {route.primary} did not answer within timeout_ms={st.config.timeout_ms}",
                endpoint=endpoint,
            ) from None
        except DriftgateError:
            raise
        except Exception as exc:
            self.metrics.requests.labels(*labels, "error").inc()
            message = f"{type(exc).__name__}: {str(exc)[:300]}"
            log.warning("model %s failed on endpoint %s: %s", route.primary, endpoint, message)
            self._log_failure(st, route.primary, ts, frame, "error", message)
            raise ModelFailed(f"model {route.primary} failed: {message}", endpoint=endpoint) from None
        latency_ms = (time.perf_counter() - started) * 1000
        self.metrics.latency.labels(*labels).observe(latency_ms / 1000)
        self.metrics.requests.labels(*labels, "ok").inc()
        self.metrics.rows.labels(*labels).inc(request.n_rows)

        predictions = preds.tolist()
        status = self._automation(st, proba, predictions)
        ids = new_ids(request.n_rows)
        # With --durable-log this waits for the group fsync; otherwise it only enqueues.
        await self.recorder.record_durable(
            LogBatch(
                endpoint,
                route.primary.model,
                route.primary.version,
                "primary",
                ts,
                ids,
                frame,
                predictions,
                proba,
                latency_ms,
                status or "ok",
                redact=st.config.redact,
            )
        )
        answered = (
            predictions
            if status is None
            else [None if s == "review" else p for p, s in zip(predictions, status, strict=True)]
        )
        return PredictionResult(
            predictions=answered,
            ids=ids,
            model=route.primary.model,
            version=route.primary.version,
            probabilities=proba,
            classes=version.classes,
            status=status,
            latency_ms=latency_ms,
        )

    def _automation(self, st: EndpointState, proba: np.ndarray | None, predictions: list[Any]) -> list[str] | None:
        """With `partial` automation, low-confidence rows are deferred: prediction None, status review."""
        cfg = st.config
        if cfg.automation != "partial" or proba is None or cfg.review_threshold is None:
            return None
        defer = proba.max(axis=1) < cfg.review_threshold
        status = ["review" if d else "ok" for d in defer.tolist()]
        n_review = int(defer.sum())
        if n_review:
            self.metrics.review_rows.labels(st.name).inc(n_review)
        return status

    def _log_failure(self, st: EndpointState, ref: VersionRef, ts: float, frame: Any, status: str, error: str) -> None:
        n = len(frame)
        self.recorder.record(
            LogBatch(
                st.name,
                ref.model,
                ref.version,
                "primary",
                ts,
                new_ids(n),
                frame,
                None,
                None,
                0.0,
                status,
                error=error,
                redact=st.config.redact,
            )
        )
