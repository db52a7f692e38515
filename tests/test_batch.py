"""`driftgate batch score`: files scored through an endpoint as online requests are, and logged."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from driftgate.store import Store
from tests.conftest import Artifacts, classification_data
from tests.test_cli import run

FEATURES = ["x1", "x2", "colour"]


def deployed(tmp_path: Path, artifacts: Artifacts) -> list[str]:
    (tmp_path / "model.skops").write_bytes(artifacts.skops)
    (tmp_path / "reference.csv").write_bytes(artifacts.reference_csv)
    return deploy(tmp_path, "clf", tmp_path / "model.skops", tmp_path / "reference.csv")


def deploy(tmp_path: Path, name: str, artifact: Path, reference: Path) -> list[str]:
    """Model `name` v1 registered and deployed at endpoint `name` with the CLI; the store options."""
    data = ["--data-dir", str(tmp_path / "data")]
    code, output = run(
        "models", "register", name, str(artifact), "--format", "sklearn", "--reference", str(reference),
        "--target", "y", *data,
    )  # fmt: skip
    assert code == 0, output
    assert run("deploy", name, "--model", name, "--version", "1", *data)[0] == 0
    return data


def test_a_csv_is_scored_in_chunks_logged_and_written_as_parquet(tmp_path: Path, artifacts: Artifacts) -> None:
    data = deployed(tmp_path, artifacts)
    frame = classification_data(25_000, 9)[FEATURES].assign(customer=lambda f: [f"c{i}" for i in range(len(f))])
    frame.to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "out.parquet"
    code, output = run("batch", "score", "clf", "--input", str(tmp_path / "in.csv"), "--output", str(out), *data)
    assert code == 0, output
    assert re.search(r"scored 25,000 rows in 3 chunks, [\d.]+ s \(v1: 25,000\)", output), output
    scored = pq.read_table(out).to_pandas()
    assert list(scored.columns) == [
        *FEATURES, "customer", "prediction", "probability_0", "probability_1", "prediction_id", "model", "version",
        "status",
    ]  # fmt: skip
    assert list(scored["customer"]) == list(frame["customer"])  # row order kept, extra columns passed through
    expected = artifacts.model.predict(frame[FEATURES])
    assert np.array_equal(scored["prediction"].to_numpy(), expected)
    assert np.allclose(scored["probability_1"], artifacts.model.predict_proba(frame[FEATURES])[:, 1])
    assert scored["prediction_id"].is_unique and set(scored["version"]) == {1} and set(scored["status"]) == {"ok"}

    store = Store.open(tmp_path / "data")
    try:
        assert store.predictions.count("clf") == 25_000  # logged like online requests
        first = store.predictions.get(scored["prediction_id"][0])
        assert (
            first is not None
            and first["inputs"]["x1"] == frame["x1"][0]
            and first["inputs"]["colour"] == frame["colour"][0]
        )
    finally:
        store.close()


def test_parquet_in_csv_out(tmp_path: Path, artifacts: Artifacts) -> None:
    data = deployed(tmp_path, artifacts)
    classification_data(300, 2)[FEATURES].to_parquet(tmp_path / "in.parquet")
    out = tmp_path / "out.csv"
    code, output = run("batch", "score", "clf", "--input", str(tmp_path / "in.parquet"), "--output", str(out), *data)
    assert code == 0 and "scored 300 rows in 1 chunks" in output, output
    assert len(pd.read_csv(out)) == 300


def test_bad_files_are_refused_with_the_rows_and_field_named(tmp_path: Path, artifacts: Artifacts) -> None:
    data = deployed(tmp_path, artifacts)
    good = classification_data(50, 3)[FEATURES]
    good.drop(columns=["x2"]).to_csv(tmp_path / "missing.csv", index=False)
    good.assign(prediction=1).to_csv(tmp_path / "clash.csv", index=False)
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("x1,x2,colour\n")
    (tmp_path / "folder.parquet").mkdir()
    cases = [
        ("missing.csv", "out.parquet", "rows 0-49 of missing.csv", "x2"),
        ("empty.csv", "out.parquet", "empty.csv holds no rows", ""),
        ("header.csv", "out.parquet", "header.csv holds no rows", ""),
        ("missing.csv", "nowhere/out.parquet", "must be a file in an existing folder", ""),
        ("clash.csv", "out.parquet", "input columns ['prediction'] clash", ""),
        ("missing.csv", "out.json", "must end in .parquet or .csv", ""),
        ("absent.csv", "out.parquet", "does not exist", ""),
    ]
    for source, target, words, field in cases:
        code, output = run(
            "batch", "score", "clf", "--input", str(tmp_path / source), "--output", str(tmp_path / target), *data
        )
        assert code == 2 and words in output and field in output, (source, output)
        assert "Traceback" not in output
        assert not (tmp_path / target).is_file() and not list(tmp_path.glob("*.partial"))
    code, output = run(
        "batch",
        "score",
        "clf",
        "--input",
        str(tmp_path / "missing.csv"),
        "--output",
        str(tmp_path / "folder.parquet"),
        *data,
    )
    assert code == 2 and "must be a file in an existing folder" in output
    code, output = run("batch", "score", "nope", "--input", str(tmp_path / "missing.csv"), "--output", "o.csv", *data)
    assert code == 2 and "no endpoint named 'nope'" in output


def test_a_value_that_breaks_its_column_type_late_in_a_csv_is_refused(tmp_path: Path, artifacts: Artifacts) -> None:
    data = deployed(tmp_path, artifacts)
    frame = classification_data(60_000, 4)[FEATURES].astype({"x1": object})
    frame.loc[59_999, "x1"] = "lots"  # far past the block the reader infers the column's type from
    frame.to_csv(tmp_path / "late.csv", index=False)
    code, output = run(
        "batch", "score", "clf", "--input", str(tmp_path / "late.csv"), "--output", str(tmp_path / "o.parquet"), *data
    )
    assert code == 2 and "late.csv cannot be read: column 'x1'" in output and "'lots'" in output, output
    assert not (tmp_path / "o.parquet").exists()


def test_text_features_stored_as_numbers_score_as_their_text(tmp_path: Path, artifacts: Artifacts) -> None:
    """A category "1" arrives as the integer 1 from Parquet (as from JSON): it is the category "1"."""
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    train = pd.DataFrame({"code": ["1", "2", "3"] * 20, "y": [1, 0, 0] * 20})
    model = Pipeline([("enc", OneHotEncoder()), ("clf", LogisticRegression())]).fit(train[["code"]], train["y"])
    (tmp_path / "codes.skops").write_bytes(sio.dumps(model))
    train.to_parquet(tmp_path / "ref.parquet")  # "code" stays text (a CSV would read it as numbers)
    data = deploy(tmp_path, "codes", tmp_path / "codes.skops", tmp_path / "ref.parquet")
    pd.DataFrame({"code": [1, 2, 3]}).to_parquet(tmp_path / "ints.parquet")
    out = tmp_path / "out.parquet"
    code, output = run(
        "batch", "score", "codes", "--input", str(tmp_path / "ints.parquet"), "--output", str(out), *data
    )
    assert code == 0, output
    assert pq.read_table(out).column("prediction").to_pylist() == [1, 0, 0]
