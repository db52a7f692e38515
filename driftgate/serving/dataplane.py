"""The data plane: endpoint state, routing, scoring off the event loop, logging. No HTTP here.

The endpoint table (loading and applying configs) is `plane.table`, shadows `plane.shadows`; this
module is the request path: route, pre steps, the model call, post steps, decide, log, answer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from driftgate.core.ids import new_ids
from driftgate.core.redaction import scrub_text
from driftgate.errors import DriftgateError, ModelFailed, ModelTimeout, StepFailed
from driftgate.monitoring.guards import check_outputs
from driftgate.records.recorder import LogBatch, PredictionLog
from driftgate.registry.schema import Columns
from driftgate.rollout.policy import Route, VersionRef
from driftgate.serving.automation import Decision, decide
from driftgate.serving.batching import Jammed
from driftgate.serving.isolation import ModelUnavailable, Scores
from driftgate.serving.metrics import ServingMetrics
from driftgate.serving.pipeline import request_frame as raw_frame
from driftgate.serving.plane.routing import merge, route_groups, subset
from driftgate.serving.plane.shadows import ShadowRunner
from driftgate.serving.plane.state import EndpointState, parse_config
from driftgate.serving.plane.steps import model_inputs, post, remaining, run_pre
from driftgate.serving.plane.table import EndpointTable
from driftgate.serving.result import DecodedRequest, PredictionResult
from driftgate.serving.runtime import ModelCache
from driftgate.serving.shadow_process import ShadowProcess
from driftgate.store import Store

__all__ = ["DataPlane", "EndpointState", "parse_config"]

log = logging.getLogger("driftgate.serving")
T = TypeVar("T")


class DataPlane(EndpointTable):
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
        super().__init__(store, cache, metrics, executor, shadow_process, pipeline_modules)
        self.recorder = recorder
        self.shadows = ShadowRunner(metrics, recorder, executor)

    async def predict(
        self, endpoint: str, request: DecodedRequest, version: VersionRef | None = None
    ) -> PredictionResult:
        """Score by the endpoint's traffic policy; `version` (one of its answering versions, V2's
        `/versions/{v}/infer`) answers every row itself instead, with no shadow copies."""
        st = self.state(endpoint)
        started, ts = time.perf_counter(), time.time()
        # One budget for the whole pipeline: pre steps, the model, post steps.
        deadline = started + st.config.timeout_ms / 1000
        groups = route_groups(st, request, version)
        if st.pipeline.pre:
            request = await self._pre(st, request, groups, ts, deadline)
        if len(groups) == 1:
            return await self._answer(st, next(iter(groups)), request, started, ts, deadline)
        parts = await asyncio.gather(
            *(self._answer(st, r, subset(request, idx), started, ts, deadline) for r, idx in groups.items())
        )
        return merge(request.n_rows, list(groups.values()), parts)

    async def _answer(
        self, st: EndpointState, route: Route, request: DecodedRequest, started: float, ts: float, deadline: float
    ) -> PredictionResult:
        """One route's rows: model call, post steps, automation decision, log, shadow copies."""
        ref = route.primary
        version = st.versions[ref]
        inputs = model_inputs(st, ref, request)
        labels = (st.name, str(ref.version), "primary")
        model_started = time.perf_counter()
        preds, proba = await self._score(st, ref, inputs, ts, deadline)
        self.metrics.latency.labels(*labels).observe(time.perf_counter() - model_started)
        answers = await self._post_steps(st, ref, preds, proba, inputs, ts, deadline) if st.pipeline.post else preds
        # Without steps the logged latency is the model's (queue included); with steps, the pipeline's.
        latency_ms = (time.perf_counter() - (started if st.pipeline.steps else model_started)) * 1000
        self.metrics.requests.labels(*labels, "ok").inc()
        self.metrics.rows.labels(*labels).inc(request.n_rows)

        # The log keeps the model's own output: drift, accuracy and guards judge the model, not the answer.
        predictions = preds.tolist()
        decision = self._decide(st, ref, preds, proba, len(predictions))
        ids = new_ids(request.n_rows)
        # With --durable-log this waits for the group fsync; otherwise it only enqueues.
        await self.recorder.record_durable(
            LogBatch(
                st.name,
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
                media=st.media.get(ref),
            )
        )
        for shadow in route.shadows:
            self.shadows.spawn(st, shadow, request, ids, inputs if st.same_frame(shadow, ref) else None)
        values = answers.tolist() if answers is not preds else predictions
        return PredictionResult(
            predictions=_answered(values, decision),
            ids=ids,
            model=ref.model,
            version=ref.version,
            # With every row deferred, the caller learns nothing of the model's view either.
            probabilities=None if st.config.automation in ("human_only", "assist") else proba,
            classes=version.classes,
            status=decision.answered,
            latency_ms=latency_ms,
        )

    async def _score(self, st: EndpointState, ref: VersionRef, inputs: Columns, ts: float, deadline: float) -> Scores:
        """The model's output for the rows; a call that fails is logged and raised as the caller's error."""
        endpoint = st.name
        try:
            return await asyncio.wait_for(st.batchers[ref].submit(inputs), remaining(deadline))
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

    async def _post_steps(
        self,
        st: EndpointState,
        ref: VersionRef,
        preds: np.ndarray,
        proba: np.ndarray | None,
        inputs: Columns,
        ts: float,
        deadline: float,
    ) -> np.ndarray:
        """The answers the post steps make of the model's output; a failing step is logged and raised."""
        work = post(self.executor, self.metrics, st, "primary", preds, proba, inputs, deadline)
        return await _step(
            st, "post", work, inputs, lambda status, error: self._failed(st, ref, ts, inputs, status, error)
        )

    def _decide(
        self, st: EndpointState, ref: VersionRef, preds: np.ndarray, proba: np.ndarray | None, n: int
    ) -> Decision:
        """Which rows are answered and which go to human review (counted), by the endpoint's automation."""
        decision = decide(
            st.config.automation,
            proba,
            n=n,
            review_threshold=st.config.review_threshold,
            review_sample_rate=st.config.review_sample_rate,
            violating=self._guard(st, ref, preds, proba),
            guard_action=st.config.output_guard.action if st.config.output_guard else "count",
        )
        if decision.queued:
            self.metrics.review_rows.labels(st.name).inc(decision.queued)
        return decision

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

    async def _pre(
        self, st: EndpointState, request: DecodedRequest, groups: dict[Route, list[int]], ts: float, deadline: float
    ) -> DecodedRequest:
        """The request as the model's inputs: the rows as sent through the pre steps, in a worker thread.

        A failing step is logged as a failed prediction of the version each row was routed to."""
        frame = raw_frame(request.columns)
        loop = asyncio.get_running_loop()
        observe = self.metrics.step_observer(st.name, "primary")
        work = asyncio.wait_for(
            loop.run_in_executor(self.executor, run_pre, st.pipeline, frame, observe), remaining(deadline)
        )
        columns = await _step(
            st, "pre", work, frame, lambda status, error: self._pre_failed(st, groups, frame, ts, status, error)
        )
        return DecodedRequest(columns, request.n_rows, request.parameters)

    def _pre_failed(
        self, st: EndpointState, groups: dict[Route, list[int]], frame: pd.DataFrame, ts: float, status: str, error: str
    ) -> None:
        for route, rows in groups.items():
            self._failed(st, route.primary, ts, frame.iloc[rows] if rows else frame, status, error)

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
                media=st.media.get(ref),
            )
        )


async def _step(
    st: EndpointState,
    phase: str,
    work: Awaitable[T],
    inputs: Columns | pd.DataFrame,
    failed: Callable[[str, str], None],
) -> T:
    """Await a pre or post step's `work`. Past the deadline: the rows are logged as failed (`failed`,
    status "timeout") and the caller gets a ModelTimeout; a failing step is logged, redacted, and raised."""
    try:
        return await work
    except TimeoutError:
        failed("timeout", f"{phase}-processing over {st.config.timeout_ms} ms")
        raise ModelTimeout(
            f"{phase}-processing did not finish within timeout_ms={st.config.timeout_ms}", endpoint=st.name
        ) from None
    except StepFailed as exc:
        # A step's message may quote input values: redacted fields never reach a log line.
        log.warning("endpoint %s: %s", st.name, scrub_text(exc.message, inputs, st.config.redact))
        failed("error", exc.message)
        raise


def _answered(values: list[Any], decision: Decision) -> list[Any]:
    """The answers the caller gets: None for rows sent to human review."""
    if decision.answered is None:
        return values
    return [None if s == "review" else p for p, s in zip(values, decision.answered, strict=True)]
