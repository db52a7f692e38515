"""What the monitor needs of a model version: its reference, schema and output, and a way to score.
Serving's loaded versions fit it; monitoring does not import serving."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd

from driftgate.core.refs import VersionRef
from driftgate.registry.schema import InputSchema


class ScoringVersion(Protocol):
    @property
    def ref(self) -> VersionRef: ...

    @property
    def schema(self) -> InputSchema: ...

    @property
    def output(self) -> dict[str, Any]: ...

    @property
    def classes(self) -> list[Any] | None: ...

    def score(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]: ...


class VersionLoader(Protocol):
    """Loads a version by reference (serving's `ModelCache`), in the drift worker's child."""

    def get(self, ref: VersionRef) -> ScoringVersion: ...
