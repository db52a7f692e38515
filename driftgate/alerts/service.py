"""Alert rules and alert history over a store: what `POST/GET/DELETE /v1/alert-rules`, `GET /v1/alerts`
and `driftgate alerts ...` all call, so that the HTTP API and the CLI validate, refuse and redact alike.

Blocking (store calls, and DNS for the webhook check): the routes run these in a thread pool. No HTTP
framework code, so the CLI imports this without FastAPI.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from driftgate.alerts.rules import parse_rule
from driftgate.alerts.ssrf import Resolver, check_url, system_resolver, target_of
from driftgate.errors import BadRequest

if TYPE_CHECKING:
    from driftgate.store import Store

MAX_HISTORY = 10_000


def shown(rule: dict[str, Any]) -> dict[str, Any]:
    """A stored rule for read paths: webhook paths often hold secrets (Slack's do), so only scheme://host."""
    notify = [{"webhook": target_of(n["webhook"]) + "/..."} if "webhook" in n else n for n in rule["notify"]]
    return {**rule, "notify": notify}


def create_rule(
    store: Store,
    body: Any,
    *,
    webhook_allow: Sequence[str] = (),
    actor: str = "api",
    resolve: Resolver = system_resolver,
) -> dict[str, Any]:
    """Validate `body` (BadRequest naming the field), check every webhook target against the SSRF
    policy now (deliveries check again), store the rule; returns it as stored, webhooks whole."""
    rule = parse_rule(body)
    for url in rule.webhooks():
        check_url(url, webhook_allow, resolve)
    return store.alerts.create_rule(rule.stored(), actor=actor)


def list_rules(store: Store, endpoint: str | None = None) -> list[dict[str, Any]]:
    """Rules watching `endpoint` (every rule without it), webhooks shown as scheme://host/..."""
    return [shown(r) for r in store.alerts.rules(endpoint=endpoint)]


def get_rule(store: Store, name: str) -> dict[str, Any]:
    return shown(store.alerts.get_rule(name))


def delete_rule(store: Store, name: str) -> None:
    """NotFound for an unknown rule; its alerts stay in the history."""
    store.alerts.delete_rule(name)


def history(
    store: Store,
    *,
    endpoint: str | None = None,
    rule: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Alerts, newest first; `since`/`until` are epoch seconds, `rule` a rule name."""
    if not 1 <= limit <= MAX_HISTORY:
        raise BadRequest(f"limit must be between 1 and {MAX_HISTORY}, got {limit}", field="limit")
    return store.alerts.history(endpoint=endpoint, rule=rule, since=since, until=until, limit=limit)
