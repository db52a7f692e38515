"""The alert engine: metric points in, alerts out (recorded once per cooldown, notified, acted on).

The monitor calls `evaluate(endpoint, points)` after each run. Rules are read from the store on
every call, so a rule created on one replica applies on all of them at the next monitor run.
Deduplication happens in the store (`AlertRepo.fire`), so replicas sharing PostgreSQL that see
the same condition record one alert between them, and only that one notifies.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter

from driftgate.alerts.notify import WebhookNotifier, log_notify, payload, text_line
from driftgate.alerts.rules import DETAIL_KEYS, compare, selects
from driftgate.alerts.ssrf import Resolver, system_resolver
from driftgate.core.points import MetricPoint
from driftgate.store import Store

log = logging.getLogger("driftgate.alerts")

ActionHandler = Callable[[str, str], Awaitable[dict[str, Any]]]
"""`await handler(endpoint, reason)` -> a JSON-able dict; `{"ok": false, ...}` marks a failure."""


class AlertEngine:
    def __init__(
        self,
        store: Store,
        allow: Sequence[str] = (),
        actions: Mapping[str, ActionHandler] | None = None,
        *,
        registry: CollectorRegistry | None = None,
        attempts: int = 4,
        base_delay: float = 0.5,
        timeout: float = 5.0,
        resolve: Resolver = system_resolver,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        # A plain dict, so handlers can be wired after construction: engine.actions["rollback"] = ...
        self.actions: dict[str, ActionHandler] = dict(actions or {})
        self.webhooks = WebhookNotifier(
            allow, attempts=attempts, base_delay=base_delay, timeout=timeout, resolve=resolve
        )
        self.clock = clock
        self.fired_total = Counter(
            "driftgate_alerts_fired",
            "Alerts recorded (after cooldown deduplication).",
            ("rule", "endpoint", "severity"),
            registry=registry or CollectorRegistry(),
        )

    async def evaluate(self, endpoint: str, points: Sequence[MetricPoint]) -> list[dict[str, Any]]:
        """Fire every enabled rule watching `endpoint` whose condition holds on `points`.

        Returns the alerts recorded by this call, with their deliveries and action results
        (an alert suppressed by its cooldown is not returned). Notifier and action failures are
        recorded on the alert, never raised.
        """
        rules = await asyncio.to_thread(self.store.alerts.rules, endpoint=endpoint, enabled_only=True)
        fired = []
        for rule in rules:
            point = self._trigger(rule, endpoint, points)
            if point is None:
                continue
            alert = self._alert(rule, endpoint, point)
            alert_id = await asyncio.to_thread(self.store.alerts.fire, rule["id"], alert, rule["cooldown_seconds"])
            if alert_id is None:
                continue  # within the cooldown (here or on another replica)
            alert["id"] = alert_id
            self.fired_total.labels(rule["name"], endpoint, rule["severity"]).inc()
            fired.append((rule, alert))
        if not fired:
            return []
        async with self.webhooks.client() as client:
            await asyncio.gather(*(self._follow_up(client, rule, alert) for rule, alert in fired))
        return [_public(alert) for _, alert in fired]

    async def aclose(self) -> None:
        """Nothing outlives an `evaluate` call (each opens and closes its own HTTP client); kept for symmetry."""

    # ---- steps ----------------------------------------------------------------------------------

    @staticmethod
    def _trigger(rule: dict[str, Any], endpoint: str, points: Sequence[MetricPoint]) -> MetricPoint | None:
        """The first point on which the rule holds; endpoint-wide values (version None) come first. A rule
        with a `detail` selector only sees the points it names."""
        candidates = [
            p
            for p in points
            if p.endpoint == endpoint
            and p.metric == rule["metric"]
            and p.value is not None
            and selects(rule.get("detail"), p.detail)
        ]
        candidates.sort(key=lambda p: p.version is not None)
        for point in candidates:
            value = float(point.value)  # type: ignore[arg-type]
            if not math.isnan(value) and compare(rule["op"], value, rule["threshold"]):
                return point
        return None

    def _alert(self, rule: dict[str, Any], endpoint: str, point: MetricPoint) -> dict[str, Any]:
        alert = {
            "rule_id": rule["id"],
            "rule_name": rule["name"],
            "endpoint": endpoint,
            "metric": rule["metric"],
            "op": rule["op"],
            "value": float(point.value),  # type: ignore[arg-type]
            "threshold": float(rule["threshold"]),
            "severity": rule["severity"],
            "fired_at": self.clock(),
            # Which point of a per-detail metric fired, e.g. {"event": "user_retried"}.
            "detail": _selected(rule["metric"], point),
        }
        alert["message"] = text_line(alert)
        return alert

    async def _follow_up(self, client: httpx.AsyncClient, rule: dict[str, Any], alert: dict[str, Any]) -> None:
        """Notify and act at once (a slow webhook must not hold a rollback back), then record both."""
        body = payload(alert)
        sends = [
            self.webhooks.send(client, n["webhook"], body) if "webhook" in n else _log(alert) for n in rule["notify"]
        ]
        acts = [self._act(name, alert) for name in rule["actions"]]
        results = await asyncio.gather(*sends, *acts)
        alert["deliveries"], alert["actions"] = list(results[: len(sends)]), list(results[len(sends) :])
        try:
            await asyncio.to_thread(
                self.store.alerts.record_outcome, alert["id"], alert["deliveries"], alert["actions"]
            )
        except Exception:  # the alert itself is recorded; losing its delivery log must not stop the monitor
            log.exception("could not record deliveries of alert %s", alert["id"])

    async def _act(self, name: str, alert: dict[str, Any]) -> dict[str, Any]:
        handler = self.actions.get(name)
        if handler is None:
            return {"name": name, "ok": False, "detail": "not available"}
        try:
            result = await handler(alert["endpoint"], alert["message"])
        except Exception as exc:
            log.warning("action %s for alert %s failed: %s: %s", name, alert["id"], type(exc).__name__, exc)
            return {"name": name, "ok": False, "detail": f"{type(exc).__name__}: {exc}"}
        detail = json.loads(json.dumps(result, default=str))  # stored as JSON whatever the handler returned
        if not isinstance(detail, dict):
            return {"name": name, "ok": True, "detail": detail}
        # {"ok", "detail"} from the handler is flattened into the record; other keys stay nested.
        return {"name": name, "ok": bool(detail.pop("ok", True)), "detail": detail.pop("detail", detail)}


def _selected(metric: str, point: MetricPoint) -> dict[str, Any] | None:
    key = DETAIL_KEYS.get(metric)
    return {key: point.detail.get(key)} if key is not None else None


async def _log(alert: dict[str, Any]) -> dict[str, Any]:
    return log_notify(alert)


def _public(alert: dict[str, Any]) -> dict[str, Any]:
    """An alert as `GET /v1/alerts` shows it."""
    shown = dict(alert)
    shown["rule"] = shown.pop("rule_name")
    return shown
