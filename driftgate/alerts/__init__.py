"""Alerts (SPEC 7): rules over monitor metrics, deduplicated alerts, notifiers and actions.

`rules`, `ssrf` and `notify` import no database code; `engine` joins them to the store.
"""

from __future__ import annotations

from driftgate.alerts.rules import ACTIONS, METRICS, OPS, AlertRule, compare, parse_rule

__all__ = ["ACTIONS", "METRICS", "OPS", "AlertRule", "compare", "parse_rule"]
