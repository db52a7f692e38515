"""Loaded model versions: the adapter, its compiled input schema and output description."""

from __future__ import annotations

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
from driftgate.registry.schema import InputSchema
from driftgate.serving.isolation import WorkerSpec
from driftgate.store import Store


@dataclass
class LoadedVersion:
    ref: VersionRef
    schema: InputSchema
    output: dict[str, Any]
    model: formats.ModelAdapter
    format: str
    # What `isolation: "auto"` runs this version in (see `auto_isolation`).
    auto_isolation: Literal["thread", "process"] = "process"

    @property
    def classes(self) -> list[Any] | None:
        return self.output.get("classes") if self.output.get("kind") == "classification" else None

    def score(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Runs in a worker thread; the adapter's exceptions propagate to the data plane."""
        return self.model.predict(frame)


class ModelCache:
    """Loads each version once per process; blocking, so call it from a worker thread."""

    def __init__(self, store: Store, trust_pickle: bool = False) -> None:
        self.store = store
        self.trust_pickle = trust_pickle
        self._loaded: dict[VersionRef, LoadedVersion] = {}
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

    def _load(self, ref: VersionRef) -> LoadedVersion:
        record = self.store.models.get(ref.model, ref.version)
        spec = self._spec(ref, record)
        model = formats.load(spec.artifact, spec.kind, trust=spec.trust)
        if spec.classes and hasattr(model, "set_classes"):
            model.set_classes(spec.classes)
        schema = InputSchema.from_dict(record.input_schema)
        return LoadedVersion(ref, schema, record.output, model, record.format, auto_isolation(spec, model))

    def worker_spec(self, ref: VersionRef) -> WorkerSpec:
        """What loading `ref` takes (artifact, kind, trust, classes), for a worker process to load it."""
        return self._spec(ref, self.store.models.get(ref.model, ref.version))

    def _spec(self, ref: VersionRef, record: Any) -> WorkerSpec:
        blob = self.store.models.blob(ref.model, ref.version, "model")
        if blob is None:
            raise RuntimeError(f"artifact of {ref} is missing from the store")
        # A version registered with trust keeps it: the registering admin vouched for the file.
        trusted = bool(record.lineage.get("trusted")) or self.trust_pickle
        return WorkerSpec(f"model {ref}", blob, record.artifact_kind, trusted, record.output.get("classes"))

    def loaded(self) -> list[VersionRef]:
        return list(self._loaded)


def auto_isolation(spec: WorkerSpec, model: formats.ModelAdapter) -> Literal["thread", "process"]:
    """`isolation: "auto"`: threads only for what driftgate loads through its own checks (a skops
    file read with the type allow-list and the tree bounds checks of registry/trust.py, also as an
    MLflow sklearn flavor) and for python models (the operator's own code on the server's path, like
    pipeline steps, which run in the server anyway). Everything else runs native code nobody here
    vetted (onnxruntime on a crafted graph, an MLflow pyfunc flavor, anything loaded with trust,
    which skips the checks): a worker process, so a segfault costs one request, not the server."""
    if spec.trust:
        return "process"
    if spec.kind in ("skops", "python"):
        return "thread"
    if spec.kind == "mlflow" and type(model) is formats.SklearnModel:  # the skops flavor, our loader
        return "thread"
    return "process"


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
    try:
        frame = version.schema.to_frame({n: sample[n].tolist() for n in version.schema.names}, len(sample))
        (score or version.score)(frame)
    except Exception as exc:
        raise BadRequest(
            f"model {ref} fails on its own reference rows ({type(exc).__name__}: {str(exc)[:200]}); "
            "it would fail live traffic",
            model=ref.model,
        ) from None
