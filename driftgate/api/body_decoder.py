"""Big prediction bodies are decoded in a helper process (issue 19, item 6).

Parsing a 60 MB JSON body is one C call (orjson, ~0.7 s) that holds the GIL, and the million objects
it makes set off the cyclic GC's full passes (another 3-8 s, holding it as well): in a thread of the
server, the event loop waited for all of it (liveness took 3 s to answer under 3 x 60 MB bodies). A
process of its own shares no GIL with the event loop. The decoder child:

- runs a protocol decoder given as a `functools.partial` of a module-level function (it is pickled);
- decodes with the GC off: a decode makes no reference cycles and its objects are freed by their
  reference counts (60 MB: ~1 s instead of 4-9 s);
- counts the rows and refuses a request over `max_rows_per_request` itself, so that only the count
  comes back, not a million rows to unpickle on the server;
- takes one body at a time (that bounds the memory of parsed bodies to one), at normal CPU priority:
  the client waits for it, and at low priority a busy machine would starve it;
- starts on the first big body and dies with the server (`driftgate.child`).

The server pays for a copy of the body and for unpickling the columns that come back (lists: ~10 ms
per 100,000 rows, the default row bound), in the pool's result thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial
from multiprocessing.shared_memory import SharedMemory
from typing import Any, TypeVar

from driftgate.child import ChildProcess
from driftgate.errors import DriftgateError

T = TypeVar("T")
# A decoded request and its row count, or None and the count of a request over the row bound.
Bounded = tuple[T, int] | tuple[None, int]


class DecoderDied(RuntimeError):
    """The decoder process died while it decoded this body (the OOM killer, say): a 500, not retried."""


def request_rows(decoded: Any) -> int:
    """Rows of a decoded request: a `DecodedRequest`, or a tuple that starts with one (V2: with options)."""
    first = decoded[0] if isinstance(decoded, tuple) else decoded
    return int(first.n_rows)


def decode_bounded(decode: partial[T], limit: int) -> Bounded[T]:
    """`decode()` and its row count; None instead of a request over `limit` rows."""
    out = decode()
    n = request_rows(out)
    return (None, n) if n > limit else (out, n)


def _in_child(decode: partial[T], limit: int) -> Bounded[T] | DriftgateError:
    """`decode_bounded` in the decoder process, its body read from shared memory. A refusal comes back
    as a value: its traceback would only be pickled to be dropped."""
    collecting = gc.isenabled()
    gc.disable()  # see the module docstring: the GC's passes over a parsed body cost 4x the parse
    try:
        return decode_bounded(_unshared(decode), limit)
    except DriftgateError as exc:
        exc.__context__ = None
        return exc.with_traceback(None)
    finally:
        if collecting:
            gc.enable()


# ---- the body's way to the child -----------------------------------------------------------------
# Pickled with the call, a 60 MB body was copied in one C call (pickle into a buffer) that held the
# GIL for 0.3-1 s on a loaded machine, the event loop waiting. A bytes argument this big goes through
# shared memory instead, written by a worker thread with the GIL released.
SHARED_MIN_BYTES = 64 * 1024
COPY_SLICE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class _Shared:
    """A bytes argument, left in a shared memory segment."""

    name: str
    size: int


def _share(decode: partial[T]) -> tuple[partial[T], list[SharedMemory]]:
    """`decode` with its big bytes arguments in shared memory, and the segments (for `_release`)."""
    segments: list[SharedMemory] = []
    args: list[Any] = []
    try:
        for arg in decode.args:
            if not isinstance(arg, bytes) or len(arg) < SHARED_MIN_BYTES:
                args.append(arg)
                continue
            shared = _shared_copy(arg)
            if shared is None:  # no room in /dev/shm (a container's is 64 MB by default): pickled with the call
                args.append(arg)
                continue
            segments.append(shared)
            args.append(_Shared(shared.name, len(arg)))
    except BaseException:
        _release(segments)
        raise
    return partial(decode.func, *args, **decode.keywords), segments


def _shared_copy(data: bytes) -> SharedMemory | None:
    """A shared memory segment holding `data`, or None if the system has no room for it."""
    try:
        segment = SharedMemory(create=True, size=len(data))
    except OSError:
        return None
    try:
        _write(segment, memoryview(data))
    except OSError:
        _release([segment])
        return None
    except BaseException:
        _release([segment])
        raise
    return segment


def _write(segment: SharedMemory, data: memoryview) -> None:
    """`data` into `segment` through its file: the kernel copies with the GIL released (a copy into the
    mapping, page faults included, holds it; on a loaded machine a thread that holds it may wait for a
    core, and the event loop with it)."""
    fd: int = segment._fd  # type: ignore[attr-defined]  # POSIX: the shm_open'ed file
    done = 0
    while done < len(data):
        done += os.pwrite(fd, data[done : done + COPY_SLICE_BYTES], done)


def _unshared(decode: partial[T]) -> partial[T]:
    """In the child: `decode` with its shared arguments read back as bytes."""
    if not any(isinstance(arg, _Shared) for arg in decode.args):
        return decode
    args: list[Any] = []
    for arg in decode.args:
        if isinstance(arg, _Shared):
            segment = SharedMemory(name=arg.name)
            try:
                assert segment.buf is not None  # None only after close()
                arg = bytes(segment.buf[: arg.size])
            finally:
                segment.close()
        args.append(arg)
    return partial(decode.func, *args, **decode.keywords)


def _release(segments: list[SharedMemory]) -> None:
    for segment in segments:
        segment.close()
        with contextlib.suppress(FileNotFoundError):
            segment.unlink()


# JSON values come out of orjson up to 1,024 levels deep, and a decoder may keep such a value for the
# schema check to refuse (a 422 naming the field); pickling it back recurses once per level.
PICKLE_RECURSION_LIMIT = 5000


def _ready() -> None:
    """The child's initializer (each call brings its own decoder)."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), PICKLE_RECURSION_LIMIT))


_child = ChildProcess(_ready, (), priority="normal")
_in_flight = 0  # bodies handed to the decoder and not answered yet (changed on the event loop only)


def _submit(decode: partial[T], limit: int) -> tuple[Future[Bounded[T] | DriftgateError], list[SharedMemory]]:
    """Share the body and submit to the child (a thread's work: copying, and starting the process on
    first use); a child that died since its last body (the pool is broken) is replaced."""
    shared, segments = _share(decode)
    try:
        try:
            return _child.submit(_in_child, shared, limit), segments
        except BrokenProcessPool:
            _child.reset()
            return _child.submit(_in_child, shared, limit), segments
    except BaseException:
        _release(segments)
        raise


async def decode_in_child(decode: partial[T], limit: int) -> Bounded[T]:
    """`decode_bounded(decode, limit)` in the decoder process; its refusals are raised here."""
    global _in_flight
    _in_flight += 1
    loop = asyncio.get_running_loop()
    segments: list[SharedMemory] = []
    try:
        future, segments = await asyncio.to_thread(_submit, decode, limit)
        try:
            got = await asyncio.wrap_future(future)
        except BrokenProcessPool:
            await asyncio.to_thread(_child.reset)
            raise DecoderDied("the body decoder process died while decoding this request") from None
    finally:
        _in_flight -= 1
        if segments:  # unmapping 60 MB is not for the event loop either
            loop.run_in_executor(None, _release, segments)
    if isinstance(got, DriftgateError):
        raise got
    return got


def in_flight() -> int:
    """Bodies waiting for the decoder or being decoded now."""
    return _in_flight


def processes() -> list[Any]:
    """The decoder's live process (`multiprocessing.Process`), if it has started."""
    return _child.processes()


def stop() -> None:
    """End the decoder process (server shutdown); the next big body starts a new one."""
    _child.reset()
