"""The offline drift report between two files: what `driftgate drift report` runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from driftgate.errors import InvalidInput
from driftgate.monitoring.drift.compare import compare
from driftgate.monitoring.drift.evaluate import DriftSettings
from driftgate.monitoring.drift.profile import ReferenceProfile
from driftgate.monitoring.drift.report import DriftReport
from driftgate.monitoring.files.profile import profile_file_spilled
from driftgate.monitoring.files.read import BATCH_ROWS, file_schema
from driftgate.monitoring.files.sketch import sketch_file, sketch_file_spilled
from driftgate.monitoring.files.spill import EXACT_ROWS, SortedSpill, SortedValues, spill_budget
from driftgate.monitoring.files.tensors import embedding_drifts, tensor_columns
from driftgate.monitoring.performance import performance_report


def report_files(
    reference: str | Path,
    current: str | Path,
    settings: DriftSettings | None = None,
    target: str | None = None,
    prediction: str | None = None,
    sample_rows: int = 2_000,
    batch_rows: int = BATCH_ROWS,
    decision_threshold: float | None = None,
    spill_bytes: int | None = None,
    exact_rows: int = EXACT_ROWS,
) -> DriftReport:
    """The whole offline report between two files, streamed: what `driftgate drift report` runs.
    `decision_threshold`: where the model cuts a binary probability `prediction` (0.5 if None).

    KS and Wasserstein are exact (from the sorted values each file leaves in a temporary spill) as
    long as each file holds at most `exact_rows` rows and its values fit the spill budget; beyond,
    they come from the bins and the report carries their error bounds (`ks_error_bound`,
    `wasserstein_error_bound`). A list column (one tensor a row) is tested by the MMD embedding test
    (`files.tensors`), in the same correction family.
    """
    budget = spill_bytes if spill_bytes is not None else spill_budget()
    settings = settings or DriftSettings()
    tensors = [name for name in tensor_columns(file_schema(reference)) if name not in (target, prediction)]
    embeddings, _ = embedding_drifts(reference, current, tensors, settings, batch_rows)
    with SortedSpill(budget) as reference_spill, SortedSpill(budget) as current_spill:
        profile, reference_segments = profile_file_spilled(
            reference, reference_spill, sample_rows=sample_rows, batch_rows=batch_rows, exact_rows=exact_rows
        )
        outcome_columns = _outcome_columns(profile, reference, target, prediction)
        reference_outcomes: dict[str, np.ndarray] = {}
        if outcome_columns:
            _, _, reference_outcomes = sketch_file(profile, reference, 0, outcome_columns, batch_rows)
        sketch, current_sample, current_outcomes, current_segments = sketch_file_spilled(
            profile,
            current,
            sample_rows,
            outcome_columns,
            batch_rows,
            spill=current_spill if exact_rows > 0 else None,
            exact_rows=exact_rows,
        )
        performance = performance_report(
            reference_outcomes.get(target or ""),
            reference_outcomes.get(prediction or ""),
            current_outcomes.get(target or ""),
            current_outcomes.get(prediction or ""),
            threshold=decision_threshold,
        )
        raw = SortedValues((reference_spill, reference_segments), (current_spill, current_segments))
        sample = current_sample if sample_rows else None
        return compare(profile, sketch, settings, sample, prediction, target, performance, raw, embeddings)


def _outcome_columns(
    profile: ReferenceProfile, reference: str | Path, target: str | None, prediction: str | None
) -> list[str]:
    """The target and prediction columns named, each of which the reference must hold."""
    outcome_columns = [name for name in (target, prediction) if name]
    for name in outcome_columns:
        if name not in profile.specs:
            columns = sorted(profile.specs)
            raise InvalidInput(f"Column {name!r} is not in {Path(reference).name}: columns are {columns}.")
    return outcome_columns
