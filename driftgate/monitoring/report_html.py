"""One self-contained HTML page for a drift report: inline CSS and SVG, no scripts, no CDN.

>>> import numpy as np
>>> from driftgate.monitoring.drift import compare_frames
>>> rng = np.random.default_rng(0)
>>> page = render_html(compare_frames({"x": rng.normal(size=300)}, {"x": rng.normal(1, 1, 300)}))
>>> page.startswith("<!doctype html>") and "<svg" in page and "http" not in page
True
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np

from driftgate.monitoring.drift.report import DriftReport, FeatureDrift

DISPLAY_BINS = 30  # numeric histograms are regrouped to this many bars for reading
DISPLAY_LEVELS = 20
WIDTH, HEIGHT = 420, 120
STYLE = """
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}
.drift{color:#b00020;font-weight:600}.ok{color:#1b5e20}.card{display:inline-block;margin:8px;padding:8px;
border:1px solid #ddd;border-radius:6px;vertical-align:top}.ref{fill:#90a4ae}.cur{fill:#ef6c00;opacity:.7}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
"""


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return html.escape(str(value))


def _bars(feature: FeatureDrift) -> tuple[list[str], np.ndarray, np.ndarray]:
    histogram = feature.histogram
    if not histogram:  # an embedding test has no bins
        return [], np.zeros(0), np.zeros(0)
    reference = np.asarray(histogram.get("reference", []), dtype=np.float64)
    current = np.asarray(histogram.get("current", []), dtype=np.float64)
    if "levels" in histogram:
        labels = list(histogram["levels"])
        order = np.argsort(-(reference + current), kind="stable")[:DISPLAY_LEVELS]
        return [str(labels[i]) for i in order], reference[order], current[order]
    edges = histogram.get("edges", [])
    groups = np.array_split(np.arange(reference.size), min(DISPLAY_BINS, max(1, reference.size)))
    labels = [f"<= {edges[g[-1]]:.3g}" if g[-1] < len(edges) else f"> {edges[-1]:.3g}" for g in groups]
    return labels, np.array([reference[g].sum() for g in groups]), np.array([current[g].sum() for g in groups])


def _svg(feature: FeatureDrift) -> str:
    labels, reference, current = _bars(feature)
    if not labels:
        return ""
    reference = reference / max(reference.sum(), 1)
    current = current / max(current.sum(), 1)
    top = max(float(reference.max()), float(current.max()), 1e-9)
    step = WIDTH / len(labels)
    parts = [f'<svg width="{WIDTH}" height="{HEIGHT + 16}" role="img" aria-label="{html.escape(feature.name)}">']
    for i, label in enumerate(labels):
        for share, css, offset in ((reference[i], "ref", 0.1), (current[i], "cur", 0.45)):
            height = HEIGHT * share / top
            parts.append(
                f'<rect class="{css}" x="{i * step + offset * step:.1f}" y="{HEIGHT - height:.1f}" '
                f'width="{step * 0.45:.1f}" height="{height:.1f}"><title>{html.escape(label)}: '
                f"{share:.2%}</title></rect>"
            )
    parts.append(f'<text x="0" y="{HEIGHT + 13}" font-size="10">{html.escape(labels[0])}</text>')
    parts.append(
        f'<text x="{WIDTH}" y="{HEIGHT + 13}" font-size="10" text-anchor="end">{html.escape(labels[-1])}</text></svg>'
    )
    return "".join(parts)


def _verdict(drifted: bool) -> str:
    return '<span class="drift">drift</span>' if drifted else '<span class="ok">ok</span>'


def _card(feature: FeatureDrift, title: str = "") -> str:
    reasons = ", ".join(feature.reasons) or "no drift"
    return (
        f'<div class="card"><b>{html.escape(title or feature.name)}</b> ({feature.kind}) '
        f"{_verdict(feature.drifted)}<br><small>{html.escape(reasons)}; {feature.distribution.effect} "
        f"{_fmt(feature.distribution.effect_size)} (threshold {_fmt(feature.distribution.threshold)})</small>"
        f"<br>{_svg(feature)}</div>"
    )


def render_html(report: DriftReport, title: str = "driftgate drift report") -> str:
    """The whole report as one HTML document."""
    dataset = report.dataset
    rows = "".join(
        f"<tr><td>{html.escape(f.name)}</td><td>{f.kind}</td><td>{f.distribution.effect}</td>"
        f"<td>{_fmt(f.distribution.effect_size)}</td><td>{_fmt(f.distribution.threshold)}</td>"
        f"<td>{f.distribution.test}</td><td>{_fmt(f.distribution.p_value)}</td>"
        f"<td>{_fmt(f.distribution.p_value_adjusted)}</td><td>{_fmt(f.rates.get('current_missing_rate'))}</td>"
        f"<td>{_verdict(f.drifted)}</td><td>{html.escape(', '.join(f.reasons))}</td></tr>"
        for f in report.features
    )
    multivariate = ""
    if report.multivariate is not None:
        items = "".join(
            f"<li>{t.aspect}: {t.effect} {_fmt(t.effect_size)} (threshold {_fmt(t.threshold)}), "
            f"p adjusted {_fmt(t.p_value_adjusted)} {_verdict(t.drifted)}</li>"
            for t in report.multivariate.subtests
        )
        items = items or f"<li>{html.escape(report.multivariate.note)}</li>"
        multivariate = f"<h2>Multivariate</h2><ul>{items}</ul>"
    prediction = f"<h2>Prediction</h2>{_card(report.prediction)}" if report.prediction else ""
    performance = ""
    if report.performance:
        items = "".join(
            f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
            for k, v in report.performance.items()
        )
        performance = f"<h2>Performance</h2><table>{items}</table>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{STYLE}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>Dataset: {_verdict(dataset.drifted)}; {dataset.n_drifted} of {dataset.n_features} features drifted
({dataset.share_drifted:.0%}); correction {html.escape(dataset.correction)}, alpha {dataset.alpha}.</p>
<p><small>{html.escape(dataset.rule)}</small></p>
<table><tr><th>feature</th><th>type</th><th>measure</th><th>value</th><th>threshold</th><th>test</th><th>p</th>
<th>p adjusted</th><th>missing (current)</th><th>verdict</th><th>reasons</th></tr>{rows}</table>
{multivariate}{prediction}{performance}
<h2>Distributions</h2><p class="legend"><span style="background:#90a4ae"></span>reference
<span style="background:#ef6c00"></span>current</p>
{"".join(_card(f) for f in report.features)}
</body></html>
"""
