from __future__ import annotations

import pandas as pd
import pytest

from driftgate.retraining.window import labelled, split, typed_labels


def rows(n: int) -> list[dict]:
    return [{"ts": float(i), "inputs": {"x": float(i), "c": "a"}, "label": i % 2} for i in range(n)]


def test_the_newest_share_is_held_out_and_never_trained_on() -> None:
    data = split(rows(10), "y", 0.2)
    assert list(data.train["x"]) == [float(i) for i in range(8)]
    assert list(data.holdout["x"]) == [8.0, 9.0] and list(data.holdout["y"]) == [0, 1]
    assert (data.since, data.until) == (0.0, 9.0)
    assert list(data.train.columns) == ["x", "c", "y"]


def test_at_least_one_row_is_held_out_and_two_are_needed() -> None:
    assert len(split(rows(3), "y", 0.05).holdout) == 1
    with pytest.raises(ValueError, match="at least 2"):
        split(rows(1), "y", 0.2)


def test_reference_rows_only_train() -> None:
    reference = pd.DataFrame({"x": [100.0, 101.0], "c": ["b", "b"], "y": [1, 1], "extra": [0, 0]})
    data = split(rows(10), "y", 0.2, reference)
    assert len(data.train) == 10 and list(data.train["x"][:2]) == [100.0, 101.0]
    assert "extra" not in data.train.columns and len(data.holdout) == 2
    with pytest.raises(ValueError, match="no target column 'y'"):
        split(rows(10), "y", 0.2, reference.drop(columns=["y"]))


def test_only_rows_with_a_label_and_inputs_teach() -> None:
    mixed = [
        {"inputs": {"x": 1}, "label": 0},
        {"inputs": {"x": 2}, "label": None},
        {"inputs": None, "label": 1},
        {"inputs": {}, "label": 1},  # every field redacted
    ]
    assert labelled(mixed) == mixed[:1]


def test_an_input_named_like_the_target_is_refused() -> None:
    with pytest.raises(ValueError, match="named like the target 'x'"):
        split(rows(4), "x", 0.5)


def test_labels_take_the_champions_types() -> None:
    rows = [{"label": "1"}, {"label": 0}, {"label": "spam"}, {"label": True}]
    assert [p["label"] for p in typed_labels(rows, [0, 1])] == [1, 0, "spam", True]
    assert [p["label"] for p in typed_labels([{"label": 1}], ["0", "1"])] == ["1"]
    assert [p["label"] for p in typed_labels([{"label": "2.5"}, {"label": "x"}], None)] == [2.5, "x"]
