"""Steps of a request shared by the primary path and shadows: the schema check, the pipeline's
post steps in a worker thread, and the time left of a request's budget."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from driftgate.errors import InvalidInput
from driftgate.registry.schema import Columns, frame_of
from driftgate.rollout.policy import VersionRef
from driftgate.serving.metrics import ServingMetrics
from driftgate.serving.pipeline import CompiledPipeline, Observe, frame_columns
from driftgate.serving.plane.state import EndpointState
from driftgate.serving.result import DecodedRequest


def remaining(deadline: float) -> float:
    return max(deadline - time.perf_counter(), 0.0)


def model_inputs(st: EndpointState, ref: VersionRef, request: DecodedRequest) -> Columns:
    """The request checked against the version's schema; after pre steps, errors name the last one."""
    try:
        return st.schemas[ref].to_columns(request.columns, request.n_rows)
    except InvalidInput as exc:
        if not st.pipeline.pre:
            raise
        last = st.pipeline.pre[-1].name
        details = {**exc.details, "step": last}
        raise InvalidInput(f"model input after pre step {last!r}: {exc.message}", **details) from None


async def post(
    executor: ThreadPoolExecutor,
    metrics: ServingMetrics,
    st: EndpointState,
    role: str,
    preds: np.ndarray,
    proba: np.ndarray | None,
    inputs: Columns,
    deadline: float,
) -> np.ndarray:
    loop = asyncio.get_running_loop()
    observe = metrics.step_observer(st.name, role)
    work = loop.run_in_executor(executor, _run_post, st.pipeline, preds, proba, inputs, observe)
    return await asyncio.wait_for(work, remaining(deadline))


def _run_post(
    pipeline: CompiledPipeline,
    preds: np.ndarray,
    proba: np.ndarray | None,
    inputs: Columns,
    observe: Observe,
) -> np.ndarray:
    """In a worker thread: post steps see the model's inputs as a DataFrame, built only for them."""
    return pipeline.run_post(preds, proba, frame_of(inputs), observe)


def run_pre(pipeline: CompiledPipeline, frame: pd.DataFrame, observe: Observe) -> dict[str, Any]:
    """In a worker thread: the pre steps, then their output as columns for the schema to check."""
    return frame_columns(pipeline.run_pre(frame, observe))
