"""Alert rules and the alert history, with the cooldown check that deduplicates across replicas."""

from __future__ import annotations

import secrets
import time
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError

from driftgate.errors import Conflict, NotFound
from driftgate.store import tables as t
from driftgate.store.database import inserted_id

RULE_FIELDS = (
    "name",
    "endpoint",
    "metric",
    "op",
    "threshold",
    "severity",
    "cooldown_seconds",
    "notify",
    "actions",
    "enabled",
    "detail",
)


def _rule(row: Any) -> dict[str, Any]:
    rule = row._asdict()
    rule["enabled"] = bool(rule["enabled"])
    return rule


def _alert(row: Any) -> dict[str, Any]:
    alert = row._asdict()
    alert["rule"] = alert.pop("rule_name")
    return alert


class AlertRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ---- rules ----------------------------------------------------------------------------------

    def create_rule(self, rule: dict[str, Any], *, actor: str = "api") -> dict[str, Any]:
        """Store a validated rule (see `driftgate.alerts.rules.AlertRule.stored`); a taken name is 409."""
        values = {k: rule[k] for k in RULE_FIELDS}
        values.update(id=secrets.token_hex(8), created_at=time.time(), created_by=actor)
        taken = Conflict(
            f"an alert rule named {values['name']!r} exists; delete it first or pick another name",
            name=values["name"],
        )
        try:
            with self.engine.begin() as conn:
                if conn.execute(select(t.alert_rules.c.id).where(t.alert_rules.c.name == values["name"])).first():
                    raise taken
                conn.execute(t.alert_rules.insert().values(**values))
        except IntegrityError:  # a concurrent create of the same name won the unique index
            raise taken from None
        return values

    def rules(self, *, endpoint: str | None = None, enabled_only: bool = False) -> list[dict[str, Any]]:
        """All rules by name; with `endpoint`, those that watch it (its own and the every-endpoint ones)."""
        query = select(t.alert_rules).order_by(t.alert_rules.c.name)
        if endpoint is not None:
            query = query.where((t.alert_rules.c.endpoint == endpoint) | t.alert_rules.c.endpoint.is_(None))
        if enabled_only:
            query = query.where(t.alert_rules.c.enabled.is_(True))
        with self.engine.connect() as conn:
            return [_rule(r) for r in conn.execute(query).all()]

    def get_rule(self, name: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.alert_rules).where(t.alert_rules.c.name == name)).first()
        if row is None:
            raise NotFound(f"no alert rule named {name!r}", name=name)
        return _rule(row)

    def delete_rule(self, name: str) -> None:
        """Remove a rule; the alerts it fired stay in the history."""
        with self.engine.begin() as conn:
            result = conn.execute(t.alert_rules.delete().where(t.alert_rules.c.name == name))
        if result.rowcount == 0:
            raise NotFound(f"no alert rule named {name!r}", name=name)

    # ---- alerts ---------------------------------------------------------------------------------

    def fire(self, rule_id: str, alert: dict[str, Any], cooldown_seconds: float) -> int | None:
        """Insert `alert` unless one for (rule, endpoint) fired within the cooldown; its id, or None.

        The check and the insert are one transaction serialised per rule, so replicas sharing the
        database that evaluate the same condition at once record one alert, not one each.
        """
        with self.engine.begin() as conn:
            if not self._lock_rule(conn, rule_id):
                return None  # deleted since it was read
            recent = conn.execute(
                select(t.alerts.c.id)
                .where(
                    t.alerts.c.rule_id == rule_id,
                    t.alerts.c.endpoint == alert["endpoint"],
                    t.alerts.c.fired_at > alert["fired_at"] - cooldown_seconds,
                )
                .limit(1)
            ).first()
            if recent is not None:
                return None
            values = {"deliveries": [], "actions": [], **alert, "rule_id": rule_id}
            return inserted_id(conn.execute(t.alerts.insert().values(**values)))

    def _lock_rule(self, conn: Connection, rule_id: str) -> bool:
        if conn.dialect.name == "postgresql":
            query = select(t.alert_rules.c.id).where(t.alert_rules.c.id == rule_id).with_for_update()
            return conn.execute(query).first() is not None
        # SQLite: writing first takes the database's write lock (waiting out busy_timeout) before the
        # read below; reading first could leave this transaction on a stale snapshot.
        result = conn.execute(t.alert_rules.update().where(t.alert_rules.c.id == rule_id).values(id=t.alert_rules.c.id))
        return result.rowcount > 0

    def record_outcome(self, alert_id: int, deliveries: list[dict[str, Any]], actions: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                t.alerts.update().where(t.alerts.c.id == alert_id).values(deliveries=deliveries, actions=actions)
            )

    def history(
        self,
        *,
        endpoint: str | None = None,
        rule: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Alerts, newest first; `rule` is a rule name, `since`/`until` epoch seconds (inclusive)."""
        query = select(t.alerts).order_by(t.alerts.c.fired_at.desc(), t.alerts.c.id.desc()).limit(limit)
        if endpoint is not None:
            query = query.where(t.alerts.c.endpoint == endpoint)
        if rule is not None:
            query = query.where(t.alerts.c.rule_name == rule)
        if since is not None:
            query = query.where(t.alerts.c.fired_at >= since)
        if until is not None:
            query = query.where(t.alerts.c.fired_at <= until)
        with self.engine.connect() as conn:
            return [_alert(r) for r in conn.execute(query).all()]

    def get_alert(self, alert_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.alerts).where(t.alerts.c.id == alert_id)).first()
        if row is None:
            raise NotFound(f"no alert with id {alert_id}", id=alert_id)
        return _alert(row)
