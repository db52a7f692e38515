"""The data plane: endpoint state, routing, scoring off the event loop, logging. No HTTP here."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftgate.errors import DriftgateError, EndpointNotFound, ModelFailed, ModelTimeout
from driftgate.records.ids import new_ids
from driftgate.records.recorder import LogBatch, Recorder
from driftgate.registry.schema import Columns, InputSchema
from driftgate.rollout.policy import Route, TrafficPolicy, VersionRef, policy_for
from driftgate.serving.batching import MicroBatcher
from driftgate.serving.endpoint_config import EndpointConfig
from driftgate.serving.metrics import ServingMetrics
from driftgate.serving.result import DecodedRequest, PredictionResult
from driftgate.serving.runtime import LoadedVersion, ModelCache, score_reference_rows
from driftgate.serving.shadow_process import ShadowFailed, ShadowProcess
from driftgate.store import Store
from driftgate.validation import parse

log = logging.getLogger("driftgate.serving")
# Rows being scored by shadows at once; past this, copies are dropped (and counted) so a slow
# shadow can never pile up memory or threads behind live traffic.
MAX_SHADOW_ROWS = 10_000
# Shadow calls merge everything queued (one pickle and one round trip to the shadow process).
MAX_SHADOW_BATCH_ROWS = 4096


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

    @property
    def stable(self) -> LoadedVersion:
        """The version whose schema decodes requests (positional inputs follow its feature order)."""
        return self.versions[self.policy.baseline]

    def same_frame(self, a: VersionRef, b: VersionRef) -> bool:
        return self.schemas[a].frame_signature == self.schemas[b].frame_signature

    @property
    def sticky_key(self) -> str | None:
        return self.rollout["spec"].get("sticky_key") if self.rollout else None


def parse_config(body: dict[str, Any]) -> EndpointConfig:
    return parse(EndpointConfig, body, "endpoint config")


class DataPlane:
    def __init__(
        self,
        store: Store,
        cache: ModelCache,
        recorder: Recorder,
        metrics: ServingMetrics,
        executor: ThreadPoolExecutor,
        shadow_process: ShadowProcess | None = None,
    ) -> None:
        self.store = store
        self.cache = cache
        self.recorder = recorder
        self.metrics = metrics
        self.executor = executor
        # Threads that only wait for shadow calls: a slow shadow never holds a model thread.
        self.shadow_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="driftgate-shadow")
        self.shadow_process = shadow_process
        self._endpoints: dict[str, EndpointState] = {}
        self._head_revision = 0
        self._shadow_tasks: set[asyncio.Task[None]] = set()
        self._shadow_rows = 0

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
        loop = asyncio.get_running_loop()
        rollout = await loop.run_in_executor(self.executor, self.store.rollouts.active, name)
        champion = VersionRef(cfg.model, int(cfg.version))
        policy: TrafficPolicy = policy_for(champion)
        if rollout is not None:
            candidate = VersionRef(rollout["candidate"]["model"], int(rollout["candidate"]["version"]))
            policy = policy_for(champion, rollout["strategy"], candidate, float(rollout["weight"]))
        versions = {ref: await loop.run_in_executor(self.executor, self.cache.get, ref) for ref in policy.versions}
        schemas = {ref: v.schema.with_unknown_categories(cfg.unknown_categories) for ref, v in versions.items()}
        batchers = {
            ref: MicroBatcher(
                v.score,
                self.executor,
                max_rows=cfg.batching.max_batch_size,
                max_wait_us=cfg.batching.max_wait_us,
                max_in_flight=cfg.batching.max_concurrent_calls,
            )
            for ref, v in versions.items()
        }
        shadow_batchers = {
            ref: MicroBatcher(
                self.shadow_process.scorer(ref) if self.shadow_process else versions[ref].score,
                self.shadow_executor,
                max_rows=max(cfg.batching.max_batch_size, MAX_SHADOW_BATCH_ROWS),
                max_in_flight=1,
                stall_after_ms=float("inf"),  # no caller waits on a shadow: never more than one call
            )
            for ref in policy.shadowed
        }
        if self.shadow_process is not None:
            for ref in policy.shadowed:
                await loop.run_in_executor(self.shadow_executor, self.shadow_process.preload, ref)
        state = EndpointState(name, cfg, revision, policy, versions, schemas, batchers, shadow_batchers, rollout)
        self._endpoints[name] = state
        self._head_revision = max(self._head_revision, revision)
        return state

    async def warm(self, ref: VersionRef, rows: int = 16) -> LoadedVersion:
        """Load a version and score a few of its reference rows, so its first live request is not
        its first call; a version that cannot score them is refused before it gets any traffic."""
        loop = asyncio.get_running_loop()
        version = await loop.run_in_executor(self.executor, self.cache.get, ref)

        await loop.run_in_executor(self.executor, score_reference_rows, self.store, version, rows)
        return version

    async def refresh(self, name: str) -> EndpointState:
        """Re-read one endpoint (config and rollout) from the store and apply it here now."""
        loop = asyncio.get_running_loop()
        config, revision = await loop.run_in_executor(self.executor, self.store.endpoints.get, name)
        return await self.apply(name, config, revision)

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
        keys = _sticky_keys(st, request)
        if keys is None:
            return await self._answer(st, st.policy.route(None), request)
        # With a sticky key each row is routed by its own key, so one caller always meets one version.
        groups: dict[Route, list[int]] = {}
        for i, key in enumerate(keys):
            groups.setdefault(st.policy.route(key), []).append(i)
        if len(groups) == 1:
            return await self._answer(st, next(iter(groups)), request)
        parts = await asyncio.gather(*(self._answer(st, r, _subset(request, idx)) for r, idx in groups.items()))
        return _merge(request.n_rows, list(groups.values()), parts)

    async def _answer(self, st: EndpointState, route: Route, request: DecodedRequest) -> PredictionResult:
        endpoint = st.name
        ref = route.primary
        version = st.versions[ref]
        inputs = st.schemas[ref].to_columns(request.columns, request.n_rows)
        labels = (endpoint, str(ref.version), "primary")
        started = time.perf_counter()
        ts = time.time()
        try:
            preds, proba = await asyncio.wait_for(st.batchers[ref].submit(inputs), st.config.timeout_ms / 1000)
        except TimeoutError:
            self.metrics.requests.labels(*labels, "timeout").inc()
            self._log_failure(st, ref, ts, inputs, request.n_rows, "timeout", f"over {st.config.timeout_ms} ms")
            raise ModelTimeout(
                f"model {ref} did not answer within timeout_ms={st.config.timeout_ms}", endpoint=endpoint
            ) from None
        except DriftgateError:
            raise
        except Exception as exc:
            self.metrics.requests.labels(*labels, "error").inc()
            message = f"{type(exc).__name__}: {str(exc)[:300]}"
            log.warning("model %s failed on endpoint %s: %s", ref, endpoint, message)
            self._log_failure(st, ref, ts, inputs, request.n_rows, "error", message)
            raise ModelFailed(f"model {ref} failed: {message}", endpoint=endpoint) from None
        latency_ms = (time.perf_counter() - started) * 1000
        self.metrics.latency.labels(*labels).observe(latency_ms / 1000)
        self.metrics.requests.labels(*labels, "ok").inc()
        self.metrics.rows.labels(*labels).inc(request.n_rows)

        predictions = preds.tolist()
        logged, answered_status = self._automation(st, proba, len(predictions))
        ids = new_ids(request.n_rows)
        # With --durable-log this waits for the group fsync; otherwise it only enqueues.
        await self.recorder.record_durable(
            LogBatch(
                endpoint,
                ref.model,
                ref.version,
                "primary",
                ts,
                ids,
                inputs,
                predictions,
                proba,
                latency_ms,
                logged or "ok",
                redact=st.config.redact,
            )
        )
        for shadow in route.shadows:
            self._spawn_shadow(st, shadow, request, ids, inputs if st.same_frame(shadow, ref) else None)
        answered = (
            predictions
            if answered_status is None
            else [None if s == "review" else p for p, s in zip(predictions, answered_status, strict=True)]
        )
        return PredictionResult(
            predictions=answered,
            ids=ids,
            model=ref.model,
            version=ref.version,
            # With every row deferred, the caller learns nothing of the model's view either.
            probabilities=None if st.config.automation in ("human_only", "assist") else proba,
            classes=version.classes,
            status=answered_status,
            latency_ms=latency_ms,
        )

    def _automation(
        self, st: EndpointState, proba: np.ndarray | None, n: int
    ) -> tuple[list[str] | None, list[str] | None]:
        """(status logged per row, status answered per row), by the endpoint's degree of automation.

        `human_only` and `assist` defer every row to a person; `partial` defers rows below the
        confidence threshold; `governed` answers every row and queues a sample, plus rows below
        the threshold, for a person to confirm or overturn afterwards ("audit").
        """
        cfg = st.config
        if cfg.automation == "full":
            return None, None
        if cfg.automation in ("human_only", "assist"):
            status = ["review"] * n
            self.metrics.review_rows.labels(st.name).inc(n)
            return status, status
        confidence = proba.max(axis=1) if proba is not None else None
        low = (
            confidence < cfg.review_threshold
            if confidence is not None and cfg.review_threshold is not None
            else np.zeros(n, dtype=bool)
        )
        if cfg.automation == "partial":
            status = ["review" if d else "ok" for d in low.tolist()]
            self.metrics.review_rows.labels(st.name).inc(int(low.sum()))
            return status, status
        sampled = low | (np.random.random(n) < cfg.review_sample_rate)
        self.metrics.review_rows.labels(st.name).inc(int(sampled.sum()))
        return ["audit" if a else "ok" for a in sampled.tolist()], ["ok"] * n

    # ---- shadows --------------------------------------------------------------------------------

    def close(self) -> None:
        self.shadow_executor.shutdown(wait=False, cancel_futures=True)
        if self.shadow_process is not None:
            self.shadow_process.close()

    def _spawn_shadow(
        self,
        st: EndpointState,
        ref: VersionRef,
        request: DecodedRequest,
        parent_ids: list[str],
        inputs: Columns | None,
    ) -> None:
        """Score a copy off the request path; when shadows fall behind, copies are dropped, not queued.
        `inputs`: the primary's own, when the shadow's schema would build the same one."""
        if self._shadow_rows + request.n_rows > MAX_SHADOW_ROWS:
            self.metrics.shadow_dropped.labels(st.name, str(ref.version)).inc(request.n_rows)
            return
        self._shadow_rows += request.n_rows
        task = asyncio.create_task(self._shadow(st, ref, request, parent_ids, inputs))
        self._shadow_tasks.add(task)
        task.add_done_callback(self._shadow_tasks.discard)

    async def _shadow(
        self,
        st: EndpointState,
        ref: VersionRef,
        request: DecodedRequest,
        parent_ids: list[str],
        inputs: Columns | None,
    ) -> None:
        n = request.n_rows
        ts = time.time()
        started = time.perf_counter()
        labels = (st.name, str(ref.version), "shadow")
        preds: list[Any] | None = None
        proba = None
        status, error = "ok", None
        try:
            if inputs is None:
                inputs = st.schemas[ref].to_columns(request.columns, n)
            out, proba = await asyncio.wait_for(st.shadow_batchers[ref].submit(inputs), st.config.timeout_ms / 1000)
            preds = out.tolist()
        except TimeoutError:
            status, error = "timeout", f"over {st.config.timeout_ms} ms"
        except ShadowFailed as exc:  # raised in the shadow process; its text names the original type
            status, error = "error", str(exc)
        except Exception as exc:  # a failing shadow is recorded, never felt by the caller
            status, error = "error", f"{type(exc).__name__}: {str(exc)[:300]}"
        finally:
            self._shadow_rows -= n
        latency_ms = (time.perf_counter() - started) * 1000
        self.metrics.requests.labels(*labels, status).inc()
        if status == "ok":
            self.metrics.latency.labels(*labels).observe(latency_ms / 1000)
            self.metrics.rows.labels(*labels).inc(n)
        self.recorder.record(
            LogBatch(
                st.name,
                ref.model,
                ref.version,
                "shadow",
                ts,
                new_ids(n),
                inputs,
                preds,
                proba,
                latency_ms,
                status,
                error=error,
                redact=st.config.redact,
                parent_ids=parent_ids,
            )
        )

    def _log_failure(
        self, st: EndpointState, ref: VersionRef, ts: float, inputs: Columns, n: int, status: str, error: str
    ) -> None:
        self.recorder.record(
            LogBatch(
                st.name,
                ref.model,
                ref.version,
                "primary",
                ts,
                new_ids(n),
                inputs,
                None,
                None,
                0.0,
                status,
                error=error,
                redact=st.config.redact,
            )
        )


def _sticky_keys(st: EndpointState, request: DecodedRequest) -> list[str | None] | None:
    key = st.sticky_key
    if key is None or key not in request.columns:
        return None
    return [None if v is None else str(v) for v in list(request.columns[key])]


def _subset(request: DecodedRequest, rows: list[int]) -> DecodedRequest:
    columns = {
        name: values[rows] if isinstance(values, np.ndarray) else [values[i] for i in rows]
        for name, values in request.columns.items()
    }
    return DecodedRequest(columns, len(rows), request.parameters)


def _merge(n: int, groups: list[list[int]], parts: list[PredictionResult]) -> PredictionResult:
    """One answer from the answers of row groups that different versions scored."""
    predictions: list[Any] = [None] * n
    ids = [""] * n
    status: list[str] = ["ok"] * n
    versions = [0] * n
    same_classes = all(p.classes == parts[0].classes for p in parts)
    proba = None
    if same_classes and all(p.probabilities is not None for p in parts):
        proba = np.empty((n, parts[0].probabilities.shape[1]))  # type: ignore[union-attr]
    for rows, part in zip(groups, parts, strict=True):
        for j, i in enumerate(rows):
            predictions[i] = part.predictions[j]
            ids[i] = part.ids[j]
            versions[i] = part.version
            if part.status is not None:
                status[i] = part.status[j]
        if proba is not None:
            proba[rows] = part.probabilities
    first = parts[0]
    return PredictionResult(
        predictions=predictions,
        ids=ids,
        model=first.model,
        version=versions[0],
        probabilities=proba,
        classes=first.classes if same_classes else None,
        status=status if any(p.status is not None for p in parts) else None,
        latency_ms=max(p.latency_ms for p in parts),
        versions=versions,
    )
