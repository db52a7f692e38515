from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from driftgate.errors import BadRequest, UnsupportedFormat, UntrustedArtifact
from driftgate.registry import formats
from driftgate.registry.registry import Registration, register
from driftgate.store import Store
from tests.conftest import Artifacts


def test_skops_registers_with_schema_and_classes(store: Store, artifacts: Artifacts) -> None:
    record = register(store, Registration("clf", artifacts.skops, "sklearn", artifacts.reference_csv, target="y"))
    assert record.artifact_kind == "skops"
    assert [f["name"] for f in record.input_schema["features"]] == ["x1", "x2", "colour"]
    assert record.output == {"kind": "classification", "classes": [0, 1]}
    assert record.reference_rows == 2000
    assert record.lineage["trusted"] is False


def test_pickle_is_refused_unless_trusted(store: Store, artifacts: Artifacts) -> None:
    with pytest.raises(UntrustedArtifact, match="trust"):
        register(store, Registration("p", artifacts.pickle, "sklearn", artifacts.reference_csv, target="y"))
    assert store.models.names() == []
    record = register(store, Registration("p", artifacts.pickle, "sklearn", artifacts.reference_csv, "", "y", True))
    assert record.artifact_kind == "pickle"


def test_skops_with_foreign_types_needs_trust(artifacts: Artifacts) -> None:
    import skops.io as sio

    data = sio.dumps({"model": artifacts.model, "hook": Path("/tmp")})
    with pytest.raises(UntrustedArtifact, match="pathlib"):
        formats.load(data, "skops")


def test_onnx_classifier(store: Store, artifacts: Artifacts) -> None:
    ref = artifacts.reference[["x1", "x2", "y"]].to_csv(index=False).encode()
    record = register(store, Registration("o", artifacts.onnx, "onnx", ref, target="y"))
    assert record.output["kind"] == "classification"
    model = formats.load(artifacts.onnx, "onnx")
    labels, proba = model.predict(artifacts.reference[["x1", "x2"]].head(50))
    from sklearn.linear_model import LogisticRegression

    # The oracle: the same numeric-only estimator the ONNX graph was converted from.
    x = artifacts.reference[["x1", "x2"]].to_numpy(np.float32)
    oracle = LogisticRegression().fit(x, artifacts.reference["y"])
    assert labels.tolist() == oracle.predict(x[:50]).tolist()
    assert proba is not None
    np.testing.assert_allclose(proba, oracle.predict_proba(x[:50]), atol=1e-5)


def test_python_class_from_file(store: Store, tmp_path: Path, artifacts: Artifacts) -> None:
    source = tmp_path / "rules.py"
    source.write_text(
        "import numpy as np\n"
        "class Rule:\n"
        "    def predict(self, frame):\n"
        "        return (frame['x1'] > 0).astype(int).to_numpy()\n"
    )
    art = formats.python_artifact(f"{source}:Rule")
    record = register(store, Registration("rule", art, "python", artifacts.reference_csv, target="y"))
    assert record.output == {"kind": "regression"}
    model = formats.load(art, "python")
    preds, proba = model.predict(artifacts.reference.head(5))
    assert proba is None
    assert preds.tolist() == (artifacts.reference["x1"].head(5) > 0).astype(int).tolist()


def test_registration_errors_name_the_problem(store: Store, artifacts: Artifacts) -> None:
    with pytest.raises(BadRequest, match="target 'nope'"):
        register(store, Registration("m", artifacts.skops, "sklearn", artifacts.reference_csv, target="nope"))
    lacking = artifacts.reference[["x1", "y"]].to_csv(index=False).encode()
    with pytest.raises(BadRequest, match="lacks"):
        register(store, Registration("m", artifacts.skops, "sklearn", lacking, target="y"))
    with pytest.raises(UnsupportedFormat, match="format must be one of"):
        register(store, Registration("m", artifacts.skops, "tensorflow"))
    with pytest.raises(BadRequest, match="not a loadable ONNX"):
        register(store, Registration("m", b"garbage", "onnx"))
    with pytest.raises(BadRequest, match="model name"):
        register(store, Registration("bad name!", artifacts.skops, "sklearn"))
    with pytest.raises(BadRequest, match="neither valid CSV nor Parquet"):
        register(store, Registration("m", artifacts.skops, "sklearn", b"\x00\x01PK", "r.parquet"))
    assert store.models.names() == []


def test_model_without_reference_uses_its_feature_names(store: Store, artifacts: Artifacts) -> None:
    record = register(store, Registration("bare", artifacts.skops, "sklearn"))
    assert [f["name"] for f in record.input_schema["features"]] == ["x1", "x2", "colour"]


def test_zip_directory_round_trip(tmp_path: Path) -> None:
    (tmp_path / "m" / "sub").mkdir(parents=True)
    (tmp_path / "m" / "MLmodel").write_text("flavors: {}")
    (tmp_path / "m" / "sub" / "w.bin").write_bytes(b"123")
    names = zipfile.ZipFile(io.BytesIO(formats.zip_directory(tmp_path / "m"))).namelist()
    assert sorted(names) == ["MLmodel", "sub/w.bin"]
