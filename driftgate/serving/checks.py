"""Checks that an endpoint config fits the model version it names, before anything is stored."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor

from driftgate.core.refs import VersionRef
from driftgate.errors import BadRequest
from driftgate.serving.endpoint_config import EndpointConfig
from driftgate.serving.pipeline import compile_pipeline
from driftgate.serving.runtime import LoadedVersion


async def check_config(
    cfg: EndpointConfig,
    ref: VersionRef,
    load: Callable[[], LoadedVersion],
    pipeline_modules: Sequence[str] | None,
    executor: Executor | None = None,
) -> LoadedVersion:
    """The checks a server and a CLI process both run before a config is stored: the version loads
    (`load`, off the event loop), every pipeline step imports (from `pipeline_modules`; None: any
    module), and the output guard can judge the model. The loaded version is returned."""
    loop = asyncio.get_running_loop()
    version = await loop.run_in_executor(executor, load)
    await loop.run_in_executor(executor, compile_pipeline, cfg.pipeline, pipeline_modules)
    check_fits(cfg, version, ref)
    return version


def check_fits(cfg: EndpointConfig, version: LoadedVersion, ref: VersionRef) -> None:
    """A guard that cannot judge this model is refused: confidence needs class probabilities,
    min/max need numeric predictions."""
    guard = cfg.output_guard
    if guard is None:
        return
    kind = version.output.get("kind")
    if guard.min_confidence is not None and kind != "classification":
        raise BadRequest(
            f"output_guard.min_confidence needs a classifier with class probabilities; model {ref} is a {kind} model",
            field="output_guard.min_confidence",
        )
    classes = version.classes or []
    if (guard.min is not None or guard.max is not None) and any(not isinstance(c, int | float) for c in classes):
        raise BadRequest(
            f"output_guard.min/max need numeric predictions; model {ref} predicts classes {classes[:10]}",
            field="output_guard",
        )
