"""Loaded model versions: the adapter, its compiled input schema and output description."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

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
        return LoadedVersion(ref, InputSchema.from_dict(record.input_schema), record.output, model, record.format)

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


def score_reference_rows(store: Store, version: LoadedVersion, rows: int = 16) -> None:
    """Score a few of the version's own reference rows (a warm-up and a check before it gets traffic).

    Raises BadRequest naming the failure: a version that fails here would fail live traffic.
    """
    ref = version.ref
    blob = store.models.blob(ref.model, ref.version, "reference")
    if blob is None:
        return
    sample = from_parquet(blob).head(rows)
    try:
        frame = version.schema.to_frame({n: sample[n].tolist() for n in version.schema.names}, len(sample))
        version.score(frame)
    except Exception as exc:
        raise BadRequest(
            f"model {ref} fails on its own reference rows ({type(exc).__name__}: {str(exc)[:200]}); "
            "it would fail live traffic",
            model=ref.model,
        ) from None
