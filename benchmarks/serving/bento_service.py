"""BentoML 1.4 peer: a `@bentoml.service` taking the same {"instances": [...]} body.

Run by run.py as `bentoml serve bento_service:Classifier --port P` in benchmarks/.venvs/bentoml,
with BENCH_MODEL pointing at a joblib file trained in that venv.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml
import joblib
import pandas as pd


@bentoml.service(workers=1)
class Classifier:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["BENCH_MODEL"])
        self.classes = self.model.classes_

    @bentoml.api
    def predict(self, instances: list[dict[str, Any]]) -> dict[str, Any]:
        frame = pd.DataFrame({k: [r[k] for r in instances] for k in instances[0]})
        proba = self.model.predict_proba(frame)
        return {"predictions": self.classes[proba.argmax(axis=1)].tolist(), "probabilities": proba.tolist()}
