"""What an artifact may contain before we load it without the caller's trust.

Loading is where code runs (pickle's `__reduce__`, a skops node that calls a function, an MLflow
flavor that unpickles), so every check here happens on the file's description, before any of its
objects are built:

- **skops**: only the types skops itself trusts by default, plus `EXTRA_SKOPS_TYPES`, an explicit
  list of exact names (never a module prefix: `numpy.` admitted `numpy.testing...runstring`, which
  runs a string as code). Some trusted types hold indices that native code follows unchecked: a
  tree's child links (the tree types in that list; past the node array they read out of bounds)
  and a vectorizer's vocabulary (types skops trusts by default: its values become sparse column
  indices, and a crafted one crashed the process in scipy's product with the coefficients). So
  after loading, `check_loaded` checks every tree and vocabulary before the model is used.
- **MLflow**: the `MLmodel` file is read as YAML (safe loader) and only flavors that load without
  unpickling or importing user code are admitted (`SAFE_MLFLOW_LOADERS`).
- **Archives**: `extract_zip` refuses absolute paths, `..`, symlinks, too many files and too many
  extracted bytes (zip bombs), counting the bytes actually inflated, not the sizes the header claims.
"""

from __future__ import annotations

import io
import shutil
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from driftgate.errors import BadRequest, UntrustedArtifact

# Exact type names trusted beyond skops' defaults. Each is here because common models need it and
# `check_loaded` makes its loaded form safe to use; tests/registry/test_trust.py pins this list.
# Text pipelines (TfidfVectorizer/CountVectorizer, ColumnTransformer, Pipeline, LogisticRegression)
# need nothing here: skops trusts all their types by default (0.9 to 0.16, the versions checked).
EXTRA_SKOPS_TYPES: frozenset[str] = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    }
)

# MLflow pyfunc loader modules that read their model without pickle or user code.
SAFE_MLFLOW_LOADERS: frozenset[str] = frozenset({"mlflow.onnx"})

MAX_ARCHIVE_FILES = 10_000
MAX_ARCHIVE_BYTES = 4 * 1024**3
_TRUST_HINT = "pass trust=true (HTTP) / --trust-pickle (CLI) only if you trust its origin"


def skops_trusted_types(data: bytes, trust: bool) -> list[str]:
    """The types to hand to `skops.io.loads(trusted=...)`; raises when untrusted ones need trust."""
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:  # skops raises assorted errors on malformed files
        raise BadRequest(f"the skops file cannot be read: {type(exc).__name__}: {exc}", field="file") from None
    unsafe = sorted(t for t in untrusted if t not in EXTRA_SKOPS_TYPES)
    if unsafe and not trust:
        raise UntrustedArtifact(
            f"the skops file contains types that skops does not trust by default: {unsafe[:5]}"
            f"{' and more' if len(unsafe) > 5 else ''}; loading them can run code; {_TRUST_HINT}",
            field="file",
            untrusted_types=unsafe,
        )
    return list(untrusted)


def check_loaded(model: Any) -> None:
    """Refuse a model loaded without trust that holds a decision tree whose node links or feature
    indices are out of range, or a vectorizer whose vocabulary is not the columns 0..n-1."""
    for owner, obj in _indexed(model):
        if f"{type(obj).__module__}.{type(obj).__qualname__}" not in EXTRA_SKOPS_TYPES:
            _check_vocabulary(obj)
        elif type(obj).__name__ == "Tree":
            _check_tree(obj, getattr(owner, "n_features_in_", None))
        else:
            _check_predictor(obj, getattr(owner, "n_features_in_", None))


check_trees = check_loaded  # its former name (registry/formats.py calls it so)


def _indexed(obj: Any, seen: set[int] | None = None, owner: Any = None, depth: int = 0) -> Iterator[tuple[Any, Any]]:
    """Every tree object (EXTRA_SKOPS_TYPES) and every object with a `vocabulary_` dict reachable
    from `obj`, with the estimator that holds it."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 50 or isinstance(obj, str | bytes | int | float | bool | type(None)):
        return
    seen.add(id(obj))
    name = f"{type(obj).__module__}.{type(obj).__qualname__}"
    if name in EXTRA_SKOPS_TYPES:
        yield owner, obj
        return
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            for item in obj.ravel():
                yield from _indexed(item, seen, owner, depth + 1)
        return
    if isinstance(obj, dict):
        children: list[Any] = list(obj.values())
    elif isinstance(obj, list | tuple | set):
        children = list(obj)
    else:
        attributes = getattr(obj, "__dict__", {})
        if isinstance(attributes.get("vocabulary_"), dict):
            yield owner, obj
        children = [v for k, v in attributes.items() if k != "vocabulary_"]  # its keys and values: str, int
        owner = obj if hasattr(obj, "n_features_in_") else owner
    for child in children:
        yield from _indexed(child, seen, owner, depth + 1)


def _check_vocabulary(vectorizer: Any) -> None:
    """CountVectorizer, TfidfVectorizer and DictVectorizer turn `vocabulary_` values into the column
    indices of a sparse matrix of len(vocabulary_) columns, which scipy trusts to be in range."""
    vocabulary = vectorizer.__dict__["vocabulary_"]
    values = list(vocabulary.values())
    try:
        if not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
            raise ValueError("an index that is not an integer")
        columns = np.sort(np.fromiter(values, dtype=np.int64, count=len(values)))
    except (ValueError, OverflowError) as exc:
        raise _index_error("vocabulary", str(exc)) from None
    outside = columns[(columns < 0) | (columns >= len(values))]
    if outside.size:
        raise _index_error("vocabulary", f"a word has column {outside[0]}, outside its columns 0..{len(values) - 1}")
    if len(values) > 1 and (np.diff(columns) == 0).any():
        shared = columns[np.flatnonzero(np.diff(columns) == 0)[0]]
        raise _index_error("vocabulary", f"two words share column {shared}")
    for attribute in ("feature_names_", "idf_"):  # DictVectorizer's names, a TfidfVectorizer's weights
        try:
            other = getattr(vectorizer, attribute, None)
        except AttributeError:  # TfidfVectorizer.idf_ of an unfitted inner transformer
            other = None
        if other is not None and len(other) != len(values):
            raise _index_error("vocabulary", f"{len(values)} words but {len(other)} {attribute}")


def _index_error(what: str, detail: str) -> BadRequest:
    return BadRequest(f"the model holds a malformed {what} ({detail}); refusing to load it", field="file")


def _tree_error(detail: str) -> BadRequest:
    return _index_error("decision tree", detail)


def _check_links(left: np.ndarray, right: np.ndarray, is_leaf: np.ndarray, count: int) -> None:
    nodes = np.arange(count)
    inner = ~is_leaf
    for side, links in (("left", left), ("right", right)):
        # sklearn numbers children after their parent, so in-range, forward links also rule out cycles.
        bad = inner & ((links <= nodes) | (links >= count))
        if bad.any():
            raise _tree_error(f"node {int(np.argmax(bad))} has {side} child {int(links[np.argmax(bad)])}")


def _check_tree(tree: Any, n_features: int | None) -> None:
    count = int(tree.node_count)
    left, right = np.asarray(tree.children_left), np.asarray(tree.children_right)
    feature = np.asarray(tree.feature)
    if not (len(left) == len(right) == len(feature) == count) or count < 1:
        raise _tree_error("node arrays disagree with node_count")
    is_leaf = (left == -1) & (right == -1)
    _check_links(left, right, is_leaf, count)
    limit = min(int(tree.n_features), n_features) if n_features is not None else int(tree.n_features)
    bad = ~is_leaf & ((feature < 0) | (feature >= limit))
    if bad.any():
        raise _tree_error(f"node {int(np.argmax(bad))} splits on feature {int(feature[np.argmax(bad)])} of {limit}")
    if np.asarray(tree.value).shape[0] != count:
        raise _tree_error("value array disagrees with node_count")


def _check_predictor(predictor: Any, n_features: int | None) -> None:
    nodes = predictor.nodes
    count = len(nodes)
    if count < 1:
        raise _tree_error("empty predictor")
    is_leaf = nodes["is_leaf"].astype(bool)
    _check_links(nodes["left"].astype(np.int64), nodes["right"].astype(np.int64), is_leaf, count)
    feature = nodes["feature_idx"].astype(np.int64)
    if n_features is not None and (~is_leaf & ((feature < 0) | (feature >= n_features))).any():
        raise _tree_error("a split names a feature past the model's inputs")
    categorical = ~is_leaf & nodes["is_categorical"].astype(bool)
    if categorical.any():
        bitsets = nodes["bitset_idx"].astype(np.int64)[categorical]
        rows = min(len(predictor.raw_left_cat_bitsets), len(predictor.binned_left_cat_bitsets))
        if (bitsets < 0).any() or (bitsets >= rows).any():
            raise _tree_error("a categorical split points past its bitsets")


def mlflow_untrusted_reason(mlmodel: dict[str, Any]) -> str | None:
    """Why loading this MLflow model could run code (None when its flavor is safe to load)."""
    flavors = mlmodel.get("flavors")
    if not isinstance(flavors, dict) or not isinstance(flavors.get("python_function"), dict):
        return "it has no python_function flavor"
    pyfunc = flavors["python_function"]
    loader = pyfunc.get("loader_module")
    if pyfunc.get("code") or pyfunc.get("python_model") or loader not in SAFE_MLFLOW_LOADERS:
        sklearn = flavors.get("sklearn")
        how = sklearn.get("serialization_format", "pickle") if isinstance(sklearn, dict) else None
        return f"its loader {loader!r} " + (f"unpickles the model ({how})" if how else "may unpickle or import code")
    return None


def mlflow_sklearn_file(root: Path, mlmodel: dict[str, Any]) -> tuple[Path, str] | None:
    """The model file of a scikit-learn flavor and its serialization format (skops, pickle...)."""
    sklearn = (mlmodel.get("flavors") or {}).get("sklearn")
    if not isinstance(sklearn, dict):
        return None
    name = sklearn.get("pickled_model")
    path = (root / str(name)).resolve() if isinstance(name, str) else None
    if path is None or not path.is_relative_to(root.resolve()) or not path.is_file():
        raise BadRequest(f"the MLflow sklearn flavor names a model file {name!r} not in the archive", field="file")
    return path, str(sklearn.get("serialization_format", "pickle"))


def read_mlmodel(folder: Path) -> tuple[Path, dict[str, Any]]:
    """The model root (the folder holding MLmodel) and its parsed MLmodel file."""
    import yaml

    found = sorted(folder.rglob("MLmodel"), key=lambda p: len(p.parts))
    if not found:
        raise BadRequest("the MLflow artifact has no MLmodel file", field="file")
    try:
        parsed = yaml.safe_load(found[0].read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the MLflow artifact's MLmodel file is not valid YAML: {exc}", field="file") from None
    if not isinstance(parsed, dict):
        raise BadRequest("the MLflow artifact's MLmodel file is not a mapping", field="file")
    return found[0].parent, parsed


def check_mlflow_trust(mlmodel: dict[str, Any], trust: bool) -> None:
    reason = None if trust else mlflow_untrusted_reason(mlmodel)
    if reason is not None:
        raise UntrustedArtifact(f"this MLflow model cannot be loaded safely: {reason}; {_TRUST_HINT}", field="file")


def extract_zip(
    data: bytes, dest: Path, *, max_files: int = MAX_ARCHIVE_FILES, max_bytes: int = MAX_ARCHIVE_BYTES
) -> None:
    """Extract an uploaded archive into `dest`, refusing traversal, links, bombs and junk."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise BadRequest(f"the artifact is not a valid zip archive: {exc}", field="file") from None
    members = archive.infolist()
    if len(members) > max_files:
        raise BadRequest(f"the archive holds {len(members)} entries, more than {max_files}", field="file")
    root = dest.resolve()
    written = 0
    for member in members:
        _check_member(member, root)
        target = root / member.filename
        if member.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(member) as src, open(target, "wb") as out:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > max_bytes:
                    raise BadRequest(f"the archive expands past {max_bytes} bytes (a zip bomb?)", field="file")
                out.write(chunk)


def _check_member(member: zipfile.ZipInfo, root: Path) -> None:
    name = member.filename
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or ":" in name or "\x00" in name:
        raise BadRequest(f"the archive entry {name!r} points outside the archive", field="file")
    kind = stat.S_IFMT(member.external_attr >> 16)  # 0 when the archiver stored no unix mode
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        raise BadRequest(f"the archive entry {name!r} is a link or special file", field="file")
    if not (root / name).resolve().is_relative_to(root):
        raise BadRequest(f"the archive entry {name!r} points outside the archive", field="file")


def remove_tree(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
