"""Pure modules stay pure; the CLI writes JSON and HTML; performance metrics and CBPE."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from driftgate.cli.drift import app
from driftgate.monitoring import performance as perf

PURE_MODULES = [
    "driftgate.monitoring.drift",
    "driftgate.monitoring.detectors",
    "driftgate.monitoring.performance",
    "driftgate.monitoring.report_html",
]


def test_pure_modules_import_no_web_database_or_pandas() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in PURE_MODULES)
        + "bad = [m for m in ('fastapi', 'starlette', 'sqlalchemy', 'httpx', 'pandas', 'pyarrow', 'sklearn')"
        " if m in sys.modules]\nprint(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def frames(seed: int, n: int, shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40 + 10 * shift, 10, n),
            "income": rng.lognormal(10, 0.5, n),
            "city": rng.choice(["paris", "lyon", "nice"], n, p=[0.5, 0.3, 0.2] if not shift else [0.2, 0.3, 0.5]),
        }
    )
    frame["label"] = (rng.random(n) < 0.3).astype(int)
    frame["score"] = np.clip(frame["label"] * 0.4 + rng.random(n) * 0.6, 0, 1)
    return frame


def test_cli_report_json_and_html(tmp_path: Path) -> None:
    frames(0, 800, 0.0).to_csv(tmp_path / "ref.csv", index=False)
    frames(1, 600, 1.0).to_parquet(tmp_path / "cur.parquet")
    html = tmp_path / "out.html"
    result = CliRunner().invoke(
        app,
        [
            "report",
            "--reference",
            str(tmp_path / "ref.csv"),
            "--current",
            str(tmp_path / "cur.parquet"),
            "--json",
            "--html",
            str(html),
            "--target",
            "label",
            "--prediction",
            "score",
        ],
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert {f["name"]: f["drifted"] for f in body["features"]} == {"age": True, "income": False, "city": True}
    assert body["dataset"]["drifted"] and body["dataset"]["correction"] == "holm"
    assert body["prediction"]["name"] == "score"
    assert body["performance"]["task"] == "probability"
    page = html.read_text()
    assert page.count("<svg") == 4 and "<script" not in page and "http://" not in page and "https://" not in page


def test_cli_names_a_missing_column(tmp_path: Path) -> None:
    frames(0, 100, 0.0).to_csv(tmp_path / "ref.csv", index=False)
    result = CliRunner().invoke(
        app, ["report", "-r", str(tmp_path / "ref.csv"), "-c", str(tmp_path / "ref.csv"), "--target", "nope"]
    )
    assert result.exit_code == 2
    assert "nope" in result.output


def test_metrics_match_hand_and_scipy() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    score = y * 0.3 + rng.random(500)
    u = stats.mannwhitneyu(score[y == 1], score[y == 0]).statistic
    assert perf.roc_auc(y, score) == pytest.approx(u / ((y == 1).sum() * (y == 0).sum()))
    predicted = (score > 0.65).astype(int)
    tp, fp, fn = np.sum(predicted & y), np.sum(predicted & (1 - y)), np.sum((1 - predicted) & y)
    assert perf.f1_score(y, predicted) == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert perf.accuracy(y, predicted) == pytest.approx(np.mean(y == predicted))
    assert perf.rmse(np.array([1.0, 3.0]), np.array([2.0, 1.0])) == pytest.approx(np.sqrt(2.5))


def test_cbpe_tracks_realised_accuracy_under_covariate_shift() -> None:
    rng = np.random.default_rng(3)

    def sample(n: int, centre: float) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(centre, 1.0, n)
        true_probability = 1 / (1 + np.exp(-2.5 * x))
        return true_probability, (rng.random(n) < true_probability).astype(int)

    # A miscalibrated model (overconfident scores), calibrated by CBPE on labelled reference rows.
    def model(p: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-2.0 * np.log(p / (1 - p))))

    ref_p, ref_y = sample(20_000, 1.5)
    for centre in (1.5, 0.5, 0.0):  # the shift moves rows to the decision boundary: accuracy drops
        cur_p, cur_y = sample(20_000, centre)
        realised = np.mean((model(cur_p) >= 0.5) == cur_y)
        estimate = perf.estimate_accuracy_cbpe(model(cur_p), model(ref_p), ref_y)
        assert abs(estimate.accuracy - realised) < 0.02, (centre, estimate, realised)
