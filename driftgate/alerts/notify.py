"""Notifiers: a WARNING log line, and webhooks (JSON POST, Slack-compatible `text`) with retries.

Webhook URLs often carry secrets in their path (Slack's do), so logs and delivery records name
a target by scheme and host only. Redirects are not followed: a 3xx could send the request
somewhere the SSRF check never saw.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from driftgate.alerts.ssrf import (
    AllowList,
    Resolver,
    WebhookRefused,
    check_url,
    host_of,
    system_resolver,
    target_of,
)

log = logging.getLogger("driftgate.alerts")


class _RedactUrls(logging.Filter):
    """httpx logs every request's full URL at INFO; keep only scheme and host of it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(f"{a.scheme}://{a.host}/..." if isinstance(a, httpx.URL) else a for a in record.args)
        return True


logging.getLogger("httpx").addFilter(_RedactUrls())


def iso_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def text_line(alert: dict[str, Any]) -> str:
    """One readable line, for Slack's `text` and the log; a per-detail metric reads `event_rate{event="x"}`."""
    selector = ",".join(f'{k}="{v}"' for k, v in (alert.get("detail") or {}).items())
    metric = f"{alert['metric']}{{{selector}}}" if selector else alert["metric"]
    return (
        f"[{alert['severity']}] driftgate alert {alert['rule_name']!r} on endpoint {alert['endpoint']!r}: "
        f"{metric} = {alert['value']:.6g} {alert['op']} {alert['threshold']:.6g}"
    )


def payload(alert: dict[str, Any]) -> dict[str, Any]:
    """The webhook's JSON body."""
    return {
        "alert_id": alert["id"],
        "rule": alert["rule_name"],
        "endpoint": alert["endpoint"],
        "metric": alert["metric"],
        "detail": alert.get("detail"),
        "value": alert["value"],
        "op": alert["op"],
        "threshold": alert["threshold"],
        "severity": alert["severity"],
        "time": iso_time(alert["fired_at"]),
        "text": alert["message"],
    }


@dataclass
class Delivery:
    target: str
    ok: bool
    attempts: int
    status: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def log_notify(alert: dict[str, Any]) -> dict[str, Any]:
    log.warning("%s (alert %s)", alert["message"], alert["id"])
    return Delivery("log", ok=True, attempts=1).to_dict()


class WebhookNotifier:
    """POSTs alerts to webhooks; retries connection errors, 5xx and 429 with exponential backoff."""

    def __init__(
        self,
        allow: Sequence[str] = (),
        *,
        attempts: int = 4,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        timeout: float = 5.0,
        resolve: Resolver = system_resolver,
    ) -> None:
        self.allow = AllowList.parse(allow)
        self.attempts = max(1, attempts)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self.resolve = resolve

    def client(self) -> httpx.AsyncClient:
        # trust_env=False: a proxy from the environment would make the SSRF check meaningless.
        return httpx.AsyncClient(follow_redirects=False, timeout=self.timeout, trust_env=False)

    async def check(self, url: str) -> None:
        """The SSRF check, off the event loop (it may resolve DNS), plus a parser agreement check."""
        await asyncio.to_thread(check_url, url, self.allow, self.resolve)
        if httpx.URL(url).host.lower() != host_of(url)[1].strip("[]"):
            raise WebhookRefused("webhook URL is read differently by the HTTP client; refusing it", field="notify")

    async def send(self, client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> dict[str, Any]:
        target = target_of(url)
        result = Delivery(target, ok=False, attempts=0)
        for attempt in range(1, self.attempts + 1):
            try:
                # Again before every attempt: what the name resolves to may have changed since creation.
                await self.check(url)
            except (WebhookRefused, ValueError, httpx.InvalidURL) as exc:
                result.error = f"refused: {getattr(exc, 'message', str(exc))}"
                break
            result.attempts = attempt
            retry = True
            try:
                response = await client.post(url, json=body)
            except httpx.HTTPError as exc:  # connection refused or reset, timeouts
                result.status, result.error = None, f"{type(exc).__name__}: {str(exc).replace(url, target)}"
            else:
                result.status = response.status_code
                if response.is_success:
                    result.ok, result.error = True, None
                    break
                if response.is_redirect or 300 <= response.status_code < 400:
                    result.error, retry = f"HTTP {response.status_code}: redirect not followed", False
                else:
                    result.error = f"HTTP {response.status_code}"
                    retry = response.status_code >= 500 or response.status_code == 429
            if not retry or attempt == self.attempts:
                break
            await asyncio.sleep(min(self.base_delay * 2 ** (attempt - 1), self.max_delay))
        if not result.ok:
            log.warning("webhook delivery to %s failed after %d attempt(s): %s", target, result.attempts, result.error)
        return result.to_dict()
