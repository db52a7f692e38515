"""Crafted model artifacts that try to run code or write outside their folder on upload.

Each builder returns the bytes an attacker would upload and, where the payload runs code, the
path of the marker file the code would create: a test asserts the marker never appears.
"""

from __future__ import annotations

import io
import json
import pickle
import stat
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PAYLOAD = "open({marker!r}, 'w').write('pwned')"


def _fit_logistic() -> Any:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    return LogisticRegression().fit(x, (x["a"] > 0).astype(int)), x


def _json_node(value: Any) -> dict[str, Any]:
    return {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode",
            "content": json.dumps(value), "is_json": True}  # fmt: skip


def _rewrite_skops(data: bytes, edit: Any) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    schema = json.loads(src.read("schema.json"))
    edit(schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            dst.writestr(name, json.dumps(schema) if name == "schema.json" else src.read(name))
    return out.getvalue()


def skops_reduce_runstring(marker: Path) -> bytes:
    """An estimator with an extra attribute built by calling numpy's `runstring` on Python code."""
    import skops.io as sio

    model, _ = _fit_logistic()
    node = {
        "__class__": "runstring",
        "__module__": "numpy.testing._private.utils",
        "__loader__": "ConstructorFromReduceNode",
        "content": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
                    "content": [_json_node(PAYLOAD.format(marker=str(marker))),
                                {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode",
                                 "content": {}, "key_types": _json_node([])}]},
    }  # fmt: skip

    def edit(schema: dict[str, Any]) -> None:
        attrs = schema["content"]
        attrs["content"]["evil"] = node
        key_types = attrs["key_types"]["content"]
        key_types.append(dict(key_types[0]))  # DictNode zips keys with their types: one more str key

    return _rewrite_skops(sio.dumps(model), edit)


def skops_function_trick() -> bytes:
    """A pipeline whose FunctionTransformer calls numpy's `runstring` on the request's data."""
    import skops.io as sio
    from numpy.testing._private.utils import runstring
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    model, _x = _fit_logistic()
    pipe = Pipeline([("f", FunctionTransformer(func=runstring, validate=False)), ("m", model)])
    return sio.dumps(pipe)


def skops_out_of_bounds_tree() -> bytes:
    """A random forest whose first tree links its root to a node far past the node array."""
    import skops.io as sio
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.tree._tree import Tree

    _, x = _fit_logistic()
    forest = RandomForestClassifier(n_estimators=2, random_state=0).fit(x, (x["a"] > 0).astype(int))
    tree = forest.estimators_[0].tree_
    state = tree.__getstate__()
    state["nodes"] = state["nodes"].copy()
    state["nodes"]["left_child"][0] = 10**6
    crafted = Tree(tree.n_features, np.asarray(tree.n_classes), tree.n_outputs)
    crafted.__setstate__(state)
    forest.estimators_[0].tree_ = crafted
    return sio.dumps(forest)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (PAYLOAD.format(marker=str(self.marker)),))


def mlflow_pickle(marker: Path, tmp: Path) -> bytes:
    """A real MLflow sklearn model directory whose model.pkl runs code when unpickled (zipped)."""
    import mlflow.sklearn

    from driftgate.registry.formats import zip_directory

    model, _ = _fit_logistic()
    folder = tmp / "mlflow-model"
    mlflow.sklearn.save_model(model, str(folder), serialization_format="cloudpickle")
    (folder / "model.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    return zip_directory(folder)


def zip_with(entries: list[tuple[str, bytes, int | None]]) -> bytes:
    """A zip of (name, content, unix mode or None) entries; mode lets an entry claim to be a symlink."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content, mode in entries:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if mode is not None:
                info.external_attr = mode << 16
            zf.writestr(info, content)
    return out.getvalue()


def archive_traversal() -> bytes:
    return zip_with([("MLmodel", b"flavors: {}\n", None), ("../../driftgate-escaped.txt", b"x", None)])


def archive_symlink() -> bytes:
    return zip_with([("MLmodel", b"flavors: {}\n", None), ("link", b"/etc/passwd", stat.S_IFLNK | 0o777)])


def archive_bomb(inflated_bytes: int) -> bytes:
    """A few hundred KB that inflate to `inflated_bytes` of zeros."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("MLmodel", b"flavors: {}\n")
        with zf.open("zeros.bin", "w", force_zip64=True) as member:
            block = bytes(1 << 20)
            for _ in range(inflated_bytes >> 20):
                member.write(block)
    return out.getvalue()


def _text_pipeline() -> Any:
    from driftgate.demo import media_data, media_models

    return media_models.train_text_model(media_data.emails(200, seed=0))


def skops_text_analyzer(func: Any) -> bytes:
    """The issue-22 text pipeline whose TfidfVectorizer calls `func` (e.g. `exec`) on each request's text."""
    import skops.io as sio

    model = _text_pipeline()
    model.named_steps["features"].transformers_[0][1].analyzer = func
    return sio.dumps(model)


def skops_text_renamed_type(module: str, name: str) -> bytes:
    """The text pipeline with its fitted vectorizer's node renamed to another type (a crafted schema.json)."""
    import skops.io as sio

    def edit(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("__class__") == "TfidfVectorizer":
                node["__module__"], node["__class__"] = module, name
            for value in node.values():
                edit(value)
        elif isinstance(node, list):
            for value in node:
                edit(value)

    return _rewrite_skops(sio.dumps(_text_pipeline()), edit)


def skops_text_vocabulary(index: int, idf_length: int | None = None) -> bytes:
    """The text pipeline with one word's vocabulary index set to `index` (a column index that scipy's
    sparse product reads unchecked: far past the coefficients it read out of bounds and crashed
    the process), its idf_ lengthened to `idf_length` so that numpy's checked lookup passes."""
    import skops.io as sio

    model = _text_pipeline()
    vectorizer = model.named_steps["features"].transformers_[0][1]
    vectorizer.vocabulary_[sorted(vectorizer.vocabulary_)[0]] = index
    if idf_length is not None:
        vectorizer._tfidf.idf_ = np.ones(idf_length)
    return sio.dumps(model)
