"""No artifact runs code unless the caller said trust: crafted skops, MLflow and archive uploads.

Every payload here writes a marker file when it runs; the tests assert the marker never appears,
over HTTP, through the CLI and in the loader itself, and that nothing is left in the temp folder.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import skops.io as sio
from typer.testing import CliRunner

from driftgate.cli import app
from driftgate.errors import BadRequest, UntrustedArtifact
from driftgate.registry import formats, trust
from tests import malicious
from tests.conftest import Artifacts, LiveServer


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "a crafted artifact ran its payload"


def _upload(http: httpx.Client, data: bytes, fmt: str, **form: str) -> httpx.Response:
    return http.post("/v1/models/evil/versions", data={"format": fmt, **form}, files={"file": ("m", data)})


def _mlflow_folders() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("driftgate-mlflow-*"))


def test_the_extra_trusted_skops_types_are_pinned() -> None:
    # Widening this list widens what loads without trust: change it only with a check like check_trees.
    assert {
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    } == trust.EXTRA_SKOPS_TYPES
    assert {"mlflow.onnx"} == trust.SAFE_MLFLOW_LOADERS


def test_skops_reduce_trick_refused_everywhere(http: httpx.Client, marker: Path, tmp_path: Path) -> None:
    data = malicious.skops_reduce_runstring(marker)
    with pytest.raises(UntrustedArtifact, match="runstring"):
        formats.load(data, "skops")
    r = _upload(http, data, "sklearn")
    assert r.status_code == 400, r.text
    assert "runstring" in r.json()["error"] and r.json()["field"] == "file"
    assert http.get("/v1/models/evil").status_code == 404
    (tmp_path / "m.skops").write_bytes(data)
    out = CliRunner().invoke(
        app,
        ["models", "register", "evil", str(tmp_path / "m.skops"), "--format", "sklearn", "--data-dir", str(tmp_path)],
    )
    assert out.exit_code != 0 and "runstring" in out.output, out.output


def test_skops_function_trick_refused(http: httpx.Client) -> None:
    r = _upload(http, malicious.skops_function_trick(), "sklearn")
    assert r.status_code == 400 and "runstring" in r.json()["error"], r.text


def test_common_tree_models_load_without_trust_and_crafted_trees_do_not() -> None:
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier, RandomForestClassifier

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(300, 4)), rng.integers(0, 3, 300)
    for model in (
        RandomForestClassifier(5),
        GradientBoostingClassifier(n_estimators=5),
        HistGradientBoostingClassifier(max_iter=5),
    ):
        loaded = formats.load(sio.dumps(model.fit(x, y)), "skops")
        np.testing.assert_array_equal(loaded.predict(x)[0], model.predict(x))
    with pytest.raises(BadRequest, match="malformed decision tree"):
        formats.load(malicious.skops_out_of_bounds_tree(), "skops")
    formats.load(malicious.skops_out_of_bounds_tree(), "skops", trust=True)  # the caller vouched for it


def test_crafted_histogram_tree_refused() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(200, 3)), rng.integers(0, 2, 200)
    model = HistGradientBoostingClassifier(max_iter=3).fit(x, y)
    nodes = model._predictors[0][0].nodes
    inner = np.flatnonzero(~nodes["is_leaf"].astype(bool))[0]
    nodes["feature_idx"][inner] = 40
    with pytest.raises(BadRequest, match="feature past"):
        formats.load(sio.dumps(model), "skops")


def test_mlflow_pickle_never_unpickled_without_trust(http: httpx.Client, marker: Path, tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    before = _mlflow_folders()
    data = malicious.mlflow_pickle(marker, tmp_path)
    r = _upload(http, data, "mlflow")
    assert r.status_code == 400 and "trust" in r.json()["error"], r.text
    assert "unpickles" in r.json()["error"]
    (tmp_path / "m.zip").write_bytes(data)
    out = CliRunner().invoke(
        app, ["models", "register", "evil", str(tmp_path / "m.zip"), "--format", "mlflow", "--data-dir", str(tmp_path)]
    )
    assert out.exit_code != 0 and "trust" in out.output, out.output
    assert _mlflow_folders() <= before


def test_mlflow_sklearn_saved_with_skops_loads_safely_without_mlflow_loader(
    tmp_path: Path, artifacts: Artifacts
) -> None:
    mlflow_sklearn = pytest.importorskip("mlflow.sklearn")
    before = _mlflow_folders()
    folder = tmp_path / "model"
    mlflow_sklearn.save_model(artifacts.model, str(folder), serialization_format="skops")
    loaded = formats.load(formats.zip_directory(folder), "mlflow")
    features = artifacts.reference[["x1", "x2", "colour"]]
    labels, proba = loaded.predict(features)
    np.testing.assert_array_equal(labels, artifacts.model.predict(features))
    assert proba is not None and loaded.classes == [0, 1]
    assert _mlflow_folders() <= before


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (malicious.archive_traversal, "outside the archive"),
        (malicious.archive_symlink, "link"),
    ],
)
def test_hostile_archives_refused_and_nothing_written_outside(http: httpx.Client, build: object, message: str) -> None:
    before = _mlflow_folders()
    escaped = Path(tempfile.gettempdir()).parent / "driftgate-escaped.txt"
    r = _upload(http, build(), "mlflow")  # type: ignore[operator]
    assert r.status_code == 400 and message in r.json()["error"], r.text
    assert not escaped.exists() and not (Path(tempfile.gettempdir()) / "driftgate-escaped.txt").exists()
    assert _mlflow_folders() <= before


def test_zip_bomb_bounded_and_cleaned_up(tmp_path: Path) -> None:
    bomb = malicious.archive_bomb(64 * 1024**2)
    assert len(bomb) < 200_000
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(BadRequest, match="zip bomb"):
        trust.extract_zip(bomb, dest, max_bytes=8 * 1024**2)
    before = _mlflow_folders()
    with pytest.raises(BadRequest, match="zip bomb"):
        formats.load(malicious.archive_bomb(300 * 1024**2), "mlflow")
    assert _mlflow_folders() <= before


def test_too_many_entries_refused(tmp_path: Path) -> None:
    many = malicious.zip_with([(f"f{i}", b"", None) for i in range(50)])
    with pytest.raises(BadRequest, match="entries"):
        trust.extract_zip(many, tmp_path, max_files=20)
