"""`driftgate drift report`: offline drift report between two CSV or Parquet files.

Mounted by the main CLI as `app.add_typer(drift.app, name="drift")`; also runnable on its own:
`python -m driftgate.cli.drift report --reference ref.csv --current cur.csv --json`.
Files are streamed in batches into sketches, so memory stays flat whatever their size.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from driftgate.errors import DriftgateError
from driftgate.monitoring.drift import DriftSettings
from driftgate.monitoring.files import BATCH_ROWS, EXACT_ROWS, report_files
from driftgate.monitoring.report_html import render_html

app = typer.Typer(help="Data and prediction drift between a reference and a current dataset.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """Drift reports."""


@app.command()
def report(
    reference: Path = typer.Option(..., "--reference", "-r", help="Reference data (.csv or .parquet)."),
    current: Path = typer.Option(..., "--current", "-c", help="Current data (.csv or .parquet)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
    html_path: Path | None = typer.Option(None, "--html", help="Write a self-contained HTML report here."),
    target: str | None = typer.Option(
        None, "--target", help="Label column: left out of the features, used for performance metrics."
    ),
    prediction: str | None = typer.Option(
        None, "--prediction", help="Prediction column (label or probability): reported as prediction drift."
    ),
    decision_threshold: float | None = typer.Option(
        None,
        "--decision-threshold",
        min=0.0,
        max=1.0,
        help="Where the model cuts a binary probability --prediction into its decision (default 0.5); "
        "accuracy, F1, precision, recall and their label-free estimates follow it.",
    ),
    alpha: float = typer.Option(0.05, help="Family-wise error rate (holm) or false discovery rate (bh)."),
    correction: str = typer.Option("holm", help="Multiple-testing correction: holm or benjamini-hochberg."),
    sample_rows: int = typer.Option(2_000, help="Rows sampled per side for the multivariate tests (0: skip)."),
    batch_rows: int = typer.Option(BATCH_ROWS, help="Rows read per batch."),
    exact_rows: int = typer.Option(
        EXACT_ROWS,
        min=0,
        help="Files of at most this many rows get exact KS and Wasserstein, as the live monitor computes them; "
        "bigger ones (or 0) the binned values with their error bounds, about twice as fast.",
    ),
    fail_on_drift: bool = typer.Option(False, "--fail-on-drift", help="Exit with status 1 if the dataset drifted."),
) -> None:
    """Compare CURRENT with REFERENCE feature by feature, plus multivariate, prediction and performance."""
    try:
        settings = DriftSettings(alpha=alpha, correction=correction)
        result = report_files(
            reference,
            current,
            settings,
            target,
            prediction,
            sample_rows,
            batch_rows,
            decision_threshold,
            exact_rows=exact_rows,
        )
    except DriftgateError as error:
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(2) from None
    if html_path is not None:
        html_path.write_text(render_html(result, title=f"Drift: {current.name} vs {reference.name}"), encoding="utf-8")
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        _print_summary(result)
    if fail_on_drift and result.dataset.drifted:
        raise typer.Exit(1)


def _print_summary(result: object) -> None:
    from rich.console import Console
    from rich.table import Table

    from driftgate.monitoring.drift import DriftReport

    assert isinstance(result, DriftReport)
    table = Table(title="Feature drift")
    for column in ("feature", "type", "measure", "value", "threshold", "p adjusted", "verdict"):
        table.add_column(column)
    for feature in result.features:
        test = feature.distribution
        table.add_row(
            feature.name,
            feature.kind,
            test.effect,
            f"{test.effect_size:.3g}",
            f"{test.threshold:g}",
            f"{test.p_value_adjusted:.2g}",
            "[red]drift[/red] " + ", ".join(feature.reasons) if feature.drifted else "[green]ok[/green]",
        )
    console = Console()
    console.print(table)
    dataset = result.dataset
    console.print(
        f"Dataset drifted: {dataset.drifted} ({dataset.n_drifted}/{dataset.n_features} features, "
        f"{dataset.correction} at alpha {dataset.alpha})"
    )
    if result.multivariate is not None and result.multivariate.subtests:
        console.print(
            "Multivariate: "
            + ", ".join(
                f"{t.aspect} {t.effect}={t.effect_size:.3g} drifted={t.drifted}" for t in result.multivariate.subtests
            )
        )


if __name__ == "__main__":
    app()
