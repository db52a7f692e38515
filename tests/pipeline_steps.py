"""Pipeline step functions the test servers import (`--pipeline-module tests.pipeline_steps`).

The requests these steps expect carry `x1`, `x2_minutes` (the model's `x2` is hours) and `COLOUR`
(upper case; the model's `colour` is lower case); the model is tests/conftest.py's classifier.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from driftgate.errors import InvalidInput

LABELS = {0: "legit", 1: "fraud"}
NOT_CALLABLE = 42


def lower_colour(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.drop(columns=["COLOUR"])
    out["colour"] = frame["COLOUR"].str.lower()
    return out


def hours(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.drop(columns=["x2_minutes"])
    out["x2"] = frame["x2_minutes"] / 60.0
    return out


def model_inputs(raw: pd.DataFrame) -> pd.DataFrame:
    """What `lower_colour` then `hours` make of raw rows: the test oracle's input."""
    return hours(lower_colour(raw))[["x1", "x2", "colour"]]


def label_names(predictions: np.ndarray, probabilities: np.ndarray | None, frame: pd.DataFrame) -> list[str]:
    return [LABELS[int(p)] for p in predictions]


def shout(predictions: np.ndarray, probabilities: np.ndarray | None, frame: pd.DataFrame) -> np.ndarray:
    return np.char.upper(predictions.astype(str))


def vandal(predictions: np.ndarray, probabilities: np.ndarray | None, frame: pd.DataFrame) -> np.ndarray:
    """Scribbles over everything it is given; the server hands it copies."""
    frame["x1"] = -1.0
    predictions[:] = 0
    if probabilities is not None:
        probabilities[:] = 0.0
    return predictions


def explode_on_negative(frame: pd.DataFrame) -> pd.DataFrame:
    if (frame["x1"] < -100).any():
        raise ValueError("x1 below -100 cannot be cleaned")
    return frame


def quote_email(frame: pd.DataFrame) -> pd.DataFrame:
    raise ValueError(f"cannot parse {frame['email'].iloc[0]}")


def require_customer(frame: pd.DataFrame) -> pd.DataFrame:
    if "customer" not in frame:
        raise InvalidInput("expected a 'customer' column", field="customer")
    return frame.drop(columns=["customer"])


def drop_x1(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["x1"])


def first_row_only(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.head(1)


def not_a_frame(frame: pd.DataFrame) -> Any:
    return frame.to_dict(orient="records")


def broken_post(predictions: np.ndarray, probabilities: np.ndarray | None, frame: pd.DataFrame) -> np.ndarray:
    raise RuntimeError("post-processing bug")


def too_short(predictions: np.ndarray, probabilities: np.ndarray | None, frame: pd.DataFrame) -> np.ndarray:
    return predictions[:-1]


def slow(frame: pd.DataFrame) -> pd.DataFrame:
    time.sleep(2.0)
    return frame


class NotAFunction:
    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
