"""Oversize and deep bodies (issue 19, items 6 and 11), through `driftgate serve`'s app in a child
process.

Three concurrent big native predict bodies (quick: ~10 MB each; `--reliability=full`: 60 MB, the
issue's size) while one client asks `GET /v2/health/live` every 20 ms: `benchmarks/overload/big_bodies.py`'s
`run` (the benchmark calls the same function). The liveness latencies are figures only, no threshold
(a loaded shared machine); asserted: liveness always answered 200 and no big request got a 5xx. Then,
on the same server: a depth-1000 nested value on every protocol (the cases of tests/api/test_overload.py)
is a 4xx, and a 5 MB string label is refused with 413.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from benchmarks.overload.big_bodies import run
from tests.api.test_overload import DEEP, DEEP_CASES

JSON = {"content-type": "application/json"}


def hostile(url: str) -> dict[str, Any]:
    """The deep and huge-label requests, against the server the big bodies went to."""
    with httpx.Client(base_url=url, timeout=120) as http:
        deep = [http.post(path, content=body % DEEP, headers=JSON).status_code for path, body, _field in DEEP_CASES]
        predicted = http.post("/v1/endpoints/clf/predict", json={"instances": [{"x1": 1, "x2": 2, "colour": "red"}]})
        predicted.raise_for_status()
        pid = predicted.json()["ids"][0]
        label = http.post("/v1/endpoints/clf/feedback", json={"labels": [{"id": pid, "label": "x" * 5_000_000}]})
    return {"deep_statuses": deep, "label_5mb_status": label.status_code}


@pytest.mark.slow
def test_big_bodies_leave_liveness_answering_and_hostile_values_get_4xx(figures: dict[str, Any], full: bool) -> None:
    out = run(mb=60 if full else 10, concurrent=3, probe=hostile)
    probe = out.pop("probe")
    figures.update(out | probe)
    assert len(out["requests"]) == 3 and all(r["status"] < 500 for r in out["requests"]), out["requests"]
    assert out["live_count"] > 0  # every probe was a 200 (run raises otherwise)
    assert all(400 <= s < 500 for s in probe["deep_statuses"]), probe["deep_statuses"]
    assert probe["label_5mb_status"] == 413
