"""Loaded model versions: the adapter, its compiled input schema and output description."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from driftgate.core.refs import VersionRef
from driftgate.errors import BadRequest
from driftgate.registry import formats
from driftgate.registry.reference import from_parquet
from driftgate.registry.schema import Columns, InputSchema
from driftgate.serving.isolation import Scores, WorkerSpec
from driftgate.store import Store


@dataclass
class LoadedVersion:
    """A version as a process serving it needs it. `model` is None where the model runs in worker
    processes only (`ModelCache.describe`): then `score` goes through `remote`, the endpoint's workers."""

    ref: VersionRef
    schema: InputSchema
    output: dict[str, Any]
    model: formats.ModelAdapter | None
    format: str
    # What `isolation: "auto"` runs this version in (see `auto_isolation`).
    auto_isolation: Literal["thread", "process"] = "process"
    remote: Callable[[pd.DataFrame], Scores] | None = None

    @property
    def classes(self) -> list[Any] | None:
        return self.output.get("classes") if self.output.get("kind") == "classification" else None

    def score(self, frame: pd.DataFrame) -> Scores:
        """Blocking, in a worker thread; the adapter's exceptions propagate to the data plane."""
        if self.model is not None:
            return self.model.predict(frame)
        if self.remote is not None:
            return self.remote(frame)
        raise RuntimeError(f"model {self.ref} is not loaded in this process: it runs in worker processes")

    def scored_by(self, score: Callable[[Columns], Scores], max_rows: int) -> LoadedVersion:
        """This version scoring through `score` (a worker pool's), at most `max_rows` rows a call: each
        call must fit the endpoint's timeout, as the batcher's own calls do (a drift report scores its
        whole reference sample)."""

        def remote(frame: pd.DataFrame) -> Scores:
            parts = [
                score({name: frame[name].to_numpy()[start : start + max_rows] for name in frame.columns})
                for start in range(0, len(frame), max_rows)
            ] or [score({name: frame[name].to_numpy() for name in frame.columns})]
            probas = [q for _, q in parts if q is not None]
            return np.concatenate([p for p, _ in parts]), np.concatenate(probas) if len(probas) == len(parts) else None

        return dataclasses.replace(self, remote=remote)


class ModelCache:
    """Versions by reference, each read once per process; blocking, so call it from a worker thread.

    `get` loads the model here; `describe` does not: its schema and output come from what
    registration stored, which is all a server needs of a version whose model runs in workers
    (`serving`). A server so never loads a model it did not vet, nor holds it twice."""

    def __init__(self, store: Store, trust_pickle: bool = False) -> None:
        self.store = store
        self.trust_pickle = trust_pickle
        self._loaded: dict[VersionRef, LoadedVersion] = {}
        self._described: dict[VersionRef, LoadedVersion] = {}
        self._lock = threading.Lock()

    def get(self, ref: VersionRef) -> LoadedVersion:
        hit = self._loaded.get(ref)
        if hit is not None:
            return hit
        with self._lock:
            hit = self._loaded.get(ref)
            if hit is None:
                hit = self._load(ref)
                self._loaded[ref] = hit
        return hit

    def describe(self, ref: VersionRef) -> LoadedVersion:
        """The version without its model (unless loaded already): schema, output, isolation mode."""
        hit = self._loaded.get(ref) or self._described.get(ref)
        if hit is not None:
            return hit
        record = self.store.models.get(ref.model, ref.version)
        spec = self._spec(ref, record)
        schema = InputSchema.from_dict(record.input_schema)
        hit = LoadedVersion(ref, schema, record.output, None, record.format, auto_isolation(spec))
        self._described[ref] = hit
        return hit

    def serving(self, ref: VersionRef, isolation: str) -> LoadedVersion:
        """The version as an endpoint with this `isolation` serves it: loaded here only to run here."""
        version = self.describe(ref)
        mode = version.auto_isolation if isolation == "auto" else isolation
        return self.get(ref) if mode == "thread" else version

    def _load(self, ref: VersionRef) -> LoadedVersion:
        record = self.store.models.get(ref.model, ref.version)
        spec = self._spec(ref, record)
        artifact = spec.artifact() if callable(spec.artifact) else spec.artifact
        model = formats.load(artifact, spec.kind, trust=spec.trust)
        if spec.classes and hasattr(model, "set_classes"):
            model.set_classes(spec.classes)
        schema = InputSchema.from_dict(record.input_schema)
        return LoadedVersion(ref, schema, record.output, model, record.format, auto_isolation(spec))

    def worker_spec(self, ref: VersionRef) -> WorkerSpec:
        """What loading `ref` takes (artifact, kind, trust, classes), for a worker process to load it."""
        return self._spec(ref, self.store.models.get(ref.model, ref.version))

    def _spec(self, ref: VersionRef, record: Any) -> WorkerSpec:
        """The artifact is read from the store when a worker starts (and for an MLflow archive's
        mode), not held: a server whose model runs in workers keeps no copy of it."""
        store = self.store

        def artifact() -> bytes:
            blob = store.models.blob(ref.model, ref.version, "model")
            if blob is None:
                raise RuntimeError(f"artifact of {ref} is missing from the store")
            return blob

        # A version registered with trust keeps it: the registering admin vouched for the file.
        trusted = bool(record.lineage.get("trusted")) or self.trust_pickle
        return WorkerSpec(f"model {ref}", artifact, record.artifact_kind, trusted, record.output.get("classes"))

    def loaded(self) -> list[VersionRef]:
        return list(self._loaded)


def auto_isolation(spec: WorkerSpec) -> Literal["thread", "process"]:
    """`isolation: "auto"`: threads only for what driftgate loads through its own checks (a skops
    file read with the type allow-list and the tree bounds checks of registry/trust.py, also as an
    MLflow sklearn flavor) and for python models (the operator's own code on the server's path, like
    pipeline steps, which run in the server anyway). Everything else runs native code nobody here
    vetted (onnxruntime on a crafted graph, an MLflow pyfunc flavor, anything loaded with trust,
    which skips the checks): a worker process, so a segfault costs one request, not the server."""
    if spec.trust or spec.kind not in ("skops", "python", "mlflow"):
        return "process"
    if spec.kind == "mlflow":  # the archive is read only to find its flavor
        artifact = spec.artifact() if callable(spec.artifact) else spec.artifact
        return "thread" if formats.vetted(artifact, spec.kind, spec.trust) else "process"
    return "thread"


def score_reference_rows(
    store: Store,
    version: LoadedVersion,
    rows: int = 16,
    score: Callable[[pd.DataFrame], Any] | None = None,
) -> None:
    """Score a few of the version's own reference rows (a warm-up and a check before it gets traffic),
    with `score` (default: the version's own, in this process).

    Raises BadRequest naming the failure: a version that fails here would fail live traffic.
    """
    ref = version.ref
    blob = store.models.blob(ref.model, ref.version, "reference")
    if blob is None:
        return
    sample = from_parquet(blob).head(rows)
    if any(name not in sample.columns for name in version.schema.names):
        return  # a declared feature the reference data lacks: its rows cannot be scored
    try:
        frame = version.schema.to_frame({n: sample[n].tolist() for n in version.schema.names}, len(sample))
        (score or version.score)(frame)
    except Exception as exc:
        raise BadRequest(
            f"model {ref} fails on its own reference rows ({type(exc).__name__}: {str(exc)[:200]}); "
            "it would fail live traffic",
            model=ref.model,
        ) from None
