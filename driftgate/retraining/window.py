"""From logged, labelled predictions to a training frame and a held-out one. Pure code (pandas).

The holdout is the newest share of the window, never a random one: the candidate is judged on the
data most like what it will serve, and no row it trained on is newer than any row it is judged on.
Reference rows (the champion's training sample) only ever train.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd


@dataclass(frozen=True, slots=True)
class Split:
    train: pd.DataFrame
    holdout: pd.DataFrame
    since: float | None  # the oldest logged row used
    until: float | None  # the newest


def labelled(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The predictions that can teach: a label arrived and the inputs were stored (not redacted away)."""
    return [p for p in rows if p.get("label") is not None and p.get("inputs")]


def typed_labels(rows: list[Mapping[str, Any]], classes: list[Any] | None) -> list[Mapping[str, Any]]:
    """Labels in the champion's own types: feedback is JSON, so "1" may arrive for a class 1 (or the
    other way round). A new model trained on such labels would change the endpoint's answers' type,
    and a comparison would count every right answer wrong. Regression labels become floats."""
    if classes:
        by_text = {str(c): c for c in classes}
        return [{**p, "label": by_text.get(str(p["label"]), p["label"])} for p in rows]
    out: list[Mapping[str, Any]] = []
    for p in rows:
        try:
            out.append({**p, "label": float(p["label"])})
        except (TypeError, ValueError):
            out.append(p)
    return out


def to_frame(rows: list[Mapping[str, Any]], target: str) -> pd.DataFrame:
    """Inputs as columns, the label as `target`, in the rows' order."""
    frame = pd.DataFrame.from_records([p["inputs"] for p in rows])
    if target in frame.columns:
        raise ValueError(f"an input field is named like the target {target!r}: rename one of them")
    frame[target] = [p["label"] for p in rows]
    return frame


def split(rows: list[Mapping[str, Any]], target: str, holdout: float, reference: pd.DataFrame | None = None) -> Split:
    """`rows` oldest first; the newest `holdout` share (at least one row) is held out."""
    if len(rows) < 2:
        raise ValueError(f"{len(rows)} labelled rows: at least 2 are needed to train and compare")
    held = max(1, math.ceil(len(rows) * holdout))
    frame = to_frame(rows, target)
    train, test = frame.iloc[:-held], frame.iloc[-held:]
    if reference is not None:
        if target not in reference.columns:
            raise ValueError(
                f"the champion's reference data has no target column {target!r}, so it cannot train; "
                "use data 'recent' or 'all'"
            )
        train = pd.concat([reference[[c for c in reference.columns if c in frame.columns]], train], ignore_index=True)
    return Split(train.reset_index(drop=True), test.reset_index(drop=True), rows[0].get("ts"), rows[-1].get("ts"))
