"""Shadow copies: a request's rows scored by the versions that shadow its primary, off the request
path, logged with the primary's ids as parents and never felt by the caller."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from driftgate.core.ids import new_ids
from driftgate.errors import DriftgateError
from driftgate.records.recorder import LogBatch, PredictionLog
from driftgate.registry.schema import Columns
from driftgate.rollout.policy import VersionRef
from driftgate.serving.metrics import ServingMetrics
from driftgate.serving.plane.state import EndpointState
from driftgate.serving.plane.steps import model_inputs, post, remaining
from driftgate.serving.result import DecodedRequest
from driftgate.serving.shadow_process import ShadowFailed

# Rows being scored by shadows at once; past this, copies are dropped (and counted) so a slow
# shadow can never pile up memory or threads behind live traffic.
MAX_SHADOW_ROWS = 10_000


class ShadowRunner:
    def __init__(self, metrics: ServingMetrics, recorder: PredictionLog, executor: ThreadPoolExecutor) -> None:
        self.metrics = metrics
        self.recorder = recorder
        self.executor = executor  # where post steps run, as for the primary
        self._shadow_tasks: set[asyncio.Task[None]] = set()
        self._shadow_rows = 0

    def spawn(
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
                inputs = model_inputs(st, ref, request)
            out, proba = await asyncio.wait_for(st.shadow_batchers[ref].submit(inputs), remaining(deadline))
            model_seconds = time.perf_counter() - started
            if st.pipeline.post:  # run for its metrics and failures; a shadow's answer is never returned
                await post(self.executor, self.metrics, st, "shadow", out, proba, inputs, deadline)
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
                media=st.media.get(ref),
                parent_ids=parent_ids,
            )
        )
