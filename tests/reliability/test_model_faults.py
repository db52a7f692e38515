"""PLACEHOLDER: a model that raises, hangs, or segfaults.

Owner: issue 19, item 8 (native crash): another helper's work; the lead wires the scenario in here.
Scenario: a model raising answers 500 naming the type; a hanging one 504 within timeout_ms; a
segfaulting one answers 500 for the request that crashed it and the server (single worker) keeps
serving the next requests.
Report its figures with the `figures` fixture (see conftest.py) and in docs/reliability.md.
"""

from __future__ import annotations

import pytest


@pytest.mark.skip(reason="placeholder: issue 19, item 8; wired in by the lead")
def test_placeholder() -> None:
    """Replaced by the scenario."""
