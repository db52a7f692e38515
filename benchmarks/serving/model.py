"""The benchmark model and data: one definition, trained in every virtualenv from the same CSV.

20 named features (18 numeric, 2 categorical) -> ColumnTransformer(StandardScaler, OneHotEncoder)
-> LogisticRegression. `make_data` runs once (driftgate's venv) and writes the CSV; each peer's
venv then calls `train(csv)` with its own scikit-learn, so no pickle crosses versions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NUMERIC = [f"x{i:02d}" for i in range(18)]
CATEGORICAL = ["region", "channel"]
FEATURES = NUMERIC + CATEGORICAL
REGIONS = ["north", "south", "east", "west"]
CHANNELS = ["web", "app", "store", "phone", "partner", "mail"]
TARGET = "y"


def make_data(n: int = 5000, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(NUMERIC))) * np.linspace(0.5, 3.0, len(NUMERIC)) + np.arange(len(NUMERIC))
    df = pd.DataFrame(np.round(x, 4), columns=NUMERIC)
    df["region"] = rng.choice(REGIONS, size=n)
    df["channel"] = rng.choice(CHANNELS, size=n, p=[0.35, 0.25, 0.15, 0.1, 0.1, 0.05])
    w = rng.normal(size=len(NUMERIC)) / np.linspace(0.5, 3.0, len(NUMERIC))
    logit = (x - np.arange(len(NUMERIC))) @ w + (df["region"] == "east") * 0.8 - (df["channel"] == "web") * 0.6
    df[TARGET] = (logit + rng.logistic(size=n) > 0).astype(int)
    return df


def build_pipeline():
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ]
    )
    return Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=1000))])


def train(csv: str):
    df = pd.read_csv(csv)
    return build_pipeline().fit(df[FEATURES], df[TARGET])


def request_rows(csv: str, n: int) -> list[dict]:
    """The first n reference rows as JSON-ready records (feature order)."""
    df = pd.read_csv(csv, nrows=n)[FEATURES]
    return [
        {k: (float(v) if k in NUMERIC else str(v)) for k, v in zip(FEATURES, row, strict=True)}
        for row in df.itertuples(index=False)
    ]
