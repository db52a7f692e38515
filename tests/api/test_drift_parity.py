"""The same rows through the live monitor and through `driftgate export` + `driftgate drift report`.

One model with a numeric, an integer, a boolean and a categorical feature is served on loopback; the
same rows are sent to two endpoints (calm traffic, and traffic whose numeric feature moved far out of
the reference range), the monitor runs on each, the log is exported (CSV and Parquet) and the file
report runs on the export against the registered reference file.

Parity required (docs/drift.md, "One representation of every feature kind"): the same verdict per
feature, the same dataset and multivariate verdicts, and every statistic, p-value and multivariate
score equal within `RELATIVE_TOLERANCE` (relative, with `ABSOLUTE_TOLERANCE` near zero). The two
paths differ only in float rounding: merged moments, and the CSV parsers of pandas and pyarrow.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from driftgate.cli import drift as drift_cli
from driftgate.cli.export import export
from driftgate.client import Client
from tests.conftest import LiveServer, make_server

RELATIVE_TOLERANCE = 1e-6
ABSOLUTE_TOLERANCE = 1e-9
FEATURES = ["amount", "visits", "member", "channel"]
CURRENT_ROWS = 2_006

pytestmark = pytest.mark.slow


def table(n: int, seed: int, amount_shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.normal(50.0, 10.0, n) + amount_shift
    visits = rng.poisson(3.0, n)
    member = rng.random(n) < 0.3
    channel = rng.choice(["web", "app", "store"], n, p=[0.5, 0.3, 0.2])
    score = 0.05 * (amount - 50) + 0.3 * visits + 1.0 * member - 1.0 + (channel == "app")
    y = (score + rng.normal(0, 1, n) > 0).astype(int)
    return pd.DataFrame({"amount": amount, "visits": visits, "member": member, "channel": channel, "y": y})


def _model(reference: pd.DataFrame) -> bytes:
    import skops.io as sio
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    pre = ColumnTransformer(
        [
            ("num", "passthrough", ["amount", "visits", "member"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["channel"]),
        ]
    )
    model = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=500))])
    return bytes(sio.dumps(model.fit(reference[FEATURES], reference["y"])))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[LiveServer, Client, Path]]:
    server = make_server(tmp_path)
    reference = table(3_000, seed=1)
    reference_csv = tmp_path / "reference.csv"
    reference.to_csv(reference_csv, index=False)
    try:
        with Client(server.url) as client:
            client.register_model("m", _model(reference), "sklearn", reference=reference_csv.read_bytes(), target="y")
            yield server, client, reference_csv
    finally:
        server.stop()


def _send(client: Client, endpoint: str, frame: pd.DataFrame) -> None:
    rows = frame[FEATURES]
    # Big requests (inputs stored as packed columns) and 1-row requests (stored as row objects).
    for start in range(0, len(rows) - 6, 250):
        client.predict(endpoint, rows.iloc[start : min(start + 250, len(rows) - 6)])
    for i in range(len(rows) - 6, len(rows)):
        client.predict(endpoint, rows.iloc[i : i + 1])


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(export)
    app.add_typer(drift_cli.app, name="drift")
    return app


def both_reports(
    server: LiveServer, client: Client, reference_csv: Path, endpoint: str, traffic: pd.DataFrame, suffix: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    client.deploy(endpoint, "m", 1)
    _send(client, endpoint, traffic)
    live = client.http.post(f"/v1/endpoints/{endpoint}/monitor", json={"last": len(traffic)}).json()
    assert live["window"]["rows"] == len(traffic), live.get("notes")
    exported = reference_csv.parent / f"{endpoint}.{suffix}"
    runner = CliRunner()
    data_dir = str(server.settings.data_dir)
    done = runner.invoke(_cli(), ["export", endpoint, "-o", str(exported), "--data-dir", data_dir])
    assert done.exit_code == 0, done.output
    # The export writes the boolean feature as the reference had it (logged as 0.0 / 1.0).
    frame = pd.read_parquet(exported) if suffix == "parquet" else pd.read_csv(exported)
    assert frame["member"].dtype == bool, frame["member"].head()
    assert frame["visits"].tolist() == traffic["visits"].tolist()
    answer = runner.invoke(
        _cli(), ["drift", "report", "--reference", str(reference_csv), "--current", str(exported), "--json"]
    )
    assert answer.exit_code == 0, answer.output
    return live, json.loads(answer.stdout)


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=RELATIVE_TOLERANCE, abs_tol=ABSOLUTE_TOLERANCE)


def differences(live: dict[str, Any], offline: dict[str, Any]) -> list[str]:
    """What differs between the two reports (verdicts exactly, numbers within the tolerance)."""
    out: list[str] = []
    by_name = {f["name"]: f for f in offline["features"]}
    for feature in live["features"]:
        name = feature["name"]
        other = by_name.get(name)
        if other is None:
            out.append(f"{name}: missing offline")
            continue
        for key in ("type", "test", "drifted", "reasons", "n_reference", "n_current"):
            if feature[key] != other[key]:
                out.append(f"{name}.{key}: live {feature[key]!r} offline {other[key]!r}")
        for key in ("statistic", "p_value", "p_value_adjusted"):
            if not _close(feature[key], other[key]):
                out.append(f"{name}.{key}: live {feature[key]!r} offline {other[key]!r}")
        for key, value in feature["statistics"].items():
            if not _close(value, other["statistics"].get(key)):
                out.append(f"{name}.statistics.{key}: live {value!r} offline {other['statistics'].get(key)!r}")
    if set(by_name) != {f["name"] for f in live["features"]}:
        out.append(f"features: live {sorted(f['name'] for f in live['features'])} offline {sorted(by_name)}")
    for key in ("drifted", "n_drifted", "n_features"):
        if live["dataset"][key] != offline["dataset"][key]:
            out.append(f"dataset.{key}: live {live['dataset'][key]!r} offline {offline['dataset'][key]!r}")
    for test in ("domain_classifier", "pca_reconstruction"):
        mine, theirs = live["multivariate"].get(test), offline["multivariate"].get(test)
        if mine is None or theirs is None:
            out.append(f"multivariate.{test}: live {mine!r} offline {theirs!r}")
            continue
        if mine["drifted"] != theirs["drifted"]:
            out.append(f"multivariate.{test}.drifted: live {mine['drifted']} offline {theirs['drifted']}")
        for key in ("effect_size", "p_value", "threshold"):
            if not _close(mine[key], theirs[key]):
                out.append(f"multivariate.{test}.{key}: live {mine[key]!r} offline {theirs[key]!r}")
    return out


def test_calm_traffic_gives_the_same_quiet_report_live_and_offline(
    served: tuple[LiveServer, Client, Path],
) -> None:
    server, client, reference_csv = served
    live, offline = both_reports(server, client, reference_csv, "calm", table(CURRENT_ROWS, seed=2), "csv")
    # No drift: no feature flagged (the boolean included), and the domain classifier stays quiet.
    for report in (live, offline):
        assert [f["name"] for f in report["features"] if f["drifted"]] == []
        assert not report["dataset"]["drifted"]
        assert not report["multivariate"]["domain_classifier"]["drifted"]
        assert report["multivariate"]["domain_classifier"]["effect_size"] < 0.55
        assert not report["multivariate"]["drifted"]
    assert {f["name"]: f["type"] for f in live["features"]} == {
        "amount": "numeric",
        "visits": "integer",
        "member": "boolean",
        "channel": "categorical",
    }
    member = next(f for f in live["features"] if f["name"] == "member")
    assert member["histogram"]["levels"][:2] == ["False", "True"]
    assert differences(live, offline) == []


def test_shifted_traffic_gives_the_same_verdicts_and_statistics_live_and_offline(
    served: tuple[LiveServer, Client, Path],
) -> None:
    server, client, reference_csv = served
    traffic = table(CURRENT_ROWS, seed=3, amount_shift=27.0)  # 2.7 reference sd: far past the reference range
    live, offline = both_reports(server, client, reference_csv, "shifted", traffic, "parquet")
    for report in (live, offline):
        assert [f["name"] for f in report["features"] if f["drifted"]] == ["amount"]
    amount = {r["name"]: r for r in live["features"]}["amount"]["statistics"]["wasserstein"]
    offline_amount = {r["name"]: r for r in offline["features"]}["amount"]["statistics"]["wasserstein"]
    assert _close(amount, offline_amount), (amount, offline_amount)
    assert differences(live, offline) == []


def test_reference_csv_round_trip_is_what_the_server_stored(served: tuple[LiveServer, Client, Path]) -> None:
    """The file report reads the reference with pyarrow, the server with pandas: same values."""
    _, _, reference_csv = served
    frame = pd.read_csv(io.BytesIO(reference_csv.read_bytes()))
    assert frame["member"].dtype == bool and frame["visits"].dtype == np.int64
