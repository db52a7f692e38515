"""`Server`: start-up, the background loops and shutdown of one serving process, in that order."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from driftgate.api.services import Services
from driftgate.records.log_process import ProcessRecorder
from driftgate.server import loops
from driftgate.server.wiring import build_services, close_services
from driftgate.serving.metrics import refresh_every
from driftgate.settings import Settings


class Server:
    """`start()` builds the components, loads every endpoint, starts the loops (and gRPC when asked);
    `stop()` turns readiness off, lets in-flight gRPC calls finish, stops the loops and writes
    everything queued. `app` is the ASGI application gRPC calls are answered through."""

    def __init__(self, settings: Settings, app: Any) -> None:
        self.settings = settings
        self.app = app
        self.services: Services | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._grpc: Any = None

    async def start(self) -> Services:
        settings = self.settings
        svc = self.services = build_services(settings)
        await svc.dataplane.load_all()
        # The token table is read now, so that a store outage later serves from it (api/auth.py).
        await svc.tokens.scopes()
        if isinstance(svc.recorder, ProcessRecorder):
            svc.recorder.start()
        # Models and reference objects are long-lived: moving them out of the collector's view cuts
        # full-collection pauses (measured in the serving benchmark: p99 at half load 139 -> 20 ms).
        gc.collect()
        gc.freeze()
        self._spawn(loops.follow_store(svc))
        self._spawn(loops.drive_rollouts(svc))
        if settings.monitor_interval > 0:
            self._spawn(loops.monitor_periodically(svc))
        if settings.retention_days is not None or settings.monitoring_retention_days is not None:
            self._spawn(loops.apply_retention_periodically(svc))
        self._spawn(loops.retrain_on_schedule(svc))
        if svc.metrics.multiprocess:
            # With several workers, other workers answer scrapes from what this one last wrote.
            self._spawn(refresh_every(svc.metrics))
        svc.ready = True
        if settings.grpc_port:  # the caller stops us if this fails: a port it cannot bind closes what started
            self._grpc = await _start_grpc(self.app, svc)
        return svc

    def _spawn(self, loop: Any) -> None:
        self._tasks.append(asyncio.create_task(loop))

    async def stop(self) -> None:
        svc = self.services
        if svc is None:
            return
        # Readiness drops first so load balancers stop sending; uvicorn has already let in-flight
        # requests finish; then everything queued is written.
        svc.ready = False
        if self._grpc is not None:
            await self._grpc.stop()  # in-flight gRPC calls finish (bounded) before the log closes
        for task in self._tasks:
            task.cancel()
        await close_services(svc)

    @contextlib.contextmanager
    def unready_on_sigterm(self) -> Iterator[None]:
        """Readiness turns false the moment SIGTERM arrives, before uvicorn stops taking connections.

        uvicorn installs its own handler before the lifespan starts; ours wraps it and hands on, so
        in-flight requests still finish and the lifespan's shutdown still flushes the log.
        """
        if threading.current_thread() is not threading.main_thread():  # e.g. a test server in a thread
            yield
            return
        previous = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            if self.services is not None:
                self.services.ready = False
            if callable(previous):
                previous(signum, frame)

        signal.signal(signal.SIGTERM, on_sigterm)
        try:
            yield
        finally:
            if signal.getsignal(signal.SIGTERM) is on_sigterm:
                signal.signal(signal.SIGTERM, previous)


async def _start_grpc(app: Any, svc: Services) -> Any:
    """The Open Inference Protocol's gRPC service on `grpc_port`, on this event loop (imported only
    when asked for: grpc costs start-up time)."""
    from driftgate.api.grpc_server import GrpcServer

    server = GrpcServer(app, svc, svc.settings)
    await server.start()
    return server
