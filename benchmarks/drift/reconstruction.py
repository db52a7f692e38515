"""PCA reconstruction: NannyML's DataReconstructionDriftCalculator on the cases of
tests/monitoring/test_pca_reconstruction.py (same data, same seeds), one chunk of the window's size.

    benchmarks/.venvs/nannyml/bin/python benchmarks/drift/reconstruction.py

Measured 2026-12-03 (NannyML 0.13): weakens 0.8->0.6 alert (1.035), tightens 0.8->0.86 alert (0.896),
calm no alert; driftgate fires on the first two and not on the third (before the calibration it
missed the tightening: ratio 0.91 against a fixed one-sided threshold of 1.1).
"""

import os, sys, numpy as np, pandas as pd
os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"
import nannyml as nml
def table(rng, rows, c):
    a = rng.normal(size=rows); b = c * a + np.sqrt(1 - c**2) * rng.normal(size=rows)
    d = {"a": a, "b": b, **{f"x{i}": rng.normal(size=rows) for i in range(3)}}
    d["c"] = rng.choice(["u", "v", "w"], rows)
    return pd.DataFrame(d)
for name, seed, rows, c in (("weakens 0.8->0.6", 11, 1000, 0.6), ("tightens 0.8->0.86", 103, 2000, 0.86), ("calm", 1000, 1000, 0.8)):
    rng = np.random.default_rng(seed)
    ref, cur = table(rng, 5000, 0.8), table(rng, rows, c)
    calc = nml.DataReconstructionDriftCalculator(column_names=list(ref.columns), chunk_size=rows)
    calc.fit(ref)
    res = calc.calculate(cur).filter(period="analysis").to_df()
    alert = res[("reconstruction_error", "alert")].tolist(); val = res[("reconstruction_error", "value")].tolist()
    print(name, "nannyml alert", alert, "value", [round(v, 4) for v in val])
