"""Train functions the test servers may call (`--train-module tests.train_functions`).

Each takes the training frame (features x1, x2, colour and target y) as retraining runs hand it over.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

FEATURES = ["x1", "x2", "colour"]
SEEN: list[int] = []


def train(frame: pd.DataFrame) -> Pipeline:
    pre = ColumnTransformer(
        [("num", "passthrough", ["x1", "x2"]), ("cat", OneHotEncoder(handle_unknown="ignore"), ["colour"])]
    )
    return Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(frame[FEATURES], frame["y"])


def broken(frame: pd.DataFrame) -> Any:
    raise RuntimeError(f"no good: {len(frame)} rows")


def not_a_model(frame: pd.DataFrame) -> Any:
    return 42


def slow(frame: pd.DataFrame) -> Pipeline:
    time.sleep(30)
    return train(frame)
