"""PCA reconstruction: NannyML's DataReconstructionDriftCalculator on the cases of
tests/monitoring/test_pca_reconstruction.py (same data, same seeds), one chunk of the window's size.

    benchmarks/.venvs/nannyml/bin/python benchmarks/drift/reconstruction.py

Measured 2026-12-03 (NannyML 0.13): weakens 0.8->0.6 alert (1.035), tightens 0.8->0.86 alert (0.896),
calm no alert; driftgate fires on the first two and not on the third (before the calibration it
missed the tightening: ratio 0.91 against a fixed one-sided threshold of 1.1).
"""

import os

import numpy as np
import pandas as pd

os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"
import nannyml as nml

CASES = (("weakens 0.8->0.6", 11, 1000, 0.6), ("tightens 0.8->0.86", 103, 2000, 0.86), ("calm", 1000, 1000, 0.8))


def table(rng: np.random.Generator, rows: int, correlation: float) -> pd.DataFrame:
    """As `tests.monitoring.test_pca_reconstruction.table`."""
    a = rng.normal(size=rows)
    b = correlation * a + np.sqrt(1 - correlation**2) * rng.normal(size=rows)
    columns = {"a": a, "b": b, **{f"x{i}": rng.normal(size=rows) for i in range(3)}}
    columns["c"] = rng.choice(["u", "v", "w"], rows)
    return pd.DataFrame(columns)


for name, seed, rows, correlation in CASES:
    rng = np.random.default_rng(seed)
    reference, current = table(rng, 5000, 0.8), table(rng, rows, correlation)
    calculator = nml.DataReconstructionDriftCalculator(column_names=list(reference.columns), chunk_size=rows)
    calculator.fit(reference)
    result = calculator.calculate(current).filter(period="analysis").to_df()
    alert = result[("reconstruction_error", "alert")].tolist()
    value = [round(v, 4) for v in result[("reconstruction_error", "value")].tolist()]
    print(name, "nannyml alert", alert, "value", value)
