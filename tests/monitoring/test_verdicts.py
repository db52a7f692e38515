"""Pinned verdicts on seeded data: calm pairs stay calm, real shifts are flagged at every scale."""

from __future__ import annotations

import json

import numpy as np
import pytest

from driftgate.monitoring.drift import DriftSettings, ReferenceProfile, compare, compare_frames

LEVELS = np.array([f"level_{i}" for i in range(300)], dtype=object)
ZIPF = 1 / np.arange(1, 301) ** 1.1
ZIPF /= ZIPF.sum()


def table(
    rng: np.random.Generator,
    n: int,
    *,
    mean: float = 0.0,
    sd: float = 1.0,
    mix: tuple[float, float, float] = (0.5, 0.3, 0.2),
    new_share: float = 0.0,
    missing: float = 0.0,
) -> dict[str, np.ndarray]:
    """Five numeric columns (the first one shifted), a 3-level and a 300-level categorical."""
    columns: dict[str, np.ndarray] = {"shifted": rng.normal(mean, sd, n)}
    for i in range(4):
        columns[f"calm_{i}"] = rng.gamma(2.0, 1.0, n) if i % 2 else rng.normal(10, 3, n)
    colour = rng.choice(np.array(["red", "green", "blue"], dtype=object), n, p=list(mix))
    colour[rng.random(n) < new_share] = "purple"
    columns["colour"] = colour
    columns["city"] = rng.choice(LEVELS, n, p=ZIPF)
    if missing:
        columns["shifted"][rng.random(n) < missing] = np.nan
    return columns


@pytest.mark.parametrize("n_current", [50, 200, 5_000])
def test_no_drift_pairs_raise_at_most_five_percent_false_flags(n_current: int) -> None:
    flags = checks = dataset_flags = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        report = compare_frames(table(rng, 5_000), table(rng, n_current), multivariate=False)
        flags += len(report.drifted_features)
        checks += len(report.features)
        dataset_flags += report.dataset.drifted
    assert flags / checks <= 0.05
    assert dataset_flags <= 2  # Holm keeps the family-wise rate near alpha = 5 %


def test_high_cardinality_categorical_is_not_flagged_when_calm() -> None:
    for seed, n in [(1, 100), (2, 1_000), (3, 20_000)]:
        rng = np.random.default_rng(seed)
        report = compare_frames({"city": rng.choice(LEVELS, 20_000, p=ZIPF)}, {"city": rng.choice(LEVELS, n, p=ZIPF)})
        assert not report.feature("city").drifted, (n, report.feature("city").to_dict())


def test_negligible_shift_in_a_million_rows_is_not_flagged() -> None:
    rng = np.random.default_rng(5)
    profile = ReferenceProfile.fit({"x": rng.normal(size=1_000_000)})
    report = compare(profile, profile.sketch({"x": rng.normal(0.01, 1, size=1_000_000)}))
    feature = report.feature("x")
    assert feature.distribution.p_value < 1e-6  # significant, yet...
    assert not feature.drifted  # ...far below the effect threshold of 0.1 sd


@pytest.mark.parametrize("n", [300, 10_000, 1_000_000])
def test_mean_shift_is_flagged_at_every_size(n: int) -> None:
    rng = np.random.default_rng(n)
    reference = {"x": rng.normal(size=max(n, 5_000)), "y": rng.normal(size=max(n, 5_000))}
    profile = ReferenceProfile.fit(reference)
    report = compare(profile, profile.sketch({"x": rng.normal(0.5, 1, n), "y": rng.normal(0, 1, n)}))
    assert report.drifted_features == ["x"]


@pytest.mark.parametrize("n", [300, 100_000])
@pytest.mark.parametrize(
    "change,reason",
    [
        ({"sd": 2.0}, "distribution"),
        ({"mix": (0.3, 0.3, 0.4)}, "distribution"),
        ({"new_share": 0.1}, "unseen_categories"),
        ({"missing": 0.1}, "missing_rate"),
    ],
)
def test_each_kind_of_shift_is_flagged(n: int, change: dict, reason: str) -> None:
    rng = np.random.default_rng(17)
    reference, current = table(rng, max(n, 5_000)), table(rng, n, **change)
    report = compare_frames(reference, current, multivariate=False)
    drifted = {f.name: f.reasons for f in report.features if f.drifted}
    assert any(reason in reasons for reasons in drifted.values()), drifted
    assert set(drifted) <= {"shifted", "colour"}, drifted
    assert report.dataset.drifted


def test_sketch_and_raw_verdicts_agree() -> None:
    rng = np.random.default_rng(8)
    reference, current = table(rng, 20_000), table(rng, 20_000, mean=0.3)
    raw = compare_frames(reference, current, multivariate=False)
    profile = ReferenceProfile.fit(reference)
    sketched = compare(profile, profile.sketch(current))
    assert raw.drifted_features == sketched.drifted_features == ["shifted"]
    for exact, approx in zip(raw.features, sketched.features, strict=True):
        if exact.kind == "numeric":
            bound = approx.statistics["wasserstein_error_bound"]
            assert abs(exact.statistics["wasserstein"] - approx.statistics["wasserstein"]) <= bound
            assert approx.statistics["ks"] <= exact.statistics["ks"] + 1e-12
            assert exact.statistics["ks"] <= approx.statistics["ks"] + approx.statistics["ks_error_bound"]


def test_correlation_break_is_caught_by_the_multivariate_tests_only() -> None:
    rng = np.random.default_rng(9)
    a = rng.normal(size=4_000)
    reference = {"a": a, "b": a + 0.2 * rng.normal(size=4_000)}
    current = {"a": rng.normal(size=4_000), "b": rng.normal(size=4_000) * np.sqrt(1.04)}
    report = compare_frames(reference, current)
    assert report.drifted_features == []
    assert report.multivariate is not None and report.multivariate.drifted
    assert report.dataset.drifted


def test_calm_multivariate_tests_stay_calm() -> None:
    rng = np.random.default_rng(10)
    report = compare_frames(table(rng, 3_000), table(rng, 3_000))
    assert report.multivariate is not None and not report.multivariate.drifted


def test_report_json_shape_and_settings() -> None:
    rng = np.random.default_rng(12)
    reference, current = table(rng, 2_000), table(rng, 2_000, mean=1.0)
    reference["proba"], current["proba"] = rng.random(2_000), rng.random(2_000) ** 2
    reference["label"], current["label"] = (reference["proba"] > 0.5).astype(int), (current["proba"] > 0.6).astype(int)
    report = compare_frames(
        reference, current, prediction="proba", target="label", settings=DriftSettings(correction="benjamini-hochberg")
    )
    body = json.loads(json.dumps(report.to_dict()))
    assert set(body) == {"features", "dataset", "multivariate", "prediction", "performance"}
    assert {"name", "type", "test", "statistic", "p_value", "threshold", "drifted"} <= set(body["features"][0])
    assert body["dataset"]["correction"] == "benjamini-hochberg"
    assert {f["name"] for f in body["features"]}.isdisjoint({"proba", "label"})
    assert body["prediction"]["name"] == "proba" and body["prediction"]["drifted"]
    assert body["performance"]["task"] == "probability"
    assert "estimated" in body["performance"]


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(Exception, match="correction must be one of"):
        DriftSettings(correction="bonferroni")
