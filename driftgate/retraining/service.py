"""Runs retraining jobs for the server: opens the run, starts `driftgate.retraining.job` in a
subprocess, records what it did, and starts a rollout of a better candidate (SPEC 8).

The server only waits here (in a thread, without the GIL): reading the window, fitting and scoring
all happen in the subprocess. A run that outlives its `timeout_seconds` is killed; one whose server
stops is killed too and recorded as failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from driftgate.child import PARENT_PID_ENV, lower_priority
from driftgate.errors import BadRequest, DriftgateError
from driftgate.retraining.spec import RetrainSpec
from driftgate.store import Store
from driftgate.validation import module_allowed, parse

log = logging.getLogger("driftgate.retraining")

LOG_TAIL_CHARS = 4000
# A run open this long past its timeout was abandoned (its server died); the next one may start.
DEADLINE_GRACE_S = 300.0

StartRollout = Callable[[str, dict[str, Any], str], Awaitable[dict[str, Any]]]


class Retrainer:
    def __init__(
        self,
        store: Store,
        *,
        data_dir: str | Path,
        db: str | None,
        allowed_modules: tuple[str, ...] | None,
        start_rollout: StartRollout,
        concurrency: int = 2,
    ) -> None:
        self.store = store
        self.data_dir = str(data_dir)
        self.db = db
        self.allowed_modules = allowed_modules
        self.start_rollout = start_rollout
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._processes: dict[int, subprocess.Popen[bytes]] = {}
        # Waiting on jobs (up to `timeout_seconds` each) happens on threads of its own: on asyncio's
        # shared pool, a few long runs would hold back rollout analysis, alert actions and the monitor.
        # Runs beyond `concurrency` stay queued until a thread is free.
        self._waiters = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="driftgate-retrain")
        self._closing = False

    def prepare(self, endpoint: str, overrides: Mapping[str, Any]) -> tuple[RetrainSpec, dict[str, Any]]:
        """The run's spec (the endpoint's `retraining` config with `overrides` over it) and its champion."""
        config, _ = self.store.endpoints.get(endpoint)
        base = config.get("retraining") or {}
        if not isinstance(overrides, Mapping):
            raise BadRequest("a retrain request body must be a JSON object", field="body")
        if "train" not in base and "train" not in overrides:
            raise BadRequest(
                f"endpoint {endpoint!r} has no retraining config: name the train function ('train': "
                "'package.module:function') in the request, or in the endpoint config's 'retraining'",
                field="train",
            )
        spec = parse(RetrainSpec, {**base, **overrides}, "retraining")
        self.check(spec)
        return spec, {"model": config["model"], "version": int(config["version"])}

    def check(self, spec: RetrainSpec, field: str = "train") -> None:
        """Refuse a train function outside the server's allow-list (it is code the server runs). No list
        (the CLI): the operator runs code on their own machine anyway."""
        if self.allowed_modules is not None and not module_allowed(spec.module(), self.allowed_modules):
            allowed = ", ".join(repr(m) for m in self.allowed_modules) or "none"
            raise BadRequest(
                f"module {spec.module()!r} is not allowed to train on this server (allowed: {allowed}); a train "
                "function is server code, so the server must be started with `driftgate serve --train-module PACKAGE`",
                field=field,
            )

    async def start(self, endpoint: str, overrides: Mapping[str, Any], *, trigger: str, actor: str) -> dict[str, Any]:
        """Open a run and start it in the background; returns the queued run."""
        run, spec = await self._open(endpoint, overrides, trigger, actor)
        task = asyncio.create_task(self._execute(run, spec))
        self._tasks[run["id"]] = task
        task.add_done_callback(lambda _: self._tasks.pop(run["id"], None))
        log.info("retraining run %s on %s started (%s, by %s)", run["id"], endpoint, trigger, actor)
        return run

    async def run_now(self, endpoint: str, overrides: Mapping[str, Any], *, trigger: str, actor: str) -> dict[str, Any]:
        """Open a run and wait for its end; returns the ended run (the CLI's way)."""
        run, spec = await self._open(endpoint, overrides, trigger, actor)
        await self._execute(run, spec)
        return await asyncio.to_thread(self.store.retraining.get, run["id"])

    async def _open(
        self, endpoint: str, overrides: Mapping[str, Any], trigger: str, actor: str
    ) -> tuple[dict[str, Any], RetrainSpec]:
        spec, champion = await asyncio.to_thread(self.prepare, endpoint, overrides)
        run = await asyncio.to_thread(
            self.store.retraining.open,
            endpoint,
            trigger=trigger,
            actor=actor,
            spec=spec.model_dump(),
            champion=champion,
            deadline=time.time() + spec.timeout_seconds + DEADLINE_GRACE_S,
        )
        return run, spec

    async def _execute(self, run: dict[str, Any], spec: RetrainSpec) -> None:
        try:
            await self._run(run, spec)
        except asyncio.CancelledError:
            self._finish(run, "failed", detail="the server stopped before the run ended")
            raise
        except Exception as exc:  # ours, not the user's: the run says so, the server goes on
            log.exception("retraining run %s failed", run["id"])
            await self._finished(run, "failed", detail=f"{type(exc).__name__}: {exc}")

    async def _run(self, run: dict[str, Any], spec: RetrainSpec) -> None:
        result, tail = await asyncio.get_running_loop().run_in_executor(self._waiters, self._subprocess, run, spec)
        if not result.get("ok"):
            await self._finished(
                run, "failed", detail=result.get("error") or "the run ended without a result", log=tail
            )
            return
        candidate, summary = result["candidate"], result["summary"]
        fields = {
            "candidate": candidate,
            "rows": result["rows"],
            "evaluation": {**result["evaluation"], "timings": result["timings"]},
            "log": tail,
        }
        registered = f"registered {candidate['model']} v{candidate['version']}"
        if not result["evaluation"]["better"]:
            await self._finished(run, "rejected", detail=f"{registered}, not rolled out: {summary}", **fields)
            return
        if spec.rollout is None:
            await self._finished(run, "succeeded", detail=f"{registered}: {summary}; no rollout configured", **fields)
            return
        reason = spec.reason or f"retraining run {run['id']} ({run['trigger']})"
        body = {**spec.rollout, "model": candidate["model"], "version": candidate["version"], "reason": reason}
        try:
            rollout = await self.start_rollout(run["endpoint"], body, "retraining")
        except DriftgateError as exc:  # a rollout already running, say: the version stays registered
            await self._finished(
                run, "succeeded", detail=f"{registered}: {summary}; rollout not started: {exc.message}", **fields
            )
            return
        strategy = rollout["strategy"]
        detail = f"{registered}: {summary}; {strategy} rollout {rollout['id']} started"
        await self._finished(run, "succeeded", detail=detail, rollout_id=rollout["id"], **fields)

    def _subprocess(self, run: dict[str, Any], spec: RetrainSpec) -> tuple[dict[str, Any], str]:
        """Run the job; its result and the tail of what it printed."""
        if self._closing:
            return {"ok": False, "error": "the server stopped before the run started"}, ""
        self.store.retraining.update(run["id"], state="running", started_at=time.time())
        with tempfile.TemporaryDirectory(prefix="driftgate-retrain-") as tmp:
            request, result, output = Path(tmp, "request.json"), Path(tmp, "result.json"), Path(tmp, "output.log")
            request.write_text(
                json.dumps(
                    {
                        "run_id": run["id"],
                        "endpoint": run["endpoint"],
                        "champion": run["champion"],
                        "spec": spec.model_dump(),
                        "data_dir": self.data_dir,
                        "allowed_modules": self.allowed_modules,
                        "db": self.db,
                        "now": run["created_at"],
                    }
                )
            )
            # The child imports what this server can: its sys.path, not only the current directory's.
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
            env[PARENT_PID_ENV] = str(os.getpid())  # the job dies with this server (kill -9 included)
            with output.open("wb") as sink:
                process = subprocess.Popen(
                    [sys.executable, "-m", "driftgate.retraining.job", str(request), str(result)],
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,  # its own process group: a kill reaches the workers it forks
                )
            lower_priority("nice", process.pid)
            self._processes[run["id"]] = process
            if self._closing:  # aclose() ran between the check above and now
                _kill(process)
            try:
                code = process.wait(timeout=spec.timeout_seconds)
            except subprocess.TimeoutExpired:
                _kill(process)
                process.wait()
                return {"ok": False, "error": f"timed out after {spec.timeout_seconds:g} s (timeout_seconds)"}, _tail(
                    output
                )
            finally:
                self._processes.pop(run["id"], None)
            if result.exists():
                return json.loads(result.read_text()), _tail(output)
            return {"ok": False, "error": f"the run's process ended (exit code {code}) without a result"}, _tail(output)

    async def _finished(self, run: dict[str, Any], state: str, **fields: Any) -> None:
        await asyncio.to_thread(self._finish, run, state, **fields)

    def _finish(self, run: dict[str, Any], state: str, **fields: Any) -> None:
        try:
            self.store.retraining.update(run["id"], state=state, finished_at=time.time(), **fields)
        except Exception:  # the store is down: the run's deadline closes it later
            log.exception("could not record the end of retraining run %s", run["id"])
        log.warning("retraining run %s on %s %s: %s", run["id"], run["endpoint"], state, fields.get("detail"))

    async def join(self) -> None:
        """Wait for the runs started in the background to end (a short-lived command's exit)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def aclose(self) -> None:
        """Kill running jobs; their runs are recorded as failed."""
        self._closing = True
        for process in list(self._processes.values()):
            _kill(process)
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._waiters.shutdown(wait=False, cancel_futures=True)


def _kill(process: subprocess.Popen[bytes]) -> None:
    """The job and every process it started (joblib workers, say): they share its process group."""
    with contextlib.suppress(OSError):
        os.killpg(process.pid, signal.SIGKILL)


def _tail(path: Path) -> str:
    """The end of what the job printed (a train function may print a lot; only the end is read)."""
    if not path.exists():
        return ""
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - LOG_TAIL_CHARS))
        return f.read().decode("utf-8", "replace")
