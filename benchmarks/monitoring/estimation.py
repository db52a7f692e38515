"""Label-free performance estimation: driftgate's CBPE / DLE against NannyML's, each against the realised
metric, on generated data of several kinds.

    .venv/bin/python benchmarks/monitoring/estimation.py [--chunks 10 --chunk-rows 2000 --seeds 3]

NannyML runs in its own virtual environment (it needs pandas<3 and statsmodels), in a subprocess:

    python3.11 -m venv benchmarks/.venvs/nannyml
    benchmarks/.venvs/nannyml/bin/pip install "nannyml==0.13.1" "pandas<3" statsmodels

Each case has a reference (10,000 labelled rows, with the model's scores and decisions) and an analysis
period of `chunks` chunks whose inputs move further from the reference chunk by chunk (covariate shift:
P(y|x) stays, so both estimators are valid). Per chunk, each estimator's estimate is compared with the
realised metric (scikit-learn's `accuracy_score`, `roc_auc_score`, `f1_score`, ...: neutral to both);
the table gives the mean absolute error over chunks and seeds. Both get the model's own decision
(`y_pred`), so a cut other than 0.5 is honoured on both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from driftgate.monitoring.estimation import ClassificationEstimator, RegressionEstimator

ROOT = Path(__file__).resolve().parents[2]
NANNYML_PYTHON = ROOT / "benchmarks" / ".venvs" / "nannyml" / "bin" / "python"
REFERENCE_ROWS = 10_000
CLASSIFICATION_METRICS = ("accuracy", "roc_auc", "f1", "precision", "recall")
REGRESSION_METRICS = ("mae", "rmse")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


@dataclass
class Case:
    name: str
    kind: str  # "binary", "multiclass", "regression"
    describe: str
    # (rng, rows, shift in [0, 1]) -> frame with x* features, y, scores (p or p_<class>), y_pred
    make: Callable[[np.random.Generator, int, float], pd.DataFrame]


def _binary_frame(
    rng: np.random.Generator,
    n: int,
    shift: float,
    *,
    distort: Callable[[np.ndarray], np.ndarray],
    cut: float,
    move: str = "x1",
) -> pd.DataFrame:
    x1 = rng.normal(1.0 - (1.6 * shift if move == "x1" else 0.0), 1.0, n)
    x2 = rng.normal(0.0 + (1.5 * shift if move == "x2" else 0.0), 1.0, n)
    x3 = rng.uniform(0, 1, n)
    true_p = _sigmoid(2.0 * x1 - 0.8 * x2 + np.where(x3 > 0.5, 0.5, -0.5))
    y = (rng.random(n) < true_p).astype(int)
    score = np.clip(distort(true_p), 1e-6, 1 - 1e-6)
    return pd.DataFrame({"x1": x1, "x2": x2, "x3": x3, "y": y, "p": score, "y_pred": (score >= cut).astype(int)})


def _temper(power: float) -> Callable[[np.ndarray], np.ndarray]:
    """Scores sharper (power > 1: overconfident) or flatter (< 1) than the truth, same ranking."""
    return lambda p: _sigmoid(power * np.log(p / (1 - p)))


def _trained_gbm(rng: np.random.Generator, n: int, shift: float) -> pd.DataFrame:
    """A real model: gradient boosting trained on 5,000 rows (its scores are what they are), cut at 0.645."""
    model = _TRAINED.get("gbm")
    if model is None:
        from sklearn.ensemble import HistGradientBoostingClassifier

        train = _binary_frame(np.random.default_rng(99), 5000, 0.0, distort=lambda p: p, cut=0.5)
        model = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.1).fit(
            train[["x1", "x2", "x3"]], train["y"]
        )
        _TRAINED["gbm"] = model
    frame = _binary_frame(rng, n, shift, distort=lambda p: p, cut=0.5)
    score = model.predict_proba(frame[["x1", "x2", "x3"]])[:, 1]
    frame["p"] = np.clip(score, 1e-6, 1 - 1e-6)
    frame["y_pred"] = (score >= 0.645).astype(int)
    return frame


_TRAINED: dict[str, Any] = {}
CLASSES = ("a", "b", "c")


def _multiclass(rng: np.random.Generator, n: int, shift: float) -> pd.DataFrame:
    x1, x2 = rng.normal(-0.8 * shift, 1.2, n), rng.normal(0.8 * shift, 1.2, n)
    logits = np.column_stack([1.2 * x1, 1.2 * x2, -0.8 * (x1 + x2)])
    true_p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = (rng.random(n)[:, None] > np.cumsum(true_p, axis=1)).sum(axis=1)
    scores = true_p**1.6  # overconfident
    scores /= scores.sum(axis=1, keepdims=True)
    frame = pd.DataFrame({"x1": x1, "x2": x2, "y": np.asarray(CLASSES)[y]})
    for i, c in enumerate(CLASSES):
        frame[f"p_{c}"] = scores[:, i]
    frame["y_pred"] = np.asarray(CLASSES)[scores.argmax(axis=1)]
    return frame


def _regression(rng: np.random.Generator, n: int, shift: float) -> pd.DataFrame:
    x1, x2 = rng.normal(1.5 * shift, 1.0, n), rng.uniform(0, 1, n)
    noise = 0.3 + 0.7 * np.abs(x1) + 0.5 * x2  # heteroscedastic: the loss depends on the inputs
    y = 3 * x1 + 2 * x2 + rng.normal(0, noise)
    y_pred = 3 * x1 + 2 * x2 + 0.1 * np.sin(3 * x1)
    return pd.DataFrame({"x1": x1, "x2": x2, "y": y, "y_pred": y_pred})


CASES = [
    Case(
        "calibrated, cut 0.5",
        "binary",
        "scores = true P(y|x)",
        lambda r, n, s: _binary_frame(r, n, s, distort=lambda p: p, cut=0.5),
    ),
    Case(
        "overconfident, cut 0.5",
        "binary",
        "scores sharpened (logit x 2.2)",
        lambda r, n, s: _binary_frame(r, n, s, distort=_temper(2.2), cut=0.5),
    ),
    Case(
        "underconfident, cut 0.475",
        "binary",
        "scores flattened (logit x 0.5)",
        lambda r, n, s: _binary_frame(r, n, s, distort=_temper(0.5), cut=0.475),
    ),
    Case(
        "overconfident, cut 0.795",
        "binary",
        "logit x 1.6, decision at 0.795",
        lambda r, n, s: _binary_frame(r, n, s, distort=_temper(1.6), cut=0.795),
    ),
    Case(
        "shift on a second feature",
        "binary",
        "x2 moves instead of x1; logit x 1.4",
        lambda r, n, s: _binary_frame(r, n, s, distort=_temper(1.4), cut=0.5, move="x2"),
    ),
    Case("trained GBM, cut 0.645", "binary", "HistGradientBoosting trained on 5,000 rows", _trained_gbm),
    Case("multiclass (3), overconfident", "multiclass", "softmax scores ^1.6, argmax", _multiclass),
    Case("regressor vs DLE", "regression", "heteroscedastic noise, inputs shift", _regression),
]


def realised(case: Case, frame: pd.DataFrame) -> dict[str, float]:
    y, y_pred = frame["y"].to_numpy(), frame["y_pred"].to_numpy()
    if case.kind == "regression":
        return {"mae": skm.mean_absolute_error(y, y_pred), "rmse": float(np.sqrt(skm.mean_squared_error(y, y_pred)))}
    if case.kind == "binary":
        return {
            "accuracy": skm.accuracy_score(y, y_pred),
            "roc_auc": skm.roc_auc_score(y, frame["p"]),
            "f1": skm.f1_score(y, y_pred),
            "precision": skm.precision_score(y, y_pred, zero_division=0),
            "recall": skm.recall_score(y, y_pred),
        }
    scores = frame[[f"p_{c}" for c in CLASSES]].to_numpy()
    return {
        "accuracy": skm.accuracy_score(y, y_pred),
        "roc_auc": skm.roc_auc_score(y, scores, multi_class="ovr", average="macro", labels=list(CLASSES)),
        "f1": skm.f1_score(y, y_pred, average="macro"),
        "precision": skm.precision_score(y, y_pred, average="macro", zero_division=0),
        "recall": skm.recall_score(y, y_pred, average="macro"),
    }


def ours(case: Case, reference: pd.DataFrame, chunks: list[pd.DataFrame]) -> list[dict[str, float]]:
    if case.kind == "regression":
        features = ["x1", "x2"]
        est = RegressionEstimator.fit(
            {c: reference[c].to_numpy() for c in features}, reference["y_pred"].to_numpy(), reference["y"].to_numpy()
        )
        return [
            {
                k: v.value
                for k, v in est.estimate({c: ch[c].to_numpy() for c in features}, ch["y_pred"].to_numpy()).items()
            }
            for ch in chunks
        ]
    if case.kind == "binary":
        est = ClassificationEstimator.fit(
            reference["p"].to_numpy(),
            reference["y"].to_numpy(),
            decisions=reference["y_pred"].to_numpy(),
            classes=[0, 1],
        )
        return [
            {k: v.value for k, v in est.estimate(ch["p"].to_numpy(), ch["y_pred"].to_numpy()).items()} for ch in chunks
        ]
    columns = [f"p_{c}" for c in CLASSES]
    est = ClassificationEstimator.fit(
        reference[columns].to_numpy(),
        reference["y"].to_numpy(),
        decisions=reference["y_pred"].to_numpy(),
        classes=list(CLASSES),
    )
    return [
        {k: v.value for k, v in est.estimate(ch[columns].to_numpy(), ch["y_pred"].to_numpy()).items()} for ch in chunks
    ]


NANNYML_SCRIPT = r"""
import json, sys, warnings
warnings.filterwarnings("ignore")
import pandas as pd
import nannyml as nml
kind, folder, chunk_rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
reference = pd.read_parquet(f"{folder}/reference.parquet")
analysis = pd.read_parquet(f"{folder}/analysis.parquet")
if kind == "regression":
    metrics = ["mae", "rmse"]
    est = nml.DLE(feature_column_names=["x1", "x2"], y_pred="y_pred", y_true="y", metrics=metrics,
                  chunk_size=chunk_rows)
elif kind == "binary":
    metrics = ["accuracy", "roc_auc", "f1", "precision", "recall"]
    est = nml.CBPE(problem_type="classification_binary", y_pred_proba="p", y_pred="y_pred", y_true="y",
                   metrics=metrics, chunk_size=chunk_rows)
else:
    metrics = ["accuracy", "roc_auc", "f1", "precision", "recall"]
    proba = {c: f"p_{c}" for c in ("a", "b", "c")}
    est = nml.CBPE(problem_type="classification_multiclass", y_pred_proba=proba, y_pred="y_pred", y_true="y",
                   metrics=metrics, chunk_size=chunk_rows)
est.fit(reference)
result = est.estimate(analysis.drop(columns=["y"])).filter(period="analysis").to_df()
out = []
for _, row in result.iterrows():
    out.append({m: float(row[(m, "value")]) for m in metrics})
print(json.dumps(out))
"""


def nannyml(
    case: Case, reference: pd.DataFrame, chunks: list[pd.DataFrame], chunk_rows: int
) -> list[dict[str, float]] | None:
    if not NANNYML_PYTHON.exists():
        return None
    with tempfile.TemporaryDirectory() as folder:
        reference.to_parquet(f"{folder}/reference.parquet")
        pd.concat(chunks, ignore_index=True).to_parquet(f"{folder}/analysis.parquet")
        env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1", "OMP_NUM_THREADS": "1"}
        done = subprocess.run(
            [str(NANNYML_PYTHON), "-c", NANNYML_SCRIPT, case.kind, folder, str(chunk_rows)],
            capture_output=True,
            text=True,
            env=env,
            timeout=1800,
        )
    if done.returncode != 0:
        print(f"nannyml failed on {case.name}: {done.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(chunks: int, chunk_rows: int, seeds: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for case in CASES:
        names = REGRESSION_METRICS if case.kind == "regression" else CLASSIFICATION_METRICS
        errors: dict[str, dict[str, list[float]]] = {
            "driftgate": {m: [] for m in names},
            "nannyml": {m: [] for m in names},
        }
        seconds = {"driftgate": 0.0, "nannyml": 0.0}
        for seed in range(seeds):
            rng = np.random.default_rng(1000 * seed + 7)
            reference = case.make(rng, REFERENCE_ROWS, 0.0)
            analysis = [case.make(rng, chunk_rows, i / max(1, chunks - 1)) for i in range(chunks)]
            truth = [realised(case, ch) for ch in analysis]
            start = time.perf_counter()
            mine = ours(case, reference, analysis)
            seconds["driftgate"] += time.perf_counter() - start
            start = time.perf_counter()
            theirs = nannyml(case, reference, analysis, chunk_rows)
            seconds["nannyml"] += time.perf_counter() - start
            for m in names:
                errors["driftgate"][m] += [abs(e[m] - t[m]) for e, t in zip(mine, truth, strict=True)]
                if theirs is not None:
                    errors["nannyml"][m] += [abs(e[m] - t[m]) for e, t in zip(theirs, truth, strict=True)]
            span = {m: (min(t[m] for t in truth), max(t[m] for t in truth)) for m in names}
        results[case.name] = {
            "kind": case.kind,
            "data": case.describe,
            "realised_range_last_seed": span,
            "mae": {
                tool: {m: (float(np.mean(v)) if v else None) for m, v in per.items()} for tool, per in errors.items()
            },
            "seconds": seconds,
        }
        mae = results[case.name]["mae"]
        line = ", ".join(f"{m} {mae['driftgate'][m]:.4f} vs {mae['nannyml'][m] or float('nan'):.4f}" for m in names)
        print(f"{case.name}: {line}", flush=True)
    return results


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "| case | metric | realised range | driftgate MAE | NannyML MAE |",
        "|---|---|---|---|---|",
    ]
    for name, result in results.items():
        for metric, mine in result["mae"]["driftgate"].items():
            theirs = result["mae"]["nannyml"][metric]
            low, high = result["realised_range_last_seed"][metric]
            mark = "" if theirs is None or mine <= theirs + 1e-12 else " (worse)"
            lines.append(
                f"| {name} | {metric} | {low:.3f}-{high:.3f} | {mine:.4f}{mark} | "
                f"{'n/a' if theirs is None else f'{theirs:.4f}'} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=10)
    parser.add_argument("--chunk-rows", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=Path(__file__).with_name("results_estimation.json"))
    args = parser.parse_args()
    results = run(args.chunks, args.chunk_rows, args.seeds)
    args.output.write_text(json.dumps(results, indent=2))
    print(markdown(results))


if __name__ == "__main__":
    main()
