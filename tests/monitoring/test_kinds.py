"""One representation of every feature kind (`drift.kinds`): a boolean read from a pandas `bool`
column, from the log's 0.0 / 1.0, from a Parquet `bool` column or from the CSV text "true" is the
same feature with the same levels, in memory, in files and in the multivariate tests.

Defect (issue 18): the reference stored a boolean's levels as "True" / "False" while logged traffic
arrived as "0.0" / "1.0", so every boolean feature drifted on every window and the domain classifier
fired with AUC 1.0 on calm traffic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftgate.errors import InvalidInput
from driftgate.monitoring.drift import ReferenceProfile, compare_frames
from driftgate.monitoring.drift.kinds import FeatureKind, canonical, kind_of, level, level_counts
from driftgate.monitoring.files import report_files


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": rng.normal(size=rows),
            "visits": rng.poisson(3, rows),
            "member": rng.random(rows) < 0.3,
            "channel": rng.choice(["web", "app", "store"], rows),
        }
    )


def as_logged(data: pd.DataFrame) -> dict[str, np.ndarray]:
    """Columns as the prediction log hands them back: numbers, integers and booleans as float64."""
    return {
        "amount": data["amount"].to_numpy(np.float64),
        "visits": data["visits"].to_numpy(np.float64),
        "member": data["member"].to_numpy(np.float64),
        "channel": data["channel"].to_numpy(object),
    }


SCHEMA_KINDS = {"amount": "numeric", "visits": "integer", "member": "boolean", "channel": "categorical"}


def test_a_logged_boolean_is_the_reference_boolean() -> None:
    reference, current = frame(3_000, 1), as_logged(frame(2_000, 2))
    for kinds in (None, SCHEMA_KINDS):  # inferred from the reference's dtypes, or the serving schema's
        report = compare_frames(reference, current, feature_types=kinds)
        assert report.drifted_features == [], kinds
        member = report.feature("member")
        assert member.kind == "boolean" and member.unseen_categories is None
        assert member.histogram["levels"] == ["False", "True", "(other)"]
        assert report.multivariate is not None and report.multivariate.domain_classifier is not None
        assert report.multivariate.domain_classifier.effect_size < 0.55
        assert not report.multivariate.drifted
        assert {f.name: f.kind for f in report.features} == SCHEMA_KINDS


def test_a_real_boolean_shift_is_still_caught() -> None:
    current = frame(2_000, 2)
    current["member"] = np.random.default_rng(3).random(2_000) < 0.5
    report = compare_frames(frame(3_000, 1), as_logged(current), feature_types=SCHEMA_KINDS)
    assert report.drifted_features == ["member"]


@pytest.mark.parametrize("reference_suffix", ["parquet", "csv"])
@pytest.mark.parametrize("current_suffix", ["parquet", "csv"])
def test_files_read_a_boolean_the_same_way_as_memory(
    tmp_path: Path, reference_suffix: str, current_suffix: str
) -> None:
    reference, current = frame(3_000, 1), pd.DataFrame(as_logged(frame(2_000, 2)))
    paths = {}
    for name, data in (("reference", reference), ("current", current)):
        suffix = reference_suffix if name == "reference" else current_suffix
        paths[name] = tmp_path / f"{name}.{suffix}"
        data.to_parquet(paths[name]) if suffix == "parquet" else data.to_csv(paths[name], index=False)
    from_files = report_files(paths["reference"], paths["current"])
    in_memory = compare_frames(reference, current)
    assert from_files.drifted_features == in_memory.drifted_features == []
    for mine, theirs in zip(from_files.features, in_memory.features, strict=True):
        assert (mine.name, mine.kind, mine.drifted) == (theirs.name, theirs.kind, theirs.drifted)
        assert mine.distribution.effect_size == pytest.approx(theirs.distribution.effect_size, rel=1e-9, abs=1e-12)
        assert "wasserstein_error_bound" not in mine.statistics  # exact, as in memory
    assert from_files.multivariate is not None and in_memory.multivariate is not None
    assert from_files.multivariate.domain_classifier.effect_size == pytest.approx(  # type: ignore[union-attr]
        in_memory.multivariate.domain_classifier.effect_size  # type: ignore[union-attr]
    )


def test_levels_of_every_spelling() -> None:
    boolean = FeatureKind.BOOLEAN
    for value in (True, np.bool_(True), 1, 1.0, np.float64(1.0), "true", "TRUE", "True", "1", "1.0", "yes"):
        assert level(value, boolean) == "True", value
    for value in (False, 0, 0.0, "false", "0", "0.0", "no"):
        assert level(value, boolean) == "False", value
    for value in (None, float("nan"), np.nan):
        assert level(value, boolean) is None
    assert level(2.0, boolean) == "2"  # not a boolean: its own text, reported as an unseen category
    categorical = FeatureKind.CATEGORICAL
    assert [level(v, categorical) for v in ("a", 3, 3.0, np.int64(3), 2.5, True)] == ["a", "3", "3", "3", "2.5", "True"]
    # True, 1 and 1.0 hash alike but are different categories.
    mixed = np.array([True, 1, 1.0, "1", None], dtype=object)
    assert level_counts(mixed, categorical) == (["1", "True"], [3, 1], 1)
    assert canonical(mixed, categorical).tolist() == ["True", "1", "1", "1", None]


def test_kinds_from_dtypes() -> None:
    assert kind_of(np.array([True, False])) is FeatureKind.BOOLEAN
    assert kind_of(np.array([True, None], dtype=object)) is FeatureKind.BOOLEAN  # pandas' bool with missing
    assert kind_of(np.array([1, 2])) is FeatureKind.INTEGER
    assert kind_of(np.array([1.5])) is FeatureKind.NUMERIC
    assert kind_of(np.array(["a", True], dtype=object)) is FeatureKind.CATEGORICAL
    with pytest.raises(InvalidInput, match="feature_types"):
        compare_frames({"x": [1.0] * 20}, {"x": [1.0] * 20}, feature_types={"x": "bool"})


def test_a_boolean_profile_knows_both_levels_and_old_profiles_still_load() -> None:
    profile = ReferenceProfile.fit({"flag": np.zeros(100, dtype=bool), "x": np.arange(100.0)})
    assert profile.specs["flag"].binning.levels == ("False", "True")  # type: ignore[union-attr]
    stored = profile.to_dict()
    assert ReferenceProfile.from_dict(stored).profile_id == profile.profile_id
    # A profile stored before the integer and boolean kinds existed.
    old = ReferenceProfile.fit({"flag": np.zeros(100, dtype=bool), "x": np.arange(100.0)}, {"flag": "categorical"})
    assert ReferenceProfile.from_dict(old.to_dict()).specs["flag"].kind is FeatureKind.CATEGORICAL


def test_file_statistics_are_exact_up_to_exact_rows_and_binned_beyond(tmp_path: Path) -> None:
    reference, current = frame(3_000, 1), frame(2_000, 2)
    current["amount"] += 3.0  # far past the reference range: where bins err most
    reference.to_parquet(tmp_path / "reference.parquet")
    current.to_parquet(tmp_path / "current.parquet")
    exact = report_files(tmp_path / "reference.parquet", tmp_path / "current.parquet").feature("amount")
    binned = report_files(tmp_path / "reference.parquet", tmp_path / "current.parquet", exact_rows=0).feature("amount")
    in_memory = compare_frames(reference, current).feature("amount")
    assert exact.statistics["wasserstein"] == pytest.approx(in_memory.statistics["wasserstein"], rel=1e-12)
    assert "wasserstein_error_bound" not in exact.statistics
    error = abs(binned.statistics["wasserstein"] - in_memory.statistics["wasserstein"])
    assert 0 < error <= binned.statistics["wasserstein_error_bound"]
