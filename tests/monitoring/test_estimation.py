"""Label-free estimation (CBPE, DLE), the model's own decision, labels of any type, and concept drift
told apart from covariate shift. Pure computation; the live monitor's side is tests/api/test_estimation_live.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from driftgate.cli.drift import app
from driftgate.monitoring import performance as perf
from driftgate.monitoring.concept import ConceptDrift

# Imported where used, so that the defect tests run (and fail) against the code before this change too.


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def _binary(rng: np.random.Generator, n: int, centre: float, slope: float = 2.5) -> tuple[np.ndarray, np.ndarray]:
    """(true P(y=1|x), labels drawn from it) for x ~ N(centre, 1)."""
    x = rng.normal(centre, 1.0, n)
    p = _sigmoid(slope * x)
    return p, (rng.random(n) < p).astype(int)


def test_import_of_the_public_api_in_a_fresh_interpreter() -> None:
    # Defect 5: `performance` imported `drift`, whose `compare` imports `performance` back.
    code = "from driftgate.monitoring.performance import estimate_accuracy_cbpe, performance_report; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_label_keys() -> None:
    from driftgate.monitoring.estimation import label_key

    assert {label_key(v) for v in (1, 1.0, "1", "1.0", True, np.int64(1), np.float32(1.0), np.str_("1"))} == {"1"}
    assert label_key(None) is None and label_key(float("nan")) is None and label_key("") is None
    assert label_key("yes") == "yes" and label_key(np.str_("no")) == "no"


def test_numpy_string_labels_give_real_accuracy_and_f1() -> None:
    # Defect 6: a probability cut at 0.5 was cast to the target's dtype: "True"/"False" never matched.
    rng = np.random.default_rng(0)
    p, y = _binary(rng, 2000, 0.0)
    labels = np.where(y == 1, "yes", "no")
    metrics = perf.classification_metrics(labels, scores=p)
    expected = np.mean((p >= 0.5) == (y == 1))
    assert metrics["accuracy"] == pytest.approx(expected)
    assert metrics["f1"] > 0.5 and metrics["roc_auc"] > 0.8


def _write(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_cli_string_target_with_and_without_labels(tmp_path: Path) -> None:
    # Defect 6: '<' not supported between instances of 'bool' and 'str'. The probability is of the
    # class that sorts last ("yes"), as a scikit-learn model's `classes_[1]`.
    rng = np.random.default_rng(1)
    p, y = _binary(rng, 1500, 0.5)
    x = np.log(p / (1 - p))
    label = np.where(y == 1, "yes", "no")
    ref = _write(tmp_path / "ref.csv", pd.DataFrame({"x": x, "label": label, "p": p}))
    p2, y2 = _binary(rng, 1500, 0.5)
    x2 = np.log(p2 / (1 - p2))
    labelled = _write(tmp_path / "cur.csv", pd.DataFrame({"x": x2, "label": np.where(y2 == 1, "yes", "no"), "p": p2}))
    unlabelled = _write(tmp_path / "nolabels.csv", pd.DataFrame({"x": x2, "p": p2}))
    empty = _write(tmp_path / "empty.csv", pd.DataFrame({"x": x2, "label": [None] * len(x2), "p": p2}))
    bodies = {}
    for name, current in (("labelled", labelled), ("unlabelled", unlabelled), ("empty", empty)):
        args = ["report", "-r", str(ref), "-c", str(current), "--target", "label", "--prediction", "p", "--json"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, (name, result.output)
        bodies[name] = json.loads(result.stdout)["performance"]
    realised = np.mean((p2 >= 0.5) == (y2 == 1))
    assert bodies["labelled"]["current"]["accuracy"] == pytest.approx(realised)
    assert bodies["labelled"]["current"]["f1"] > 0.5
    for name in ("unlabelled", "empty"):  # no labels: no realised metrics (an empty column is not "all wrong")
        assert "current" not in bodies[name]
        assert bodies[name]["estimated"]["estimated_accuracy"] == pytest.approx(realised, abs=0.03)


def test_cli_decision_threshold_drives_realised_and_estimated(tmp_path: Path) -> None:
    # Defect 4: binary decisions were fixed at a 0.5 cut.
    rng = np.random.default_rng(2)
    p, y = _binary(rng, 4000, 1.0)
    p2, y2 = _binary(rng, 4000, 0.6)
    ref = _write(tmp_path / "ref.csv", pd.DataFrame({"x": p, "label": y, "p": p}))
    cur = _write(tmp_path / "cur.csv", pd.DataFrame({"x": p2, "p": p2}))
    args = ["report", "-r", str(ref), "-c", str(cur), "--target", "label", "--prediction", "p", "--json"]
    body = json.loads(CliRunner().invoke(app, [*args, "--decision-threshold", "0.795"]).stdout)["performance"]
    realised = np.mean((p2 >= 0.795) == (y2 == 1))
    assert body["decision"] == {"threshold": 0.795}
    assert body["reference"]["accuracy"] == pytest.approx(np.mean((p >= 0.795) == (y == 1)))
    assert body["estimated"]["estimated_accuracy"] == pytest.approx(realised, abs=0.02)
    assert abs(np.mean((p2 >= 0.5) == (y2 == 1)) - realised) > 0.05  # the 0.5 cut would be far off


@pytest.mark.parametrize("cut", [0.475, 0.645, 0.795])
def test_estimate_follows_the_models_own_decision(cut: float) -> None:
    from driftgate.monitoring.estimation import ClassificationEstimator

    rng = np.random.default_rng(int(cut * 1000))
    ref_p, ref_y = _binary(rng, 20_000, 1.0)
    cur_p, cur_y = _binary(rng, 20_000, 0.3)  # covariate shift towards the boundary
    scores = lambda p: _sigmoid(1.8 * np.log(p / (1 - p)))  # noqa: E731 - an overconfident model
    ref_decisions, cur_decisions = (scores(ref_p) >= cut).astype(int), (scores(cur_p) >= cut).astype(int)
    estimator = ClassificationEstimator.fit(scores(ref_p), ref_y, decisions=ref_decisions)
    estimates = estimator.estimate(scores(cur_p), cur_decisions)
    realised = estimator.realised(cur_y, scores(cur_p), cur_decisions)
    for name in ("accuracy", "roc_auc", "f1", "precision", "recall"):
        assert estimates[name].value == pytest.approx(realised[name], abs=0.02), name
        assert estimates[name].lower < estimates[name].value < estimates[name].upper
    assert realised["accuracy"] == pytest.approx(np.mean(cur_decisions == cur_y))


def test_multiclass_estimates() -> None:
    from driftgate.monitoring.estimation import ClassificationEstimator

    rng = np.random.default_rng(5)

    def sample(n: int, centre: float) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(centre, 1.5, (n, 2))
        logits = np.column_stack([x[:, 0], x[:, 1], -x[:, 0] - x[:, 1]]) * 1.5
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        y = np.array([rng.choice(3, p=row) for row in p])
        return p, y

    classes = ["a", "b", "c"]
    ref_p, ref_y = sample(15_000, 0.0)
    cur_p, cur_y = sample(15_000, 0.7)
    model = ref_p**1.5 / (ref_p**1.5).sum(axis=1, keepdims=True)  # miscalibrated
    cur_model = cur_p**1.5 / (cur_p**1.5).sum(axis=1, keepdims=True)
    names = np.asarray(classes, dtype=object)
    estimator = ClassificationEstimator.fit(model, names[ref_y], classes=classes)
    estimates = estimator.estimate(cur_model)
    realised = estimator.realised(names[cur_y], cur_model)
    for name in ("accuracy", "roc_auc", "f1"):
        assert estimates[name].value == pytest.approx(realised[name], abs=0.02), name


@pytest.mark.slow
def test_regression_direct_loss_estimation() -> None:
    from driftgate.monitoring.estimation import RegressionEstimator

    rng = np.random.default_rng(7)

    def sample(n: int, centre: float) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        x = rng.normal(centre, 1.0, n)
        noise = 0.2 + 0.8 * np.abs(x)  # heteroscedastic: the error depends on the input
        return {"x": x}, 2 * x, 2 * x + rng.normal(0, noise)

    columns, prediction, target = sample(10_000, 0.0)
    estimator = RegressionEstimator.fit(columns, prediction, target)
    shifted, shifted_prediction, shifted_target = sample(5_000, 1.5)  # into noisier inputs
    estimates = estimator.estimate(shifted, shifted_prediction)
    realised = RegressionEstimator.realised(shifted_target, shifted_prediction)
    assert realised["mae"] > 1.5 * estimator.reference["mae"]
    assert estimates["mae"].value == pytest.approx(realised["mae"], rel=0.08)
    assert estimates["rmse"].value == pytest.approx(realised["rmse"], rel=0.1)
    assert estimates["mae"].alert  # above the threshold derived from reference chunks


def test_band_and_alert_threshold_from_reference_chunks() -> None:
    from driftgate.monitoring.estimation import ClassificationEstimator

    rng = np.random.default_rng(9)
    ref_p, ref_y = _binary(rng, 20_000, 1.0)
    estimator = ClassificationEstimator.fit(ref_p, ref_y)
    calm = estimator.estimate(_binary(rng, 2000, 1.0)[0])["accuracy"]
    assert not calm.alert and calm.lower <= estimator.reference["accuracy"] <= calm.upper
    # The spread shrinks as 1/sqrt(n): a window 4x bigger has half the sampling error.
    bigger = estimator.estimate(_binary(rng, 8000, 1.0)[0])["accuracy"]
    assert bigger.sampling_error == pytest.approx(calm.sampling_error / 2)
    shifted = estimator.estimate(_binary(rng, 2000, 0.0)[0])["accuracy"]
    assert shifted.alert and shifted.value < shifted.alert_below


def test_estimate_uses_every_row_not_the_labelled_ones() -> None:
    # Defect 3: labelling the most confident rows pulled the estimate up to their accuracy.
    rng = np.random.default_rng(11)
    ref_p, ref_y = _binary(rng, 10_000, 0.8)
    cur_p, cur_y = _binary(rng, 5000, 0.8)
    confident = np.argsort(-np.abs(cur_p - 0.5))[:500]
    labels = np.full(5000, None, dtype=object)
    labels[confident] = cur_y[confident]
    report = perf.performance_report(ref_y, ref_p, labels, cur_p)
    truth = np.mean((cur_p >= 0.5) == cur_y)
    assert report["current"]["n"] == 500 and report["current"]["accuracy"] > truth + 0.05
    assert report["estimated"]["n"] == 5000
    assert report["estimated"]["estimated_accuracy"] == pytest.approx(truth, abs=0.015)
    # The labelled rows are judged against what is expected of *them*: no concept drift.
    assert report["labelled_check"]["fired"] is False


def _stream(fired: bool) -> ConceptDrift:
    return ConceptDrift(fired, "ADWIN" if fired else None, 10 if fired else None, 1.0 if fired else None, 100, 50)


def test_covariate_shift_is_not_concept_drift_but_a_changed_concept_is() -> None:
    from driftgate.monitoring.concept import verdicts

    rng = np.random.default_rng(13)
    ref_p, ref_y = _binary(rng, 20_000, 1.5)
    # Pure covariate shift: inputs move to the boundary, labels from the same P(y|x); accuracy falls.
    cur_p, cur_y = _binary(rng, 3000, 0.0)
    covariate = perf.performance_report(ref_y, ref_p, cur_y, cur_p)
    assert covariate["current"]["accuracy"] < covariate["reference"]["accuracy"] - 0.08
    assert covariate["performance_drift"]["fired"]
    assert not covariate["labelled_check"]["fired"]
    judged = verdicts(data_drift=True, performance=covariate, stream=_stream(True))
    assert judged["data_drift"]["fired"] and judged["performance_drift"]["fired"]
    assert not judged["concept_drift"]["fired"] and "covariate shift" in judged["concept_drift"]["explained"]

    # Changed concept: same inputs, P(y|x) flattened (slope 2.5 -> 0.8).
    changed_p, changed_y = _binary(rng, 3000, 1.5, slope=0.8)
    model_scores = _sigmoid(2.5 * np.log(changed_p / (1 - changed_p)) / 0.8)  # the model still believes 2.5
    concept = perf.performance_report(ref_y, ref_p, changed_y, model_scores)
    check = concept["labelled_check"]
    assert check["fired"] and check["test"] == "estimate_gap" and check["p_value"] < 0.01
    assert check["expected_accuracy"] - check["realised_accuracy"] > 0.05
    judged = verdicts(data_drift=False, performance=concept, stream=_stream(False))
    assert judged["concept_drift"]["fired"] and judged["concept_drift"]["test"] == "estimate_gap"
    # Inputs put and the error stream rising: concept drift by the error-stream test.
    judged = verdicts(data_drift=False, performance={}, stream=_stream(True))
    assert judged["concept_drift"]["test"] == "error_stream" and judged["concept_drift"]["fired"]


def test_estimate_gap_regression() -> None:
    from driftgate.monitoring.concept import estimate_gap

    rng = np.random.default_rng(17)
    expected = rng.uniform(0.5, 1.5, 3000)
    calm = np.abs(rng.normal(0, expected * np.sqrt(np.pi / 2)))
    assert not estimate_gap("regression", calm, expected).fired
    assert estimate_gap("regression", calm * 1.3, expected).fired
