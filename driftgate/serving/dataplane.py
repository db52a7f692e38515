"""The data plane: endpoint state, routing, scoring off the event loop, logging. No HTTP here."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from driftgate.core.ids import new_ids
from driftgate.core.redaction import scrub_text
from driftgate.errors import (
    BadRequest,
    DriftgateError,
    EndpointNotFound,
    InvalidInput,
    ModelFailed,
    ModelTimeout,
    StepFailed,
)
from driftgate.monitoring.guards import OutputLimits, check_outputs
from driftgate.records.recorder import LogBatch, PredictionLog
from driftgate.registry.schema import Columns, InputSchema, frame_of
from driftgate.rollout.policy import KeptWarm, Route, TrafficPolicy, VersionRef, policy_for
from driftgate.rollout.standby import standby
from driftgate.serving.automation import decide
from driftgate.serving.batching import MAX_STALLED, Jammed, MicroBatcher
from driftgate.serving.checks import check_fits
from driftgate.serving.endpoint_config import EndpointConfig
from driftgate.serving.isolation import (
    START_TIMEOUT_S,
    Lane,
    ModelUnavailable,
    ProcessPool,
    ProcessWorker,
    Scores,
    Spawner,
    WorkerCrashed,
    WorkerHung,
)
from driftgate.serving.metrics import ServingMetrics
from driftgate.serving.pipeline import EMPTY, CompiledPipeline, Observe, compile_pipeline, frame_columns
from driftgate.serving.pipeline import request_frame as raw_frame
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
# How long a worker that `check` started waits for the `apply` that adopts it.
PROBE_KEPT_S = 60.0


@dataclass
class _Calls:
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
        recorder: PredictionLog,
        metrics: ServingMetrics,
        executor: ThreadPoolExecutor,
        shadow_process: ShadowProcess | None = None,
        pipeline_modules: Sequence[str] = (),
    ) -> None:
        self.store = store
        self.cache = cache
        self.recorder = recorder
        self.metrics = metrics
        self.executor = executor
        # Threads that only wait for shadow calls: a slow shadow never holds a model thread.
        self.shadow_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="driftgate-shadow")
        self.shadow_process = shadow_process
        # Packages pipeline steps may come from (`driftgate serve --pipeline-module`); none by default.
        self.pipeline_modules = tuple(pipeline_modules)
        self._endpoints: dict[str, EndpointState] = {}
        self._head_revision = 0
        self._shadow_tasks: set[asyncio.Task[None]] = set()
        self._shadow_rows = 0
        # Each endpoint version's model calls (see `_Calls`); worker processes start from one thread.
        self._calls: dict[tuple[str, VersionRef], _Calls] = {}
        self._spawner = Spawner()
        # Workers `check` started to load a version (see `_probe`), until `apply` adopts them.
        self._probes: dict[VersionRef, tuple[ProcessWorker, float]] = {}
        self._apply_lock = asyncio.Lock()

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

    async def check(self, cfg: EndpointConfig, ref: VersionRef) -> None:
        """Refuse, before anything is stored, a config that could not be applied: a version that does
        not load, a pipeline step that does not import, a guard that cannot judge this model.

        A version that runs in worker processes is loaded in one (never here): a model that crashes
        on load is refused (400 naming the crash); the worker that loaded it is kept for `apply`."""
        loop = asyncio.get_running_loop()
        version = await loop.run_in_executor(self.executor, self.cache.serving, ref, cfg.isolation)
        await loop.run_in_executor(self.executor, compile_pipeline, cfg.pipeline, self.pipeline_modules)
        check_fits(cfg, version, ref)
        running = any(r == ref and c.pool is not None and c.pool.pids() for (_, r), c in self._calls.items())
        if version.model is None and not running:
            await self._probe(ref, cfg)

    async def _probe(self, ref: VersionRef, cfg: EndpointConfig) -> None:
        loop = asyncio.get_running_loop()
        spec = await loop.run_in_executor(self.executor, self.cache.worker_spec, ref)
        worker = ProcessWorker(spec, self._spawner, hang_after_s=cfg.timeout_ms / 1000)
        try:
            await loop.run_in_executor(self.executor, worker.ensure_started)
        except ModelUnavailable as exc:
            worker.close(now=True)
            raise BadRequest(f"model {ref} cannot serve: {exc.message}", model=ref.model, version=ref.version) from None
        except BaseException:
            worker.close(now=True)
            raise
        self._close_probes(lambda r, _: r == ref)
        self._probes[ref] = (worker, time.monotonic())

    def _close_probes(self, which: Callable[[VersionRef, float], bool]) -> None:
        for ref, (worker, started) in list(self._probes.items()):
            if which(ref, started):
                del self._probes[ref]
                worker.close(now=True)

    async def apply(self, name: str, config: dict[str, Any], revision: int) -> EndpointState:
        """Load what the config needs (off the loop), then swap the endpoint's state atomically."""
        async with self._apply_lock:  # one at a time: each hands the endpoint's model calls on
            return await self._apply(name, config, revision)

    async def _apply(self, name: str, config: dict[str, Any], revision: int) -> EndpointState:
        cfg = parse_config(config)
        loop = asyncio.get_running_loop()
        pipeline = await loop.run_in_executor(self.executor, compile_pipeline, cfg.pipeline, self.pipeline_modules)
        rollout = await loop.run_in_executor(self.executor, self.store.rollouts.active, name)
        champion = VersionRef(cfg.model, int(cfg.version))
        policy: TrafficPolicy = policy_for(champion)
        if rollout is not None:
            candidate = VersionRef(rollout["candidate"]["model"], int(rollout["candidate"]["version"]))
            policy = policy_for(champion, rollout["strategy"], candidate, float(rollout["weight"]))
        else:  # a blue-green promotion keeps the version it replaced loaded a while: rollback is instant
            latest = await loop.run_in_executor(self.executor, self.store.rollouts.latest, name)
            policy = policy_for(champion, standby=standby(latest, champion, time.time()))
        versions = {
            ref: await loop.run_in_executor(self.executor, self.cache.serving, ref, cfg.isolation)
            for ref in policy.versions
        }
        calls: dict[VersionRef, _Calls] = {}
        try:
            for ref, v in versions.items():
                calls[ref] = await self._calls_for(name, ref, v, cfg)
                pool = calls[ref].pool
                if v.model is None and pool is not None:  # shadows and drift reports score in its workers
                    versions[ref] = v.scored_by(pool.score, cfg.batching.max_batch_size)
            self._close_probes(lambda r, _: r in calls)  # not adopted: the endpoint kept its workers
            return await self._swap(name, cfg, revision, pipeline, rollout, policy, versions, calls)
        except BaseException:
            for ref, c in calls.items():
                if self._calls.get((name, ref)) is not c:
                    c.close(now=True)
            raise

    async def _swap(
        self,
        name: str,
        cfg: EndpointConfig,
        revision: int,
        pipeline: CompiledPipeline,
        rollout: dict[str, Any] | None,
        policy: TrafficPolicy,
        versions: dict[VersionRef, LoadedVersion],
        calls: dict[VersionRef, _Calls],
    ) -> EndpointState:
        loop = asyncio.get_running_loop()
        schemas = {ref: v.schema.with_unknown_categories(cfg.unknown_categories) for ref, v in versions.items()}
        batchers = {ref: c.batcher for ref, c in calls.items()}
        shadow_batchers = {
            ref: MicroBatcher(
                self.shadow_process.scorer(ref) if self.shadow_process else versions[ref].score,
                self.shadow_executor,
                max_rows=max(cfg.batching.max_batch_size, MAX_SHADOW_BATCH_ROWS),
                max_in_flight=1,
                stall_after_ms=float("inf"),  # no caller waits on a shadow: never more than one call
                frames=self.shadow_process is None,
                on_call=self.metrics.call_observer(name, str(ref.version), "shadow"),
            )
            for ref in policy.shadowed
        }
        if self.shadow_process is not None:
            for ref in policy.shadowed:
                await loop.run_in_executor(self.shadow_executor, self.shadow_process.preload, ref)
        guard = cfg.output_guard.limits() if cfg.output_guard is not None else None
        isolation = {ref: c.isolation for ref, c in calls.items()}
        state = EndpointState(
            name,
            cfg,
            revision,
            policy,
            versions,
            schemas,
            batchers,
            shadow_batchers,
            rollout,
            pipeline,
            guard,
            isolation,
        )
        # Series at 0 from the start, so that they are scraped before the first call or violation.
        self.metrics.init_series(
            name,
            [(s.stage, s.name) for s in pipeline.steps],
            [(str(ref.version), kind) for ref in versions for kind in (guard.kinds if guard else ())],
        )
        self._endpoints[name] = state
        self._head_revision = max(self._head_revision, revision)
        for key in [k for k in self._calls if k[0] == name]:
            old = self._calls[key]
            if calls.get(key[1]) is not old:
                old.close(now=False)  # calls in flight finish first
                del self._calls[key]
        for ref, c in calls.items():
            self._calls[(name, ref)] = c
        return state

    async def _calls_for(self, name: str, ref: VersionRef, version: LoadedVersion, cfg: EndpointConfig) -> _Calls:
        """The version's current `_Calls` if its settings are unchanged, else new ones (a new worker
        process is started here, off the loop, so the first request does not wait for it)."""
        settings = (cfg.batching.model_dump_json(), cfg.isolation, cfg.timeout_ms)
        current = self._calls.get((name, ref))
        if current is not None and current.settings == settings:
            return current
        n = cfg.batching.max_concurrent_calls
        mode = version.auto_isolation if cfg.isolation == "auto" else cfg.isolation
        process = mode == "process"
        # A worker process kills a call past the timeout itself, so no call needs to stop holding its
        # slot there; in threads a hung call cannot be stopped, so it stops counting after 50 ms.
        stall_after_ms = float("inf") if process else 50.0
        pool = None
        loop = asyncio.get_running_loop()
        if process:
            spec = await loop.run_in_executor(self.executor, self.cache.worker_spec, ref)
            failures = self.metrics.worker_failures
            probed = self._probes.pop(ref, None)  # the worker `check` started loads this very version
            pool = ProcessPool(
                spec,
                self._spawner,
                n,
                hang_after_s=cfg.timeout_ms / 1000,
                on_failure=lambda reason: failures.labels(name, str(ref.version), reason).inc(),
                first=None if probed is None else probed[0],
            )
            try:
                await loop.run_in_executor(self.executor, pool.start)
            except DriftgateError as exc:  # its requests get 503 until a worker starts
                log.error("endpoint %s: the worker of model %s did not start: %s", name, ref, exc.message)
            except BaseException:
                pool.close(now=True)
                raise
        lane = Lane(n + (0 if process else MAX_STALLED), f"{name}-{ref.model}-{ref.version}")
        batcher = MicroBatcher(
            pool.score if pool is not None else version.score,
            lane,
            max_rows=cfg.batching.max_batch_size,
            max_wait_us=cfg.batching.max_wait_us,
            max_in_flight=n,
            stall_after_ms=stall_after_ms,
            shed_after_ms=cfg.timeout_ms,
            frames=not process,  # columns cross to the worker, which builds the frame
            on_call=self.metrics.call_observer(name, str(ref.version), "primary"),
            whole_call_errors=(WorkerCrashed, WorkerHung, ModelUnavailable) if process else (),
        )
        assert batcher.slots == lane.max_workers
        return _Calls(settings, batcher, lane, pool)

    async def warm(self, ref: VersionRef, rows: int = 16) -> LoadedVersion:
        """Load a version and score a few of its reference rows, so its first live request is not
        its first call; a version that cannot score them is refused before it gets any traffic.
        A version that `isolation: "auto"` runs in a worker process is scored in a worker of its
        own here too: a model that crashes on its own rows refuses the rollout, not end the server."""
        loop = asyncio.get_running_loop()
        version = await loop.run_in_executor(self.executor, self.cache.serving, ref, "auto")
        if version.model is not None:
            await loop.run_in_executor(self.executor, score_reference_rows, self.store, version, rows)
            return version
        spec = await loop.run_in_executor(self.executor, self.cache.worker_spec, ref)
        pool = ProcessPool(spec, self._spawner, 1, hang_after_s=START_TIMEOUT_S)

        def score(frame: pd.DataFrame) -> Scores:
            return pool.score({name: frame[name].to_numpy() for name in frame.columns})

        try:
            await loop.run_in_executor(self.executor, score_reference_rows, self.store, version, rows, score)
        finally:
            pool.close(now=True)
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
        # A version `check` loaded in a worker that no `apply` took (its deploy was refused later on).
        self._close_probes(lambda _, started: time.monotonic() - started > PROBE_KEPT_S)
        for name, st in list(self._endpoints.items()):
            if isinstance(st.policy, KeptWarm) and time.time() >= st.policy.until:
                try:  # the previous version's time is up: unload it
                    await self.refresh(name)
                except DriftgateError as exc:
                    log.error("endpoint %s cannot be refreshed: %s", name, exc.message)

    async def load_all(self) -> None:
        loop = asyncio.get_running_loop()
        for name, (config, revision) in (await loop.run_in_executor(self.executor, self.store.endpoints.all)).items():
            try:
                await self.apply(name, config, revision)
            except DriftgateError as exc:
                log.error("endpoint %s cannot be loaded: %s", name, exc.message)

    # ---- scoring --------------------------------------------------------------------------------

    async def predict(
        self, endpoint: str, request: DecodedRequest, version: VersionRef | None = None
    ) -> PredictionResult:
        """Score by the endpoint's traffic policy; `version` (one of its answering versions, V2's
        `/versions/{v}/infer`) answers every row itself instead, with no shadow copies."""
        st = self.state(endpoint)
        started, ts = time.perf_counter(), time.time()
        # One budget for the whole pipeline: pre steps, the model, post steps.
        deadline = started + st.config.timeout_ms / 1000
        # Sticky keys are read from the request as sent: a pre step may drop the key column.
        keys = None if version is not None else _sticky_keys(st, request)
        groups: dict[Route, list[int]] = {}
        if version is not None:
            groups[Route(version)] = []
        elif keys is None:
            groups[st.policy.route(None)] = []
        else:
            # With a sticky key each row is routed by its own key, so one caller always meets one version.
            for i, key in enumerate(keys):
                groups.setdefault(st.policy.route(key), []).append(i)
        if st.pipeline.pre:
            request = await self._pre(st, request, groups, ts, deadline)
        if len(groups) == 1:
            return await self._answer(st, next(iter(groups)), request, started, ts, deadline)
        parts = await asyncio.gather(
            *(self._answer(st, r, _subset(request, idx), started, ts, deadline) for r, idx in groups.items())
        )
        return _merge(request.n_rows, list(groups.values()), parts)

    async def _answer(
        self, st: EndpointState, route: Route, request: DecodedRequest, started: float, ts: float, deadline: float
    ) -> PredictionResult:
        endpoint = st.name
        ref = route.primary
        version = st.versions[ref]
        inputs = self._model_inputs(st, ref, request)
        labels = (endpoint, str(ref.version), "primary")
        model_started = time.perf_counter()
        try:
            preds, proba = await asyncio.wait_for(st.batchers[ref].submit(inputs), _remaining(deadline))
        except TimeoutError:
            self._failed(st, ref, ts, inputs, "timeout", f"over {st.config.timeout_ms} ms")
            raise ModelTimeout(
                f"model {ref} did not answer within timeout_ms={st.config.timeout_ms}", endpoint=endpoint
            ) from None
        except Jammed as exc:
            # The model is hung: shed at once rather than let the request wait out its timeout.
            self._shed(st, ref, ts, inputs, "stuck", str(exc))
            raise ModelUnavailable(
                f"model {ref} is not answering ({exc}, timeout_ms={st.config.timeout_ms}); request shed, retry later",
                max(1, -(-st.config.timeout_ms // 1000)),
                endpoint=endpoint,
            ) from None
        except ModelUnavailable as exc:  # its worker process is restarting, or the server is stopping
            self._shed(st, ref, ts, inputs, "restarting", exc.message)
            message = f"model {ref} is unavailable: {exc.message}"
            raise ModelUnavailable(message, exc.retry_after, endpoint=endpoint) from None
        except DriftgateError:
            raise
        except Exception as exc:
            message = f"{type(exc).__name__}: {str(exc)[:300]}"
            scrubbed = scrub_text(message, inputs, st.config.redact)
            log.warning("model %s failed on endpoint %s: %s", ref, endpoint, scrubbed)
            self._failed(st, ref, ts, inputs, "error", message)
            raise ModelFailed(f"model {ref} failed: {message}", endpoint=endpoint) from None
        self.metrics.latency.labels(*labels).observe(time.perf_counter() - model_started)
        answers = preds
        if st.pipeline.post:
            try:
                answers = await self._post(st, "primary", preds, proba, inputs, deadline)
            except TimeoutError:
                self._failed(st, ref, ts, inputs, "timeout", f"post-processing over {st.config.timeout_ms} ms")
                raise ModelTimeout(
                    f"post-processing did not finish within timeout_ms={st.config.timeout_ms}", endpoint=endpoint
                ) from None
            except StepFailed as exc:
                # A step's message may quote input values: redacted fields never reach a log line.
                log.warning("endpoint %s: %s", endpoint, scrub_text(exc.message, inputs, st.config.redact))
                self._failed(st, ref, ts, inputs, "error", exc.message)
                raise
        # Without steps the logged latency is the model's (queue included); with steps, the pipeline's.
        latency_ms = (time.perf_counter() - (started if st.pipeline.steps else model_started)) * 1000
        self.metrics.requests.labels(*labels, "ok").inc()
        self.metrics.rows.labels(*labels).inc(request.n_rows)

        # The log keeps the model's own output: drift, accuracy and guards judge the model, not the answer.
        predictions = preds.tolist()
        decision = decide(
            st.config.automation,
            proba,
            n=len(predictions),
            review_threshold=st.config.review_threshold,
            review_sample_rate=st.config.review_sample_rate,
            violating=self._guard(st, ref, preds, proba),
            guard_action=st.config.output_guard.action if st.config.output_guard else "count",
        )
        if decision.queued:
            self.metrics.review_rows.labels(endpoint).inc(decision.queued)
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
                decision.logged or "ok",
                redact=st.config.redact,
            )
        )
        for shadow in route.shadows:
            self._spawn_shadow(st, shadow, request, ids, inputs if st.same_frame(shadow, ref) else None)
        values = answers.tolist() if answers is not preds else predictions
        answered = (
            values
            if decision.answered is None
            else [None if s == "review" else p for p, s in zip(values, decision.answered, strict=True)]
        )
        return PredictionResult(
            predictions=answered,
            ids=ids,
            model=ref.model,
            version=ref.version,
            # With every row deferred, the caller learns nothing of the model's view either.
            probabilities=None if st.config.automation in ("human_only", "assist") else proba,
            classes=version.classes,
            status=decision.answered,
            latency_ms=latency_ms,
        )

    def _model_inputs(self, st: EndpointState, ref: VersionRef, request: DecodedRequest) -> Columns:
        """The request checked against the version's schema; after pre steps, errors name the last one."""
        try:
            return st.schemas[ref].to_columns(request.columns, request.n_rows)
        except InvalidInput as exc:
            if not st.pipeline.pre:
                raise
            last = st.pipeline.pre[-1].name
            details = {**exc.details, "step": last}
            raise InvalidInput(f"model input after pre step {last!r}: {exc.message}", **details) from None

    def _guard(
        self, st: EndpointState, ref: VersionRef, preds: np.ndarray, proba: np.ndarray | None
    ) -> np.ndarray | None:
        """Rows whose model output violates the endpoint's guard (counted per kind), None without one."""
        if st.guard is None:
            return None
        result = check_outputs(st.guard, preds, proba)
        for kind, count in result.counts().items():
            if count:
                self.metrics.guard_violations.labels(st.name, str(ref.version), kind).inc(count)
        return result.violating

    # ---- pipeline steps -------------------------------------------------------------------------

    async def _pre(
        self, st: EndpointState, request: DecodedRequest, groups: dict[Route, list[int]], ts: float, deadline: float
    ) -> DecodedRequest:
        """The request as the model's inputs: the rows as sent through the pre steps, in a worker thread.

        A failing step is logged as a failed prediction of the version each row was routed to."""
        frame = raw_frame(request.columns)
        loop = asyncio.get_running_loop()
        observe = self.metrics.step_observer(st.name, "primary")
        work = loop.run_in_executor(self.executor, _run_pre, st.pipeline, frame, observe)
        try:
            columns = await asyncio.wait_for(work, _remaining(deadline))
        except TimeoutError:
            self._pre_failed(st, groups, frame, ts, "timeout", f"pre-processing over {st.config.timeout_ms} ms")
            raise ModelTimeout(
                f"pre-processing did not finish within timeout_ms={st.config.timeout_ms}", endpoint=st.name
            ) from None
        except StepFailed as exc:
            log.warning("endpoint %s: %s", st.name, scrub_text(exc.message, frame, st.config.redact))
            self._pre_failed(st, groups, frame, ts, "error", exc.message)
            raise
        return DecodedRequest(columns, request.n_rows, request.parameters)

    def _pre_failed(
        self, st: EndpointState, groups: dict[Route, list[int]], frame: pd.DataFrame, ts: float, status: str, error: str
    ) -> None:
        for route, rows in groups.items():
            self._failed(st, route.primary, ts, frame.iloc[rows] if rows else frame, status, error)

    async def _post(
        self,
        st: EndpointState,
        role: str,
        preds: np.ndarray,
        proba: np.ndarray | None,
        inputs: Columns,
        deadline: float,
    ) -> np.ndarray:
        loop = asyncio.get_running_loop()
        observe = self.metrics.step_observer(st.name, role)
        work = loop.run_in_executor(self.executor, _run_post, st.pipeline, preds, proba, inputs, observe)
        return await asyncio.wait_for(work, _remaining(deadline))

    def close(self) -> None:
        self._spawner.close()  # first: no worker process is started from here on
        self._close_probes(lambda *_: True)
        for calls in self._calls.values():
            calls.close(now=True)
        self.shadow_executor.shutdown(wait=False, cancel_futures=True)
        if self.shadow_process is not None:
            self.shadow_process.close()

    # ---- shadows --------------------------------------------------------------------------------

    def _spawn_shadow(
        self,
        st: EndpointState,
        ref: VersionRef,
        request: DecodedRequest,
        parent_ids: list[str],
        inputs: Columns | None,
    ) -> None:
        """Score a copy off the request path; when shadows fall behind, copies are dropped, not queued.
        `inputs`: the primary's own, when the shadow's schema would build the same ones."""
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
        model_seconds = 0.0
        deadline = started + st.config.timeout_ms / 1000
        try:
            if inputs is None:
                inputs = self._model_inputs(st, ref, request)
            out, proba = await asyncio.wait_for(st.shadow_batchers[ref].submit(inputs), _remaining(deadline))
            model_seconds = time.perf_counter() - started
            if st.pipeline.post:  # run for its metrics and failures; a shadow's answer is never returned
                await self._post(st, "shadow", out, proba, inputs, deadline)
            preds = out.tolist()
        except TimeoutError:
            status, error = "timeout", f"over {st.config.timeout_ms} ms"
        except ShadowFailed as exc:  # raised in the shadow process; its text names the original type
            status, error = "error", str(exc)
        except DriftgateError as exc:  # a failing shadow is recorded, never felt by the caller
            status, error = "error", exc.message[:400]
        except Exception as exc:
            status, error = "error", f"{type(exc).__name__}: {str(exc)[:300]}"
        finally:
            self._shadow_rows -= n
        latency_ms = (time.perf_counter() - started) * 1000
        self.metrics.requests.labels(*labels, status).inc()
        if status == "ok":
            self.metrics.latency.labels(*labels).observe(model_seconds)
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

    def _shed(self, st: EndpointState, ref: VersionRef, ts: float, inputs: Columns, reason: str, error: str) -> None:
        """A request refused before it reached the model: counted as shed, logged as a failed prediction
        (`timeout` for a hung model, which is how its callers' requests end otherwise)."""
        self.metrics.model_shed.labels(st.name, str(ref.version), "primary", reason).inc()
        status = "timeout" if reason == "stuck" else "error"
        self._failed(st, ref, ts, inputs, status, f"shed ({reason}): {error}", metric_status="shed")

    def _failed(
        self,
        st: EndpointState,
        ref: VersionRef,
        ts: float,
        inputs: Columns | pd.DataFrame,
        status: str,
        error: str,
        metric_status: str | None = None,
    ) -> None:
        """A primary request that got no answer: counted, and logged as a failed prediction."""
        self.metrics.requests.labels(st.name, str(ref.version), "primary", metric_status or status).inc()
        n = len(inputs) if isinstance(inputs, pd.DataFrame) else len(next(iter(inputs.values()), ()))
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


def _remaining(deadline: float) -> float:
    return max(deadline - time.perf_counter(), 0.0)


def _run_post(
    pipeline: CompiledPipeline,
    preds: np.ndarray,
    proba: np.ndarray | None,
    inputs: Columns,
    observe: Observe,
) -> np.ndarray:
    """In a worker thread: post steps see the model's inputs as a DataFrame, built only for them."""
    return pipeline.run_post(preds, proba, frame_of(inputs), observe)


def _run_pre(pipeline: CompiledPipeline, frame: pd.DataFrame, observe: Observe) -> dict[str, Any]:
    """In a worker thread: the pre steps, then their output as columns for the schema to check."""
    return frame_columns(pipeline.run_pre(frame, observe))


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
