"""One long-lived helper process at low CPU priority, started on first use, replaced if it dies.

Work that must not take the serving process's GIL (big drift reports, shadow scoring) runs here:
a spawned child (the server has threads: never fork) with its own store connection, set up by an
`initializer` in the child. Its CPU priority drops before it imports anything, so on a busy core
serving wins and on an idle one the child runs at full speed: the parent lowers it the moment the
process exists (a spawned child first re-imports the parent's main module, and unpickling an
initializer imports its module: ~1-2 s of imports that, at normal priority, raised the serving
benchmark's half-load p99 from 6 to 27 ms while the monitor's child started), and the child lowers
itself again before it runs the initializer, which it imports by name.

Every child dies with its parent (`die_with_parent`): a `kill -9` of the server used to leave the log
writer (with the database open) and multiprocessing's resource tracker running under init. The
tracker needs nothing of its own: it exits when the last process holding its pipe (the server and
these children) is gone. Children ignore SIGINT and SIGTERM (a Ctrl-C or a `kill` of the whole
process group reaches them too): the parent ends them when it has drained through them, and a child
that died of such a signal would be replaced in the middle of the shutdown. After `close()` (or
`stop_respawning()`) no new child starts.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import multiprocessing
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Literal

Priority = Literal["normal", "nice", "idle"]
NICENESS = 19
KILL_AFTER_S = 5.0

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# The signal the kernel sends a child when its parent ends. Not SIGKILL: Linux sends it when the parent
# *thread* that started the child exits, which may happen while the parent process lives on (a pool
# thread that retires), so the child checks its parent pid before acting on it.
PARENT_DEATH_SIGNAL = signal.SIGUSR2
# The child also looks at its parent pid this often: a parent that died before the child asked for
# the signal, or a main thread stuck in native code that cannot run a Python signal handler.
PARENT_CHECK_S = 1.0
# A child whose parent died finishes the call in hand (a log write of acknowledged rows) for at most
# this long, then exits.
PARENT_DEATH_GRACE_S = 5.0
# A process started with `subprocess` (not multiprocessing) finds its parent's pid here.
PARENT_PID_ENV = "DRIFTGATE_PARENT_PID"


class ChildUnavailable(RuntimeError):
    """The helper process is closed (or may not be replaced): nothing was run."""


# ---- dying with the parent: runs in the child ------------------------------------------------------

_busy = threading.Lock()  # held in a child while a submitted call runs
_watching = False


def set_parent_death_signal(sig: int) -> bool:
    """Ask Linux to send `sig` to this process when its parent ends (prctl(PR_SET_PDEATHSIG));
    False where that does not exist. Survives exec, so a child may set it for its own exec'd work."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def exit_after_call_in_hand() -> None:
    """The default action on the parent's death: let a running call finish (bounded), then exit."""
    _busy.acquire(timeout=PARENT_DEATH_GRACE_S)
    os._exit(0)


def die_with_parent(
    parent_pid: int | None = None,
    on_parent_death: Callable[[], None] | None = None,
    kernel_signal: int = PARENT_DEATH_SIGNAL,
) -> None:
    """Call in a child right after it starts: once the process `parent_pid` (by default the current
    parent) is gone, kill -9 included, run `on_parent_death` (default `exit_after_call_in_hand`)
    in a watcher thread. Uses the kernel's parent-death signal, and polls the parent pid as well
    (every `PARENT_CHECK_S`): the parent may have died before this call, and the signal is also sent
    when only the parent's spawning thread ended. Idempotent per process.

    `kernel_signal=SIGKILL` is for children started from a thread that lives as long as the parent
    (`spawn_thread`): the kernel then ends the child itself, with no Python code to run. That matters
    for an idle-priority child on a busy machine, whose watcher may wait many seconds for CPU and
    the GIL before it can act (seen: a writer orphaned for over 10 s at load 15)."""
    global _watching
    if _watching:
        return
    _watching = True
    parent = os.getppid() if parent_pid is None else parent_pid
    action = on_parent_death or exit_after_call_in_hand
    # The handler wakes the watcher through a pipe, never a lock: it runs between any two bytecodes
    # of the main thread, the signal comes in bursts (the kernel sends it again each time the dying
    # parent's children pass to another of its exiting threads), and a handler that set an Event
    # re-entered the Event's own lock and hung the child for good (orphans under `kill -9`).
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    if kernel_signal == signal.SIGKILL:
        set_parent_death_signal(signal.SIGKILL)
    elif threading.current_thread() is threading.main_thread():
        signal.signal(kernel_signal, lambda signum, frame: _poke(wake_write))
        set_parent_death_signal(kernel_signal)

    def watch() -> None:
        while os.getppid() == parent:  # reparented (to init or a subreaper) once the parent is gone
            if select.select([wake_read], [], [], PARENT_CHECK_S)[0]:
                os.read(wake_read, 4096)
        restore_priority()
        action()

    threading.Thread(target=watch, name="driftgate-parent-watch", daemon=True).start()


def _poke(fd: int) -> None:
    with contextlib.suppress(BlockingIOError):  # a full pipe already wakes the watcher
        os.write(fd, b"\0")


_spawner: ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


def spawn_thread() -> ThreadPoolExecutor:
    """One thread that lives as long as this process, to start children from: Linux sends the
    parent-death signal when the *thread* that started a child ends, so children started here get
    it only when the process itself is gone."""
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftgate-spawner")
        return _spawner


def stop_gracefully(limit_s: float = 45.0) -> Callable[[], None]:
    """An `on_parent_death` for a server process (a uvicorn worker whose supervisor was killed): SIGTERM
    to itself, so it drains and writes its log as on any SIGTERM; exits hard after `limit_s`."""

    def action() -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(limit_s)  # the watcher is a daemon thread: a clean exit ends it first
        os._exit(1)

    return action


def kill_process_group() -> None:
    """An `on_parent_death` for a process that leads its own group (a retraining job): it and every
    process it started (joblib workers, say) end at once."""
    os.killpg(os.getpgid(0), signal.SIGKILL)


def is_spawned_child() -> bool:
    """True in a process started by multiprocessing (a uvicorn `--workers` worker, say)."""
    return multiprocessing.parent_process() is not None


def die_with_spawning_parent(on_parent_death: Callable[[], None] | None = None) -> None:
    """`die_with_parent` for a multiprocessing child that is not one of ours (a uvicorn worker): the
    parent's pid comes from multiprocessing, which recorded it before the child started."""
    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid is not None:
        die_with_parent(parent.pid, on_parent_death)


# ---- the helper process ------------------------------------------------------------------------------


def lower_priority(priority: Priority, pid: int = 0) -> None:
    """`nice`: the lowest niceness, so a busy core still gives the child a small share.
    `idle`: also Linux's SCHED_IDLE: a serving thread that wakes up preempts the child at once,
    where a nice-19 task may first finish its time slice (EEVDF), a few ms added to a request.
    `normal`: unchanged (work a client waits for, such as decoding its body). `pid` 0 is this process."""
    if priority == "normal":
        return
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, pid, NICENESS)
    if priority == "idle":
        with contextlib.suppress(AttributeError, OSError):
            os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))


def restore_priority() -> None:
    """Back to normal CPU priority, where allowed (root, or CAP_SYS_NICE): an orphaned idle-priority
    child on a busy machine would otherwise wait many seconds for the CPU it needs to exit."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, 0, 0)


def _boot(parent_pid: int, priority: Priority, initializer: str, args: tuple[Any, ...]) -> None:
    # First: the parent may be killed while this child still imports. Not SIGKILL: the log writer
    # must finish the acknowledged rows in hand (a starved idle writer's batch may be seconds old;
    # killed at once it lost rows acked 7.8 s before the kill). It is started from `spawn_thread`,
    # so the signal comes only when the parent process itself is gone.
    die_with_parent(parent_pid)
    # The parent decides when its children end (see the module docstring); it ends them with SIGKILL.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    lower_priority(priority)
    module, _, qualname = initializer.partition(":")
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):  # a qualified name: `Class.method` as well as `function`
        target = getattr(target, part)
    target(*args)


def _run(fn: Callable[..., Any], *args: Any) -> Any:
    """A submitted call, in the child: marked busy, so that a parent's death lets it finish."""
    with _busy:
        return fn(*args)


class ChildProcess:
    """`submit(fn, *args)` runs a module-level `fn` in the child; `call` waits for its result and
    retries once on a fresh child if the old one died (the OOM killer, a crashing native library)."""

    def __init__(self, initializer: Callable[..., None], args: tuple[Any, ...], priority: Priority = "nice") -> None:
        # By name: a function pickled by reference would import its module before `_boot` runs.
        self._initializer = (f"{initializer.__module__}:{initializer.__qualname__}", args)
        self._priority = priority
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._respawn = True
        self._closed = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        with self._lock:
            if self._closed:
                raise ChildUnavailable("the helper process is closed")
            created = self._pool is None
            if created:
                if not self._respawn:
                    raise ChildUnavailable("the helper process ended and is not replaced (shutting down)")
                name, init_args = self._initializer
                self._pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_boot,
                    initargs=(os.getpid(), self._priority, name, init_args),
                )
            pool = self._pool
            assert pool is not None
            if created:  # a spawning pool starts its one process in the submitting thread
                future = spawn_thread().submit(pool.submit, _run, fn, *args).result()
            else:
                future = pool.submit(_run, fn, *args)
            if created:  # a process that dies breaks the pool, so a new process means a new pool
                for process in (getattr(pool, "_processes", None) or {}).values():
                    lower_priority(self._priority, process.pid)
        return future

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return self.submit(fn, *args).result()
        except BrokenProcessPool:
            self.reset()
            return self.submit(fn, *args).result()

    @property
    def started(self) -> bool:
        return self._pool is not None

    def processes(self) -> list[Any]:
        """The live child's `multiprocessing.Process` (none before first use or after `reset`)."""
        with self._lock:
            pool = self._pool
        return list((getattr(pool, "_processes", None) or {}).values()) if pool is not None else []

    def stop_respawning(self) -> None:
        """From now on a child that dies is not replaced (calls raise `ChildUnavailable` instead): for
        shutdown, when a fresh child would only be started to be ended."""
        with self._lock:
            self._respawn = False

    def reset(self) -> None:
        """End the child now (it may be half-way through a long job) and start afresh on next use."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is None:
            return
        children = list((getattr(pool, "_processes", None) or {}).values())  # before shutdown() clears it
        pool.shutdown(wait=False, cancel_futures=True)
        for child in children:
            child.kill()  # it ignores SIGTERM (see the module docstring)
        # Polled, not joined: after the pool's shutdown a child's sentinel may already be closed,
        # which makes join() return at once.
        deadline = time.monotonic() + KILL_AFTER_S
        while any(c.is_alive() for c in children) and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        """End the child; no other starts after this."""
        with self._lock:
            self._closed = True
            self._respawn = False
        self.reset()


def describe_exit(code: int | None) -> str:
    """A process's exit code in words: `killed by SIGSEGV`, `exit status 1`, `still running`."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"
