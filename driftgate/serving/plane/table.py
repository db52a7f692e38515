"""The endpoint table: each endpoint's state, applied from the store (check, apply, refresh, sync),
the versions it loads and where their model calls run (threads or worker processes)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd

from driftgate.errors import BadRequest, DriftgateError, EndpointNotFound
from driftgate.rollout.policy import KeptWarm, TrafficPolicy, VersionRef, policy_for
from driftgate.rollout.standby import standby
from driftgate.serving.batching import MAX_STALLED, MicroBatcher
from driftgate.serving.checks import check_config
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
from driftgate.serving.pipeline import CompiledPipeline, compile_pipeline
from driftgate.serving.plane.state import EndpointState, VersionCalls, parse_config
from driftgate.serving.runtime import LoadedVersion, ModelCache, score_reference_rows
from driftgate.serving.shadow_process import ShadowProcess
from driftgate.store import Store

log = logging.getLogger("driftgate.serving")
# Shadow calls merge everything queued (one pickle and one round trip to the shadow process).
MAX_SHADOW_BATCH_ROWS = 4096
# How long a worker that `check` started waits for the `apply` that adopts it.
PROBE_KEPT_S = 60.0


class EndpointTable:
    """Endpoints by name, each swapped whole by `apply`; `DataPlane` adds the request path."""

    def __init__(
        self,
        store: Store,
        cache: ModelCache,
        metrics: ServingMetrics,
        executor: ThreadPoolExecutor,
        shadow_process: ShadowProcess | None = None,
        pipeline_modules: Sequence[str] = (),
    ) -> None:
        self.store = store
        self.cache = cache
        self.metrics = metrics
        self.executor = executor
        # Threads that only wait for shadow calls: a slow shadow never holds a model thread.
        self.shadow_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="driftgate-shadow")
        self.shadow_process = shadow_process
        # Packages pipeline steps may come from (`driftgate serve --pipeline-module`); none by default.
        self.pipeline_modules = tuple(pipeline_modules)
        self._endpoints: dict[str, EndpointState] = {}
        self._head_revision = 0
        # Each endpoint version's model calls (see `VersionCalls`); worker processes start from one thread.
        self._calls: dict[tuple[str, VersionRef], VersionCalls] = {}
        self._spawner = Spawner()
        # Workers `check` started to load a version (see `_probe`), until `apply` adopts them.
        self._probes: dict[VersionRef, tuple[ProcessWorker, float]] = {}
        self._apply_lock = asyncio.Lock()

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
        load = functools.partial(self.cache.serving, ref, cfg.isolation)
        version = await check_config(cfg, ref, load, self.pipeline_modules, self.executor)
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
        calls: dict[VersionRef, VersionCalls] = {}
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
        calls: dict[VersionRef, VersionCalls],
    ) -> EndpointState:
        schemas = {ref: v.schema.with_unknown_categories(cfg.unknown_categories) for ref, v in versions.items()}
        batchers = {ref: c.batcher for ref, c in calls.items()}
        shadow_batchers = self._shadow_batchers(name, cfg, policy, versions)
        await self._preload_shadows(policy)
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
        self._adopt_calls(name, calls)
        return state

    def _shadow_batchers(
        self, name: str, cfg: EndpointConfig, policy: TrafficPolicy, versions: dict[VersionRef, LoadedVersion]
    ) -> dict[VersionRef, MicroBatcher]:
        return {
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

    async def _preload_shadows(self, policy: TrafficPolicy) -> None:
        if self.shadow_process is None:
            return
        loop = asyncio.get_running_loop()
        for ref in policy.shadowed:
            await loop.run_in_executor(self.shadow_executor, self.shadow_process.preload, ref)

    def _adopt_calls(self, name: str, calls: dict[VersionRef, VersionCalls]) -> None:
        """The endpoint's model calls are now `calls`; the ones they replace are closed."""
        for key in [k for k in self._calls if k[0] == name]:
            old = self._calls[key]
            if calls.get(key[1]) is not old:
                old.close(now=False)  # calls in flight finish first
                del self._calls[key]
        for ref, c in calls.items():
            self._calls[(name, ref)] = c

    async def _calls_for(self, name: str, ref: VersionRef, version: LoadedVersion, cfg: EndpointConfig) -> VersionCalls:
        """The version's current `VersionCalls` if its settings are unchanged, else new ones (a new worker
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
        pool = await self._start_pool(name, ref, cfg) if process else None
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
        return VersionCalls(settings, batcher, lane, pool)

    async def _start_pool(self, name: str, ref: VersionRef, cfg: EndpointConfig) -> ProcessPool:
        """The version's worker processes, started here off the loop; one `check` started is adopted."""
        loop = asyncio.get_running_loop()
        spec = await loop.run_in_executor(self.executor, self.cache.worker_spec, ref)
        failures = self.metrics.worker_failures
        probed = self._probes.pop(ref, None)  # the worker `check` started loads this very version
        pool = ProcessPool(
            spec,
            self._spawner,
            cfg.batching.max_concurrent_calls,
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
        return pool

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

    def close(self) -> None:
        self._spawner.close()  # first: no worker process is started from here on
        self._close_probes(lambda *_: True)
        for calls in self._calls.values():
            calls.close(now=True)
        self.shadow_executor.shutdown(wait=False, cancel_futures=True)
        if self.shadow_process is not None:
            self.shadow_process.close()
