from __future__ import annotations

import numpy as np
import pytest

from driftgate.retraining.evaluation import compare, mcnemar_p


def test_classification_compares_accuracy_on_the_same_rows() -> None:
    truth = np.array([1, 0, 1, 1, 0, 1, 0, 0, 1, 1])
    champion = np.array([0, 0, 0, 1, 0, 0, 0, 1, 1, 0])  # 5 of 10 right
    candidate = truth.copy()
    candidate[0] = 0  # 9 of 10 right
    result = compare("classification", truth, champion, candidate)
    assert result.metric == "accuracy" and result.rows == 10
    assert result.champion == pytest.approx(0.5) and result.candidate == pytest.approx(0.9)
    assert result.improvement == pytest.approx(0.4) and result.better
    # 4 rows only the candidate got right, none only the champion: p = 2 * 0.5**4.
    assert result.p_value == pytest.approx(0.125)
    assert "better than the champion's 0.5" in result.describe() and "p = 0.125" in result.describe()


def test_the_margin_must_be_cleared_and_a_tie_is_not_better() -> None:
    truth = np.array(["a", "b", "a", "b"], dtype=object)
    same = np.array(["a", "b", "b", "b"], dtype=object)
    assert not compare("classification", truth, same, same).better
    better = np.array(["a", "b", "a", "b"], dtype=object)
    assert compare("classification", truth, same, better).better
    assert not compare("classification", truth, same, better, min_improvement=0.25).better
    assert compare("classification", truth, same, better, min_improvement=0.2).better


def test_labels_and_predictions_of_other_types_compare_by_value() -> None:
    # Labels arrive as JSON (ints, bools); models answer numpy scalars.
    truth = np.array([1, 0, True], dtype=object)
    result = compare("classification", truth, np.array([1, 1, 1]), np.array([1.0, 0.0, 1.0]))
    assert result.candidate == 1.0 and result.champion == pytest.approx(2 / 3)


def test_regression_compares_rmse_lower_is_better() -> None:
    truth = np.array([1.0, 2.0, 3.0, 4.0])
    result = compare("regression", truth, truth + 1.0, truth + 0.5)
    assert result.metric == "rmse" and result.champion == pytest.approx(1.0) and result.candidate == pytest.approx(0.5)
    assert result.improvement == pytest.approx(0.5) and result.better and result.p_value is None
    assert not compare("regression", truth, truth + 0.5, truth + 1.0).better


def test_mcnemar_counts_only_the_rows_where_the_two_disagree() -> None:
    right = np.array([True, True, False, False])
    assert mcnemar_p(right, right) == 1.0
    assert mcnemar_p(np.zeros(20, bool), np.ones(20, bool)) < 1e-5
    assert mcnemar_p(np.ones(20, bool), np.zeros(20, bool)) < 1e-5


def test_inputs_that_cannot_be_compared_are_refused() -> None:
    with pytest.raises(ValueError, match="lengths differ"):
        compare("classification", np.array([1, 0]), np.array([1]), np.array([1, 0]))
    with pytest.raises(ValueError, match="no held-out rows"):
        compare("classification", np.array([]), np.array([]), np.array([]))


def test_text_labels_match_numeric_predictions_as_the_monitor_matches_them() -> None:
    truth = np.array(["1", "0", "1"], dtype=object)
    result = compare("classification", truth, np.array([1, 0, 1]), np.array([0, 0, 1]))
    assert result.champion == 1.0 and result.candidate == pytest.approx(2 / 3) and not result.better


def test_a_model_that_predicts_nan_is_not_better_and_stores_no_nan() -> None:
    truth = np.array([1.0, 2.0])
    result = compare("regression", truth, truth, np.array([np.nan, np.nan]))
    assert not result.better and result.candidate is None and result.improvement is None
    assert "not a number" in result.describe()
