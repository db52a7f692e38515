"""Every SSRF form of tests/alerts/test_ssrf.py, sent where an attacker would: an alert rule's
webhook created over HTTP. Each is refused (400, a `notify` field) and no rule is stored."""

from __future__ import annotations

from typing import Any

import httpx

from tests.alerts.test_ssrf import REFUSED
from tests.conftest import LiveServer

RULE = {"endpoint": "fraud", "metric": "data_drift_share", "op": ">", "threshold": 0.3}


def test_every_ssrf_form_is_refused_over_http(server: LiveServer, figures: dict[str, Any]) -> None:
    accepted: list[str] = []
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for n, (url, _) in enumerate(REFUSED):
            r = http.post("/v1/alert-rules", json={**RULE, "name": f"ssrf-{n}", "notify": [{"webhook": url}]})
            if r.status_code != 400 or not str(r.json().get("field", "")).startswith("notify"):
                accepted.append(f"{url}: {r.status_code} {r.text[:200]}")
        stored = http.get("/v1/alert-rules").json()
    rules = stored.get("rules", stored) if isinstance(stored, dict) else stored
    figures.update(forms=len(REFUSED), accepted=len(accepted), rules_stored=len(rules))
    assert not accepted, "\n".join(accepted)
    assert not rules
