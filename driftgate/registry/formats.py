"""Model formats: detect what an artifact is, refuse what is unsafe, load it behind one interface.

Every loaded model is a `ModelAdapter`: `predict(frame)` returns the predictions and, for
classifiers, the class probabilities (columns in the order of `classes`).
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import os
import tempfile
import types
import weakref
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import numpy as np
import pandas as pd

from driftgate.errors import BadRequest, UnsupportedFormat, UntrustedArtifact
from driftgate.registry import trust as trust_rules
from driftgate.registry.format_onnx import OnnxModel

FORMATS = ("sklearn", "onnx", "python", "mlflow")


class ModelAdapter(Protocol):
    classes: list[Any] | None
    feature_names: list[str] | None

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]: ...


def detect_kind(data: bytes, fmt: str) -> str:
    """The artifact's own type, whatever the declared framework: skops, pickle, onnx, python, mlflow."""
    if fmt not in FORMATS:
        raise UnsupportedFormat(f"format must be one of {list(FORMATS)}, got {fmt!r}", field="format")
    if fmt == "sklearn":
        if _is_zip(data) and "schema.json" in _zip_names(data):
            return "skops"
        return "pickle"
    if fmt == "python":
        return "python"
    if fmt == "mlflow":
        if not _is_zip(data):
            raise UnsupportedFormat("format 'mlflow' expects an MLflow model directory (zipped when uploaded)")
        return "mlflow"
    return "onnx"


def vetted(data: bytes, kind: str, trust: bool) -> bool:
    """Whether `load` reads this artifact only through driftgate's own checks: a skops file without
    trust (type allow-list, tree bounds checks), also as the one model of an MLflow archive, and
    python models (the operator's own code). Everything else runs native code nobody here vetted
    (onnxruntime on a crafted graph, an MLflow pyfunc flavor, anything trusted), so loading or
    scoring it may crash the process: registration and serving keep it out of the server."""
    if trust:
        return False
    if kind in ("skops", "python"):
        return True
    return kind == "mlflow" and _mlflow_skops_only(data)


def _mlflow_skops_only(data: bytes) -> bool:
    """True when the archive's only MLmodel file has a scikit-learn flavor saved with skops (read from
    the zip's directory without extracting anything; anything odd counts as not vetted)."""
    import yaml

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        found = [n for n in archive.namelist() if PurePosixPath(n).name == "MLmodel"]
        if len(found) != 1 or archive.getinfo(found[0]).file_size > 1 << 20:
            return False
        parsed = yaml.safe_load(archive.read(found[0]).decode("utf-8"))
    except Exception:  # a bad zip or YAML: the loader refuses it, in a worker
        return False
    flavors = parsed.get("flavors") if isinstance(parsed, dict) else None
    sklearn = flavors.get("sklearn") if isinstance(flavors, dict) else None
    return isinstance(sklearn, dict) and sklearn.get("serialization_format") == "skops"


def refuse_unloadable(kind: str, trust: bool) -> None:
    """The refusals that need nothing loaded (so no worker process is started to hear them)."""
    if kind == "pickle" and not trust:
        raise UntrustedArtifact(
            "this sklearn artifact is a pickle/joblib file, and loading one runs arbitrary code; save it "
            "with skops (skops.io.dump) or pass trust=True / --trust-pickle if you trust its origin",
            field="file",
        )


def load(data: bytes, kind: str, *, trust: bool = False) -> ModelAdapter:
    refuse_unloadable(kind, trust)
    if kind == "skops":
        return SklearnModel(_load_skops(data, trust))
    if kind == "pickle":
        import joblib

        return SklearnModel(joblib.load(io.BytesIO(data)))
    if kind == "onnx":
        return OnnxModel(data)
    if kind == "python":
        return PythonModel(_load_python(data))
    if kind == "mlflow":
        return _load_mlflow(data, trust)
    raise UnsupportedFormat(f"unknown artifact kind {kind!r}")


def _is_zip(data: bytes) -> bool:
    return data[:4] == b"PK\x03\x04"


def _zip_names(data: bytes) -> list[str]:
    try:
        return zipfile.ZipFile(io.BytesIO(data)).namelist()
    except zipfile.BadZipFile as exc:
        raise BadRequest(f"the artifact is not a valid zip archive: {exc}", field="file") from None


def _load_skops(data: bytes, trust: bool) -> Any:
    import skops.io as sio

    trusted = trust_rules.skops_trusted_types(data, trust)
    model = sio.loads(data, trusted=trusted)
    if not trust:
        trust_rules.check_trees(model)
    return model


def _load_python(data: bytes) -> Any:
    """`module:Class`, or a Python source file followed by `\\n#driftgate-class: Class`."""
    text = data.decode()
    if "\n#driftgate-class: " in text:
        source, cls_name = text.rsplit("\n#driftgate-class: ", 1)
        module = types.ModuleType("driftgate_user_model")
        exec(compile(source, "<registered model>", "exec"), module.__dict__)
        return getattr(module, cls_name.strip())()
    module_name, _, cls_name = text.strip().partition(":")
    if not cls_name:
        raise BadRequest(f"format 'python' expects 'module:Class', got {text.strip()!r}", field="file")
    try:
        return getattr(importlib.import_module(module_name), cls_name)()
    except (ImportError, AttributeError) as exc:
        raise BadRequest(f"cannot load python model {text.strip()!r}: {exc}", field="file") from None


def python_artifact(spec: str) -> bytes:
    """The stored form of a `module:Class` or `path/to/file.py:Class` spec (local registration only)."""
    target, _, cls_name = spec.rpartition(":")
    if target.endswith(".py") and Path(target).is_file():
        return Path(target).read_bytes() + f"\n#driftgate-class: {cls_name}".encode()
    return spec.encode()


def _classes_of(model: Any) -> list[Any] | None:
    classes = getattr(model, "classes_", None)
    if classes is None or not hasattr(model, "predict_proba"):
        return None
    return [c.item() if isinstance(c, np.generic) else c for c in classes]


class SklearnModel:
    """A scikit-learn estimator or pipeline."""

    def __init__(self, model: Any) -> None:
        if not hasattr(model, "predict"):
            raise BadRequest(f"the artifact holds a {type(model).__name__}, which has no predict()", field="file")
        self.model = model
        self.classes = _classes_of(model)
        names = getattr(model, "feature_names_in_", None)
        self.feature_names = [str(n) for n in names] if names is not None else None
        final = model.steps[-1][1] if hasattr(model, "steps") else model
        # For most classifiers predict() is argmax(predict_proba()); one call instead of two.
        # SVC-style Platt scaling breaks that identity, so do a classifier's own cut
        # (FixedThresholdClassifier, TunedThresholdClassifierCV) and any class that is not
        # scikit-learn's: those get both calls, and the served answer is their predict().
        self._argmax_ok = self.classes is not None and _predicts_argmax(final)

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        if self.classes is None:
            return np.asarray(self.model.predict(frame)), None
        proba = np.asarray(self.model.predict_proba(frame), dtype=np.float64)
        if self._argmax_ok:
            return np.asarray(self.model.classes_)[proba.argmax(axis=1)], proba
        return np.asarray(self.model.predict(frame)), proba


def _predicts_argmax(estimator: Any) -> bool:
    if not type(estimator).__module__.startswith("sklearn."):
        return False
    return not any(hasattr(estimator, name) for name in ("probability", "threshold", "best_threshold_"))


class PythonModel(SklearnModel):
    """A user class with predict() and optionally predict_proba() and classes_."""


def _load_mlflow(data: bytes, trust: bool) -> ModelAdapter:
    """An MLflow model directory (zipped), extracted with bounds and checked before anything loads.

    A scikit-learn flavor saved with skops (MLflow's default) is read by our own skops loader, with
    our allow-list and tree checks and without mlflow installed; other flavors go through
    `mlflow.pyfunc`, and those that unpickle or import code need trust first.
    """
    _sweep_stale_mlflow_folders()
    folder = Path(tempfile.mkdtemp(prefix=f"{_MLFLOW_PREFIX}{os.getpid()}-"))
    try:
        limit = min(trust_rules.MAX_ARCHIVE_BYTES, max(256 * 1024**2, 20 * len(data)))
        trust_rules.extract_zip(data, folder, max_bytes=limit)
        root, mlmodel = trust_rules.read_mlmodel(folder)
        sklearn_file = trust_rules.mlflow_sklearn_file(root, mlmodel)
        if sklearn_file is not None and sklearn_file[1] == "skops":
            model: ModelAdapter = SklearnModel(_load_skops(sklearn_file[0].read_bytes(), trust))
            trust_rules.remove_tree(folder)
            return model
        trust_rules.check_mlflow_trust(mlmodel, trust)
        if sklearn_file is not None:
            # Trusted: unpickled here rather than through mlflow.pyfunc, so the model keeps its
            # classes and probabilities instead of becoming a column of predictions.
            import cloudpickle

            with open(sklearn_file[0], "rb") as f:
                model = SklearnModel(cloudpickle.load(f))
            trust_rules.remove_tree(folder)
            return model
        return MlflowModel(root, folder)
    except BaseException:
        trust_rules.remove_tree(folder)
        raise


class MlflowModel:
    """An MLflow pyfunc model (needs the optional `mlflow` extra).

    The extracted folder lives as long as the model (some flavors read their files at predict
    time) and no longer.
    """

    def __init__(self, root: Path, folder: Path) -> None:
        if importlib.util.find_spec("mlflow") is None:
            raise UnsupportedFormat("this MLflow flavor needs mlflow: pip install 'driftgate[mlflow]'")
        import mlflow.pyfunc

        self.model = mlflow.pyfunc.load_model(str(root))
        self._cleanup = weakref.finalize(self, trust_rules.remove_tree, folder)
        self.classes: list[Any] | None = None
        schema = self.model.metadata.get_input_schema()
        self.feature_names = schema.input_names() if schema is not None else None
        self._dtypes = _signature_dtypes(schema)

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        out = self.model.predict(_as_declared(frame, self._dtypes))
        return np.asarray(out).reshape(len(frame), -1)[:, 0], None


# MLflow signature types whose column dtype pyfunc enforces strictly (it refuses float64 -> int64).
_MLFLOW_INTEGER_TYPES = {"long": np.int64, "integer": np.int32}


def _signature_dtypes(schema: Any) -> dict[str, Any]:
    if schema is None or not getattr(schema, "has_input_names", lambda: False)():
        return {}
    out = {}
    for spec in schema.inputs:
        name = getattr(getattr(spec, "type", None), "name", None)
        if spec.name is not None and name in _MLFLOW_INTEGER_TYPES:
            out[spec.name] = _MLFLOW_INTEGER_TYPES[name]
    return out


def _as_declared(frame: pd.DataFrame, dtypes: dict[str, Any]) -> pd.DataFrame:
    """Integer columns back to the integer type the signature declares (the schema carries them as
    float64 so that NaN stays representable); a non-integral value is a clear error, not a cast."""
    todo = {n: t for n, t in dtypes.items() if n in frame.columns and frame[n].dtype.kind == "f"}
    if not todo:
        return frame
    frame = frame.copy()
    for name, dtype in todo.items():
        values = frame[name].to_numpy()
        if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
            raise BadRequest(f"feature {name!r} is declared integer by the model's signature; got {values[:3]}")
        frame[name] = values.astype(dtype)
    return frame


_MLFLOW_PREFIX = "driftgate-mlflow-"


def _sweep_stale_mlflow_folders() -> None:
    """Remove folders left by a process that died before its finalizer ran (kill -9)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_MLFLOW_PREFIX}*-*"):
        pid = folder.name[len(_MLFLOW_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            trust_rules.remove_tree(folder)


def zip_directory(path: Path) -> bytes:
    """The upload form of a model directory (MLflow)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(path.rglob("*")):
            if file.is_file():
                zf.write(file, file.relative_to(path))
    return buf.getvalue()


__all__ = [
    "FORMATS",
    "ModelAdapter",
    "detect_kind",
    "load",
    "python_artifact",
    "refuse_unloadable",
    "vetted",
    "zip_directory",
]
