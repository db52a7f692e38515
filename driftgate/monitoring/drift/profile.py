"""The reference profile: per-feature binning plus the reference window's own sketch.

Public entry point for the live monitor:

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> reference = {"age": rng.normal(40, 10, 1000), "city": rng.choice(["a", "b"], 1000)}
>>> profile = ReferenceProfile.fit(reference)
>>> window = profile.sketch({"age": rng.normal(40, 10, 200), "city": rng.choice(["a", "b"], 200)})
>>> window.rows, sorted(window.features)
(200, ['age', 'city'])
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftgate.errors import InvalidInput
from driftgate.monitoring.drift.binning import CategoricalBinning, NumericBinning, column_arrays
from driftgate.monitoring.drift.kinds import (
    FALSE,
    TRUE,
    FeatureKind,
    as_float,
    canonical,
    kind_of,
    level_counts,
    parse_kind,
)
from driftgate.monitoring.drift.kinds import sample_rows as sample_rows_of
from driftgate.monitoring.drift.sketches import CategoricalSketch, FeatureSketch, NumericSketch, WindowSketch


@dataclass(frozen=True)
class FeatureSpec:
    """One feature's name, kind and binning."""

    name: str
    kind: FeatureKind
    binning: NumericBinning | CategoricalBinning

    @classmethod
    def fit(cls, name: str, values: np.ndarray, kind: FeatureKind, n_bins: int, max_levels: int) -> FeatureSpec:
        """`values`: the column in any representation (`kinds` makes it canonical)."""
        if kind.is_numeric:
            return cls(name, kind, NumericBinning.fit(as_float(name, values), n_bins))
        levels, counts, _ = level_counts(values, kind)
        return cls.of_levels(name, kind, levels, counts, max_levels)

    @classmethod
    def of_levels(
        cls, name: str, kind: FeatureKind, levels: list[str], counts: list[int], max_levels: int
    ) -> FeatureSpec:
        """A boolean or categorical feature from its canonical levels and their reference counts."""
        if kind is FeatureKind.BOOLEAN:
            # Both levels always: a reference of only False still knows that True is a boolean, not
            # an unseen category.
            missing = [text for text in (FALSE, TRUE) if text not in levels]
            levels, counts = [*levels, *missing], [*counts, *[0] * len(missing)]
        return cls(name, kind, CategoricalBinning.fit(levels, counts, max_levels))

    def values(self, values: Any) -> np.ndarray:
        """The column in this feature's canonical representation (`kinds.canonical`)."""
        return canonical(values, self.kind, self.name)

    def sketch(self, values: np.ndarray) -> FeatureSketch:
        if isinstance(self.binning, NumericBinning):
            return NumericSketch.of(self.binning, as_float(self.name, values))
        levels, counts, missing = level_counts(values, self.kind)
        return CategoricalSketch.of_counts(self.binning, levels, counts, missing)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind.value, "binning": self.binning.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        kind = FeatureKind(data["kind"])
        binning_type = NumericBinning if kind.is_numeric else CategoricalBinning
        return cls(str(data["name"]), kind, binning_type.from_dict(data["binning"]))


class ReferenceProfile:
    """Binning of every feature, the reference sketch, and a small row sample for multivariate tests.

    Build with `fit` from in-memory columns, or with `from_parts` when the reference was streamed.
    """

    def __init__(
        self,
        specs: Mapping[str, FeatureSpec],
        reference: WindowSketch | None = None,
        sample: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.specs = dict(specs)
        self.profile_id = _fingerprint(self.specs)
        self.reference = reference if reference is not None else WindowSketch(self.profile_id, 0, {})
        if self.reference.profile_id != self.profile_id:
            raise InvalidInput("The reference sketch was counted against another profile; rebuild it with this one.")
        self.sample = {name: np.asarray(values) for name, values in (sample or {}).items()}

    @classmethod
    def fit(
        cls,
        columns: Any,
        feature_types: Mapping[str, str] | None = None,
        n_bins: int = 100,
        max_levels: int = 10_000,
        sample_rows: int = 2_000,
        edge_sample_rows: int = 100_000,
    ) -> ReferenceProfile:
        """Fit from a mapping name -> values or a DataFrame-like object.

        `feature_types` overrides the inferred kind ("numeric", "integer", "boolean" or "categorical")
        per column. Numeric bin edges are the quantiles of `edge_sample_rows` rows, and the row sample
        of the multivariate tests holds `sample_rows` rows: both drawn as `files.profile_file` draws them
        from a file (`kinds.sample_rows`), so a file and the same rows in memory give the same profile.
        """
        arrays = column_arrays(columns)
        rows = len(next(iter(arrays.values()))) if arrays else 0
        edge_rows = sample_rows_of(rows, edge_sample_rows, EDGE_SEED) if rows > edge_sample_rows else None
        specs: dict[str, FeatureSpec] = {}
        for name, values in arrays.items():
            kind = _kind(name, values, feature_types)
            fitted_on = values[edge_rows] if edge_rows is not None and kind.is_numeric else values
            specs[name] = FeatureSpec.fit(name, fitted_on, kind, n_bins, max_levels)
        profile = cls(specs)
        picked = sample_rows_of(rows, sample_rows, REFERENCE_SAMPLE_SEED)
        sample = {name: specs[name].values(values[picked]) for name, values in arrays.items()}
        return cls(specs, profile.sketch(arrays), sample)

    @classmethod
    def from_parts(
        cls, specs: Mapping[str, FeatureSpec], reference: WindowSketch, sample: Mapping[str, np.ndarray] | None = None
    ) -> ReferenceProfile:
        """Assemble a profile whose reference sketch was built chunk by chunk (see `io`)."""
        return cls(specs, reference, sample)

    def sketch(self, columns: Any) -> WindowSketch:
        """Count one window of rows (mapping or DataFrame-like) against this profile's bins.

        Columns the profile does not know are ignored; a known column that is absent is skipped.
        """
        arrays = columns if isinstance(columns, dict) and _all_arrays(columns) else column_arrays(columns)
        features = {name: spec.sketch(np.asarray(arrays[name])) for name, spec in self.specs.items() if name in arrays}
        rows = len(next(iter(arrays.values()))) if arrays else 0
        return WindowSketch(self.profile_id, rows, features)

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile_id": self.profile_id,
            "features": [spec.to_dict() for spec in self.specs.values()],
            "reference": self.reference.to_dict(),
            "sample": {name: [_json_scalar(v) for v in values] for name, values in self.sample.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        specs = {item["name"]: FeatureSpec.from_dict(item) for item in data["features"]}
        sample = {}
        for name, values in data.get("sample", {}).items():
            kind = specs[name].kind if name in specs else FeatureKind.CATEGORICAL
            sample[name] = canonical(np.array(values, dtype=object), kind, name)
        return cls(specs, WindowSketch.from_dict(data["reference"]), sample)


# Seeds of the row samples; `io` draws its samples from files with the same ones.
EDGE_SEED, CURRENT_SAMPLE_SEED, REFERENCE_SAMPLE_SEED = 0, 1, 2


def _kind(name: str, values: np.ndarray, feature_types: Mapping[str, str] | None) -> FeatureKind:
    if feature_types and name in feature_types:
        return parse_kind(f"feature_types[{name!r}]", feature_types[name])
    return kind_of(values)


def _as_float(name: str, values: np.ndarray) -> np.ndarray:
    return as_float(name, values)


def _all_arrays(columns: dict[str, Any]) -> bool:
    return all(isinstance(v, np.ndarray) for v in columns.values())


def _json_scalar(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return None if value is None else str(value)


def _fingerprint(specs: Mapping[str, FeatureSpec]) -> str:
    payload = json.dumps([spec.to_dict() for spec in specs.values()], sort_keys=True)
    return hashlib.sha1(payload.encode()).hexdigest()[:16]
