"""One call in a throwaway process: for work on a model driftgate did not vet (registering it), whose
native code may crash or hang. A crash or a hang costs that call, answered as an error naming it;
the calling process (the server) goes on.

The process is spawned (the server has threads: never fork), dies with its parent (the kernel's
parent-death SIGKILL, set before it imports the model's libraries, plus a watcher of the parent
pid) and is killed after `timeout_s`. It answers in JSON, never pickle: its code is not trusted to
send the server anything that runs when read.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from driftgate import errors
from driftgate.child import describe_exit, die_with_parent
from driftgate.errors import BadRequest, DriftgateError

TIMEOUT_S = 120.0
# The most a reply may hold (a schema and an output description are a few KB).
MAX_REPLY_BYTES = 16 * 1024**2


class WorkerCrashed(BadRequest):
    """The throwaway process died before it answered (a segfault, `abort()`, the OOM killer)."""


class WorkerHung(BadRequest):
    """The throwaway process did not answer within its time; it was killed."""


def run_once(fn: Callable[..., Any], args: tuple[Any, ...], *, what: str, timeout_s: float = TIMEOUT_S) -> Any:
    """`fn(*args)` in a fresh process; its JSON-able result, or its `DriftgateError` raised here.

    `fn` must be importable by name (a module-level function). `what` completes "the worker process
    that ..." in the messages. Blocking: the calling thread must live until this returns (the
    process gets SIGKILL when the thread that started it ends)."""
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_main, args=(theirs, os.getpid(), fn, args), name="driftgate-one-shot", daemon=True)
    try:
        process.start()
        theirs.close()  # the child holds the only sending end: its death is our EOF
        try:
            if not ours.poll(timeout_s):
                raise WorkerHung(
                    f"WorkerHung: the worker process that {what} did not finish within {timeout_s:.0f} s and was "
                    "stopped; nothing was stored",
                    field="file",
                )
            raw = ours.recv_bytes(MAX_REPLY_BYTES)
        except (EOFError, OSError):
            process.join(timeout=5)
            died = describe_exit(process.exitcode)
            raise WorkerCrashed(
                f"WorkerCrashed: the worker process that {what} was {died}"
                if died.startswith("killed")
                else f"WorkerCrashed: the worker process that {what} ended without an answer ({died})",
                field="file",
                crash=died,
            ) from None
    finally:
        ours.close()
        theirs.close()
        if process.pid is not None:  # started
            if process.is_alive():
                process.kill()
            process.join(timeout=5)
            if process.exitcode is not None:
                process.close()
    return _answer(json.loads(raw))


def _answer(reply: Any) -> Any:
    if not isinstance(reply, dict):
        raise BadRequest("the worker process answered something that is not a reply", field="file")
    if "result" in reply:
        return reply["result"]
    raise _rebuild(str(reply.get("type")), str(reply.get("message")), reply.get("details"))


def _rebuild(name: str, message: str, details: Any) -> DriftgateError:
    """The child's error as the same class of `driftgate.errors` (only there: a name the child sent
    never picks what runs here), anything else as a 400 naming its type."""
    cls = getattr(errors, name, None)
    extra = details if isinstance(details, dict) and all(isinstance(k, str) for k in details) else {}
    if isinstance(cls, type) and issubclass(cls, DriftgateError):
        exc = cls.__new__(cls)
        DriftgateError.__init__(exc, message, **extra)  # never a subclass's own __init__ and its arguments
        return exc
    return BadRequest(f"{name}: {message}", field="file")


def _main(conn: Connection, parent_pid: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    die_with_parent(parent_pid, lambda: os._exit(0), kernel_signal=signal.SIGKILL)
    try:
        reply: dict[str, Any] = {"result": fn(*args)}
    except DriftgateError as exc:
        reply = {"type": type(exc).__name__, "message": exc.message, "details": exc.details}
    except Exception as exc:
        reply = {"type": type(exc).__name__, "message": str(exc)[:500], "details": {}}
    try:
        data = json.dumps(reply, default=str).encode()
    except (TypeError, ValueError) as exc:
        data = json.dumps({"type": "BadRequest", "message": f"the answer cannot be sent back: {exc}"}).encode()
    conn.send_bytes(data)
    conn.close()
