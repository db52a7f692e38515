"""`driftgate.Client.predict` sends pandas' missing markers (`pd.NA`, `pd.NaT`) as JSON null, and the
server judges them by the schema: 422 naming the feature where the reference data had no nulls, 200
where it had some. A real server on loopback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftgate.client import Client, ServerError
from tests.conftest import Artifacts, classification_data


@pytest.fixture
def nullable_model(client: Client) -> Client:
    """Endpoint 'nulls': x2 had missing values in the reference data (nullable, imputed by the
    model), x1 and colour had none."""
    import skops.io as sio
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    ref = classification_data(500, 3)
    ref.loc[ref.index[::10], "x2"] = np.nan
    pre = ColumnTransformer(
        [
            ("x1", "passthrough", ["x1"]),
            ("x2", SimpleImputer(), ["x2"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["colour"]),
        ]
    )
    model = Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(ref[["x1", "x2", "colour"]], ref["y"])
    # SimpleImputer stores a numpy.dtype, which skops asks to trust explicitly; this test built it.
    client.register_model("nulls", sio.dumps(model), "sklearn", reference=ref, target="y", trust=True)
    client.deploy("nulls", "nulls", 1)
    return client


def _frame(x1: object, x2: object) -> pd.DataFrame:
    # Nullable extension dtypes: a missing value is pd.NA, and to_numpy() gives an object array.
    return pd.DataFrame(
        {
            "x1": pd.array([0.3, x1], dtype="Float64"),
            "x2": pd.array([1.5, x2], dtype="Float64"),
            "colour": pd.array(["red", "blue"], dtype="string"),
        }
    )


def test_pd_na_in_a_nullable_feature_is_sent_as_null_and_answered(nullable_model: Client) -> None:
    answer = nullable_model.predict("nulls", _frame(0.1, pd.NA))
    assert len(answer["predictions"]) == 2 and answer["version"] == 1


def test_pd_na_in_a_feature_that_forbids_nulls_gets_422_naming_it(nullable_model: Client) -> None:
    with pytest.raises(ServerError) as caught:
        nullable_model.predict("nulls", _frame(pd.NA, 2.0))
    assert caught.value.status_code == 422
    assert "'x1'" in caught.value.message and "null" in caught.value.message


def test_pd_na_in_instances_and_a_string_column(deployed: Client, artifacts: Artifacts) -> None:
    """List-of-dicts rows and a nullable string column: pd.NA in a categorical that never had nulls is
    refused by name, not by a client-side TypeError."""
    frame = artifacts.reference[["x1", "x2", "colour"]].head(2).astype({"colour": "string"})
    frame.loc[frame.index[1], "colour"] = pd.NA
    with pytest.raises(ServerError) as caught:
        deployed.predict("clf", frame.to_dict("records"))
    assert caught.value.status_code == 422 and "'colour'" in caught.value.message
    assert len(deployed.predict("clf", frame.head(1))["predictions"]) == 1
