"""Shadow copies scored in a separate process at idle CPU priority.

A shadow must never change the primary's latency. In a thread of the serving process it would:
its model code holds the GIL in 5 ms slices that live requests wait for, and it competes for the
core. Here every shadow version is loaded once more in one child process (`driftgate.child`,
scheduled SCHED_IDLE: it only gets a core nothing else wants). The serving process keeps what is
cheap: validating the copy's columns, one pickle of numpy arrays per merged batch (the shadow's micro-batcher merges the
copies that queue while a call runs), and logging. When the child cannot keep up, copies queue
up to the data plane's cap and are then dropped and counted, never waited for.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from driftgate.child import ChildProcess
from driftgate.core.refs import VersionRef
from driftgate.registry.schema import Columns, frame_of
from driftgate.serving.batching import Scores


class ShadowFailed(RuntimeError):
    """The shadow model raised in the child; the message is the original `Type: text`."""


class ShadowProcess:
    def __init__(self, *, data_dir: Path, db: str | None, trust_pickle: bool = False) -> None:
        self._child = ChildProcess(_start, (str(data_dir), db, trust_pickle), priority="idle")

    def scorer(self, ref: VersionRef) -> Callable[[Columns], Scores]:
        """A blocking `score(columns)` for `ref`, for a micro-batcher (`frames=False`) worker thread:
        the columns cross as numpy arrays and become a DataFrame in the child."""

        def score(columns: Columns) -> Scores:
            ok, result = self._child.call(_score, ref.model, ref.version, columns)
            if not ok:
                raise ShadowFailed(result)
            return result

        return score

    def preload(self, ref: VersionRef) -> None:
        """Start the child and load `ref` there now, so the first copies do not wait for it."""
        self._child.submit(_load, ref.model, ref.version)

    def load(self, ref: VersionRef) -> None:
        """Start the child and load `ref` there, and wait for it: a caller that must know the shadow is
        ready (a test on a loaded machine, where the idle-priority child may take many seconds)."""
        self._child.call(_load, ref.model, ref.version)

    def close(self) -> None:
        """End the child; no other starts after this (a copy scored during shutdown is an error)."""
        self._child.close()


# ---- the child process ----------------------------------------------------------------------------

_cache: Any = None


def _start(data_dir: str, db: str | None, trust_pickle: bool) -> None:
    global _cache
    from driftgate.serving.runtime import ModelCache
    from driftgate.store import Store

    _cache = ModelCache(Store.open(Path(data_dir), db), trust_pickle=trust_pickle)


def _load(model: str, version: int) -> None:
    _cache.get(VersionRef(model, version))


def _score(model: str, version: int, columns: Columns) -> tuple[bool, Any]:
    """(True, scores) or (False, "Type: message"): a model's own exception may not pickle."""
    try:
        return True, _cache.get(VersionRef(model, version)).score(frame_of(columns))
    except Exception as exc:
        return False, f"{type(exc).__name__}: {str(exc)[:300]}"
