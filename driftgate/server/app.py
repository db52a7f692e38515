"""The app factory: `create_app(settings)` serves the routes of `driftgate.api` over a `Server`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from driftgate import __version__
from driftgate.api import errors, openapi, store_errors
from driftgate.api.head import HeadAsGet
from driftgate.api.http_metrics import HttpMetrics
from driftgate.api.limits import BodyLimit
from driftgate.api.routes import (
    alerts,
    endpoints,
    events,
    mlflow_server,
    models,
    monitoring,
    predict,
    retraining,
    review,
    rollouts,
    system,
    v2,
)
from driftgate.child import die_with_spawning_parent, stop_gracefully
from driftgate.server.server import Server
from driftgate.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        server = Server(settings, app)
        try:
            app.state.services = await server.start()
            with server.unready_on_sigterm():
                yield
        finally:
            await server.stop()

    app = FastAPI(
        title="driftgate",
        version=__version__,
        description="Serve, roll out, log and monitor ML models.",
        lifespan=lifespan,
    )
    errors.install(app)
    store_errors.install(app)
    for module in (models, endpoints, predict, events, rollouts, monitoring, review, alerts, retraining, v2, system):
        app.include_router(module.router)
    app.include_router(v2.scored)
    app.include_router(mlflow_server.router)
    openapi.install(app, settings)  # every status, the error schema, bearer auth, limits; offline /docs
    app.add_middleware(HeadAsGet)  # HEAD on any GET route (probes), without the body
    app.add_middleware(BodyLimit, max_body=settings.max_body_bytes, max_upload=settings.max_upload_bytes)
    app.add_middleware(HttpMetrics)  # outermost: counts the body limit's 413s too
    return app


def create_app_from_env() -> FastAPI:
    """Entry point for `uvicorn --factory` worker processes: settings come through the environment."""
    # A `--workers` worker whose supervisor is killed drains and exits, as on SIGTERM.
    die_with_spawning_parent(stop_gracefully())
    return create_app(Settings.from_env())
